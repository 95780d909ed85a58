/*
 * The broker thread: owns the libevent loop and every Redis connection (hiredis async with its
 * libevent adapter). Three connections (bconn.c):
 *   cmd  - commands: FUNCTION LOAD, history reads, ingest FCALLs, the lease;
 *   sub  - SUBSCRIBE <prefix>{<topic>}:live for each topic some local client wants;
 *   ing  - PSUBSCRIBE * for raw-PUBLISH ingest (only with --ingest on): the leader stores what it
 *          sees, standbys keep what the leader has not stored yet (see ingest.c).
 * This file: the loop and its lifecycle, the inbox of requests from the service threads
 * (subscribe, unsubscribe, history, publish, tickets), the tick, signals and drain, readiness.
 * The topics are in btopic.c, their refill in brefill.c and blost.c, history requests in
 * history.c. Everything here runs on the broker thread only.
 */
#include "broker.h"
#include "broker_priv.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "hb_dict.h"
#include "hb_id.h"
#include "hb_keys.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_script.h"
#include "rc.h"
#include "resolve.h"
#include "sentinel.h"
#include "bticket.h"

#define MOD "broker"
#define REQS_PER_WAKE 256

/* ---- requests from the service threads ---- */

/* Errors Redis answers before it runs a command (so nothing was stored): memory, role, state,
 * routing, permissions, the function missing. */
static int refused_before_running(const char *err)
{
    static const char *const pre[] = {
        "OOM ",       "READONLY", "NOREPLICAS",  "BUSY",      "LOADING",
        "MASTERDOWN", "MISCONF",  "NOPERM",      "NOAUTH",    "MOVED ",
        "ASK ",       "TRYAGAIN", "CLUSTERDOWN", "CROSSSLOT", "ERR Function not found"};
    for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
        if (!strncmp(err, pre[i], strlen(pre[i])))
            return 1;
    return 0;
}

/* A failed publish: counted by why, and logged but for a refusal of its own input. */
static void publish_failed(hb_broker_t *b, hb_msg_t *m, redisReply *r, int sent)
{
    hb_stats_t *st = &b->edge->stats;
    m->error = 1;
    if (!r) {
        /* not sent: nothing stored; sent: Redis may have run it before the connection went */
        m->outcome = sent ? HB_PUB_UNKNOWN : HB_PUB_NOT_STORED;
        snprintf(m->result, sizeof(m->result), "%s",
                 sent ? "redis connection lost before its answer: the event may or may not be "
                        "stored (send it again with the same Idempotency-Key)"
                      : "redis unavailable: not stored");
        atomic_fetch_add_explicit(sent ? &st->publish_err_unknown : &st->publish_err_not_sent, 1,
                                  memory_order_relaxed);
        hb_log_ratelimited(sent ? "publish-unknown" : "publish-not-sent", 1000, HB_LOG_WARN, MOD,
                           sent ? "publish failed: redis connection lost before its answer "
                                  "(outcome unknown)"
                                : "publish failed: redis unavailable (not stored)",
                           "{s:s%}", "topic", m->topic, m->topic_len);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "ERR herald:", 11)) {
        snprintf(m->result, sizeof(m->result), "%s", r->str); /* the publisher's input */
        m->outcome = HB_PUB_REFUSED;
        atomic_fetch_add_explicit(&st->publish_err_refused, 1, memory_order_relaxed);
        return;
    }
    snprintf(m->result, sizeof(m->result), "%s",
             r->type == REDIS_REPLY_ERROR ? r->str : "redis answered the publish with no event ID");
    if (r->type == REDIS_REPLY_ERROR && refused_before_running(r->str)) {
        atomic_fetch_add_explicit(&st->publish_err_redis, 1, memory_order_relaxed);
        hb_log_ratelimited("publish-redis-error", 1000, HB_LOG_WARN, MOD,
                           "publish failed: redis refused it (not stored)", "{s:s%,s:s}", "topic",
                           m->topic, m->topic_len, "error", m->result);
        return;
    }
    /* an error raised while the function ran (it may have stored before it), or an answer
     * that is no ID (a library not Herald's): the outcome is not known */
    m->outcome = HB_PUB_UNKNOWN;
    atomic_fetch_add_explicit(&st->publish_err_unknown, 1, memory_order_relaxed);
    hb_log_ratelimited("publish-unknown", 1000, HB_LOG_WARN, MOD,
                       r->type == REDIS_REPLY_ERROR
                           ? "publish failed: redis answered an error while running it (outcome "
                             "unknown)"
                           : "publish answered with no event ID (a library not Herald's?): "
                             "outcome unknown",
                       "{s:s%,s:s}", "topic", m->topic, m->topic_len, "error", m->result);
}

