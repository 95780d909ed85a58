#include "hb_sentinel.h"

#include <string.h>

#include "hb_err.h"

static int fail(const char **reason, const char *why)
{
    if (reason)
        *reason = why;
    return HB_EPROTO;
}

static int host_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == ':' || c == '-' || c == '_';
}

int hb_sentinel_parse_addr(const char *h, size_t hlen, const char *p, size_t plen, char *host,
                           size_t cap, int *port, const char **reason)
{
    long v = 0;
    if (hlen == 0 || hlen >= HB_SENTINEL_HOST_MAX || hlen >= cap)
        return fail(reason, "sentinel: host is empty or too long");
    for (size_t i = 0; i < hlen; i++)
        if (!host_char((unsigned char)h[i]))
            return fail(reason, "sentinel: host has a byte outside [A-Za-z0-9.:_-]");
    if (plen == 0 || plen > 5 || p[0] == '0')
        return fail(reason, "sentinel: port is not a number from 1 to 65535");
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9')
            return fail(reason, "sentinel: port is not a number from 1 to 65535");
        v = v * 10 + (p[i] - '0');
    }
    if (v > 65535)
        return fail(reason, "sentinel: port is not a number from 1 to 65535");
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)v;
    return 0;
}

int hb_sentinel_parse_switch(const char *msg, size_t len, const char *master, char *host,
                             size_t cap, int *port, const char **reason)
{
    const char *f[5], *p = msg, *end = msg + len;
    size_t fl[5];
    int n = 0;

    while (n < 5) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        f[n] = p;
        fl[n++] = (size_t)(e - p);
        if (!sp)
            break;
        p = sp + 1;
        if (n == 5)
            return fail(reason, "sentinel: +switch-master has more than five fields");
    }
    if (n != 5)
        return fail(reason, "sentinel: +switch-master has fewer than five fields");
    if (fl[0] != strlen(master) || memcmp(f[0], master, fl[0]) != 0)
        return HB_ENOTFOUND;
    return hb_sentinel_parse_addr(f[3], fl[3], f[4], fl[4], host, cap, port, reason);
}
