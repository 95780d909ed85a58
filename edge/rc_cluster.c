/*
 * The Redis command interface (rc.h) on Redis Cluster: every call goes to the cluster module
 * (cluster.h), which routes it to the primary of its slot, follows redirections and owns the
 * sharded subscribers and the per-primary canaries. The library's functions take a topic's
 * <prefix>{<topic>}:log and :epoch keys, so that a slot migration sees every key a call
 * touches. Broker thread only.
 */
#include "rc.h"
#include "rc_priv.h"

#include <stdio.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "cluster.h"
#include "hb_keys.h"
#include "hb_slot.h"

static void cluster_init(hb_broker_t *b)
{
    b->cluster = hb_cluster_new(b);
}

static void cluster_start(hb_broker_t *b)
{
    hb_cluster_start(b->cluster);
}

static void cluster_tick(hb_broker_t *b)
{
    hb_cluster_tick(b->cluster);
}

static void cluster_cleanup(hb_broker_t *b)
{
    hb_cluster_free(b->cluster);
    b->cluster = NULL;
}

static int cluster_ready(const hb_broker_t *b)
{
    return hb_cluster_ready(b->cluster);
}

static int cluster_canary_ok(const hb_broker_t *b)
{
    return hb_cluster_canary_ok(b->cluster);
}

static int cluster_conn_addr(hb_broker_t *b, const char **host, int *port)
{
    hb_cluster_ingest_addr(b->cluster, host, port);
    return 0;
}

static int cluster_fcall(hb_broker_t *b, const char *fn, const char *topic, size_t tlen,
                         const char *key3, int argc, const char **argv, const size_t *argvlen,
                         redisCallbackFn *cb, void *priv)
{
    return hb_cluster_fcall(b->cluster, fn, topic, tlen, key3, argc, argv, argvlen, cb, priv);
}

static int cluster_key_command(hb_broker_t *b, int key_index, int argc, const char **argv,
                               const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    return hb_cluster_key_command(b->cluster, key_index, argc, argv, argvlen, cb, priv);
}

/* The text every time: one script cache per node. */
static int cluster_eval(hb_broker_t *b, const char *lua, const char *sha, int by_text, int nkeys,
                        int argc, const char **argv, const size_t *argvlen, redisCallbackFn *cb,
                        void *priv)
{
    const char *av[HB_RC_ARGS_MAX + 3];
    size_t al[HB_RC_ARGS_MAX + 3];
    char nk[16];
    (void)sha;
    (void)by_text;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    av[0] = "EVAL";
    al[0] = 4;
    av[1] = lua;
    al[1] = strlen(lua);
    av[2] = nk;
    al[2] = strlen(nk);
    for (int i = 0; i < argc; i++) {
        av[3 + i] = argv[i];
        al[3 + i] = argvlen[i];
    }
    return hb_cluster_key_command(b->cluster, 3, argc + 3, av, al, cb, priv);
}

static int cluster_command(hb_broker_t *b, int argc, const char **argv, const size_t *argvlen,
                           redisCallbackFn *cb, void *priv)
{
    (void)b;
    (void)argc;
    (void)argv;
    (void)argvlen;
    (void)cb;
    (void)priv;
    return REDIS_ERR; /* a keyless command has no node */
}

static void cluster_subscribe(hb_broker_t *b, btopic_t *t)
{
    hb_cluster_subscribe(b->cluster, t);
}

static void cluster_unsubscribe(hb_broker_t *b, btopic_t *t)
{
    hb_cluster_unsubscribe(b->cluster, t);
}

static void cluster_lease_keys(const hb_broker_t *b, char *lease, size_t lcap, char *term,
                               size_t tcap)
{
    snprintf(lease, lcap, "%s{ingest}:lease", b->edge->cfg.prefix);
    snprintf(term, tcap, "%s{ingest}:term", b->edge->cfg.prefix);
}

