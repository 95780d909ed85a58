/*
 * Raw PUBLISH ingest (ingest.c says how it works): the raw subscription, the top of the ingest
 * files. PSUBSCRIBE * on the ing connection (hb_ingest_on_ing_up) and each pmessage's
 * classification: a barrier moves the leadership on (ingest_lease.c, ingest.c), a stored copy
 * is forgotten, a raw message is stored (leader) or kept (standby) by ingest.c. Broker thread
 * only.
 */
#include "ingest.h"
#include "ingest_priv.h"

#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "broker.h"
#include "hb_live.h"
#include "hb_log.h"
#include "hb_rawchan.h"
#include "hb_time.h"
#include "rc.h"

#define MOD "ingest"

static void on_pmessage(hb_broker_t *b, const char *chan, size_t clen, const char *msg, size_t mlen)
{
    ingest_t *in = b->ingest;
    const char *prefix = b->edge->cfg.prefix;
    size_t pl = strlen(prefix);
    hb_rawchan_kind_t kind = hb_rawchan_classify(prefix, pl, chan, clen);

    if (kind == HB_RAWCHAN_OURS || kind == HB_RAWCHAN_BARRIER) {
        const char *t;
        size_t tl;
        hb_live_t lv;
        if (in->state == I_BARRIER && clen == in->barrier_len && !memcmp(chan, in->barrier, clen)) {
            ingest__go_active(b);
            return;
        }
        if (!hb_rc_ingest_one_bus(b) && in->state == I_BARRIER && clen > in->barrier_len &&
            !memcmp(chan, in->barrier, in->barrier_len) && chan[in->barrier_len] == ':') {
            in->barrier_seen++; /* one per primary: "<barrier>:<n>" */
            if (in->barrier_seen >= in->barrier_need && in->fence_ok >= in->fence_need)
                ingest__go_active(b);
            return;
        }
        if (hb_rc_ingest_one_bus(b) && in->state == I_STANDBY && kind == HB_RAWCHAN_BARRIER) {
            ingest__on_other_barrier(b, chan, clen);
            return;
        }
        if ((in->kept.count || !hb_list_empty(&in->sent) || in->cur ||
             (!hb_rc_ingest_one_bus(b) && in->state != I_ACTIVE)) &&
            !hb_broker_channel_topic(prefix, chan, clen, &t, &tl) &&
            !hb_live_decode(msg, mlen, &lv, NULL) && (lv.flags & HB_LIVE_FLAG_RAW))
            ingest__forget(b, t, tl, lv.data, lv.data_len);
        return;
    }
    if (kind == HB_RAWCHAN_INTERNAL || kind == HB_RAWCHAN_FOREIGN)
        return; /* keyspace notifications; another deployment's (--prefix) live, canary or
                 * barrier channel: not raw */
    if (kind == HB_RAWCHAN_BAD_TOPIC || mlen > (size_t)b->edge->cfg.max_message_bytes) {
        atomic_fetch_add_explicit(&b->edge->stats.ingest_rejected, 1, memory_order_relaxed);
        hb_log_ratelimited("ingest-reject", 1000, HB_LOG_WARN, MOD,
                           "raw message ignored: bad topic name or payload too large", "{s:s%,s:I}",
                           "channel", chan, clen > 128 ? (size_t)128 : clen, "bytes",
                           (long long)mlen);
        return;
    }
    if (ingest__storing(b))
        ingest__store(b, chan, clen, msg, mlen);
    else
        ingest__keep(b, chan, clen, msg, mlen);
}

static void on_ing(redisAsyncContext *ac, void *reply, void *priv)
{
    hb_broker_t *b = ac->data;
    redisReply *r = reply;
    (void)priv;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    if (!strcmp(r->element[0]->str, "pmessage") && r->elements == 4 &&
        r->element[2]->type == REDIS_REPLY_STRING && r->element[3]->type == REDIS_REPLY_STRING) {
        on_pmessage(b, r->element[2]->str, r->element[2]->len, r->element[3]->str,
                    r->element[3]->len);
    } else if (!strcmp(r->element[0]->str, "psubscribe")) {
        if (b->ingest->state != I_STANDBY) {
            /* Leading across a lost raw subscription: what was published meanwhile only the
             * standbys heard, and storing on from here would put it behind newer messages
             * when one of them leads next (FINDINGS F26). Stand by, so that an edge that heard
             * it all leads and stores it in order. */
            ingest__give_back(b);
            ingest__set_state(b, I_STANDBY, "raw subscription replaced");
        }
        if (hb_rc_ingest_one_bus(b))
            ingest__drop_unmatched(b);
        b->ing_ready = 1;
        hb_broker_conn_set_up(&b->ing);
        b->ingest->ing_since = hb_now();
        b->ingest->free_since = 0;
        hb_log_info(MOD, "raw publish ingest listening", NULL);
        hb_broker_update_ready(b);
    }
}

void hb_ingest_on_ing_up(hb_broker_t *b)
{
    b->ingest->ing_gen++;    /* calls sent before: their copies may be gone (await_copies) */
    ingest__drop_awaited(b); /* copies heard on the connection that went, or never */
    redisAsyncCommand(b->ing.ac, on_ing, NULL, "PSUBSCRIBE *");
}
