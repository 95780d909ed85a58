/*
 * The raw-ingest leadership (see ingest.c for the store path). One edge holds the ingest lease
 * (SET <prefix>ingest:lease <token> NX PX, renewed by FCALL), the leader.
 * On winning the lease, a new leader publishes a barrier on its own channel and waits to receive
 * it: every message published before that point, including the old leader's last stores, has
 * then been seen, so what is still kept is exactly what nobody stored. It stores those, then
 * goes on live. Once those catch-up stores are answered (not refused), it publishes
 * "<barrier>:caught" (single Redis). A standby that kept a message before the barrier and has
 * not seen its stored copy by then holds one that the new leader never heard: it was published
 * before the leader (re)subscribed, e.g. after a Redis restart a standby subscribed again
 * first. Nobody can store it in publish order any more (the leader's later stores are already
 * out), so it is dropped and counted (ingest_unled) instead of being stored late by a future
 * leader behind later messages (FINDINGS F2, F3; README "Raw ingest").
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
#include "ingest.h"
#include "ingest_priv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_keys.h"
#include "hb_log.h"
#include "hb_rawchan.h"
#include "hb_rawq.h"
#include "rc.h"

#define MOD "ingest"
#define SETTLE_MAX_S 20.0 /* a new leadership waits this long at most for earlier stores */
/* A standby listening for fewer lease periods than this is young: it lets the lease lie free
 * for a lease period before it takes it (FINDINGS F14). */
#define YOUNG_LEASES 3.0
#define PTTL_ABSENT (-2) /* Redis PTTL's answer for a key that does not exist */

/* Standby: another edge's barrier ("<prefix>barrier:<token>:<n>") or its "caught" marker. */
void ingest__on_other_barrier(hb_broker_t *b, const char *chan, size_t clen)
{
    ingest_t *in = b->ingest;
    size_t n;
    if (hb_rawchan_is_caught(chan, clen)) {
        if (!in->cut_len || clen - 7 != in->cut_len || memcmp(chan, in->cut, in->cut_len))
            return;
        in->cut_len = 0;
        n = hb_rawq_drop_upto(&in->kept, in->cut_seq);
        if (!n)
            return;
        atomic_fetch_add_explicit(&b->edge->stats.ingest_unled, n, memory_order_relaxed);
        hb_log_warn(MOD, "raw messages the new ingest leader never heard: dropped (not stored)",
                    "{s:I}", "dropped", (long long)n);
        return;
    }
    if (clen >= sizeof(in->cut))
        return;
    memcpy(in->cut, chan, clen);
    in->cut_len = clen;
    in->cut_seq = in->seq; /* what is kept now was published before this barrier */
}

/* The raw subscription is (re)confirmed: what was kept on the previous connection can no
 * longer be matched with its stored copy (those published while it was away were missed, and
 * so was any leadership's barrier and "caught" meanwhile). Storing it later could put it
 * behind what a leader stored meanwhile (FINDINGS F3, seed 5 ASan); it was heard before the
 * connection went, so it is the README's window of raw messages lost when Redis stops or
 * heard only by standbys: dropped and counted. Single Redis. */
void ingest__drop_unmatched(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    size_t n = in->kept.count;
    in->cut_len = 0;
    if (!n)
        return;
    hb_rawq_clear(&in->kept);
    atomic_fetch_add_explicit(&b->edge->stats.ingest_unled, n, memory_order_relaxed);
    hb_log_warn(MOD, "raw subscription back: kept raw messages dropped (not stored)", "{s:I}",
                "dropped", (long long)n);
}

/* Names this leadership's barrier channel: <prefix>barrier:<token>:<n>, n counting up. */
static void new_barrier(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    int n = hb_keys_barrier(in->barrier, sizeof(in->barrier), b->edge->cfg.prefix, in->token,
                            ++in->barrier_n);
    in->barrier_len = n < 0 ? 0 : (size_t)n; /* always fits: prefix, token and n are bounded */
}

/* A young standby's look at the lease key (PTTL): PTTL_ABSENT is "absent". */
static void on_lease_ttl(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    redisReply *r = reply;
    (void)priv;
    in->acquire_inflight = 0;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        return;
    if (r->integer != PTTL_ABSENT)
        in->free_since = 0; /* held (or no expiry): wait for it to lapse again */
    else if (!in->free_since)
        in->free_since = hb_now();
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
        ingest__give_back(b);
        ingest__set_state(b, I_STANDBY, "fence not raised");
        return;
    }
    if (r->integer != 0) {
        /* A slot's fence already holds a term as high as ours: the term counter went back
         * (a failover lost its last increments) or another edge drew the same term. Storing
         * now would be refused: give the lease back and draw above that term next time. */
        if (r->integer > in->term_floor)
            in->term_floor = r->integer;
        hb_log_warn(MOD, "ingest term behind a slot's fence: lease given back", "{s:I,s:I}", "term",
                    in->term, "fence", (long long)r->integer);
        ingest__give_back(b);
        ingest__set_state(b, I_STANDBY, "term behind a fence");
        return;
    }
    in->fence_ok++;
    if (in->barrier_seen >= in->barrier_need && in->fence_ok >= in->fence_need)
        ingest__go_active(b);
}

/* The lease was won (with a new leader term in a cluster): the barrier (hb_rc_ingest_barrier:
 * in a cluster, fence every slot first). */