/* The answer to a publish: the stored event's ID, which goes into JSON answers, so it is
 * parsed and written again (a library replaced around Herald answers what it likes). `sent`:
 * the command went to Redis (r NULL then means its answer never came). */
static void publish_reply(hb_broker_t *b, redisReply *r, hb_msg_t *m, int sent)
{
    hb_id_t id;
    b->pub_backlog -= m->pub_bytes;
    /* a status reply: the publish's idempotency key was stored already (library v5) */
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
        !hb_id_parse(r->str, r->len, &id, NULL)) {
        hb_id_format(&id, m->result);
        m->duplicate = r->type == REDIS_REPLY_STATUS;
        atomic_fetch_add_explicit(m->duplicate ? &b->edge->stats.publish_duplicates
                                               : &b->edge->stats.published,
                                  1, memory_order_relaxed);
    } else {
        publish_failed(b, m, r, sent);
    }
    hb_svc_answer(b->edge->svcs[m->thread], m);
}

static void on_published(redisAsyncContext *ac, void *reply, void *priv)
{
    publish_reply(ac->data, reply, priv, 1);
}

static void handle_publish(hb_broker_t *b, hb_req_t *q)
{
    hb_msg_t *m = hb_msg_new(HB_MSG_PUBLISHED, q->topic, q->topic_len);
    char win[16], ik[HB_KEYS_IDEM_MAX];
    const char *av[] = {q->payload ? q->payload : "", q->event, q->idem, win};
    size_t al[] = {q->payload_len, strlen(q->event), strlen(q->idem),
                   (size_t)snprintf(win, sizeof(win), "%d", b->edge->cfg.idempotency_window)};
    m->client_id = q->client_id;
    m->thread = q->thread;
    if (!b->cmd_ready) {
        publish_reply(b, NULL, m, 0);
        return;
    }
    if (b->pub_backlog &&
        q->payload_len > (size_t)b->edge->cfg.publish_backlog_bytes - b->pub_backlog) {
        /* Redis is slow to answer: what waits for it sits in hiredis' output buffer, sent
         * or not, and publishers that do not wait for answers would grow it without end */
        atomic_fetch_add_explicit(&b->edge->stats.rejected_pub_backlog, 1, memory_order_relaxed);
        hb_log_ratelimited("publish-backlog", 1000, HB_LOG_WARN, MOD,
                           "publish refused: --publish-backlog-bytes of publishes wait for Redis",
                           "{s:I}", "backlog_bytes", (long long)b->pub_backlog);
        m->error = 1;
        snprintf(m->result, sizeof(m->result), "%s",
                 "too many publishes wait for Redis: retry later");
        hb_svc_answer(b->edge->svcs[m->thread], m);
        return;
    }
    m->pub_bytes = q->payload_len;
    b->pub_backlog += m->pub_bytes;
    /* FCALL <publish> <topic's keys> [<its idempotency key's name>] payload [event
     * [idempotency-key window-s]] */
    if (q->idem[0] &&
        hb_keys_idem(ik, sizeof(ik), b->edge->cfg.prefix, q->topic, q->topic_len, q->idem) < 0)
        ik[0] = '\0'; /* cannot happen: HB_KEYS_IDEM_MAX holds every name */
    if (hb_rc_fcall_key3(b, b->fn.publish, q->topic, q->topic_len, q->idem[0] ? ik : NULL,
                         q->idem[0]    ? 4
                         : q->event[0] ? 2
                                       : 1,
                         av, al, on_published, m) != REDIS_OK)
        publish_reply(b, NULL, m, 0);
}