/* FCALL <fn> <nkeys> lease [term_key] token [arg2 [arg3]], routed by the lease key. */
static int lease_command(hb_broker_t *b, redisCallbackFn *cb, void *priv, const char *fn,
                         const char *lease, const char *term_key, const char *token,
                         const char *arg2, const char *arg3)
{
    const char *av[8];
    size_t al[8];
    int argc = 0;
    av[argc++] = "FCALL";
    av[argc++] = fn;
    av[argc++] = term_key ? "2" : "1";
    av[argc++] = lease;
    if (term_key)
        av[argc++] = term_key;
    av[argc++] = token;
    if (arg2)
        av[argc++] = arg2;
    if (arg2 && arg3)
        av[argc++] = arg3;
    for (int i = 0; i < argc; i++)
        al[i] = strlen(av[i]);
    return hb_cluster_key_command(b->cluster, 3, argc, av, al, cb, priv);
}

static int cluster_lease_acquire(hb_broker_t *b, const char *lease, const char *term_key,
                                 const char *token, const char *ms, long long floor,
                                 redisCallbackFn *cb, void *priv)
{
    char fl[24];
    snprintf(fl, sizeof(fl), "%lld", floor);
    return lease_command(b, cb, priv, b->fn.lease_acquire, lease, term_key, token, ms, fl);
}

static int cluster_lease_won(const hb_broker_t *b, const redisReply *r, long long *term)
{
    (void)b;
    if (r->type != REDIS_REPLY_INTEGER)
        return 0; /* held by someone else (nil), or an error */
    *term = r->integer;
    return 1;
}

static int cluster_lease_renew(hb_broker_t *b, const char *lease, const char *token, const char *ms,
                               redisCallbackFn *cb, void *priv)
{
    return lease_command(b, cb, priv, b->fn.lease_renew, lease, NULL, token, ms, NULL);
}

static void on_released(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)reply;
    (void)priv;
}

static void cluster_lease_release(hb_broker_t *b, const char *lease, const char *token)
{
    lease_command(b, on_released, NULL, b->fn.lease_release, lease, NULL, token, NULL, NULL);
}

static int cluster_ingest_barrier(hb_broker_t *b, const char *term, const char *barrier,
                                  size_t blen, redisCallbackFn *cb, void *priv)
{
    (void)blen; /* barrier is NUL-terminated */
    return hb_cluster_fence_and_barrier(b->cluster, term, barrier, cb, priv);
}

static int cluster_ingest_store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                                size_t plen, const char *term, redisCallbackFn *cb, void *priv)
{
    char fence[96];
    const char *av[2] = {payload, term};
    size_t al[2] = {plen, strlen(term)};
    hb_keys_fence(fence, sizeof(fence), b->edge->cfg.prefix,
                  hb_cluster_slot_tag(b->cluster, hb_slot_of(topic, tlen)));
    return hb_cluster_fcall(b->cluster, b->fn.ingest, topic, tlen, fence, 2, av, al, cb, priv);
}

const hb_rc_ops_t hb_rc__cluster = {
    .name = "cluster",
    .init = cluster_init,
    .start = cluster_start,
    .tick = cluster_tick,
    .cleanup = cluster_cleanup,
    .ready = cluster_ready,
    .canary_ok = cluster_canary_ok,
    .conn_addr = cluster_conn_addr,
    .fcall = cluster_fcall,
    .key_command = cluster_key_command,
    .eval = cluster_eval,
    .command = cluster_command,
    .subscribe = cluster_subscribe,
    .unsubscribe = cluster_unsubscribe,
    .lease_keys = cluster_lease_keys,
    .lease_acquire = cluster_lease_acquire,
    .lease_won = cluster_lease_won,
    .lease_renew = cluster_lease_renew,
    .lease_release = cluster_lease_release,
    .one_bus = 0,
    .keep_s = 60.0,
    .ingest_barrier = cluster_ingest_barrier,
    .ingest_store = cluster_ingest_store,
};
