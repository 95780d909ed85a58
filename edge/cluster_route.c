/*
 * Redis Cluster mode: routed commands. A command goes to the primary of its slot (or an ASK
 * target, once, after ASKING); MOVED updates the map and resends; TRYAGAIN / CLUSTERDOWN / a
 * script touching a key that is not local are retried on a short timer until a deadline. A
 * slot's commands reach Redis in order across retries: once one is held, the slot's later ones
 * queue behind it (per-slot FIFOs, one in flight). Replies reach the caller exactly once.
 * Broker thread only.
 */
#include "cluster.h"
#include "cluster_priv.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_keys.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "hb_slot.h"
#include "hb_topic.h"

#define MOD "cluster"
#define REDIRECTS_MAX 8
#define RETRY_MS 50
#define COMMAND_DEADLINE_S 15.0 /* a command may wait this long for the cluster to settle */
#define RETRY_LIST_MAX 100000

static void rcmd_send(hb_cluster_t *cl, rcmd_t *rc);

void cluster__rcmd_finish(rcmd_t *rc, redisAsyncContext *ac, redisReply *r)
{
    hb_cluster_t *cl = rc->cl;
    if (rc->held) {
        cl->slot_held[rc->slot]--;
        cl->slot_sending[rc->slot] = 0;
        if (cl->qhead[rc->slot] && !cl->stopping) { /* the slot's next command may go now */
            if (!cl->in_ready[rc->slot]) {
                cl->in_ready[rc->slot] = 1;
                cl->ready[cl->nready++] = (uint16_t)rc->slot;
            }
            event_active(cl->retry_ev, EV_TIMEOUT, 0);
        }
    }
    rc->fn(ac ? ac : &cl->fail_ac, r, rc->priv);
    redisFreeCommand(rc->cmd);
    free(rc);
}

static void retry_later(hb_cluster_t *cl, rcmd_t *rc)
{
    struct timeval tv = {0, RETRY_MS * 1000};
    if (hb_now() > rc->deadline || cl->nretry >= RETRY_LIST_MAX || cl->stopping) {
        atomic_fetch_add_explicit(&cl->b->edge->stats.cluster_giveups, 1, memory_order_relaxed);
        hb_log_ratelimited("cluster-giveup", 1000, HB_LOG_WARN, MOD,
                           "redis cluster command not placed in time", "{s:i}", "slot",
                           (int)rc->slot);
        cluster__rcmd_finish(rc, NULL, NULL);
        return;
    }
    if (rc->held) {
        /* It was its slot's first held command (the one in flight): it stays first. */
        cl->slot_sending[rc->slot] = 0;
        rc->next = cl->qhead[rc->slot];
        cl->qhead[rc->slot] = rc;
        if (!cl->qtail[rc->slot])
            cl->qtail[rc->slot] = rc;
    } else {
        rc->held = 1;
        cl->slot_held[rc->slot]++;
        rc->next = NULL;
        if (cl->qtail[rc->slot])
            cl->qtail[rc->slot]->next = rc;
        else
            cl->qhead[rc->slot] = rc;
        cl->qtail[rc->slot] = rc;
    }
    if (!cl->in_ready[rc->slot]) {
        cl->in_ready[rc->slot] = 1;
        cl->ready[cl->nready++] = (uint16_t)rc->slot;
    }
    cl->nretry++;
    if (!evtimer_pending(cl->retry_ev, NULL))
        evtimer_add(cl->retry_ev, &tv);
}

void cluster__on_retry(evutil_socket_t fd, short what, void *arg)
{
    hb_cluster_t *cl = arg;
    uint16_t slots[HB_SLOT_COUNT];
    size_t n = cl->nready;
    (void)fd;
    (void)what;
    if (cl->want_refresh)
        cluster__refresh(cl);
    /* Send the first waiting command of each listed slot that has none in flight. A slot
     * with one in flight is listed again when that one finishes (rcmd_finish). */
    memcpy(slots, cl->ready, n * sizeof(*slots));
    cl->nready = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned slot = slots[i];
        rcmd_t *rc = cl->qhead[slot];
        cl->in_ready[slot] = 0;
        if (!rc)
            continue;
        if (cl->slot_sending[slot]) {
            cl->in_ready[slot] = 1; /* still waiting behind its slot's one in flight */
            cl->ready[cl->nready++] = (uint16_t)slot;
            continue;
        }
        cl->qhead[slot] = rc->next;
        if (!cl->qhead[slot])
            cl->qtail[slot] = NULL;
        rc->next = NULL;
        cl->nretry--;
        cl->slot_sending[slot] = 1;
        rcmd_send(cl, rc); /* may put it back first (retry_later) */
        if (cl->qhead[slot] && !cl->in_ready[slot] && !cl->slot_sending[slot]) {
            cl->in_ready[slot] = 1;
            cl->ready[cl->nready++] = (uint16_t)slot;
        }
    }
}

