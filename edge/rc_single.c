/*
 * The Redis command interface (rc.h) on a single Redis, or the master Sentinel names: commands
 * go over the cmd connection, live channels are subscribed on the sub connection (both
 * reconnecting, bconn.c), the library's functions take the topic name as their one key, and
 * the sub connection carries the delivery canary (canary.c). Broker thread only.
 */
#include "rc.h"
#include "rc_priv.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "broker_priv.h"
#include "canary.h"

static void single_init(hb_broker_t *b)
{
    b->canary = hb_canary_new(b);
}

static void single_start(hb_broker_t *b)
{
    bconn__start(b, &b->cmd);
    bconn__start(b, &b->sub);
}

static void single_tick(hb_broker_t *b)
{
    if (b->canary)
        hb_canary_tick(b->canary);
}

static void single_cleanup(hb_broker_t *b)
{
    hb_canary_free(b->canary);
    b->canary = NULL;
}

static int single_ready(const hb_broker_t *b)
{
    return b->sub.up;
}

static int single_canary_ok(const hb_broker_t *b)
{
    return !b->canary || hb_canary_ok(b->canary);
}

static int single_conn_addr(hb_broker_t *b, const char **host, int *port)
{
    *host = b->master_host;
    *port = b->master_port;
    return b->master_port ? 0 : HB_ENOTFOUND;
}

/* argv[0..argc) on the cmd connection; REDIS_ERR while it is disconnected. */
static int single_command(hb_broker_t *b, int argc, const char **argv, const size_t *argvlen,
                          redisCallbackFn *cb, void *priv)
{
    if (!b->cmd.ac)
        return REDIS_ERR;
    return redisAsyncCommandArgv(b->cmd.ac, cb, priv, argc, argv, argvlen);
}

/* "<cmd> <arg1> <arg2> argv..." on the cmd connection (at most HB_RC_ARGS_MAX of argv). */
static int single_prefixed(hb_broker_t *b, const char *cmd, const char *arg1, size_t arg1len,
                           const char *arg2, const char *arg3, size_t arg3len, int argc,
                           const char **argv, const size_t *argvlen, redisCallbackFn *cb,
                           void *priv)
{
    const char *av[HB_RC_ARGS_MAX + 4];
    size_t al[HB_RC_ARGS_MAX + 4];
    int n = 0;
    av[n] = cmd;
    al[n++] = strlen(cmd);
    av[n] = arg1;
    al[n++] = arg1len;
    av[n] = arg2;
    al[n++] = strlen(arg2);
    if (arg3) {
        av[n] = arg3;
        al[n++] = arg3len;
    }
    for (int i = 0; i < argc; i++, n++) {
        av[n] = argv[i];
        al[n] = argvlen[i];
    }
    return single_command(b, n, av, al, cb, priv);
}

static int single_fcall(hb_broker_t *b, const char *fn, const char *topic, size_t tlen,
                        const char *key3, int argc, const char **argv, const size_t *argvlen,
                        redisCallbackFn *cb, void *priv)
{
    (void)key3; /* one node: the function names its keys from the topic */
    return single_prefixed(b, "FCALL", fn, strlen(fn), "1", topic, tlen, argc, argv, argvlen, cb,
                           priv);
}

static int single_key_command(hb_broker_t *b, int key_index, int argc, const char **argv,
                              const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    (void)key_index;
    if (!b->cmd_ready)
        return REDIS_ERR;
    return single_command(b, argc, argv, argvlen, cb, priv);
}

static int single_eval(hb_broker_t *b, const char *lua, const char *sha, int by_text, int nkeys,
                       int argc, const char **argv, const size_t *argvlen, redisCallbackFn *cb,
                       void *priv)
{
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    if (by_text || !sha[0])
        return single_prefixed(b, "EVAL", lua, strlen(lua), nk, NULL, 0, argc, argv, argvlen, cb,
                               priv);
    return single_prefixed(b, "EVALSHA", sha, strlen(sha), nk, NULL, 0, argc, argv, argvlen, cb,
                           priv);
}

static size_t live_channel(const hb_broker_t *b, const btopic_t *t, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s{%.*s}:live", b->edge->cfg.prefix, (int)t->len, t->name);
    return n < 0 ? 0 : (size_t)n;
}

