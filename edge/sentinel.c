/*
 * The broker's Redis Sentinel client. Two kinds of connection, both hiredis async on the
 * broker's event_base:
 *   op    - one short query at a time: SENTINEL get-master-addr-by-name on a sentinel, then
 *           ROLE on the node it names (a master is used only once it says it is one);
 *   watch - SUBSCRIBE +switch-master on one sentinel, a reconnecting connection of rconn.c
 *           (connect timeout HB_SENTINEL_STEP_MS, the set-up deadline --redis-timeout-ms until
 *           the subscription is confirmed, jittered backoff, CLIENT SETNAME
 *           herald-<node id>-sentinel, the reconnect counters); each attempt goes to the next
 *           sentinel, so a watch that failed or was lost moves on.
 * Every query step has a limit (HB_SENTINEL_STEP_MS); a sentinel that fails or names a node that
 * is not a master sends the query to the next sentinel. The query connection stays off rconn.c:
 * one command, then closed, never retried in place (rconn.h says why). Broker thread only.
 */
#include "sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_err.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_sentinel.h"
#include "rconn.h"
#include "resolve.h"

#define MOD "sentinel"
#define WATCH_BACKOFF_MIN_MS 500  /* the watch's first retry: in [250, 500] ms */
#define WATCH_BACKOFF_MAX_MS 2000 /* ... doubling up to this (HB_SENTINEL_CHECK_MS) */

typedef enum { S_IDLE = 0, S_ASK, S_PROBE } sstate_t;

/* Owner: the broker (b->sentinel). {broker thread} */
struct hb_sentinel {
    hb_broker_t *b;
    const hb_cfg_t *cfg;
    sstate_t state;
    redisAsyncContext *op; /* the query in flight, NULL when none */
    int op_up;             /* op is connected */
    int idx;               /* the sentinel asked next */
    int tried;             /* sentinels asked in this round */
    char reason[64];       /* why this query runs, for the switch log */
    char cand_host[HB_SENTINEL_HOST_MAX];
    int cand_port;
    double last_ok; /* hb_now() of the last query that found a master */
    struct event *op_timer, *check_timer;
    hb_rconn_t watch; /* the +switch-master subscription; watch.ac NULL while disconnected */
    int watch_next;   /* the sentinel the watch's next attempt goes to */
};

static void ask_next(hb_sentinel_t *s);

