#include "hb_topic.h"

#include <string.h>

#include "hb_err.h"

#define STR_(x) #x
#define STR(x) STR_(x)

static int is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [A-Za-z0-9._~@/-] */
static int is_topic_byte(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == '~' || c == '@' || c == '/' || c == '-';
}

/* [A-Za-z0-9._:-] */
static int is_event_byte(unsigned char c)
{
    return is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
}

static void set_reason(const char **reason, const char *r)
{
    if (reason)
        *reason = r;
}

int hb_topic_validate(const char *s, size_t len, const char **reason)
{
    if (len == 0) {
        set_reason(reason, "topic is empty");
        return HB_EPROTO;
    }
    if (len > HB_TOPIC_MAX) {
        set_reason(reason, "topic longer than " STR(HB_TOPIC_MAX) " bytes");
        return HB_EPROTO;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_topic_byte((unsigned char)s[i])) {
            set_reason(reason, "topic has a byte outside [A-Za-z0-9._~@/-]");
            return HB_EPROTO;
        }
    }
    return HB_OK;
}

int hb_event_name_validate(const char *s, size_t len, const char **reason)
{
    if (len == 0) {
        set_reason(reason, "event name is empty");
        return HB_EPROTO;
    }
    if (len > HB_EVENT_NAME_MAX) {
        set_reason(reason, "event name longer than " STR(HB_EVENT_NAME_MAX) " bytes");
        return HB_EPROTO;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_event_byte((unsigned char)s[i])) {
            set_reason(reason, "event name has a byte outside [A-Za-z0-9._:-]");
            return HB_EPROTO;
        }
    }
    if (len >= 7 && !memcmp(s, "herald.", 7)) {
        set_reason(reason, "event names starting with herald. are the edge's own");
        return HB_EPROTO;
    }
    return HB_OK;
}

int hb_idem_key_validate(const char *s, size_t len, const char **reason)
{
    if (len == 0 || len > HB_IDEM_KEY_MAX) {
        set_reason(reason, "idempotency key must be 1-" STR(HB_IDEM_KEY_MAX) " bytes");
        return HB_EPROTO;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_event_byte((unsigned char)s[i])) {
            set_reason(reason, "idempotency key has a byte outside [A-Za-z0-9._:-]");
            return HB_EPROTO;
        }
    }
    return HB_OK;
}
