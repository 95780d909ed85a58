/*
 * hb_sentinel_parse_addr() and hb_sentinel_parse_switch() on arbitrary bytes: what they accept
 * matches the documented grammar (host 1..255 bytes of [A-Za-z0-9.:_-], port 1..65535 in plain
 * decimal, five space-separated fields), what they write stays in the destination, and a
 * rejection carries a constant one-line reason.
 *
 * Input: a +switch-master message; and, split at the first 0xff byte, a host and a port.
 */
#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_sentinel.h"

static int ref_host(const uint8_t *h, size_t n)
{
    if (n == 0 || n >= HB_SENTINEL_HOST_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = h[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == ':' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

static long ref_port(const uint8_t *p, size_t n)
{
    long v = 0;
    if (n == 0 || n > 5 || p[0] == '0')
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[2];
    size_t n[2];
    char host[HB_SENTINEL_HOST_MAX + 1];
    const char *why = NULL;
    int port = -7, rc;

    fz_split(data, size, 2, part, n);
    {
        char *h = fz_dup(part[0], n[0]), *p = fz_dup(part[1], n[1]);
        host[HB_SENTINEL_HOST_MAX] = 'X';
        rc = hb_sentinel_parse_addr(h, n[0], p, n[1], host, HB_SENTINEL_HOST_MAX, &port, &why);
        FZ_CHECK(rc == 0 || rc == HB_EPROTO);
        FZ_CHECK((rc == 0) == (ref_host(part[0], n[0]) && ref_port(part[1], n[1]) > 0));
        FZ_CHECK(host[HB_SENTINEL_HOST_MAX] == 'X');
        if (rc == 0) {
            FZ_CHECK(strlen(host) == n[0] && !memcmp(host, part[0], n[0]));
            FZ_CHECK(port == ref_port(part[1], n[1]));
        } else {
            FZ_CHECK(fz_reason_ok(why));
            FZ_CHECK(port == -7);
        }
        free(h);
        free(p);
    }
    {
        char *m = fz_dup(data, size);
        why = NULL;
        port = -7;
        rc = hb_sentinel_parse_switch(m, size, "m", host, HB_SENTINEL_HOST_MAX, &port, &why);
        FZ_CHECK(rc == 0 || rc == HB_EPROTO || rc == HB_ENOTFOUND);
        if (rc == 0) {
            FZ_CHECK(size >= 2 && m[0] == 'm' && m[1] == ' ');
            FZ_CHECK(ref_host((const uint8_t *)host, strlen(host)) && port >= 1 && port <= 65535);
        } else if (rc == HB_EPROTO) {
            FZ_CHECK(fz_reason_ok(why));
        }
        FZ_CHECK(host[HB_SENTINEL_HOST_MAX] == 'X');
        free(m);
    }
    return 0;
}
