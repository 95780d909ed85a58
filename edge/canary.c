/* The delivery canary (canary.h). */
#include "canary.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>

#include "broker.h"
#include "rc.h" /* b->ev: the events going up */
#include "hb_log.h"
#include "hb_mem.h"
#include "library.h"

#define MOD "canary"
struct hb_canary {
    hb_broker_t *b;
    char chan[HB_CFG_STR_MAX + 96];
    size_t clen;
    hb_canary_beat_t beat; /* restarted when the subscriber connection comes up */
};

static long long us(double t)
{
    return (long long)(t * 1e6);
}

/* ---- the heartbeat state machine (canary.h) ---- */

void hb_canary_beat_restart(hb_canary_beat_t *h, double now)
{
    h->heard = 0;
    h->last_pub = 0;
    h->expect = now;
}

int hb_canary_beat_due(const hb_canary_beat_t *h, double now)
{
    return now - h->last_pub >= CANARY_INTERVAL;
}

unsigned long long hb_canary_beat_sent(hb_canary_beat_t *h, double now)
{
    h->last_pub = now;
    return ++h->seq;
}

int hb_canary_beat_heard(hb_canary_beat_t *h, double now)
{
    int was_stale = h->stale;
    h->expect = now;
    h->heard = 1;
    h->stale = 0;
    return was_stale;
}

int hb_canary_beat_check(hb_canary_beat_t *h, double now, double *age)
{
    int due = 0;
    *age = now - h->expect;
    if (*age >= CANARY_STALE && !h->stale) {
        h->stale = 1;
        due |= HB_CANARY_WENT_STALE;
    }
    if (h->stale && *age >= CANARY_STALE + CANARY_RECONNECT)
        due |= HB_CANARY_REPLACE;
    return due;
}

/* ---- the single-Redis canary ---- */

hb_canary_t *hb_canary_new(hb_broker_t *b)
{
    hb_canary_t *c = hb_xcalloc(1, sizeof(*c));
    int n = snprintf(c->chan, sizeof(c->chan), "%s{canary:%s:%08lx}:live", b->edge->cfg.prefix,
                     b->edge->cfg.node_id, (unsigned long)random() & 0xffffffffUL);
    c->b = b;
    c->clen = n < 0 ? 0 : (size_t)n < sizeof(c->chan) ? (size_t)n : sizeof(c->chan) - 1;
    c->beat.expect = hb_now();
    atomic_store(&c->b->edge->stats.canary_expect_us, us(c->beat.expect));
    return c;
}

void hb_canary_report(hb_broker_t *b, double expect, int stale)
{
    atomic_store(&b->edge->stats.canary_expect_us, expect < 0 ? 0 : us(expect));
    atomic_store(&b->edge->stats.canary_stale, stale);
}

void hb_canary_free(hb_canary_t *c)
{
    if (c)
        atomic_store(&c->b->edge->stats.canary_expect_us, 0);
    free(c);
}

/* The heartbeat's FCALL answered: an error saying the library is gone makes cmd reconnect. */
static void on_beat_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    hb_library_recover(ac->data, ac, reply);
}

static void publish(hb_canary_t *c, double now)
{
    char seq[24];
    hb_broker_t *b = c->b;
    if (!b->cmd_ready || !b->cmd.ac)
        return;
    snprintf(seq, sizeof(seq), "%llu", hb_canary_beat_sent(&c->beat, now));
    redisAsyncCommand(b->cmd.ac, on_beat_reply, NULL, "FCALL %s 0 %b %s", b->fn.canary, c->chan,
                      c->clen, seq);
}

void hb_canary_sub_up(hb_canary_t *c)
{
    hb_broker_t *b = c->b;
    hb_canary_beat_restart(&c->beat, hb_now());
    atomic_store(&c->b->edge->stats.canary_expect_us, us(c->beat.expect));
    redisAsyncCommand(b->sub.ac, b->on_sub_cb, NULL, "SUBSCRIBE %b", c->chan, c->clen);
}

int hb_canary_on_reply(hb_canary_t *c, const redisReply *r)
{
    const redisReply *ch;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return 0;
    ch = r->element[1];
    if (ch->len != c->clen || memcmp(ch->str, c->chan, c->clen) != 0)
        return 0;
    if (!strcmp(r->element[0]->str, "subscribe")) {
        publish(c, hb_now()); /* the first heartbeat right away: readiness waits for it */
    } else if (!strcmp(r->element[0]->str, "message")) {
        int was_stale = hb_canary_beat_heard(&c->beat, hb_now());
        atomic_store(&c->b->edge->stats.canary_expect_us, us(c->beat.expect));
        if (was_stale) {
            atomic_store(&c->b->edge->stats.canary_stale, 0);
            hb_log_info(MOD, "canary back: refilling every topic", "{s:s}", "channel", c->chan);
            c->b->ev->refill_all(c->b);
        }
        c->b->ev->ready_changed(c->b);
    }
    return 1;
}

void hb_canary_tick(hb_canary_t *c)
{
    hb_broker_t *b = c->b;
    double now = hb_now(), age;
    int due;
    if (!b->cmd_ready || !b->sub.up)
        return; /* not ready anyway (redis_up 0); a stale canary stays so until heard */
    if (hb_canary_beat_due(&c->beat, now))
        publish(c, now);
    due = hb_canary_beat_check(&c->beat, now, &age);
    if (due & HB_CANARY_WENT_STALE) {
        atomic_store(&c->b->edge->stats.canary_stale, 1);
        hb_log_warn(MOD, "canary stale: pub/sub delivery stopped; not ready", "{s:f,s:s}", "age_s",
                    age, "channel", c->chan);
        b->ev->ready_changed(b);
    }
    if ((due & HB_CANARY_REPLACE) && b->sub.ac) {
        /* once per connection: the new one starts the clock again (hb_canary_sub_up) */
        hb_log_warn(MOD, "canary stale: replacing the subscriber connection", "{s:f}", "age_s",
                    age);
        hb_backoff_reset(&b->sub.backoff);
        redisAsyncFree(b->sub.ac); /* runs on_disconnect: topics resubscribe and refill */
    }
}

int hb_canary_ok(const hb_canary_t *c)
{
    return c->beat.heard && !c->beat.stale;
}
