#include "resolve.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "hb_log.h"
#include "hb_mem.h"
#include "broker.h"

#define MOD "resolve"
#define RESOLVE_MAX 64       /* host names kept */
#define RESOLVE_HOST_MAX 255 /* a DNS name's length */
#define RESOLVE_TTL_S 5.0    /* an answer is looked up again after this */
#define RESOLVE_RETRY_S 1.0  /* a failed lookup is tried again after this */

typedef struct rentry {
    struct hb_resolver *r;
    char host[RESOLVE_HOST_MAX + 1]; /* "" when the slot is free */
    char addr[INET6_ADDRSTRLEN];     /* "" while there is no answer */
    double at;                       /* when the last lookup ended */
    double used;                     /* when last asked for (eviction) */
    int pending, failed;
    struct evdns_getaddrinfo_request *req;
} rentry_t;

struct hb_resolver {
    struct evdns_base *dns;
    void (*on_done)(void *arg);
    void *arg;
    int in_lookup; /* inside evdns_getaddrinfo(): an answer now is not reported by on_done */
    int freeing;
    rentry_t e[RESOLVE_MAX];
};

static int is_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return evutil_inet_pton(AF_INET, host, buf) == 1 || evutil_inet_pton(AF_INET6, host, buf) == 1;
}

static void on_answer(int result, struct evutil_addrinfo *res, void *arg)
{
    rentry_t *e = arg;
    hb_resolver_t *r = e->r;
    e->pending = 0;
    e->req = NULL;
    e->at = hb_now();
    if (result == EVUTIL_EAI_CANCEL || r->freeing) {
        if (res)
            evutil_freeaddrinfo(res);
        return;
    }
    if (result == 0 && res) {
        const void *a = res->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        if (evutil_inet_ntop(res->ai_family, a, e->addr, sizeof(e->addr))) {
            if (e->failed)
                hb_log_info(MOD, "host name resolved again", "{s:s,s:s}", "host", e->host, "addr",
                            e->addr);
            e->failed = 0;
        }
    } else {
        /* the previous answer, if any, keeps serving: the name may come back */
        e->failed = 1;
        hb_log_ratelimited(e->host, 5000, HB_LOG_WARN, MOD, "cannot resolve host name", "{s:s,s:s}",
                           "host", e->host, "err", evutil_gai_strerror(result));
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (!r->in_lookup && r->on_done)
        r->on_done(r->arg);
}

static void lookup(hb_resolver_t *r, rentry_t *e)
{
    struct evutil_addrinfo hints;
    struct evdns_getaddrinfo_request *req;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    e->pending = 1;
    r->in_lookup = 1;
    req = evdns_getaddrinfo(r->dns, e->host, NULL, &hints, on_answer, e);
    r->in_lookup = 0;
    if (e->pending)
        e->req = req; /* else answered at once (numeric, /etc/hosts, or an error) */
}

hb_resolver_t *hb_resolver_new(struct event_base *base, void (*on_done)(void *arg), void *arg)
{
    hb_resolver_t *r = hb_xcalloc(1, sizeof(*r));
    r->dns =
        evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!r->dns) {
        free(r);
        return NULL;
    }
    r->on_done = on_done;
    r->arg = arg;
    for (int i = 0; i < RESOLVE_MAX; i++)
        r->e[i].r = r;
    return r;
}

const char *hb_resolver_addr(hb_resolver_t *r, const char *host)
{
    double now = hb_now();
    rentry_t *e = NULL, *victim = NULL;
    if (!host || !*host)
        return NULL;
    if (is_numeric(host))
        return host;
    if (strlen(host) > RESOLVE_HOST_MAX) {
        hb_log_ratelimited("resolve-long", 5000, HB_LOG_WARN, MOD, "host name too long", NULL);
        return NULL;
    }
    for (int i = 0; i < RESOLVE_MAX && !e; i++) {
        rentry_t *x = &r->e[i];
        if (x->host[0] && !strcmp(x->host, host))
            e = x;
        else if (!x->pending &&
                 (!victim || !x->host[0] || (victim->host[0] && x->used < victim->used)))
            victim = x;
    }
    if (!e) {
        if (!victim)
            return NULL; /* every slot has a lookup running: try again later */
        e = victim;
        memset(e->addr, 0, sizeof(e->addr));
        snprintf(e->host, sizeof(e->host), "%s", host);
        e->failed = 0;
        e->at = 0;
    }
    e->used = now;
    if (!e->pending && (!e->at || now - e->at > (e->failed ? RESOLVE_RETRY_S : RESOLVE_TTL_S)))
        lookup(r, e);
    return e->addr[0] ? e->addr : NULL;
}

void hb_resolver_free(hb_resolver_t *r)
{
    if (!r)
        return;
    r->freeing = 1;
    for (int i = 0; i < RESOLVE_MAX; i++)
        if (r->e[i].pending && r->e[i].req)
            evdns_getaddrinfo_cancel(r->e[i].req);
    evdns_base_free(r->dns, 0);
    free(r);
}
