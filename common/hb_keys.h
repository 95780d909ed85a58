#ifndef HERALD_COMMON_HB_KEYS_H
#define HERALD_COMMON_HB_KEYS_H

#include <stddef.h>

/*
 * Names of the Redis keys and channels Herald owns, all under the deployment's prefix
 * (--prefix): a topic's "<prefix>{<topic>}:log" stream, ":epoch" key and ":live" channel (the
 * {<topic>} hash tag keeps them in one cluster slot), a slot's ingest fence
 * "<prefix>fence:{<tag>}", a raw-ingest leader's barrier channel "<prefix>barrier:<token>:<n>"
 * and the deployment's dataset marker "<prefix>dataset". The Lua library (hb_script.c) builds
 * the topic names too. Each writer fills out[cap] with a NUL-terminated name and returns its
 * length; when it does not fit it returns HB_ELIMIT and leaves out empty (cap > 0). Pure; any
 * thread.
 */

/** Bytes that always hold a topic name (prefix < 64 bytes, topic <= HB_TOPIC_MAX), with NUL. */
#define HB_KEYS_TOPIC_MAX (64 + 128 + 16)

/** Which name of a topic. */
typedef enum {
    HB_KEY_LOG = 0, /* "<prefix>{<topic>}:log", the history stream */
    HB_KEY_EPOCH,   /* "<prefix>{<topic>}:epoch", its epoch */
    HB_KEY_LIVE,    /* "<prefix>{<topic>}:live", its live pub/sub channel */
} hb_key_kind_t;

/**
 * hb_keys_topic() - the kind name of topic (tlen bytes, not validated here) into out[cap].
 * Returns its length, or HB_ELIMIT when it does not fit (or the length is not an int), or
 * HB_EINVAL for an unknown kind; out is "" then.
 */
int hb_keys_topic(char *out, size_t cap, const char *prefix, const char *topic, size_t tlen,
                  hb_key_kind_t kind);

/** Bytes that always hold a topic's idempotency key name (HB_KEYS_TOPIC_MAX + ":idem:" + 64). */
#define HB_KEYS_IDEM_MAX (HB_KEYS_TOPIC_MAX + 72)

/**
 * hb_keys_idem() - "<prefix>{<topic>}:idem:<key>", where a keyed publish's stream ID is kept for
 * the idempotency window (the topic's slot: the hash tag), into out[cap]. Returns its length, or
 * HB_ELIMIT (out is ""). Nothing is validated here.
 */
int hb_keys_idem(char *out, size_t cap, const char *prefix, const char *topic, size_t tlen,
                 const char *key);

/**
 * hb_keys_fence() - "<prefix>fence:{<tag>}" (tag NUL-terminated, from hb_slot_tag()) into
 * out[cap]. Returns its length, or HB_ELIMIT (out is "").
 */
int hb_keys_fence(char *out, size_t cap, const char *prefix, const char *tag);

/**
 * hb_keys_barrier() - a raw-ingest leader's barrier channel "<prefix>barrier:<token>:<n>"
 * (token NUL-terminated) into out[cap]. Returns its length, or HB_ELIMIT (out is "").
 */
int hb_keys_barrier(char *out, size_t cap, const char *prefix, const char *token, unsigned long n);

/**
 * hb_keys_dataset() - the dataset marker "<prefix>dataset" (a random value the first edge to
 * find it missing sets, see edge/bconn.c: a new value means Redis lost its data) into out[cap].
 * Returns its length, or HB_ELIMIT (out is "").
 */
int hb_keys_dataset(char *out, size_t cap, const char *prefix);

#endif