static struct timeval ms_tv(long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Ends the query connection. Inside one of op's own callbacks only redisAsyncDisconnect() is
 * allowed; elsewhere redisAsyncFree() also drops a reply that never came. Either way its
 * callbacks see ac != s->op and do nothing. */
static void op_close(hb_sentinel_t *s, int in_callback)
{
    redisAsyncContext *ac = s->op;
    evtimer_del(s->op_timer);
    if (!ac)
        return;
    s->op = NULL;
    if (s->op_up && in_callback)
        redisAsyncDisconnect(ac);
    else
        redisAsyncFree(ac);
    s->op_up = 0;
}

/* The current step failed: ask the next sentinel (or give up this round). */
static void op_failed(hb_sentinel_t *s, const char *what, const char *host, int port,
                      const char *err)
{
    /* one rate limit per kind: a dead sentinel must not hide a demoted master, and back */
    hb_log_ratelimited(s->state == S_PROBE ? "sentinel-candidate" : "sentinel-query", 2000,
                       HB_LOG_WARN, MOD, what, "{s:s,s:i,s:s,s:s}", "host", host, "port", port,
                       "err", err ? err : "", "master", s->cfg->sentinel_master);
    s->state = S_ASK;
    s->idx = (s->idx + 1) % s->cfg->nsentinels;
    ask_next(s);
}

static void op_step_failed(hb_sentinel_t *s, const char *err)
{
    if (s->state == S_PROBE)
        op_failed(s, "candidate master unusable", s->cand_host, s->cand_port, err);
    else
        op_failed(s, "sentinel query failed", s->cfg->sentinel_host[s->idx],
                  s->cfg->sentinel_port[s->idx], err);
}

static void on_op_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_sentinel_t *s = priv;
    redisReply *r = reply;
    char role[32];

    if (ac != s->op)
        return; /* abandoned */
    if (s->state == S_ASK) {
        const char *why = "unexpected reply";
        char e[128];
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[0]->type == REDIS_REPLY_STRING &&
            r->element[1]->type == REDIS_REPLY_STRING &&
            !hb_sentinel_parse_addr(r->element[0]->str, r->element[0]->len, r->element[1]->str,
                                    r->element[1]->len, s->cand_host, sizeof(s->cand_host),
                                    &s->cand_port, &why)) {
            why = NULL;
        } else if (r && r->type == REDIS_REPLY_ERROR) {
            why = r->str;
        } else if (r && r->type == REDIS_REPLY_NIL) {
            why = "master name unknown";
        }
        if (why) {
            snprintf(e, sizeof(e), "%s", why);
            op_close(s, 1);
            op_step_failed(s, e);
            return;
        }
        op_close(s, 1);
        {
            char cur[HB_CFG_STR_MAX + 8], cand[HB_SENTINEL_HOST_MAX + 8];
            hb_broker_master(s->b, cur, sizeof(cur), NULL);
            snprintf(cand, sizeof(cand), "%s:%d", s->cand_host, s->cand_port);
            if (!strcmp(cur, cand) && s->b->cmd_ready) {
                s->state = S_IDLE; /* unchanged, and the broker already checked its ROLE */
                s->last_ok = hb_now();
                return;
            }
        }
        s->state = S_PROBE;
        ask_next(s);
        return;
    }
    /* S_PROBE: ROLE -> ["master", offset, [replicas]] on a master */
    role[0] = '\0';
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(role, sizeof(role), "%.*s", (int)r->element[0]->len, r->element[0]->str);
    op_close(s, 1);
    if (strcmp(role, "master") != 0) {
        char e[64];
        snprintf(e, sizeof(e), "ROLE says '%s'", role);
        op_step_failed(s, e);
        return;
    }
    s->state = S_IDLE;
    s->last_ok = hb_now();
    hb_broker_set_master(s->b, s->cand_host, s->cand_port, s->reason);
}

static void on_op_connect(const redisAsyncContext *ac, int status)
{
    hb_sentinel_t *s = ac->data;
    if (!s || ac != s->op)
        return;
    if (status != REDIS_OK) {
        char e[128];
        snprintf(e, sizeof(e), "%s", ac->errstr);
        s->op = NULL; /* hiredis frees it */
        evtimer_del(s->op_timer);
        op_step_failed(s, e);
        return;
    }
    s->op_up = 1;
    if (s->state == S_ASK)
        redisAsyncCommand(s->op, on_op_reply, s, "SENTINEL get-master-addr-by-name %s",
                          s->cfg->sentinel_master);
    else
        redisAsyncCommand(s->op, on_op_reply, s, "ROLE");
}

static void on_op_disconnect(const redisAsyncContext *ac, int status)
{
    hb_sentinel_t *s = ac->data;
    (void)status;
    if (!s || ac != s->op)
        return;
    s->op = NULL;
    s->op_up = 0;
    evtimer_del(s->op_timer);
    op_step_failed(s, "connection lost");
}

static void on_op_timeout(evutil_socket_t fd, short what, void *arg)
{
    hb_sentinel_t *s = arg;
    (void)fd;
    (void)what;
    if (!s->op)
        return;
    op_close(s, 0);
    op_step_failed(s, "timed out");
}

