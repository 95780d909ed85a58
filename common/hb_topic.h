#ifndef HERALD_COMMON_HB_TOPIC_H
#define HERALD_COMMON_HB_TOPIC_H

#include <stddef.h>

#define HB_TOPIC_MAX 128 /* bytes */
#define HB_EVENT_NAME_MAX 64
#define HB_IDEM_KEY_MAX 64 /* bytes of a publish's idempotency key */

/**
 * hb_topic_validate() - check a topic name: 1..HB_TOPIC_MAX bytes of [A-Za-z0-9._~@/-].
 * Returns 0, or HB_EPROTO with *reason (if not NULL) set to a constant one-line reason
 * ("topic is empty", "topic longer than 128 bytes", "topic has a byte outside [A-Za-z0-9._~@/-]").
 */
int hb_topic_validate(const char *s, size_t len, const char **reason);

/**
 * hb_event_name_validate() - check an event name: 1..HB_EVENT_NAME_MAX bytes of
 * [A-Za-z0-9._:-], not starting with "herald." (the edge's own events, `herald.gap`: a
 * published one would pass for a gap notice). Returns 0 or HB_EPROTO with a constant *reason.
 */
int hb_event_name_validate(const char *s, size_t len, const char **reason);

/**
 * hb_idem_key_validate() - check a publish's idempotency key: 1..HB_IDEM_KEY_MAX bytes of
 * [A-Za-z0-9._:-] (a UUID, a base64url digest, "order-42:v3"). Returns 0 or HB_EPROTO with a
 * constant *reason. Pure; any thread.
 */
int hb_idem_key_validate(const char *s, size_t len, const char **reason);

#endif