static void handle_req(hb_broker_t *b, hb_req_t *q)
{
    btopic_t *t;
    if (q->type == HB_REQ_PUBLISH) {
        handle_publish(b, q);
        return;
    }
    if (q->type == HB_REQ_TICKET_ISSUE || q->type == HB_REQ_TICKET_REDEEM) {
        hb_ticket_broker(b, q); /* edge/ticket.c */
        return;
    }
    t = btopic__get(b, q->topic, q->topic_len, 1);
    uint64_t bit = 1ull << q->thread;

    switch (q->type) {
    case HB_REQ_SUB:
        btopic__join(b, t, q->thread, &q->ask);
        if (t->state == T_IDLE)
            btopic__subscribe(b, t);
        break;
    case HB_REQ_UNSUB:
        t->want &= ~bit;
        t->join_wait &= ~bit;
        if (!t->want)
            t->idle_since = hb_now();
        if (!t->want && t->state == T_IDLE && !t->pos_inflight)
            btopic__free(b, t); /* with a position read out, its reply frees it */
        break;
    case HB_REQ_HISTORY: {
        hreq_t *h = hb_xcalloc(1, sizeof(*h));
        h->thread = q->thread;
        h->client_id = q->client_id;
        memcpy(h->topic, q->topic, q->topic_len);
        h->topic_len = q->topic_len;
        h->cursor = q->cursor;
        h->tail_only = q->tail_only;
        h->fresh = q->fresh;
        h->count = q->count;
        h->max_bytes = q->max_bytes;
        h->cancel = q->cancel; /* the reference moves to h */
        q->cancel = NULL;
        if (t->state == T_IDLE && t->want)
            btopic__subscribe(b, t);
        /* keep FIFO order */
        hb_list_push_tail(&t->waiting, &h->link);
        brefill__kick(b, t);
        break;
    }
    case HB_REQ_PUBLISH:
    case HB_REQ_TICKET_ISSUE:
    case HB_REQ_TICKET_REDEEM:
        break; /* handled above */
    }
    hb_broker_update_ready(b);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    hb_broker_t *b = arg;
    void *items[REQS_PER_WAKE];
    uint64_t cnt;
    size_t n;
    (void)what;
    /* cleared before the queue is read: a request pushed after this read writes it again */
    if (fd >= 0 && read(fd, &cnt, sizeof(cnt)) < 0) {
        /* EAGAIN: nothing written since (a self-activation below) */
    }
    n = hb_queue_pop(b->edge->to_broker, items, REQS_PER_WAKE);
    for (size_t i = 0; i < n; i++) {
        handle_req(b, items[i]);
        hb_req_free(items[i]);
    }
    if (n == REQS_PER_WAKE) /* bounded work per wake-up: come back for the rest */
        event_active(b->wake, EV_READ, 0);
}

/* ---- readiness: recomputed in bready.c (hb_broker_update_ready) ---- */

void hb_broker_on_cmd_ready(hb_broker_t *b)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v))
        brefill__kick(b, v);
    hb_ingest_on_cmd_ready(b);
    hb_broker_update_ready(b);
}

/* ---- housekeeping: linger unsubscribe, lease ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    hb_broker_t *b = arg;
    double now = hb_now();
    size_t it = 0, klen;
    const void *k;
    void *v;
    /* failed refill reads are sent again once a second (every 4th tick), not in a hot loop */
    int retry = ++b->ticks % 4 == 0;
    (void)fd;
    (void)what;
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic_t *t = v;
        if (t->unsynced)
            btopic__resync(b, t);
        if (t->join_wait)
            btopic__rejoin(b, t);
        if (!t->want && t->state == T_SUBSCRIBED &&
            now - t->idle_since >= b->edge->cfg.topic_linger)
            btopic__unsubscribe(b, t);
        else if (retry)
            brefill__retry(b, t);
    }
    hb_rc_tick(b);
    hb_ingest_tick(b);
}

