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

/* The reasons a name is refused, by what is wrong with it. */
typedef struct name_kind {
    size_t max;
    int (*ok)(unsigned char c);
    const char *empty, *too_long, *bad_byte;
} name_kind_t;

/* One check of every kind of name: length, then each byte. */
static int name_check(const name_kind_t *k, const char *s, size_t len, const char **reason)
{
    const char *why = len == 0 ? k->empty : len > k->max ? k->too_long : NULL;
    for (size_t i = 0; !why && i < len; i++)
        if (!k->ok((unsigned char)s[i]))
            why = k->bad_byte;
    if (!why)
        return HB_OK;
    set_reason(reason, why);
    return HB_EPROTO;
}

int hb_topic_validate(const char *s, size_t len, const char **reason)
{
    static const name_kind_t k = {HB_TOPIC_MAX, is_topic_byte, "topic is empty",
                                  "topic longer than " STR(HB_TOPIC_MAX) " bytes",
                                  "topic has a byte outside [A-Za-z0-9._~@/-]"};
    return name_check(&k, s, len, reason);
}

int hb_event_name_validate(const char *s, size_t len, const char **reason)
{
    static const name_kind_t k = {HB_EVENT_NAME_MAX, is_event_byte, "event name is empty",
                                  "event name longer than " STR(HB_EVENT_NAME_MAX) " bytes",
                                  "event name has a byte outside [A-Za-z0-9._:-]"};
    if (name_check(&k, s, len, reason))
        return HB_EPROTO;
    if (len >= 7 && !memcmp(s, "herald.", 7)) {
        set_reason(reason, "event names starting with herald. are the edge's own");
        return HB_EPROTO;
    }
    return HB_OK;
}

int hb_idem_key_validate(const char *s, size_t len, const char **reason)
{
    static const name_kind_t k = {HB_IDEM_KEY_MAX, is_event_byte,
                                  "idempotency key must be 1-" STR(HB_IDEM_KEY_MAX) " bytes",
                                  "idempotency key must be 1-" STR(HB_IDEM_KEY_MAX) " bytes",
                                  "idempotency key has a byte outside [A-Za-z0-9._:-]"};
    return name_check(&k, s, len, reason);
}
