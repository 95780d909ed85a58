/*
 * Raw PUBLISH ingest: a plain `PUBLISH <topic> <payload>` is stored exactly once, in publish
 * order, by the one edge holding the ingest lease (SET <prefix>ingest:lease <token> NX PX), the
 * leader. Every ingest-enabled edge PSUBSCRIBEs "*" on its own connection:
 *   - the leader runs FCALL herald_ingest (fenced by its token) for each raw message, pipelined
 *     in arrival order on the command connection;
 *   - a standby keeps each raw message until it sees the leader's stored copy (a live message
 *     flagged "r" on the same connection, so always after the raw one) and then forgets it.
 * On winning the lease, a new leader publishes a barrier on its own channel and waits to receive
 * it: every message published before that point, including the old leader's last stores, has
 * then been seen, so what is still kept is exactly what nobody stored. It stores those, then
 * goes on live.
 *
 * Redis Cluster: the lease is <prefix>{ingest}:lease, and winning it also draws the next leader
 * term (INCR <prefix>{ingest}:term, in the same function). herald_ingest cannot read the lease
 * (another slot), so each slot has a fence key <prefix>fence:{<tag>} holding the highest term
 * that stored into it: an older term is refused (HERALD_FENCED), a newer one raises it. A new
 * leader first raises the fence of every slot on every primary (FCALL herald_fence) and then
 * publishes one barrier per primary on the same connection; it goes live once it has seen every
 * barrier and every raise succeeded. What a stale leader sent to a primary before that raise is
 * published (herald_ingest re-PUBLISHes its stored copy classically for standbys) before that
 * primary's barrier, so it is forgotten by the new leader; anything later is fenced.
 * Broker thread only.
 */
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "cluster.h"
#include "hb_live.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_slot.h"
#include "hb_topic.h"

#define MOD "ingest"
#define PENDING_MAX 100000
#define PENDING_BYTES_MAX (64u << 20)
#define MATCH_SCAN_MAX 1024
#define INFLIGHT_MAX 100000
#define CLUSTER_KEEP_S 60.0 /* seconds a standby keeps a raw message in cluster mode */

typedef struct pend {
    struct pend *next;
    double ts;
    size_t tlen, plen;
    char *topic;
    char *payload;
} pend_t;

/* A FIFO of raw messages (topic, payload). */
typedef struct plist {
    pend_t *head, *tail;
    size_t count, bytes;
} plist_t;

typedef enum { I_STANDBY = 0, I_BARRIER, I_ACTIVE } istate_t;

struct ingest {
    istate_t state;
    char token[128];
    char lease_key[96];
    char barrier[256];
    size_t barrier_len;
    unsigned long barrier_n;
    plist_t kept;    /* raw messages whose stored copy has not been seen */
    plist_t orphans; /* cluster: stored copies seen before their raw message */
    double last_renew_ok;
    double barrier_at;
    double next_lease_at;
    int acquire_inflight, renew_inflight;
    long inflight;
    unsigned long unknown; /* FCALLs whose outcome was lost with the connection */
    /* cluster mode */
    long long term;                 /* leader term drawn with the lease */
    char term_key[96];              /* <prefix>{ingest}:term */
    char (*tags)[HB_SLOT_TAG_MAX];  /* slot -> hash tag of its fence key */
    int barrier_need, barrier_seen; /* barriers published / received */
    int fence_need, fence_ok;       /* fence raises sent / succeeded */
};

static void pend_free(pend_t *p)
{
    free(p->topic);
    free(p->payload);
    free(p);
}

static void pend_drop_head(plist_t *l)
{
    pend_t *p = l->head;
    l->head = p->next;
    if (!l->head)
        l->tail = NULL;
    l->count--;
    l->bytes -= p->tlen + p->plen;
    pend_free(p);
}

