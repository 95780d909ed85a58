#ifndef HERALD_COMMON_HB_JSON_H
#define HERALD_COMMON_HB_JSON_H

#include <stddef.h>

/*
 * JSON strings written by hand for the per-event encoders (common/hb_event.c), byte for byte
 * what jansson's json_dumps() writes for a string value with JSON_COMPACT and no escaping flags:
 * the string in double quotes; '"' and '\' escaped with a backslash; the control characters
 * below 0x20 as \b \f \n \r \t or \u00XX (upper-case hex); every other byte, UTF-8 sequences
 * and '/' included, as it is. Encoding an event once for five transports went through
 * jansson's object model and cost about 25,000 instructions of the 37,000 an event took
 * (tests/bench/README.md); this writes the same bytes in a pass. The input must be valid
 * UTF-8 (hb_utf8_valid()): what is not cannot be a JSON string, and callers send it base64.
 * Pure functions, any thread; no input length can overflow them below SIZE_MAX / 6.
 */

/** hb_json_str_size() - bytes hb_json_str_put() writes for (s, n): quotes included. */
size_t hb_json_str_size(const void *s, size_t n);

/**
 * hb_json_str_put() - writes (s, n) as a JSON string at out, which has room for
 * hb_json_str_size(s, n) bytes (no NUL is written). Returns the bytes written.
 */
size_t hb_json_str_put(char *out, const void *s, size_t n);

#endif