static void on_acquire(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    ingest_t *in = b->ingest;
    char term[24];
    long long t;
    int n;
    (void)priv;
    in->acquire_inflight = 0;
    if (!hb_rc_lease_won(b, reply, &t))
        return; /* someone else holds it, or an error */
    in->term = t;
    in->last_renew_ok = hb_now();
    in->reign++;
    ingest__set_state(b, I_BARRIER, "lease acquired");
    in->barrier_at = hb_now();
    new_barrier(b);
    in->barrier_seen = in->fence_ok = 0;
    snprintf(term, sizeof(term), "%lld", in->term);
    n = hb_rc_ingest_barrier(b, term, in->barrier, in->barrier_len, on_fence_reply, NULL);
    in->barrier_need = in->fence_need = n;
    if (n == 0) {
        ingest__give_back(b);
        ingest__set_state(b, I_STANDBY, "not ready for the barrier");
    }
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
        ingest__set_state(b, I_STANDBY, "lease lost");
}

void hb_ingest_tick(hb_broker_t *b)
{
    ingest_t *in = b->ingest;
    double now = hb_now(), lease = b->edge->cfg.lease_ms / 1000.0;
    double expiry = lease * 3 > 10 ? lease * 3 : 10;
    /* A cluster failover (cluster-node-timeout, 15 s by default, plus the election) can take
     * the lease's shard away for longer than that: keep raw messages through it. */
    if (expiry < hb_rc_ingest_keep_s(b))
        expiry = hb_rc_ingest_keep_s(b);
    char ms[24];
    snprintf(ms, sizeof(ms), "%d", b->edge->cfg.lease_ms);

    if (!b->edge->cfg.ingest)
        return;
    while (in->kept.head && now - in->kept.head->ts > expiry)
        hb_rawq_drop_head(&in->kept); /* the leader refused it or it was stored long ago */
    while (in->orphans.head && now - in->orphans.head->ts > expiry)
        hb_rawq_drop_head(&in->orphans); /* its raw message never came (or came to no one) */
    if (in->state != I_STANDBY && now - in->last_renew_ok > lease * 0.8)
        ingest__set_state(b, I_STANDBY, "lease not renewed in time");
    if (in->state != I_STANDBY && !b->ing_ready) {
        /* a leader that no longer sees raw messages must let a standby take over */
        ingest__give_back(b);
        ingest__set_state(b, I_STANDBY, "ingest subscription lost");
    }
    if (in->settling && in->state == I_ACTIVE && now - in->settling_since > SETTLE_MAX_S) {
        /* an earlier store neither answered nor failed (a stuck connection): store what is
         * kept rather than keep it forever; that store's message may end up out of order */
        hb_log_warn(MOD, "earlier stores unanswered: storing kept messages", "{s:I,s:i}",
                    "unanswered", (long long)in->inflight, "kept", (int)in->kept.count);
        in->settling = 0;
        ingest__catch_up(b);
    }
    if (in->state == I_BARRIER && now - in->barrier_at > lease) {
        ingest__give_back(b);
        ingest__set_state(b, I_STANDBY, "barrier not seen in time");
    }
    if (now < in->next_lease_at || !b->cmd_ready || atomic_load(&b->edge->stats.draining))
        return;
    in->next_lease_at = now + lease / 3;
    if (in->state == I_STANDBY) {
        /* A standby that (re)subscribed to the raw channels less than a lease period ago
         * waits: what was published before it subscribed reached only the standbys that
         * listened longer, and it would never store that (FINDINGS F2: a leader killed and
         * restarted at once won the lease back; 18 raw messages lost). Those compete first;
         * when all subscribed again together (Redis restarted), the first to subscribe. */
        if (!b->ing_ready || in->acquire_inflight || now - in->ing_since < lease)
            return;
        /* Even past that, the old leader's lease may outlive its last store by more than a
         * lease period (a late renewal over a lossy link), and a young standby would win the
         * race against one that heard what that leader never stored, which its barrier then
         * makes everybody drop (FINDINGS F14). A young standby takes the lease only after it
         * has seen it free for a lease period: older standbys, trying every lease/3, take it
         * first; when all are young (Redis restarted), a leader comes a lease period later and
         * raw messages are kept meanwhile. Single Redis and Cluster alike (the lease key is
         * routed to its slot's primary). */
        if (now - in->ing_since < YOUNG_LEASES * lease &&
            (!in->free_since || now - in->free_since < lease)) {
            const char *av[] = {"PTTL", in->lease_key};
            size_t al[] = {4, strlen(in->lease_key)};
            in->acquire_inflight = 1;
            if (hb_rc_key_command(b, 1, 2, av, al, on_lease_ttl, NULL) != REDIS_OK)
                in->acquire_inflight = 0;
            return;
        }
        in->free_since = 0;
        in->acquire_inflight = 1;
        if (hb_rc_lease_acquire(b, in->lease_key, in->term_key, in->token, ms, in->term_floor,
                                on_acquire, NULL) != REDIS_OK)
            in->acquire_inflight = 0;
    } else if (!in->renew_inflight) {
        in->renew_inflight = 1;
        if (hb_rc_lease_renew(b, in->lease_key, in->token, ms, on_renew, NULL) != REDIS_OK)
            in->renew_inflight = 0;
    }
}

void hb_ingest_on_cmd_ready(hb_broker_t *b)
{
    b->ingest->next_lease_at = 0;
    b->ingest->acquire_inflight = 0;
    b->ingest->renew_inflight = 0;
}

void hb_ingest_on_cmd_down(hb_broker_t *b)
{
    ingest__set_state(b, I_STANDBY, "redis command connection lost");
}

void hb_ingest_release(hb_broker_t *b)
{
    ingest__give_back(b);
    ingest__set_state(b, I_STANDBY, "draining");
}
