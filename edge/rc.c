/* The broker's Redis command interface (rc.h): the choice of implementation, and the dispatch
 * of every call to it. Broker thread only. */
#include "rc.h"
#include "rc_priv.h"

#include "broker.h"

void hb_rc_init(hb_broker_t *b)
{
    b->rc = b->edge->cfg.redis_cluster ? &hb_rc__cluster : &hb_rc__single;
    b->rc->init(b);
}

void hb_rc_start(hb_broker_t *b)
{
    b->rc->start(b);
}

void hb_rc_tick(hb_broker_t *b)
{
    b->rc->tick(b);
}

void hb_rc_cleanup(hb_broker_t *b)
{
    if (b->rc)
        b->rc->cleanup(b);
}

int hb_rc_ready(const hb_broker_t *b)
{
    return b->cmd_ready && b->rc->ready(b);
}

int hb_rc_canary_ok(const hb_broker_t *b)
{
    return b->rc->canary_ok(b);
}

int hb_rc_fcall(hb_broker_t *b, const char *fn, const char *topic, size_t tlen, int argc,
                const char **argv, const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    return hb_rc_fcall_key3(b, fn, topic, tlen, NULL, argc, argv, argvlen, cb, priv);
}

int hb_rc_fcall_key3(hb_broker_t *b, const char *fn, const char *topic, size_t tlen,
                     const char *key3, int argc, const char **argv, const size_t *argvlen,
                     redisCallbackFn *cb, void *priv)
{
    if (argc < 0 || argc > HB_RC_ARGS_MAX)
        return REDIS_ERR;
    return b->rc->fcall(b, fn, topic, tlen, key3, argc, argv, argvlen, cb, priv);
}

int hb_rc_key_command(hb_broker_t *b, int key_index, int argc, const char **argv,
                      const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    if (key_index < 1 || key_index >= argc)
        return REDIS_ERR;
    return b->rc->key_command(b, key_index, argc, argv, argvlen, cb, priv);
}

int hb_rc_eval(hb_broker_t *b, const char *lua, const char *sha, int by_text, int nkeys, int argc,
               const char **argv, const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    if (nkeys < 1 || nkeys > argc || argc > HB_RC_ARGS_MAX)
        return REDIS_ERR;
    return b->rc->eval(b, lua, sha, by_text, nkeys, argc, argv, argvlen, cb, priv);
}

int hb_rc_command(hb_broker_t *b, int argc, const char **argv, const size_t *argvlen,
                  redisCallbackFn *cb, void *priv)
{
    return b->rc->command(b, argc, argv, argvlen, cb, priv);
}

void hb_rc_subscribe(hb_broker_t *b, btopic_t *t)
{
    b->rc->subscribe(b, t);
}

void hb_rc_unsubscribe(hb_broker_t *b, btopic_t *t)
{
    b->rc->unsubscribe(b, t);
}

void hb_rc_lease_keys(const hb_broker_t *b, char *lease, size_t lcap, char *term, size_t tcap)
{
    b->rc->lease_keys(b, lease, lcap, term, tcap);
}

int hb_rc_lease_acquire(hb_broker_t *b, const char *lease, const char *term_key, const char *token,
                        const char *ms, long long floor, redisCallbackFn *cb, void *priv)
{
    return b->rc->lease_acquire(b, lease, term_key, token, ms, floor, cb, priv);
}

int hb_rc_lease_won(const hb_broker_t *b, const redisReply *r, long long *term)
{
    *term = 0;
    return r && b->rc->lease_won(b, r, term);
}

int hb_rc_lease_renew(hb_broker_t *b, const char *lease, const char *token, const char *ms,
                      redisCallbackFn *cb, void *priv)
{
    return b->rc->lease_renew(b, lease, token, ms, cb, priv);
}

void hb_rc_lease_release(hb_broker_t *b, const char *lease, const char *token)
{
    b->rc->lease_release(b, lease, token);
}

int hb_rc_ingest_one_bus(const hb_broker_t *b)
{
    return b->rc->one_bus;
}

double hb_rc_ingest_keep_s(const hb_broker_t *b)
{
    return b->rc->keep_s;
}

int hb_rc_ingest_barrier(hb_broker_t *b, const char *term, const char *barrier, size_t blen,
                         redisCallbackFn *cb, void *priv)
{
    return b->rc->ingest_barrier(b, term, barrier, blen, cb, priv);
}

int hb_rc_ingest_store(hb_broker_t *b, const char *topic, size_t tlen, const char *payload,
                       size_t plen, const char *term, redisCallbackFn *cb, void *priv)
{
    return b->rc->ingest_store(b, topic, tlen, payload, plen, term, cb, priv);
}
