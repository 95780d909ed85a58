#ifndef HERALD_COMMON_HB_SCRIPT_H
#define HERALD_COMMON_HB_SCRIPT_H

#include <stddef.h>

/*
 * The "herald" Redis Function library (Redis 7 FUNCTION LOAD REPLACE), loaded by every edge
 * when its command connection comes up. It holds:
 *   herald_publish  KEYS: topic  ARGV: payload [event]            -> stream id
 *   herald_ingest   KEYS: topic  ARGV: payload token              -> stream id (fenced)
 *   herald_history  KEYS: topic  ARGV: since-id epoch count       -> {epoch, gap, entries}
 *   herald_lease_renew   [KEYS: lease] ARGV: token ms             -> 1 held / 0 lost
 *   herald_lease_release [KEYS: lease] ARGV: token                -> 1 / 0
 * Cluster mode (`cluster` set): live messages go out with SPUBLISH (sharded pub/sub); the topic
 * functions also take KEYS <prefix>{<topic>}:log <prefix>{<topic>}:epoch instead of the topic,
 * so that a slot migration redirects them as a whole; herald_ingest (KEYS log epoch fence,
 * ARGV payload term) is fenced by the leader term kept per slot in <prefix>fence:{<tag>} and
 * also PUBLISHes its stored copy for ingest standbys; herald_lease_acquire (KEYS lease
 * term-counter, ARGV token ms) and herald_fence (ARGV term fence-key...) serve the cluster
 * ingest lease (see edge/ingest.c).
 * Topic keys are <prefix>{<topic>}:log (stream, fields d and e), <prefix>{<topic>}:epoch and the
 * channel <prefix>{<topic>}:live, which carries hb_live messages. The prefix, history limits
 * and payload bound are baked into the text, so every edge of one deployment must share them.
 */

/**
 * hb_script_library() - the library source for these settings, malloc'd (caller frees).
 * `prefix` must already be validated ([A-Za-z0-9._:-]). Aborts on OOM.
 */
char *hb_script_library(const char *prefix, long history_max, long history_ttl_s,
                        long max_message_bytes, int cluster);

#endif
