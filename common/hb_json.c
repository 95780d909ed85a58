#include "hb_json.h"

/* The escape of byte c: 0 none, else the character after the backslash ('u': \u00XX). */
static char escape_of(unsigned char c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    default:
        return c < 0x20 ? 'u' : 0;
    }
}

size_t hb_json_str_size(const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t out = n + 2;
    for (size_t i = 0; i < n; i++) {
        char e = escape_of(p[i]);
        if (e)
            out += e == 'u' ? 5 : 1;
    }
    return out;
}

size_t hb_json_str_put(char *out, const void *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = s;
    char *o = out;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        char e = escape_of(p[i]);
        if (!e) {
            *o++ = (char)p[i];
            continue;
        }
        *o++ = '\\';
        *o++ = e;
        if (e == 'u') {
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[p[i] >> 4];
            *o++ = hex[p[i] & 15];
        }
    }
    *o++ = '"';
    return (size_t)(o - out);
}