static void op_open(hb_sentinel_t *s, const char *host, int port)
{
    struct timeval tv = ms_tv(HB_SENTINEL_STEP_MS);
    const char *addr = hb_resolver_addr(s->b->resolver, host);
    redisAsyncContext *ac = addr ? redisAsyncConnect(addr, port) : NULL;
    if (!addr) {
        op_step_failed(s, "host name not resolved (yet)");
        return;
    }
    if (!ac || ac->err) {
        char e[128];
        snprintf(e, sizeof(e), "%s", ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        op_step_failed(s, e);
        return;
    }
    ac->data = s;
    s->op = ac;
    s->op_up = 0;
    redisLibeventAttach(ac, s->b->base);
    redisAsyncSetConnectCallback(ac, on_op_connect);
    redisAsyncSetDisconnectCallback(ac, on_op_disconnect);
    evtimer_add(s->op_timer, &tv);
}

/* Runs the next step of the query: ROLE on the candidate, or the next sentinel's answer. */
static void ask_next(hb_sentinel_t *s)
{
    if (s->b->stopping) {
        s->state = S_IDLE;
        return;
    }
    if (s->state == S_PROBE) {
        op_open(s, s->cand_host, s->cand_port);
        return;
    }
    if (s->tried >= s->cfg->nsentinels) {
        s->state = S_IDLE; /* every sentinel tried: the check timer starts a new round */
        hb_log_ratelimited("sentinel-round", 5000, HB_LOG_WARN, MOD,
                           "no sentinel named a reachable master", "{s:s,s:s}", "master",
                           s->cfg->sentinel_master, "reason", s->reason);
        return;
    }
    s->tried++;
    op_open(s, s->cfg->sentinel_host[s->idx], s->cfg->sentinel_port[s->idx]);
}

static void ask_start(hb_sentinel_t *s, const char *reason)
{
    if (s->state != S_IDLE)
        return;
    snprintf(s->reason, sizeof(s->reason), "%s", reason);
    s->state = S_ASK;
    s->tried = 0;
    ask_next(s);
}

void hb_sentinel_recheck(hb_sentinel_t *s, const char *reason)
{
    if (s)
        ask_start(s, reason);
}

/* Goes straight to ROLE on the master a sentinel announced, dropping any query in flight. */
static void probe_announced(hb_sentinel_t *s, const char *host, int port)
{
    op_close(s, 0);
    snprintf(s->cand_host, sizeof(s->cand_host), "%s", host);
    s->cand_port = port;
    snprintf(s->reason, sizeof(s->reason), "+switch-master");
    s->state = S_PROBE;
    s->tried = 0;
    ask_next(s);
}

/* ---- the +switch-master watch ---- */

static void on_switch_message(hb_sentinel_t *s, const char *msg, size_t len)
{
    char host[HB_SENTINEL_HOST_MAX];
    const char *why = NULL;
    int port, rc = hb_sentinel_parse_switch(msg, len, s->cfg->sentinel_master, host, sizeof(host),
                                            &port, &why);
    if (rc == HB_ENOTFOUND)
        return; /* another master */
    if (rc) {
        hb_log_ratelimited("sentinel-switch-bad", 5000, HB_LOG_WARN, MOD,
                           "malformed +switch-master ignored", "{s:s}", "err", why);
        return;
    }
    hb_log_info(MOD, "sentinel announced a new master", "{s:s,s:s,s:i}", "master",
                s->cfg->sentinel_master, "to", host, "port", port);
    probe_announced(s, host, port);
}

static void on_watch(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_sentinel_t *s = priv;
    redisReply *r = reply;
    if (ac != s->watch.ac || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(r->element[0]->str, "message") && r->element[2]->type == REDIS_REPLY_STRING) {
        on_switch_message(s, r->element[2]->str, r->element[2]->len);
    } else if (!strcmp(r->element[0]->str, "subscribe")) {
        hb_rconn_set_up(&s->watch);
        /* a switch may have happened while nobody watched */
        ask_start(s, "watching a new sentinel");
    }
}

/* Each attempt of the watch (the first, and every retry after a failed connect, an unresolved
 * name, a set-up past its deadline or a loss) goes to the next sentinel; its log lines name it. */
static int watch_addr(hb_rconn_t *r, const char **host, int *port)
{
    hb_sentinel_t *s = r->owner;
    int i = s->watch_next;
    s->watch_next = (i + 1) % s->cfg->nsentinels;
    *host = s->cfg->sentinel_host[i];
    *port = s->cfg->sentinel_port[i];
    r->cfg.log.host = *host; /* rconn.h hb_rconn_log_t: addr() may name its address */
    r->cfg.log.port = *port;
    return 0;
}

/* Connected (CLIENT SETNAME sent, the set-up deadline armed): the set-up is the subscription,
 * confirmed in on_watch. */
static void on_watch_up(hb_rconn_t *r)
{
    hb_sentinel_t *s = r->owner;
    redisAsyncCommand(r->ac, on_watch, s, "SUBSCRIBE +switch-master");
}

/* Lost, or closed while stopping: rconn.c logs, counts and schedules the next attempt. */
static void on_watch_down(hb_rconn_t *r)
{
    (void)r;
}

static const hb_rconn_ops_t watch_ops = {
    .addr = watch_addr, .up = on_watch_up, .down = on_watch_down};

/* ---- periodic re-check ---- */

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    hb_sentinel_t *s = arg;
    (void)fd;
    (void)what;
    /* every HB_SENTINEL_CHECK_MS, and every tick while the broker has no usable master */
    if (!s->b->cmd_ready || hb_now() - s->last_ok >= HB_SENTINEL_CHECK_MS / 1000.0)
        ask_start(s, s->b->cmd_ready ? "periodic check" : "no usable master");
}