static void single_subscribe(hb_broker_t *b, btopic_t *t)
{
    char chan[HB_TOPIC_MAX + 80];
    size_t n = live_channel(b, t, chan, sizeof(chan));
    if (!b->sub.up)
        return;
    t->state = T_SUBSCRIBING;
    redisAsyncCommand(b->sub.ac, b->on_sub_cb, NULL, "SUBSCRIBE %b", chan, n);
}

static void single_unsubscribe(hb_broker_t *b, btopic_t *t)
{
    char chan[HB_TOPIC_MAX + 80];
    size_t n = live_channel(b, t, chan, sizeof(chan));
    t->state = T_UNSUBSCRIBING;
    redisAsyncCommand(b->sub.ac, b->on_sub_cb, NULL, "UNSUBSCRIBE %b", chan, n);
}

static void single_lease_keys(const hb_broker_t *b, char *lease, size_t lcap, char *term,
                              size_t tcap)
{
    snprintf(lease, lcap, "%singest:lease", b->edge->cfg.prefix);
    if (tcap)
        term[0] = '\0';
}

static int single_lease_acquire(hb_broker_t *b, const char *lease, const char *term_key,
                                const char *token, const char *ms, long long floor,
                                redisCallbackFn *cb, void *priv)
{
    const char *av[] = {"SET", lease, token, "NX", "PX", ms};
    size_t al[6];
    (void)term_key;
    (void)floor;
    for (int i = 0; i < 6; i++)
        al[i] = strlen(av[i]);
    return single_command(b, 6, av, al, cb, priv);
}

static int single_lease_won(const hb_broker_t *b, const redisReply *r, long long *term)
{
    (void)b;
    (void)term;
    return r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK");
}

static int single_lease_renew(hb_broker_t *b, const char *lease, const char *token, const char *ms,
                              redisCallbackFn *cb, void *priv)
{
    const char *av[] = {"FCALL", b->fn.lease_renew, "0", token, ms};
    size_t al[5];
    (void)lease;
    for (int i = 0; i < 5; i++)
        al[i] = strlen(av[i]);
    return single_command(b, 5, av, al, cb, priv);
}

static void single_lease_release(hb_broker_t *b, const char *lease, const char *token)
{
    const char *av[] = {"FCALL", b->fn.lease_release, "0", token};
    size_t al[4];
    (void)lease;
    for (int i = 0; i < 4; i++)
        al[i] = strlen(av[i]);
    single_command(b, 4, av, al, NULL, NULL);
}

static int single_ingest_barrier(hb_broker_t *b, const char *term, const char *barrier, size_t blen,
                                 redisCallbackFn *cb, void *priv)
{
    const char *av[] = {"PUBLISH", barrier, "1"};
    size_t al[] = {7, blen, 1};
    (void)term;
    (void)cb;
    (void)priv;
    return single_command(b, 3, av, al, NULL, NULL) == REDIS_OK ? 1 : 0;
}

static int single_ingest_store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                               size_t plen, const char *term, redisCallbackFn *cb, void *priv)
{
    (void)b;
    (void)topic;
    (void)tlen;
    (void)payload;
    (void)plen;
    (void)term;
    (void)cb;
    (void)priv;
    return REDIS_ERR; /* one bus: stores go in batches (ingest__flush) */
}

const hb_rc_ops_t hb_rc__single = {
    .name = "single",
    .init = single_init,
    .start = single_start,
    .tick = single_tick,
    .cleanup = single_cleanup,
    .ready = single_ready,
    .canary_ok = single_canary_ok,
    .conn_addr = single_conn_addr,
    .fcall = single_fcall,
    .key_command = single_key_command,
    .eval = single_eval,
    .command = single_command,
    .subscribe = single_subscribe,
    .unsubscribe = single_unsubscribe,
    .lease_keys = single_lease_keys,
    .lease_acquire = single_lease_acquire,
    .lease_won = single_lease_won,
    .lease_renew = single_lease_renew,
    .lease_release = single_lease_release,
    .one_bus = 1,
    .keep_s = 0,
    .ingest_barrier = single_ingest_barrier,
    .ingest_store = single_ingest_store,
};
