/* The --allow-origin allow-list (hb_origin.h). */
#include "hb_origin.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "hb_err.h"

int hb_cfg_origins_valid(const char *v)
{
    const char *p = v;
    if (!strcmp(v, "*"))
        return 0;
    for (;;) {
        const char *end = strchr(p, ','), *host;
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (!strncmp(p, "https://", 8))
            host = p + 8;
        else if (!strncmp(p, "http://", 7))
            host = p + 7;
        else
            return HB_EINVAL;
        if (host >= p + n)
            return HB_EINVAL;
        for (const char *q = host; q < p + n; q++)
            if (!(isalnum((unsigned char)*q) || *q == '-' || *q == '.' || *q == ':' ||
                  *q == '[' || *q == ']'))
                return HB_EINVAL; /* no path, no trailing slash, no spaces */
        if (!end)
            return 0;
        p = end + 1;
    }
}

int hb_cfg_origin_index(const char *list, const char *origin, size_t len)
{
    const char *p = list;
    int i = 0;
    if (!strcmp(list, "*"))
        return 0;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == len && !strncasecmp(p, origin, len))
            return i + 1;
        if (!end)
            return -1;
        p = end + 1;
        i++;
    }
}

size_t hb_cfg_origin_at(const char *list, int idx, const char **out)
{
    const char *p = list;
    if (idx <= 0) {
        *out = "*";
        return 1;
    }
    for (int i = 1; i < idx && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    if (!p) {
        *out = "";
        return 0;
    }
    *out = p;
    return strchr(p, ',') ? (size_t)(strchr(p, ',') - p) : strlen(p);
}