/* Removes the oldest entry equal to (topic, payload) among the first MATCH_SCAN_MAX; 1 found. */
static int plist_take(plist_t *l, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    pend_t **pp = &l->head, *prev = NULL;
    for (int n = 0; *pp && n < MATCH_SCAN_MAX; n++, prev = *pp, pp = &(*pp)->next) {
        pend_t *p = *pp;
        if (p->tlen == tlen && p->plen == plen && !memcmp(p->topic, topic, tlen) &&
            !memcmp(p->payload, payload, plen)) {
            *pp = p->next;
            if (l->tail == p)
                l->tail = prev;
            l->count--;
            l->bytes -= tlen + plen;
            pend_free(p);
            return 1;
        }
    }
    return 0;
}

/* Appends a copy of (topic, payload), dropping the oldest entries past the bounds; 0, or -1
 * when an oldest entry had to go (the caller counts it) or memory ran out. */
static int plist_push(plist_t *l, const char *topic, size_t tlen, const char *payload,
                      size_t plen)
{
    int dropped = 0;
    pend_t *p;
    while (l->count && (l->count >= PENDING_MAX || l->bytes + tlen + plen > PENDING_BYTES_MAX)) {
        pend_drop_head(l);
        dropped = -1;
    }
    p = hb_xcalloc(1, sizeof(*p));
    p->ts = hb_now();
    p->topic = hb_xmemdup(topic, tlen);
    p->tlen = tlen;
    p->payload = malloc(plen ? plen : 1);
    if (!p->payload) {
        pend_free(p);
        return -1;
    }
    memcpy(p->payload, payload, plen);
    p->plen = plen;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    l->count++;
    l->bytes += tlen + plen;
    return dropped;
}

static void plist_clear(plist_t *l)
{
    while (l->head)
        pend_drop_head(l);
}

static void set_state(hb_broker_t *b, istate_t st, const char *why)
{
    ingest_t *in = b->ingest;
    if (in->state == st)
        return;
    in->state = st;
    atomic_store(&b->edge->stats.leader, st != I_STANDBY);
    hb_log_info(MOD,
                st == I_ACTIVE    ? "ingest leader"
                : st == I_BARRIER ? "lease won"
                                  : "standby",
                "{s:s,s:i}", "why", why, "kept", (int)in->kept.count);
}

static void on_ingest_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    in->inflight--;
    if (!r) {
        in->unknown++;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (!strncmp(r->str, "HERALD_FENCED", 13)) {
            set_state(b, I_STANDBY, "fenced");
        } else {
            atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
            hb_log_ratelimited("ingest-error", 1000, HB_LOG_WARN, MOD, "raw message not stored",
                               "{s:s}", "err", r->str);
        }
        return;
    }
    atomic_fetch_add_explicit(&b->edge->stats.ingested, 1, memory_order_relaxed);
}

static void store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    ingest_t *in = b->ingest;
    if (in->inflight >= INFLIGHT_MAX) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-inflight", 1000, HB_LOG_ERROR, MOD,
                           "too many raw messages in flight to Redis: dropped", NULL);
        return;
    }
    if (b->cluster) {
        char fence[96], term[24];
        unsigned slot = hb_slot_of(topic, tlen);
        const char *av[2] = {payload, term};
        size_t al[2] = {plen, 0};
        snprintf(fence, sizeof(fence), "%sfence:{%s}", b->edge->cfg.prefix, in->tags[slot]);
        al[1] = (size_t)snprintf(term, sizeof(term), "%lld", in->term);
        if (hb_cluster_fcall(b->cluster, "herald_ingest", topic, tlen, fence, 2, av, al,
                             on_ingest_reply, NULL) == REDIS_OK)
            in->inflight++;
        return;
    }
    if (redisAsyncCommand(b->cmd.ac, on_ingest_reply, NULL, "FCALL herald_ingest 1 %b %b %s", topic,
                          tlen, payload, plen, in->token) == REDIS_OK)
        in->inflight++;
}