static int is_retryable(const char *err)
{
    return !strncmp(err, "TRYAGAIN", 8) || !strncmp(err, "CLUSTERDOWN", 11) ||
           !strncmp(err, "LOADING", 7) || !strncmp(err, "MASTERDOWN", 10) ||
           strstr(err, "cluster is down") != NULL;
}

static void on_rcmd_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rcmd_t *rc = priv;
    hb_cluster_t *cl = rc->cl;
    redisReply *r = reply;
    int ask, port;
    unsigned slot;
    char host[HB_SLOT_HOST_MAX + 1];

    if (r && r->type == REDIS_REPLY_ERROR && !cl->stopping) {
        if (!hb_slot_redirect_parse(r->str, r->len, &ask, &slot, host, sizeof(host), &port, NULL) &&
            rc->redirects < REDIRECTS_MAX) {
            cnode_t *from = cluster__node_by_ac(cl, ac);
            rc->redirects++;
            atomic_fetch_add_explicit(ask ? &cl->b->edge->stats.cluster_ask
                                          : &cl->b->edge->stats.cluster_moved,
                                      1, memory_order_relaxed);
            if (!host[0] && from)
                snprintf(host, sizeof(host), "%s", from->host);
            if (!host[0]) {
                cluster__rcmd_finish(rc, ac, r);
                return;
            }
            if (ask) {
                rc->ask = cluster__node_get(cl, host, port);
                if (rc->ask)
                    cluster__node_connect(rc->ask);
            } else {
                rc->ask = NULL;
                if (cl->map)
                    hb_slot_map_assign(cl->map, slot, slot, host, strlen(host), port);
                cl->want_refresh = 1;
            }
            /* An earlier command of the slot is held (it got TRYAGAIN while the slot's keys
             * were moving): this one must not overtake it on the new node. */
            if (!rc->held && cl->slot_held[rc->slot]) {
                retry_later(cl, rc);
                return;
            }
            /* The first of its slot to be redirected goes alone: the slot's later commands,
             * redirected or new, wait until it is answered. Two pipelined to the importing
             * node could otherwise be split by the end of the migration: the first refused
             * with TRYAGAIN (keys half moved), the second stored, out of order. */
            if (!rc->held) {
                rc->held = 1;
                cl->slot_held[rc->slot]++;
                cl->slot_sending[rc->slot] = 1;
            }
            rcmd_send(cl, rc);
            return;
        }
        if (is_retryable(r->str)) {
            if (strncmp(r->str, "TRYAGAIN", 8))
                cl->want_refresh = 1;
            rc->ask = NULL;
            retry_later(cl, rc);
            return;
        }
    }
    cluster__rcmd_finish(rc, ac, r);
}

static void rcmd_send(hb_cluster_t *cl, rcmd_t *rc)
{
    cnode_t *n = rc->ask ? rc->ask : cluster__owner(cl, rc->slot);
    if (!n || !n->ready) {
        if (n)
            cluster__node_connect(n);
        else
            cl->want_refresh = 1;
        retry_later(cl, rc);
        return;
    }
    if (rc->ask) {
        rc->ask = NULL; /* once */
        redisAsyncCommand(n->rc.ac, NULL, NULL, "ASKING");
    }
    if (redisAsyncFormattedCommand(n->rc.ac, on_rcmd_reply, rc, rc->cmd, rc->len) != REDIS_OK)
        retry_later(cl, rc);
}

static int rcmd_start(hb_cluster_t *cl, unsigned slot, int argc, const char **argv,
                      const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    rcmd_t *rc;
    char *cmd = NULL;
    int len;
    if (!cl->map || cl->stopping)
        return REDIS_ERR;
    len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0)
        return REDIS_ERR;
    rc = hb_xcalloc(1, sizeof(*rc));
    rc->cl = cl;
    rc->fn = cb;
    rc->priv = priv;
    rc->cmd = cmd;
    rc->len = (size_t)len;
    rc->slot = slot;
    rc->deadline = hb_now() + COMMAND_DEADLINE_S;
    /* Held commands of the slot go first: a new one must not overtake them (raw ingest stores
     * in publish order). */
    if (cl->slot_held[slot])
        retry_later(cl, rc);
    else
        rcmd_send(cl, rc);
    return REDIS_OK;
}

