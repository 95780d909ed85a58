#ifndef HERALD_COMMON_HB_RAWCHAN_H
#define HERALD_COMMON_HB_RAWCHAN_H

#include <stddef.h>

/*
 * Classification of the channels that raw PUBLISH ingest hears on its PSUBSCRIBE "*"
 * connection (edge/ingest.c): which are this deployment's own (live channels, barriers),
 * which are internal to Redis or belong to another deployment (another --prefix), and which are
 * raw publishes to store. Pure and loop-free; any thread.
 */

/** What a channel heard by the raw-ingest subscription is. */
typedef enum {
    HB_RAWCHAN_OURS = 0,  /* starts with our prefix: a live channel, a canary, ... */
    HB_RAWCHAN_BARRIER,   /* "<prefix>barrier:" and at least one byte: a leader's barrier */
    HB_RAWCHAN_INTERNAL,  /* "__...": keyspace notifications and other Redis channels */
    HB_RAWCHAN_FOREIGN,   /* another deployment's live ("...}:live"), canary or barrier */
    HB_RAWCHAN_BAD_TOPIC, /* would be raw, but not a valid topic name (hb_topic_validate) */
    HB_RAWCHAN_RAW,       /* a raw publish: the channel is the topic */
} hb_rawchan_kind_t;

/**
 * hb_rawchan_classify() - what chan (clen bytes, any bytes) is for a deployment whose keys and
 * channels start with prefix (plen bytes; may be empty). Checked in this order: our prefix
 * (BARRIER when "barrier:" and more follow it, else OURS), "__" (INTERNAL), a "}:live" suffix
 * or "barrier:" anywhere (FOREIGN), then the topic grammar (BAD_TOPIC or RAW). Cannot fail.
 */
hb_rawchan_kind_t hb_rawchan_classify(const char *prefix, size_t plen, const char *chan,
                                      size_t clen);

/**
 * hb_rawchan_is_caught() - 1 when chan ends with ":caught" and has at least one byte before it
 * (a leader's "<barrier>:caught" marker; the caller compares the barrier part), else 0.
 */
int hb_rawchan_is_caught(const char *chan, size_t clen);

#endif
