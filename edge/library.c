/* Loading the deployment's function library only after checking what is there (library.h). */
#include "library.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_log.h"
#include "hb_mem.h"

#define MOD "broker"

typedef struct lcheck {
    hb_broker_t *b;
    hb_library_done_fn done;
    void *arg;
    int rechecked; /* a LOAD found a library already there: asked <lib>_info once more */
} lcheck_t;

static void send_info(redisAsyncContext *ac, lcheck_t *q);

static void finish(redisAsyncContext *ac, lcheck_t *q, int ok)
{
    q->done(ac, ok, q->arg);
    free(q);
}

static void on_load(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    lcheck_t *q = priv;
    if (!r) {
        free(q);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR && strstr(r->str, "already exists") && !q->rechecked) {
        q->rechecked = 1; /* another edge loaded it between our check and our load */
        send_info(ac, q);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        hb_log_error(MOD, "FUNCTION LOAD failed (Redis 7 or newer is required)", "{s:s,s:s}",
                     "library", q->b->fn.lib, "err", r->str);
        finish(ac, q, 0);
        return;
    }
    atomic_store(&q->b->edge->stats.library_mismatch, 0);
    finish(ac, q, 1);
}

static void load(redisAsyncContext *ac, lcheck_t *q, int replace)
{
    if (redisAsyncCommand(ac, on_load, q, replace ? "FUNCTION LOAD REPLACE %s" : "FUNCTION LOAD %s",
                          q->b->library) != REDIS_OK)
        free(q); /* the connection is going: no callback */
}

static void on_info(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *r = reply;
    lcheck_t *q = priv;
    hb_broker_t *b = q->b;
    long long version;
    if (!r) {
        free(q);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (!strstr(r->str, "not found")) {
            hb_log_error(MOD, "reading the function library's version failed", "{s:s,s:s}",
                         "library", b->fn.lib, "err", r->str);
            finish(ac, q, 0);
        } else if (q->rechecked) {
            /* a library of this name without <lib>_info: version 1, from before versions */
            hb_log_warn(MOD, "replacing an unversioned function library", "{s:s,s:i}", "library",
                        b->fn.lib, "version", HB_SCRIPT_VERSION);
            load(ac, q, 1);
        } else {
            load(ac, q, 0);
        }
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_INTEGER || r->element[1]->type != REDIS_REPLY_STRING) {
        hb_log_error(MOD, "unexpected function library info reply", "{s:s}", "library", b->fn.lib);
        finish(ac, q, 0);
        return;
    }
    version = r->element[0]->integer;
    if (version < HB_SCRIPT_VERSION) {
        hb_log_warn(MOD, "upgrading the function library", "{s:s,s:I,s:i}", "library", b->fn.lib,
                    "from", version, "to", HB_SCRIPT_VERSION);
        load(ac, q, 1);
        return;
    }
    if (version > HB_SCRIPT_VERSION) {
        hb_log_error(MOD,
                     "incompatible function library: Redis holds a newer version than this edge "
                     "knows; not replacing it (upgrade this edge)",
                     "{s:s,s:I,s:i}", "library", b->fn.lib, "found", version, "this_edge",
                     HB_SCRIPT_VERSION);
        atomic_store(&b->edge->stats.library_mismatch, 1);
        finish(ac, q, 1);
        return;
    }
    if (strcmp(r->element[1]->str, b->settings) != 0) {
        hb_log_error(MOD,
                     "deployment settings disagree: the function library in Redis was loaded "
                     "with other settings than this edge's; keeping it (its settings apply to "
                     "every edge of the deployment)",
                     "{s:s,s:s,s:s}", "library", b->fn.lib, "loaded", r->element[1]->str,
                     "this_edge", b->settings);
        atomic_store(&b->edge->stats.library_mismatch, 1);
        finish(ac, q, 1);
        return;
    }
    atomic_store(&b->edge->stats.library_mismatch, 0);
    finish(ac, q, 1);
}

static void send_info(redisAsyncContext *ac, lcheck_t *q)
{
    if (redisAsyncCommand(ac, on_info, q, "FCALL_RO %s 0", q->b->fn.info) != REDIS_OK)
        free(q); /* the connection is going: no callback */
}

void hb_library_ensure(hb_broker_t *b, redisAsyncContext *ac, hb_library_done_fn done, void *arg)
{
    lcheck_t *q = hb_xcalloc(1, sizeof(*q));
    q->b = b;
    q->done = done;
    q->arg = arg;
    send_info(ac, q);
}

int hb_library_missing(const redisReply *r)
{
    static const char msg[] = "ERR Function not found";
    return r && r->type == REDIS_REPLY_ERROR && r->len >= sizeof(msg) - 1 &&
           !memcmp(r->str, msg, sizeof(msg) - 1);
}

int hb_library_recover(hb_broker_t *b, redisAsyncContext *ac, const redisReply *r)
{
    if (!hb_library_missing(r))
        return 0;
    atomic_fetch_add_explicit(&b->edge->stats.library_lost, 1, memory_order_relaxed);
    hb_log_ratelimited("library-missing", 2000, HB_LOG_WARN, MOD,
                       "function library missing in Redis (FUNCTION FLUSH or DELETE?): connecting "
                       "again to load it",
                       "{s:s}", "library", b->fn.lib);
    redisAsyncDisconnect(ac); /* deferred by hiredis until this callback returns */
    return 1;
}
