/*
 * The broker's Redis connections (cmd, sub, ing: see broker.c), each a reconnecting
 * connection of rconn.c on the broker's loop (connect with a timeout, retry with jittered
 * exponential backoff, the set-up deadline), and what is done on them: the function library loaded
 * on cmd (after a ROLE check with Sentinel), the wanted topics subscribed again on sub, PSUBSCRIBE
 * on ing (ingest.c); a connection whose set-up is not answered within --redis-timeout-ms is made
 * again. With Sentinel the master moves (hb_broker_set_master), and the connections move with it.
 * Broker thread only, but hb_broker_master(), which /metrics reads under master_lock.
 */
#include "broker_priv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "canary.h"
#include "hb_dict.h"
#include "hb_keys.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "library.h"
#include "rc.h"
#include "rc_priv.h"
#include "rconn.h"
#include "resolve.h"

#define MOD "broker"
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

static void cmd_load_library(hb_broker_t *b);
static void cmd_check_role(hb_broker_t *b);

void hb_broker_conn_set_up(hb_conn_t *c)
{
    hb_rconn_set_up(c);
}

static void cmd_ready_now(hb_broker_t *b)
{
    b->cmd_ready = 1;
    hb_broker_conn_set_up(&b->cmd);
    hb_log_info(MOD, "redis command connection ready", "{s:s}", "redis", b->edge->cfg.redis_url);
    b->ev->cmd_ready(b);
}

/*
 * The dataset check, the last step before commands are sent on a new cmd connection: SET the
 * deployment's dataset marker to a new random value unless it exists, and read it. The marker
 * lives as long as Redis's data: a value other than the one this edge read before means Redis
 * lost its data (restarted empty, an unsynced replica promoted, FLUSHALL) since then, maybe
 * while this edge could not reach it. The events stored meanwhile in a stream whose epoch this
 * edge never learnt are gone without a trace the refill could see (FINDINGS F16): those
 * topics' subscribers are sent a reset (brefill__on_data_lost). Runs before the position reads
 * and refills of the new connection, which hb_broker_on_cmd_ready() starts.
 */