#define FCALL_ARGS_MAX 8

int hb_cluster_fcall(hb_cluster_t *cl, const char *fn, const char *topic, size_t tlen,
                     const char *key3, int argc, const char **argv, const size_t *argvlen,
                     redisCallbackFn *cb, void *priv)
{
    const char *prefix = cl->b->edge->cfg.prefix;
    char log[HB_TOPIC_MAX + 80], epoch[HB_TOPIC_MAX + 80];
    const char *av[FCALL_ARGS_MAX + 6];
    size_t al[FCALL_ARGS_MAX + 6];
    int k = key3 ? 6 : 5;
    int ll = hb_keys_topic(log, sizeof(log), prefix, topic, tlen, HB_KEY_LOG);
    int el = hb_keys_topic(epoch, sizeof(epoch), prefix, topic, tlen, HB_KEY_EPOCH);
    if (argc > FCALL_ARGS_MAX || ll < 0 || el < 0)
        return REDIS_ERR;
    av[0] = "FCALL";
    al[0] = 5;
    av[1] = fn;
    al[1] = strlen(fn);
    av[2] = key3 ? "3" : "2";
    al[2] = 1;
    av[3] = log;
    al[3] = (size_t)ll;
    av[4] = epoch;
    al[4] = (size_t)el;
    if (key3) {
        av[5] = key3;
        al[5] = strlen(key3);
    }
    for (int i = 0; i < argc; i++) {
        av[k + i] = argv[i];
        al[k + i] = argvlen[i];
    }
    return rcmd_start(cl, hb_slot_of(topic, tlen), argc + k, av, al, cb, priv);
}

int hb_cluster_key_command(hb_cluster_t *cl, int key_index, int argc, const char **argv,
                           const size_t *argvlen, redisCallbackFn *cb, void *priv)
{
    if (key_index < 1 || key_index >= argc)
        return REDIS_ERR;
    return rcmd_start(cl, hb_slot_of(argv[key_index], argvlen[key_index]), argc, argv, argvlen, cb,
                      priv);
}

int hb_cluster_fence_and_barrier(hb_cluster_t *cl, const char *term, const char *barrier,
                                 redisCallbackFn *cb, void *priv)
{
    const char *prefix = cl->b->edge->cfg.prefix;
    size_t plen = strlen(prefix);
    int sent = 0;
    const char **av;
    size_t *al;
    char *keys;
    if (!cl->map)
        return 0;
    for (cnode_t *n = cl->nodes; n; n = n->next)
        if (n->primary && !n->ready)
            return 0;
    /* One FCALL per primary with the fence keys of all its slots (plen + "fence:{xxxx}"). */
    av = hb_xcalloc(HB_SLOT_COUNT + 4, sizeof(*av));
    al = hb_xcalloc(HB_SLOT_COUNT + 4, sizeof(*al));
    keys = hb_xcalloc(HB_SLOT_COUNT, plen + 16);
    for (cnode_t *n = cl->nodes; n; n = n->next) {
        char chan[300];
        int argc = 4;
        if (!n->primary)
            continue;
        av[0] = "FCALL";
        av[1] = cl->b->fn.fence;
        av[2] = "0";
        av[3] = term;
        for (unsigned s = 0; s < HB_SLOT_COUNT; s++) {
            char *k = keys + (size_t)s * (plen + 16);
            if (hb_slot_map_owner(cl->map, s) != n->idx)
                continue;
            hb_keys_fence(k, plen + 16, prefix, cl->tags[s]); /* always fits (HB_SLOT_TAG_MAX) */
            av[argc++] = k;
        }
        for (int i = 0; i < argc; i++)
            al[i] = strlen(av[i]);
        snprintf(chan, sizeof(chan), "%s:%d", barrier, sent);
        redisAsyncCommandArgv(n->rc.ac, cb, priv, argc, av, al);
        redisAsyncCommand(n->rc.ac, NULL, NULL, "PUBLISH %s 1", chan);
        sent++;
    }
    free(av);
    free(al);
    free(keys);
    return sent;
}