/* ---- signals and drain ---- */

static void on_drain_done(evutil_socket_t fd, short what, void *arg)
{
    hb_broker_t *b = arg;
    (void)fd;
    (void)what;
    event_base_loopexit(b->base, NULL);
}

static void on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
    hb_broker_t *b = arg;
    size_t clients = 0;
    (void)fd;
    (void)what;
    for (int i = 0; i < b->edge->nthreads; i++)
        clients += hb_svc_clients(b->edge->svcs[i]);
    if (clients == 0 && hb_ingest_idle(b))
        event_base_loopexit(b->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    hb_broker_t *b = arg;
    struct timeval tv = broker__ms_tv((long)b->edge->cfg.drain_timeout * 1000);
    struct timeval poll = broker__ms_tv(50);
    (void)what;
    if (atomic_exchange(&b->edge->stats.draining, 1)) {
        hb_log_warn(MOD, "second signal: exiting now", NULL);
        event_base_loopexit(b->base, NULL);
        return;
    }
    hb_log_info(MOD, "draining", "{s:i,s:i}", "signal", (int)sig, "timeout_s",
                b->edge->cfg.drain_timeout);
    hb_broker_update_ready(b);
    hb_ingest_release(b);
    for (int i = 0; i < b->edge->nthreads; i++)
        hb_svc_drain(b->edge->svcs[i]);
    event_add(b->drain_timer, &tv);
    event_add(b->drain_poll, &poll);
}

static void fnames_init(hb_fnames_t *f, const char *prefix)
{
    struct {
        char *out;
        const char *fn;
    } t[] = {{f->publish, "publish"},
             {f->ingest, "ingest"},
             {f->ingest_many, "ingest_many"},
             {f->fence, "fence"},
             {f->lease_acquire, "lease_acquire"},
             {f->lease_renew, "lease_renew"},
             {f->lease_release, "lease_release"},
             {f->history, "history"},
             {f->info, "info"},
             {f->canary, "canary"}};
    if (hb_script_name(prefix, f->lib, sizeof(f->lib)))
        abort(); /* cannot happen: --prefix is validated (1-63 of [A-Za-z0-9._:-]) */
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (hb_script_fn(f->lib, t[i].fn, t[i].out, HB_SCRIPT_FN_MAX))
            abort(); /* cannot happen: sized for the longest library name */
}

/* events.master_suspect: the sentinels are asked again (no-op without Sentinel) */
static void on_master_suspect(hb_broker_t *b, const char *reason)
{
    hb_sentinel_recheck(b->sentinel, reason);
}

/* The reactions to connection events the connection layer calls up through (rc.h). */
static const hb_broker_events_t broker_events = {
    .cmd_ready = hb_broker_on_cmd_ready,
    .cmd_down = hb_ingest_on_cmd_down,
    .sub_up = btopic__on_sub_up,
    .sub_down = btopic__on_sub_down,
    .ing_up = hb_ingest_on_ing_up,
    .data_lost = brefill__on_data_lost,
    .master_suspect = on_master_suspect,
    .ready_changed = hb_broker_update_ready,
    .refill_all = hb_broker_refill_all,
    .pubsub = hb_broker_pubsub,
    .topic_subscribed = hb_broker_topic_subscribed,
    .topic_unsubscribed = hb_broker_topic_unsubscribed,
    .topic_free = hb_broker_topic_free,
};