static void on_dataset(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    char *mine = priv;
    const char *cur = NULL;
    if (!r) {
        free(mine); /* disconnected: the next connection checks again */
        return;
    }
    if (r->type == REDIS_REPLY_NIL)
        cur = mine; /* it was missing: ours is set */
    else if (r->type == REDIS_REPLY_STRING && r->len <= HB_DATASET_MAX && strlen(r->str) == r->len)
        cur = r->str;
    if (!cur) {
        hb_log_warn(MOD,
                    "dataset marker check failed: a data loss of Redis goes unannounced to "
                    "subscriptions whose stream this edge has not read",
                    "{s:s}", "err", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    } else {
        if (b->dataset[0] && strcmp(b->dataset, cur) != 0) {
            atomic_fetch_add_explicit(&b->edge->stats.redis_data_lost, 1, memory_order_relaxed);
            hb_log_warn(MOD,
                        "redis lost its data (new dataset marker): subscriptions whose stream "
                        "was not read are sent a reset",
                        "{s:s,s:s}", "was", b->dataset, "now", cur);
            b->ev->data_lost(b);
        }
        memcpy(b->dataset, cur, strlen(cur) + 1);
    }
    free(mine);
    cmd_ready_now(b);
}

static void on_function_loaded(redisAsyncContext *ac, int ok, void *priv)
{
    hb_broker_t *b = ac->data;
    char key[sizeof(b->edge->cfg.prefix) + 16], *mine;
    (void)priv;
    if (!ok) {
        redisAsyncDisconnect(ac); /* retried with backoff */
        return;
    }
    mine = hb_xmalloc(HB_DATASET_MAX + 1);
    snprintf(mine, HB_DATASET_MAX + 1, "%08lx%08lx%08lx%08lx",
             (unsigned long)random() & 0xffffffffUL, (unsigned long)random() & 0xffffffffUL,
             (unsigned long)random() & 0xffffffffUL, (unsigned long)random() & 0xffffffffUL);
    if (hb_keys_dataset(key, sizeof(key), b->edge->cfg.prefix) < 0 ||
        redisAsyncCommand(ac, on_dataset, mine, "SET %s %s NX GET", key, mine) != REDIS_OK) {
        free(mine);
        cmd_ready_now(b);
    }
}

static int conn_addr(hb_rconn_t *r, const char **host, int *port)
{
    hb_broker_t *b = r->owner;
    return b->rc->conn_addr(b, host, port); /* rc_priv.h */
}

static void on_up(hb_rconn_t *conn)
{
    hb_broker_t *b = conn->owner;
    if (conn == &b->cmd) {
        if (b->sentinel)
            cmd_check_role(b);
        else
            cmd_load_library(b);
    } else if (conn == &b->sub) {
        hb_broker_conn_set_up(
            conn); /* each topic's SUBSCRIBE, and the canary, are checked on their own */
        b->ev->sub_up(b);
        if (b->canary)
            hb_canary_sub_up(b->canary);
    } else {
        b->ev->ing_up(b);
    }
    b->ev->ready_changed(b);
}

static void on_failed(hb_rconn_t *r, hb_rconn_fail_t why)
{
    hb_broker_t *b = r->owner;
    if (why == HB_RCONN_REFUSED) /* a connect timeout is not a sign of a moved master */
        b->ev->master_suspect(b, "redis connect failed");
}

static void on_down(hb_rconn_t *conn)
{
    hb_broker_t *b = conn->owner;
    if (conn == &b->cmd) {
        b->cmd_ready = 0;
        b->ev->cmd_down(b);
    } else if (conn == &b->sub) {
        b->ev->sub_down(b);
    } else {
        b->ing_ready = 0;
    }
    b->ev->ready_changed(b);
}

static void on_lost(hb_rconn_t *r)
{
    hb_broker_t *b = r->owner;
    b->ev->master_suspect(b, "redis connection lost");
}

static const hb_rconn_ops_t conn_ops = {
    .addr = conn_addr, .up = on_up, .failed = on_failed, .down = on_down, .lost = on_lost};

void bconn__start(hb_broker_t *b, hb_conn_t *c)
{
    (void)b;
    hb_rconn_start(c);
}

/* A host name lookup ended: connections waiting for their retry go now (only connections in
 * use ever wait: cmd and sub are not started in cluster mode, ing not without ingest). */
void bconn__on_resolved(void *arg)
{
    hb_broker_t *b = arg;
    hb_conn_t *conns[3] = {&b->cmd, &b->sub, &b->ing};
    for (int i = 0; i < 3; i++)
        hb_rconn_retry_now(conns[i]);
}

void bconn__init(hb_broker_t *b, hb_conn_t *c, const char *name)
{
    hb_rconn_cfg_t cfg = {.mod = MOD,
                          .name = name,
                          .log = HB_RCONN_LOG_CONN,
                          .connect_timeout_ms = CONNECT_TIMEOUT_MS,
                          .backoff_min_ms = BACKOFF_MIN_MS,
                          .backoff_max_ms = BACKOFF_MAX_MS,
                          .stopping = &b->stopping,
                          .data = b};
    hb_rconn_init(c, b->base, b->edge, b->resolver, &cfg, &conn_ops, b);
}

static void cmd_load_library(hb_broker_t *b)
{
    if (b->edge->cfg.redis_db)
        redisAsyncCommand(b->cmd.ac, NULL, NULL, "SELECT %d", b->edge->cfg.redis_db);
    hb_library_ensure(b, b->cmd.ac, on_function_loaded, NULL);
}

/* ---- Sentinel: following the master ---- */

/* With Sentinel, the command connection is used only once the node says it is the master:
 * an address Sentinel named a moment ago may since have been demoted to a replica. */
static void on_cmd_role(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    (void)priv;
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "master")) {
        cmd_load_library(b);
        return;
    }
    hb_log_warn(MOD, "redis node is not a master: asking Sentinel again", "{s:s,s:i}", "host",
                b->master_host, "port", b->master_port);
    redisAsyncDisconnect(ac);
    b->ev->master_suspect(b, "connected node is not a master");
}

static void cmd_check_role(hb_broker_t *b)
{
    redisAsyncCommand(b->cmd.ac, on_cmd_role, NULL, "ROLE");
}

/* Runs from the loop, never inside a callback of the contexts it frees. */
void bconn__on_switch(evutil_socket_t fd, short what, void *arg)
{
    hb_broker_t *b = arg;
    (void)fd;
    (void)what;
    if (b->stopping)
        return;
    /* each to the current master address, now rather than after its backoff */
    hb_rconn_move(&b->cmd);
    hb_rconn_move(&b->sub);
    if (b->edge->cfg.ingest)
        hb_rconn_move(&b->ing);
}

void hb_broker_set_master(hb_broker_t *b, const char *host, int port, const char *reason)
{
    char from[HB_CFG_STR_MAX + 8];
    int first = !b->master_port;
    if (!first && port == b->master_port && !strcmp(host, b->master_host)) {
        /* the same master, back: connections waiting out their backoff go now */
        hb_conn_t *conns[] = {&b->cmd, &b->sub, &b->ing};
        for (size_t i = 0; i < 3 && !b->stopping; i++)
            if (!conns[i]->ac && (conns[i] != &b->ing || b->edge->cfg.ingest)) {
                evtimer_del(conns[i]->timer);
                hb_rconn_start(conns[i]);
            }
        return;
    }
    snprintf(from, sizeof(from), "%s:%d", b->master_host, b->master_port);
    pthread_mutex_lock(&b->master_lock);
    snprintf(b->master_host, sizeof(b->master_host), "%s", host);
    b->master_port = port;
    if (!first)
        b->master_switches++;
    pthread_mutex_unlock(&b->master_lock);
    if (first)
        hb_log_info(MOD, "redis master found", "{s:s,s:i,s:s}", "host", host, "port", port,
                    "reason", reason);
    else
        hb_log_warn(MOD, "redis master switch", "{s:s,s:s,s:i,s:s}", "from", from, "to", host,
                    "port", port, "reason", reason);
    event_active(b->switch_ev, EV_TIMEOUT, 0);
}