static void keep(hb_broker_t *b, const char *topic, size_t tlen, const char *payload, size_t plen)
{
    ingest_t *in = b->ingest;
    /* cluster: the stored copy may have come first (another bus link) */
    if (in->orphans.count && plist_take(&in->orphans, topic, tlen, payload, plen))
        return;
    if (plist_push(&in->kept, topic, tlen, payload, plen)) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_standby_overflow, 1, memory_order_relaxed);
        hb_log_ratelimited("standby-full", 1000, HB_LOG_WARN, MOD,
                           "standby buffer full: oldest kept raw message forgotten", NULL);
    }
}

/* The leader stored a raw message: forget our copy (the oldest equal one); in a cluster a copy
 * that came before its raw message is remembered instead, to be matched when that arrives. */
static void forget(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                   size_t plen)
{
    ingest_t *in = b->ingest;
    if (plist_take(&in->kept, topic, tlen, payload, plen) || !b->cluster ||
        in->state == I_ACTIVE)
        return;
    plist_push(&in->orphans, topic, tlen, payload, plen); /* bounded like kept */
}

static void go_active(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    set_state(b, I_ACTIVE, "barrier passed");
    plist_clear(&in->orphans);
    while (in->kept.head) {
        store(b, in->kept.head->topic, in->kept.head->tlen, in->kept.head->payload,
              in->kept.head->plen);
        pend_drop_head(&in->kept);
    }
}

static void on_pmessage(hb_broker_t *b, const char *chan, size_t clen, const char *msg, size_t mlen)
{
    ingest_t *in = b->ingest;
    const char *prefix = b->edge->cfg.prefix;
    size_t pl = strlen(prefix);

    if (clen >= pl && !memcmp(chan, prefix, pl)) {
        const char *t;
        size_t tl;
        hb_live_t lv;
        if (in->state == I_BARRIER && clen == in->barrier_len && !memcmp(chan, in->barrier, clen)) {
            go_active(b);
            return;
        }
        if (b->cluster && in->state == I_BARRIER && clen > in->barrier_len &&
            !memcmp(chan, in->barrier, in->barrier_len) && chan[in->barrier_len] == ':') {
            in->barrier_seen++; /* one per primary: "<barrier>:<n>" */
            if (in->barrier_seen >= in->barrier_need && in->fence_ok >= in->fence_need)
                go_active(b);
            return;
        }
        if ((in->kept.count || (b->cluster && in->state != I_ACTIVE)) &&
            !hb_broker_channel_topic(prefix, chan, clen, &t, &tl) &&
            !hb_live_decode(msg, mlen, &lv, NULL) && (lv.flags & HB_LIVE_FLAG_RAW))
            forget(b, t, tl, lv.data, lv.data_len);
        return;
    }
    if (clen >= 2 && chan[0] == '_' && chan[1] == '_')
        return; /* keyspace notifications and other internal channels */
    if (hb_topic_validate(chan, clen, NULL) || mlen > (size_t)b->edge->cfg.max_message_bytes) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-reject", 1000, HB_LOG_WARN, MOD,
                           "raw message ignored: bad topic name or payload too large", "{s:s%,s:I}",
                           "channel", chan, clen > 128 ? (size_t)128 : clen, "bytes",
                           (long long)mlen);
        return;
    }
    if (in->state == I_ACTIVE && b->cmd_ready)
        store(b, chan, clen, msg, mlen);
    else
        keep(b, chan, clen, msg, mlen);
}

static void on_ing(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    (void)priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(r->element[0]->str, "pmessage") && r->elements == 4 &&
        r->element[2]->type == REDIS_REPLY_STRING && r->element[3]->type == REDIS_REPLY_STRING) {
        on_pmessage(b, r->element[2]->str, r->element[2]->len, r->element[3]->str,
                    r->element[3]->len);
    } else if (!strcmp(r->element[0]->str, "psubscribe")) {
        b->ing_ready = 1;
        hb_log_info(MOD, "raw publish ingest listening", NULL);
        hb_broker_update_ready(b);
    }
}

