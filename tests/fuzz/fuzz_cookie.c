/*
 * hb_cookie_find() against a reference that splits the header at every ';' first and
 * trims each piece: the same cookie (or none), its value inside the header, and never a value
 * of a cookie whose name is not exactly the one asked for.
 *
 * Input: a name length byte, then the name's bytes (NUL-free: a configured name), then the
 * Cookie header's bytes.
 */
#include "fuzz_util.h"
#include "hb_cookie.h"

static int blank(char c)
{
    return c == ' ' || c == '\t';
}

/* The value of the first piece "name=value" (blanks trimmed around both, one pair of quotes
 * off the value), or NULL. */
static const char *ref(const char *h, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    for (size_t a = 0; a <= len;) {
        size_t b = a, s, e, eq;
        while (b < len && h[b] != ';')
            b++;
        for (s = a; s < b && blank(h[s]); s++)
            ;
        for (e = b; e > s && blank(h[e - 1]); e--)
            ;
        for (eq = s; eq < e && h[eq] != '='; eq++)
            ;
        if (eq < e) {
            size_t ne = eq, vs = eq + 1;
            while (ne > s && blank(h[ne - 1]))
                ne--;
            while (vs < e && blank(h[vs]))
                vs++;
            if (ne - s == nl && !memcmp(h + s, name, nl)) {
                if (e - vs >= 2 && h[vs] == '"' && h[e - 1] == '"') {
                    vs++;
                    e--;
                }
                *vlen = e - vs;
                return h + vs;
            }
        }
        a = b + 1;
    }
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t nl, vlen = 0, rlen = 0;
    char name[256];
    const char *v = NULL, *r;
    char *h;
    int found;
    if (size == 0)
        return 0;
    nl = data[0] < size - 1 ? data[0] : size - 1;
    memcpy(name, data + 1, nl);
    name[nl] = '\0';
    if (strlen(name) != nl || nl == 0)
        return 0; /* a configured name has no NUL and is not empty */
    h = fz_dup(data + 1 + nl, size - 1 - nl);
    found = hb_cookie_find(h, size - 1 - nl, name, &v, &vlen);
    r = ref(h, size - 1 - nl, name, &rlen);
    FZ_CHECK(found == (r != NULL));
    if (found) {
        FZ_CHECK(v == r && vlen == rlen);
        FZ_CHECK(fz_within(v, vlen, h, size - 1 - nl));
        FZ_CHECK(memchr(v, ';', vlen) == NULL);
    }
    free(h);
    return 0;
}
