#ifndef HERALD_COMMON_HB_SCRIPT_H
#define HERALD_COMMON_HB_SCRIPT_H

#include <stddef.h>

/*
 * The Redis Function library of one deployment (Redis 7 FUNCTION LOAD), loaded by the edges
 * when their command connection comes up. Everything Herald owns in Redis is named by the
 * deployment's --prefix, the library too: with the default prefix "herald:" the library is
 * "herald" and its functions herald_publish etc. (the documented FCALL herald_publish path);
 * with another prefix it is "herald_<tag>" and the functions "herald_<tag>_publish" etc., where
 * <tag> is the prefix with ':' '.' '-' written "_c" "_d" "_h" (one-to-one: a prefix has no '_',
 * so two prefixes never share a function name; Redis function names are global across
 * libraries). Below, <F> is that library name:
 *   <F>_publish  KEYS: topic  ARGV: payload [event [idem-key [window-s]]] -> stream id (a status
 *                reply: the ID stored earlier under the idempotency key, nothing stored now)
 *   <F>_ingest   KEYS: topic  ARGV: payload token              -> stream id (fenced)
 *   <F>_history  KEYS: topic  ARGV: since-id epoch count       -> {epoch, gap, entries, last}
 *   <F>_lease_renew   [KEYS: lease] ARGV: token ms             -> 1 held / 0 lost
 *   <F>_lease_release [KEYS: lease] ARGV: token                -> 1 / 0
 *   <F>_info     (no-writes)                                   -> {version, settings}
 *   <F>_canary   ARGV: channel payload                         -> receivers
 * Cluster mode (`cluster` set): live messages go out with SPUBLISH (sharded pub/sub); the topic
 * functions also take KEYS <prefix>{<topic>}:log <prefix>{<topic>}:epoch instead of the topic,
 * so that a slot migration redirects them as a whole; <F>_ingest (KEYS log epoch fence,
 * ARGV payload term) is fenced by the leader term kept per slot in <prefix>fence:{<tag>} and
 * also PUBLISHes its stored copy for ingest standbys; <F>_lease_acquire (KEYS lease
 * term-counter, ARGV token ms) and <F>_fence (ARGV term fence-key...) serve the cluster
 * ingest lease (see edge/ingest.c).
 * Topic keys are <prefix>{<topic>}:log (stream, fields d and e), <prefix>{<topic>}:epoch,
 * <prefix>{<topic>}:idem:<key> (a keyed publish's ID, for its window) and the channel
 * <prefix>{<topic>}:live, which carries hb_live messages. The prefix, history limits
 * and payload bound are baked into the text; <F>_info returns them (hb_script_settings()) with
 * HB_SCRIPT_VERSION, so that an edge can tell a library of other settings or another version
 * from its own (edge/library.c) instead of replacing it in silence.
 */

#define HB_SCRIPT_DEFAULT_PREFIX "herald:"
/* raise when a function's keys, arguments, reply or refusals change */
#define HB_SCRIPT_VERSION 5
#define HB_SCRIPT_NAME_MAX 144 /* "herald_" + 2 * 63 + NUL, with room */
#define HB_SCRIPT_FN_MAX 176   /* a library name + "_" + the longest function suffix */

/**
 * hb_script_name() - the library name of deployment `prefix` (see above) into out (cap bytes).
 * Any thread. Returns 0, or HB_EINVAL when prefix has a byte outside [A-Za-z0-9.:-] or the
 * name does not fit.
 */
int hb_script_name(const char *prefix, char *out, size_t cap);

/**
 * hb_script_fn() - "<lib>_<fn>" (a function of library lib) into out; 0 or HB_EINVAL when it
 * does not fit. Any thread.
 */
int hb_script_fn(const char *lib, const char *fn, char *out, size_t cap);

/**
 * hb_script_settings() - the settings text <F>_info returns for these settings, malloc'd
 * (caller frees). Aborts on OOM.
 */
char *hb_script_settings(const char *prefix, long history_max, long history_ttl_s,
                         long max_message_bytes, int cluster);

/**
 * hb_script_library() - the library source for these settings, malloc'd (caller frees).
 * `prefix` must already be validated (1-63 of [A-Za-z0-9._:-]). Aborts on OOM.
 */
char *hb_script_library(const char *prefix, long history_max, long history_ttl_s,
                        long max_message_bytes, int cluster);

#endif