static void on_acquire(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    in->acquire_inflight = 0;
    if (!r || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
        return; /* someone else holds it */
    in->last_renew_ok = hb_now();
    set_state(b, I_BARRIER, "lease acquired");
    in->barrier_at = hb_now();
    in->barrier_len = (size_t)snprintf(in->barrier, sizeof(in->barrier), "%sbarrier:%s:%lu",
                                       b->edge->cfg.prefix, in->token, ++in->barrier_n);
    redisAsyncCommand(b->cmd.ac, NULL, NULL, "PUBLISH %b 1", in->barrier, in->barrier_len);
}

static void on_fence_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    if (in->state != I_BARRIER)
        return;
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        /* A primary did not raise its fences (stale slot map, node down): do not go live. */
        hb_log_warn(MOD, "ingest fence not raised on a primary: lease given back", "{s:s}", "err",
                    r && r->type == REDIS_REPLY_ERROR ? r->str : "no reply");
        hb_ingest_release(b);
        set_state(b, I_STANDBY, "fence not raised");
        return;
    }
    in->fence_ok++;
    if (in->barrier_seen >= in->barrier_need && in->fence_ok >= in->fence_need)
        go_active(b);
}

/* Cluster mode: the lease was won with a new leader term; fence every slot, then barriers. */
static void on_acquire_cluster(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    char term[24];
    int n;
    (void)priv;
    in->acquire_inflight = 0;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return; /* held by someone else (nil), or an error */
    in->term = r->integer;
    in->last_renew_ok = hb_now();
    set_state(b, I_BARRIER, "lease acquired");
    in->barrier_at = hb_now();
    in->barrier_len = (size_t)snprintf(in->barrier, sizeof(in->barrier), "%sbarrier:%s:%lu",
                                       b->edge->cfg.prefix, in->token, ++in->barrier_n);
    in->barrier_seen = in->fence_ok = 0;
    snprintf(term, sizeof(term), "%lld", in->term);
    n = hb_cluster_fence_and_barrier(b->cluster, term, in->barrier, in->tags, on_fence_reply, NULL);
    in->barrier_need = in->fence_need = n;
    if (n == 0) {
        hb_ingest_release(b);
        set_state(b, I_STANDBY, "cluster not ready for the barrier");
    }
}

static int lease_command(hb_broker_t *b, redisCallbackFn *cb, const char *fn, int nkeys,
                         const char *arg2)
{
    ingest_t *in = b->ingest;
    const char *av[7];
    size_t al[7];
    int argc = 0;
    av[argc++] = "FCALL";
    av[argc++] = fn;
    av[argc++] = nkeys == 2 ? "2" : "1";
    av[argc++] = in->lease_key;
    if (nkeys == 2)
        av[argc++] = in->term_key;
    av[argc++] = in->token;
    if (arg2)
        av[argc++] = arg2;
    for (int i = 0; i < argc; i++)
        al[i] = strlen(av[i]);
    return hb_cluster_key_command(b->cluster, 3, argc, av, al, cb, NULL);
}

static void on_renew(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    in->renew_inflight = 0;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
        in->last_renew_ok = hb_now();
    else
        set_state(b, I_STANDBY, "lease lost");
}

