/*
 * hb_slot_redirect_parse() on arbitrary bytes (an error reply from a Redis node), and slot map
 * updates from arbitrary ranges (what CLUSTER SLOTS says).
 *
 * Properties:
 *  - a parse either succeeds with a slot < 16384, a port in 1..65535 and a host that is empty
 *    or passes hb_slot_host_ok and fits the buffer, and the input starts with "MOVED " or
 *    "ASK "; or it fails with HB_EPROTO and a constant one-line reason;
 *  - assigning a range from the input either fails with an error code and changes nothing, or
 *    makes every slot of the range owned by the returned node, whose host and port read back.
 */
#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_slot.h"

static void check_redirect(const char *s, size_t n)
{
    int ask = -1, port = -1;
    unsigned slot = 0;
    char host[64];
    const char *reason = NULL;
    int rc = hb_slot_redirect_parse(s, n, &ask, &slot, host, sizeof(host), &port, &reason);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO);
    if (rc != HB_OK) {
        FZ_CHECK(fz_reason_ok(reason));
        return;
    }
    FZ_CHECK((ask == 1 && n >= 4 && !memcmp(s, "ASK ", 4)) ||
             (ask == 0 && n >= 6 && !memcmp(s, "MOVED ", 6)));
    FZ_CHECK(slot < HB_SLOT_COUNT);
    FZ_CHECK(port >= 1 && port <= 65535);
    FZ_CHECK(strlen(host) < sizeof(host));
    FZ_CHECK(host[0] == '\0' || hb_slot_host_ok(host, strlen(host)));
}

static void check_assign(const uint8_t *data, size_t size)
{
    const uint8_t *p[2];
    size_t n[2];
    if (size < 6)
        return;
    long lo = (long)(data[0] | data[1] << 8) - 100, hi = (long)(data[2] | data[3] << 8) - 100;
    int port = (int)(data[4] | data[5] << 8);
    fz_split(data + 6, size - 6, 2, p, n);
    char *h1 = fz_dup(p[0], n[0]), *h2 = fz_dup(p[1], n[1]);
    hb_slot_map_t *m = hb_slot_map_new();
    int a = hb_slot_map_assign(m, 0, 100, "seed", 4, 7000);
    FZ_CHECK(a == 0);
    int rc = hb_slot_map_assign(m, lo, hi, h1, n[0], port);
    if (rc < 0) {
        FZ_CHECK(rc == HB_EINVAL || rc == HB_EPROTO || rc == HB_ELIMIT);
        FZ_CHECK(hb_slot_map_covered(m) == 101);
        FZ_CHECK(hb_slot_map_owner(m, 0) == 0 && hb_slot_map_owner(m, 101) == HB_ENOTFOUND);
    } else {
        FZ_CHECK(lo >= 0 && lo <= hi && hi < HB_SLOT_COUNT);
        FZ_CHECK(hb_slot_map_owner(m, (unsigned)lo) == rc);
        FZ_CHECK(hb_slot_map_owner(m, (unsigned)hi) == rc);
        FZ_CHECK(hb_slot_map_first_slot(m, rc) <= lo);
        FZ_CHECK(strlen(hb_slot_map_host(m, rc)) == n[0]);
        FZ_CHECK(memcmp(hb_slot_map_host(m, rc), h1, n[0]) == 0);
        FZ_CHECK(hb_slot_map_port(m, rc) == port);
        /* the same address again resolves to the same node */
        FZ_CHECK(hb_slot_map_node(m, h1, n[0], port) == rc);
    }
    int rc2 = hb_slot_map_node(m, h2, n[1], 7000);
    FZ_CHECK(rc2 >= 0 || rc2 == HB_EPROTO);
    FZ_CHECK(hb_slot_map_covered(m) <= HB_SLOT_COUNT);
    hb_slot_map_free(m);
    free(h1);
    free(h2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_dup(data, size);
    check_redirect(s, size);
    free(s);
    check_assign(data, size);
    return 0;
}