hb_sentinel_t *hb_sentinel_new(hb_broker_t *b)
{
    hb_sentinel_t *s = hb_xcalloc(1, sizeof(*s));
    s->b = b;
    s->cfg = &b->edge->cfg;
    s->op_timer = evtimer_new(b->base, on_op_timeout, s);
    s->check_timer = event_new(b->base, -1, EV_PERSIST, on_check, s);
    {
        hb_rconn_cfg_t cfg = {.mod = MOD,
                              .name = "sentinel",
                              .log = {.connect_failed = "sentinel watch connect failed",
                                      .connect_timed_out = "sentinel watch connect timed out",
                                      .setup_timed_out = "sentinel watch subscription timed out: "
                                                         "trying the next sentinel",
                                      .answer_timed_out = "sentinel watch answered nothing for "
                                                          "--redis-timeout-ms: trying again",
                                      .lost = "sentinel watch connection lost",
                                      .rl_connect = "sentinel-watch-connect",
                                      .rl_lost = "sentinel-watch",
                                      .host = s->cfg->sentinel_host[0],
                                      .port = s->cfg->sentinel_port[0]},
                              .connect_timeout_ms = HB_SENTINEL_STEP_MS,
                              .backoff_min_ms = WATCH_BACKOFF_MIN_MS,
                              .backoff_max_ms = WATCH_BACKOFF_MAX_MS,
                              .stopping = &b->stopping,
                              .data = s};
        hb_rconn_init(&s->watch, b->base, b->edge, b->resolver, &cfg, &watch_ops, s);
    }
    return s;
}

void hb_sentinel_start(hb_sentinel_t *s)
{
    struct timeval tv = ms_tv(HB_SENTINEL_STEP_MS / 2);
    hb_log_info(MOD, "asking sentinels for the master", "{s:s,s:i}", "master",
                s->cfg->sentinel_master, "sentinels", s->cfg->nsentinels);
    event_add(s->check_timer, &tv);
    ask_start(s, "startup");
    hb_rconn_start(&s->watch);
}

void hb_sentinel_free(hb_sentinel_t *s)
{
    if (!s)
        return;
    op_close(s, 0);
    if (s->watch.ac)
        redisAsyncFree(s->watch.ac); /* stopping (the broker's flag): nothing is scheduled */
    hb_rconn_free_timers(&s->watch);
    event_free(s->op_timer);
    event_free(s->check_timer);
    free(s);
}