hb_broker_t *hb_broker_new(hb_edge_t *edge)
{
    hb_broker_t *b = hb_xcalloc(1, sizeof(*b));
    struct timeval tick = broker__ms_tv(250);
    b->edge = edge;
    b->base = event_base_new();
    if (!b->base) {
        free(b);
        return NULL;
    }
    b->resolver = hb_resolver_new(b->base, bconn__on_resolved, b);
    if (!b->resolver) {
        event_base_free(b->base);
        free(b);
        return NULL;
    }
    b->topics = hb_dict_new();
    b->on_sub_cb = btopic__on_sub;
    b->ev = &broker_events;
    b->library = hb_script_library(edge->cfg.prefix, edge->cfg.history_max, edge->cfg.history_ttl,
                                   edge->cfg.max_message_bytes, edge->cfg.redis_cluster);
    b->settings = hb_script_settings(edge->cfg.prefix, edge->cfg.history_max, edge->cfg.history_ttl,
                                     edge->cfg.max_message_bytes, edge->cfg.redis_cluster);
    fnames_init(&b->fn, edge->cfg.prefix);
    /* Woken through an eventfd of its own: event_active() from another thread takes the
     * base's lock and writes libevent's notification descriptor while holding it, so the
     * broker, woken at once on the other core, blocked on that lock (a futex wait and wake
     * per request: a long-poll answered from the live position paid more for the hand-off
     * than for its answer). */
    b->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    b->wake =
        event_new(b->base, b->wake_fd, b->wake_fd >= 0 ? EV_READ | EV_PERSIST : 0, on_wake, b);
    if (b->wake_fd >= 0)
        event_add(b->wake, NULL);
    b->tick = event_new(b->base, -1, EV_PERSIST, on_tick, b);
    event_add(b->tick, &tick);
    b->sigterm = evsignal_new(b->base, SIGTERM, on_signal, b);
    b->sigint = evsignal_new(b->base, SIGINT, on_signal, b);
    event_add(b->sigterm, NULL);
    event_add(b->sigint, NULL);
    b->drain_timer = evtimer_new(b->base, on_drain_done, b);
    b->drain_poll = event_new(b->base, -1, EV_PERSIST, on_drain_poll, b);
    bconn__init(b, &b->cmd, "cmd");
    bconn__init(b, &b->sub, "sub");
    bconn__init(b, &b->ing, "ingest");
    hb_rc_init(b);
    hb_ingest_init(b);
    pthread_mutex_init(&b->master_lock, NULL);
    snprintf(b->master_host, sizeof(b->master_host), "%s", edge->cfg.redis_host);
    b->master_port = edge->cfg.redis_port;
    b->switch_ev = event_new(b->base, -1, 0, bconn__on_switch, b);
    if (edge->cfg.nsentinels > 0)
        b->sentinel = hb_sentinel_new(b);
    return b;
}

int hb_broker_run(hb_broker_t *b)
{
    if (b->sentinel)
        hb_sentinel_start(b->sentinel); /* the connections start once the master is known */
    hb_rc_start(b);
    if (b->edge->cfg.ingest)
        bconn__start(b, &b->ing);
    event_base_dispatch(b->base);
    b->stopping = 1;
    return 0;
}

void hb_broker_free(hb_broker_t *b)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    if (!b)
        return;
    b->stopping = 1;
    if (b->cmd.ac)
        redisAsyncFree(b->cmd.ac);
    if (b->sub.ac)
        redisAsyncFree(b->sub.ac);
    if (b->ing.ac)
        redisAsyncFree(b->ing.ac);
    hb_sentinel_free(b->sentinel);
    hb_rc_cleanup(b);
    hb_resolver_free(b->resolver);
    b->resolver = NULL;
    hb_ingest_cleanup(b);
    while (hb_dict_next(b->topics, &it, &k, &klen, &v)) {
        btopic__free(b, v);
        it = 0;
    }
    hb_dict_free(b->topics);
    event_free(b->wake);
    if (b->wake_fd >= 0)
        close(b->wake_fd);
    event_free(b->tick);
    event_free(b->sigterm);
    event_free(b->sigint);
    event_free(b->drain_timer);
    event_free(b->drain_poll);
    event_free(b->switch_ev);
    pthread_mutex_destroy(&b->master_lock);
    hb_rconn_free_timers(&b->cmd);
    hb_rconn_free_timers(&b->sub);
    hb_rconn_free_timers(&b->ing);
    event_base_free(b->base);
    free(b->library);
    free(b->settings);
    free(b);
}