void hb_ingest_tick(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    double now = hb_now(), lease = b->edge->cfg.lease_ms / 1000.0;
    double expiry = lease * 3 > 10 ? lease * 3 : 10;
    /* A cluster failover (cluster-node-timeout, 15 s by default, plus the election) can take
     * the lease's shard away for longer than that: keep raw messages through it. */
    if (b->cluster && expiry < CLUSTER_KEEP_S)
        expiry = CLUSTER_KEEP_S;
    char ms[24];
    snprintf(ms, sizeof(ms), "%d", b->edge->cfg.lease_ms);

    if (!b->edge->cfg.ingest)
        return;
    while (in->kept.head && now - in->kept.head->ts > expiry)
        pend_drop_head(&in->kept); /* the leader refused it or it was stored long ago */
    while (in->orphans.head && now - in->orphans.head->ts > expiry)
        pend_drop_head(&in->orphans); /* its raw message never came (or came to no one) */
    if (in->state != I_STANDBY && now - in->last_renew_ok > lease * 0.8)
        set_state(b, I_STANDBY, "lease not renewed in time");
    if (in->state != I_STANDBY && !b->ing_ready) {
        /* a leader that no longer sees raw messages must let a standby take over */
        hb_ingest_release(b);
        set_state(b, I_STANDBY, "ingest subscription lost");
    }
    if (in->state == I_BARRIER && now - in->barrier_at > lease) {
        hb_ingest_release(b);
        set_state(b, I_STANDBY, "barrier not seen in time");
    }
    if (now < in->next_lease_at || !b->cmd_ready || atomic_load(&b->edge->stats.draining))
        return;
    in->next_lease_at = now + lease / 3;
    if (in->state == I_STANDBY) {
        if (!b->ing_ready || in->acquire_inflight)
            return;
        in->acquire_inflight = 1;
        if (b->cluster) {
            if (lease_command(b, on_acquire_cluster, "herald_lease_acquire", 2, ms) != REDIS_OK)
                in->acquire_inflight = 0;
            return;
        }
        redisAsyncCommand(b->cmd.ac, on_acquire, NULL, "SET %s %s NX PX %d", in->lease_key,
                          in->token, b->edge->cfg.lease_ms);
    } else if (!in->renew_inflight) {
        in->renew_inflight = 1;
        if (b->cluster) {
            if (lease_command(b, on_renew, "herald_lease_renew", 1, ms) != REDIS_OK)
                in->renew_inflight = 0;
            return;
        }
        redisAsyncCommand(b->cmd.ac, on_renew, NULL, "FCALL herald_lease_renew 0 %s %d", in->token,
                          b->edge->cfg.lease_ms);
    }
}

void hb_ingest_init(hb_broker_t *b)
{
    ingest_t *in = hb_xcalloc(1, sizeof(*in));
    unsigned long r1 = (unsigned long)random(), r2 = (unsigned long)random();
    snprintf(in->token, sizeof(in->token), "%s:%08lx%08lx", b->edge->cfg.node_id, r1, r2);
    snprintf(in->lease_key, sizeof(in->lease_key), "%singest:lease", b->edge->cfg.prefix);
    if (b->edge->cfg.redis_cluster) {
        snprintf(in->lease_key, sizeof(in->lease_key), "%s{ingest}:lease", b->edge->cfg.prefix);
        snprintf(in->term_key, sizeof(in->term_key), "%s{ingest}:term", b->edge->cfg.prefix);
        in->tags = hb_xcalloc(HB_SLOT_COUNT, sizeof(*in->tags));
        hb_slot_tag_table(in->tags);
    }
    b->ingest = in;
}

void hb_ingest_cleanup(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    if (!in)
        return;
    plist_clear(&in->kept);
    plist_clear(&in->orphans);
    free(in->tags);
    free(in);
    b->ingest = NULL;
}

void hb_ingest_on_cmd_ready(hb_broker_t *b)
{
    b->ingest->next_lease_at = 0;
    b->ingest->acquire_inflight = 0;
    b->ingest->renew_inflight = 0;
}

void hb_ingest_on_cmd_down(hb_broker_t *b)
{
    set_state(b, I_STANDBY, "redis command connection lost");
}

void hb_ingest_on_ing_up(hb_broker_t *b)
{
    redisAsyncCommand(b->ing.ac, on_ing, NULL, "PSUBSCRIBE *");
}

static void on_released(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)reply;
    (void)priv;
}

void hb_ingest_release(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    if (in->state == I_STANDBY || !b->cmd_ready)
        return;
    if (b->cluster)
        lease_command(b, on_released, "herald_lease_release", 1, NULL);
    else
        redisAsyncCommand(b->cmd.ac, NULL, NULL, "FCALL herald_lease_release 0 %s", in->token);
    set_state(b, I_STANDBY, "draining");
}

int hb_ingest_idle(hb_broker_t *b)
{
    return b->ingest->inflight <= 0;
}
