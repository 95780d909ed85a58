/*
 * A reconnecting Redis connection (rconn.h): connect with a timeout, CLIENT SETNAME, the set-up
 * deadline, jittered exponential backoff, and a libevent adapter of its own whose ev.data is
 * the rconn (hiredis's adapters/libevent.h, but the events live in the rconn), so that the
 * connect and disconnect callbacks find it while ac->data stays the owner's. Broker thread only.
 *
 * The adapter costs no epoll change per command or reply: the read event is persistent (a
 * one-shot event is deleted by libevent when it fires and added again by hiredis: two
 * epoll_ctl per reply), and commands queued on a connected context are written once per loop
 * iteration straight from a deferred event (hb_rconn_t.fev) instead of by turning EPOLLOUT on,
 * waiting for it and turning it off again; only output the socket did not take waits for
 * EPOLLOUT (wev). Before the connect completes, hiredis learns of it from the write event:
 * that case keeps wev.
 */
#include "rconn.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "edge.h"
#include "hb_log.h"
#include "hb_time.h"
#include "resolve.h"

static struct timeval ms_tv(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* ---- the adapter: hiredis's libevent one, with the rconn as ev.data ---- */

static void ad_read(evutil_socket_t fd, short what, void *arg)
{
    hb_rconn_t *r = arg;
    (void)fd;
    (void)what;
    r->heard_at = hb_now(); /* the answer watch's sign of life */
    redisAsyncHandleRead(r->ac);
}

/* hiredis writes from here; an addWrite meanwhile (output left over) waits for EPOLLOUT. r
 * outlives the call: only the context may be freed by it. */
static void ad_write(evutil_socket_t fd, short what, void *arg)
{
    hb_rconn_t *r = arg;
    (void)fd;
    (void)what;
    r->in_write = 1;
    redisAsyncHandleWrite(r->ac);
    r->in_write = 0;
}

/* The deferred write (fev): whatever was queued this loop iteration, in one write. */
static void ad_flush(evutil_socket_t fd, short what, void *arg)
{
    hb_rconn_t *r = arg;
    (void)fd;
    (void)what;
    if (!r->ac || !(r->ac->c.flags & REDIS_CONNECTED))
        return; /* freed or replaced since: a new context waits on its own wev */
    r->in_write = 1;
    redisAsyncHandleWrite(r->ac);
    r->in_write = 0;
}

static void ad_add_read(void *p)
{
    event_add(((hb_rconn_t *)p)->rev, NULL);
}
static void ad_del_read(void *p)
{
    event_del(((hb_rconn_t *)p)->rev);
}
static void ad_add_write(void *p)
{
    hb_rconn_t *r = p;
    /* hiredis lists a command's callback before it asks to write it: one listed alone is the
     * first owed since nothing was (the answer watch's clock) */
    if (r->ac && r->ac->replies.head && r->ac->replies.head == r->ac->replies.tail)
        r->owe_from = hb_now();
    if (r->in_write || !r->ac || !(r->ac->c.flags & REDIS_CONNECTED)) {
        event_add(r->wev, NULL); /* left over, or the connect: wait for EPOLLOUT */
    } else {
        event_active(r->fev, EV_WRITE, 1); /* once: libevent merges onto an active event */
    }
}
static void ad_del_write(void *p)
{
    event_del(((hb_rconn_t *)p)->wev);
}

/* Runs before the disconnect callback: frees the events only, ev.data stays the rconn. */
static void ad_cleanup(void *p)
{
    hb_rconn_t *r = p;
    event_free(r->rev);
    event_free(r->wev);
    r->rev = r->wev = NULL;
}

static void ad_attach(hb_rconn_t *r)
{
    redisAsyncContext *ac = r->ac;
    ac->ev.addRead = ad_add_read;
    ac->ev.delRead = ad_del_read;
    ac->ev.addWrite = ad_add_write;
    ac->ev.delWrite = ad_del_write;
    ac->ev.cleanup = ad_cleanup;
    ac->ev.data = r;
    r->rev = event_new(r->base, ac->c.fd, EV_READ | EV_PERSIST, ad_read, r);
    r->wev = event_new(r->base, ac->c.fd, EV_WRITE, ad_write, r);
    if (!r->rev || !r->wev)
        abort(); /* as hb_xmalloc: allocation failure */
    event_add(r->rev, NULL);
    event_add(r->wev, NULL);
}

/* ---- the connection ---- */

/* One of its log lines (rconn.h hb_rconn_log_t): rl NULL is not ratelimited; err and
 * timeout_ms (>= 0) are added when given. */
static void log_line(hb_rconn_t *r, const char *rl, const char *text, const char *err,
                     int timeout_ms)
{
    const hb_rconn_log_t *l = &r->cfg.log;
    if (l->host && err)
        hb_log_ratelimited(rl, 2000, HB_LOG_WARN, r->cfg.mod, text, "{s:s,s:i,s:s}", "host",
                           l->host, "port", l->port, "err", err);
    else if (l->host && timeout_ms >= 0)
        hb_log_warn(r->cfg.mod, text, "{s:s,s:i,s:i}", "host", l->host, "port", l->port,
                    "timeout_ms", timeout_ms);
    else if (l->host && rl)
        hb_log_ratelimited(rl, 2000, HB_LOG_WARN, r->cfg.mod, text, "{s:s,s:i}", "host", l->host,
                           "port", l->port);
    else if (l->host)
        hb_log_warn(r->cfg.mod, text, "{s:s,s:i}", "host", l->host, "port", l->port);
    else if (err)
        hb_log_ratelimited(rl, 2000, HB_LOG_WARN, r->cfg.mod, text, "{s:s,s:s}", "conn", r->name,
                           "err", err);
    else if (timeout_ms >= 0)
        hb_log_warn(r->cfg.mod, text, "{s:s,s:i}", "conn", r->name, "timeout_ms", timeout_ms);
    else if (rl)
        hb_log_ratelimited(rl, 2000, HB_LOG_WARN, r->cfg.mod, text, "{s:s}", "conn", r->name);
    else
        hb_log_warn(r->cfg.mod, text, "{s:s}", "conn", r->name);
}

static void schedule(hb_rconn_t *r)
{
    /* jitter in [step/2, step] so a fleet of edges does not reconnect in lockstep */
    struct timeval tv = ms_tv(hb_backoff_next(&r->backoff, random()));
    evtimer_add(r->timer, &tv);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    hb_rconn_t *r = ac->ev.data;
    evtimer_del(r->ctimer);
    if (status != REDIS_OK) {
        log_line(r, r->cfg.log.rl_connect ? r->cfg.log.rl_connect : r->name,
                 r->cfg.log.connect_failed, ac->errstr, -1);
        r->ac = NULL; /* hiredis frees it */
        schedule(r);
        if (r->ops->failed)
            r->ops->failed(r, HB_RCONN_REFUSED);
        return;
    }
    r->up = 1;
    /* named for CLIENT LIST / CLIENT KILL: herald-<node id>-<suffix> (node ids are
     * [A-Za-z0-9._:-]); the answer is not waited for, and a refusal (ACL) changes nothing */
    {
        char name[HB_RCONN_NAME_MAX];
        if (hb_rconn_client_name(name, sizeof(name), r->edge, r->name) > 0)
            redisAsyncCommand(r->ac, NULL, NULL, "CLIENT SETNAME %s", name);
    }
    {
        struct timeval tv = ms_tv(r->edge->cfg.redis_timeout_ms);
        evtimer_add(r->ctimer, &tv); /* the set-up's deadline */
    }
    r->ops->up(r);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    hb_rconn_t *r = ac->ev.data;
    (void)status;
    r->ac = NULL;
    r->up = r->set_up = 0;
    evtimer_del(r->ctimer);
    r->ops->down(r);
    if (*r->cfg.stopping)
        return;
    atomic_fetch_add_explicit(&r->edge->stats.redis_reconnects, 1, memory_order_relaxed);
    log_line(r, r->cfg.log.rl_lost, r->cfg.log.lost, NULL, -1);
    if (!r->ops->keep || r->ops->keep(r))
        schedule(r);
    if (r->ops->lost)
        r->ops->lost(r);
}

/* The answer watch's period: a quarter of --redis-timeout-ms. */
static struct timeval watch_tv(const hb_rconn_t *r)
{
    return ms_tv(r->edge->cfg.redis_timeout_ms / 4 > 0 ? r->edge->cfg.redis_timeout_ms / 4 : 1);
}

/*
 * The answer watch, every quarter of --redis-timeout-ms once the connection is set up: a
 * connection that owes answers (hiredis holds reply callbacks: commands sent, or queued to be)
 * and has read nothing for --redis-timeout-ms is closed and made again, so that what waits on
 * it fails (a publish is answered 504, outcome unknown) instead of waiting for ever: Redis
 * stalled (SIGSTOP, a script that does not end), answers lost on a link that still looks open
 * (TCP retransmits to a black hole for minutes). Silence is measured, not a command's age: a
 * long answer arriving slowly is progress. Pub/sub connections owe none once subscribed.
 */
static void answer_watch(hb_rconn_t *r)
{
    struct timeval tv = watch_tv(r);
    double now = hb_now(), from, left_ms;
    if (r->ac->replies.head) {
        /* silent since the later of its last read and when it began to owe */
        from = r->heard_at > r->owe_from ? r->heard_at : r->owe_from;
        left_ms = r->edge->cfg.redis_timeout_ms - (now - from) * 1000.0;
        if (left_ms <= 0) {
            atomic_fetch_add_explicit(&r->edge->stats.redis_answer_timeouts, 1,
                                      memory_order_relaxed);
            log_line(r, NULL, r->cfg.log.answer_timed_out, NULL, r->edge->cfg.redis_timeout_ms);
            redisAsyncFree(r->ac); /* runs on_disconnect: callbacks fail, the retry scheduled */
            return;
        }
        if (left_ms < r->edge->cfg.redis_timeout_ms / 4.0)
            tv = ms_tv((long)left_ms + 1); /* when it is due, not a period later */
    }
    evtimer_add(r->ctimer, &tv);
}

static void on_ctimer(evutil_socket_t fd, short what, void *arg)
{
    hb_rconn_t *r = arg;
    (void)fd;
    (void)what;
    if (r->ac && !r->up) {
        log_line(r, r->cfg.log.rl_connect, r->cfg.log.connect_timed_out, NULL, -1);
        redisAsyncFree(r->ac); /* not connected: no disconnect callback */
        r->ac = NULL;
        schedule(r);
        if (r->ops->failed)
            r->ops->failed(r, HB_RCONN_TIMED_OUT);
    } else if (r->ac && !r->set_up) {
        atomic_fetch_add_explicit(&r->edge->stats.redis_setup_timeouts, 1, memory_order_relaxed);
        log_line(r, NULL, r->cfg.log.setup_timed_out, NULL, r->edge->cfg.redis_timeout_ms);
        redisAsyncFree(r->ac); /* connected: runs on_disconnect, which schedules the retry */
    } else if (r->ac) {
        answer_watch(r);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    hb_rconn_t *r = arg;
    (void)fd;
    (void)what;
    if (!r->ops->keep || r->ops->keep(r))
        hb_rconn_start(r);
}

void hb_rconn_start(hb_rconn_t *r)
{
    struct timeval tv = ms_tv(r->cfg.connect_timeout_ms);
    const char *host;
    int port;
    if (*r->cfg.stopping || r->ac)
        return;
    if (r->ops->addr(r, &host, &port) != 0)
        return; /* no address known yet: the owner starts it again */
    host = hb_resolver_addr(r->resolver, host);
    if (!host) { /* a lookup is running (its end starts us again) or failed: try again later */
        schedule(r);
        return;
    }
    r->ac = redisAsyncConnect(host, port);
    if (!r->ac || r->ac->err) {
        if (!r->cfg.log.rl_connect)
            log_line(r, r->name, r->cfg.log.connect_failed, r->ac ? r->ac->errstr : "out of memory",
                     -1);
        if (r->ac)
            redisAsyncFree(r->ac);
        r->ac = NULL;
        schedule(r);
        return;
    }
    r->ac->data = r->cfg.data;
    ad_attach(r);
    redisAsyncSetConnectCallback(r->ac, on_connect);
    redisAsyncSetDisconnectCallback(r->ac, on_disconnect);
    evtimer_add(r->ctimer, &tv);
}

int hb_rconn_waiting(const hb_rconn_t *r)
{
    return evtimer_pending(r->timer, NULL) != 0;
}

void hb_rconn_retry_now(hb_rconn_t *r)
{
    if (!r->ac && evtimer_pending(r->timer, NULL)) {
        evtimer_del(r->timer);
        hb_rconn_start(r);
    }
}

void hb_rconn_set_up(hb_rconn_t *r)
{
    struct timeval tv = watch_tv(r);
    r->set_up = 1;
    r->heard_at = hb_now();
    evtimer_add(r->ctimer, &tv); /* from now on the answer watch (on_ctimer) */
    hb_backoff_reset(&r->backoff);
}

void hb_rconn_move(hb_rconn_t *r)
{
    if (r->ac && r->up) {
        hb_backoff_reset(&r->backoff);
        redisAsyncFree(r->ac); /* runs on_disconnect, which clears r->ac and schedules */
    } else if (r->ac) {
        redisAsyncFree(r->ac); /* still connecting: no callback */
        r->ac = NULL;
        evtimer_del(r->ctimer);
    }
    evtimer_del(r->timer);
    hb_backoff_reset(&r->backoff);
    hb_rconn_start(r);
}

void hb_rconn_init(hb_rconn_t *r, struct event_base *base, struct hb_edge *edge,
                   struct hb_resolver *resolver, const hb_rconn_cfg_t *cfg,
                   const hb_rconn_ops_t *ops, void *owner)
{
    r->name = cfg->name;
    r->cfg = *cfg;
    r->ops = ops;
    r->owner = owner;
    r->edge = edge;
    r->resolver = resolver;
    r->base = base;
    r->backoff = (hb_backoff_t){.min_ms = cfg->backoff_min_ms, .max_ms = cfg->backoff_max_ms};
    r->timer = evtimer_new(base, on_timer, r);
    r->ctimer = evtimer_new(base, on_ctimer, r);
    r->fev = event_new(base, -1, 0, ad_flush, r);
    if (!r->timer || !r->ctimer || !r->fev)
        abort();
}

int hb_rconn_client_name(char *out, size_t cap, const struct hb_edge *edge, const char *suffix)
{
    int n = snprintf(out, cap, "herald-%s-%s", edge->cfg.node_id, suffix);
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            out[0] = '\0';
        return -1;
    }
    return n;
}

void hb_rconn_free_timers(hb_rconn_t *r)
{
    event_free(r->timer);
    event_free(r->ctimer);
    event_free(r->fev);
    r->timer = r->ctimer = r->fev = NULL;
}
