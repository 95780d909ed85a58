#ifndef HERALD_COMMON_HB_CFGFILE_H
#define HERALD_COMMON_HB_CFGFILE_H

#include <stddef.h>

/*
 * The settings file of --config: one setting per line, `name = value`, `name value` or
 * `name =` (an empty value); lines whose first non-blank character is `#` and blank lines are
 * skipped; a value may be wrapped in one pair of double or single quotes; CRLF line ends are
 * accepted. What a name means is the caller's business (hb_cfg.c). Loop-free, any thread.
 */
#define HB_CFGFILE_MAX 65536     /* bytes of a settings file */
#define HB_CFGFILE_LINE_MAX 4096 /* bytes of one line */

/**
 * hb_cfgfile_entry_fn - called once per setting, in file order, with the name and the value
 * (both NUL-terminated, pointing into the parsed text) and its 1-based line. Returns 0 to go
 * on, or nonzero after writing a one-line reason to err: parsing stops there.
 */
typedef int (*hb_cfgfile_entry_fn)(void *arg, const char *name, const char *value, unsigned line,
                                   char *err, size_t errlen);

/**
 * hb_cfgfile_parse() - parse the settings in text[0, len), which it modifies in place (text
 * needs one more byte, text[len], for a NUL). Returns 0, or HB_EPROTO with "LINE: reason" in
 * err for a NUL byte, a line longer than HB_CFGFILE_LINE_MAX, a name without a value, or when
 * fn refused an entry (its reason after "LINE: ").
 */
int hb_cfgfile_parse(char *text, size_t len, hb_cfgfile_entry_fn fn, void *arg, char *err,
                     size_t errlen);

/**
 * hb_cfgfile_read() - read the file at path into a new buffer *out (len + 1 bytes, the caller
 * frees it) and its length into *len. Returns 0; HB_EIO with errno set when it cannot be
 * read; HB_ELIMIT when it is larger than HB_CFGFILE_MAX; HB_ENOMEM.
 */
int hb_cfgfile_read(const char *path, char **out, size_t *len);

#endif
