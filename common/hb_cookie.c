#include "hb_cookie.h"

#include <string.h>

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

int hb_cookie_find(const char *hdr, size_t len, const char *name, const char **val, size_t *vlen)
{
    size_t nlen = strlen(name), i = 0;
    while (i < len) {
        size_t start, end, eq;
        while (i < len && (blank(hdr[i]) || hdr[i] == ';'))
            i++;
        start = i;
        while (i < len && hdr[i] != ';')
            i++;
        end = i; /* the pair is hdr[start, end) */
        while (end > start && blank(hdr[end - 1]))
            end--;
        for (eq = start; eq < end && hdr[eq] != '='; eq++)
            ;
        if (eq == end)
            continue; /* no "=": not a cookie pair */
        {
            size_t ne = eq, vs = eq + 1;
            while (ne > start && blank(hdr[ne - 1]))
                ne--;
            while (vs < end && blank(hdr[vs]))
                vs++;
            if (ne - start != nlen || memcmp(hdr + start, name, nlen) != 0)
                continue;
            if (end - vs >= 2 && hdr[vs] == '"' && hdr[end - 1] == '"') {
                vs++;
                end--;
            }
            *val = hdr + vs;
            *vlen = end - vs;
            return 1;
        }
    }
    return 0;
}
