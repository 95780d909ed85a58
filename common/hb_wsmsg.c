#include "hb_wsmsg.h"

#include <string.h>

#include <jansson.h>

#include "hb_err.h"
#include "hb_id.h"
#include "hb_topic.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* One refusal: the HB_E* result, the PROTOCOL.md code and a constant reason. */
static int fail(int rc, const char *c, const char *r, const char **code, const char **reason)
{
    if (code)
        *code = c;
    if (reason)
        *reason = r;
    return rc;
}

#define BAD(rc, c, r) fail(rc, c, r, code, reason)

/*
 * The deepest nesting of arrays and objects in (s, len), counting brackets outside strings,
 * stopping as soon as it passes HB_WSMSG_DEPTH_MAX. Exact for valid JSON; on invalid JSON the
 * count may be anything, which is harmless since jansson refuses that input anyway. jansson
 * recurses once per level up to its own limit of 2048, so this bounds the stack it uses on
 * network input well below that.
 */
static int too_deep(const char *s, size_t len)
{
    size_t depth = 0;
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++; /* the escaped byte can be neither '"' nor a bracket */
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > HB_WSMSG_DEPTH_MAX)
                return 1;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static int is_named(const json_t *v, const char *name)
{
    size_t n = strlen(name);
    return json_string_length(v) == n && memcmp(json_string_value(v), name, n) == 0;
}

/* The request types, by their "type" string. */
static const struct {
    const char *name;
    hb_wsmsg_type_t type;
} types[] = {
    {"subscribe", HB_WSMSG_SUBSCRIBE}, {"unsubscribe", HB_WSMSG_UNSUBSCRIBE},
    {"publish", HB_WSMSG_PUBLISH},     {"ping", HB_WSMSG_PING},
    {"auth", HB_WSMSG_AUTH},
};

static int get_topic(hb_wsmsg_t *m, const char **code, const char **reason)
{
    json_t *v = json_object_get(m->root, "topic");
    const char *why = NULL;
    if (!json_is_string(v))
        return BAD(HB_EPROTO, "bad_request", "topic must be a string");
    if (hb_topic_validate(json_string_value(v), json_string_length(v), &why))
        return BAD(HB_EPROTO, "bad_topic", why ? why : "invalid topic");
    m->topic = json_string_value(v);
    m->topic_len = json_string_length(v);
    return 0;
}

static int get_subscribe(hb_wsmsg_t *m, const char **code, const char **reason)
{
    json_t *since = json_object_get(m->root, "since");
    const char *why = NULL;
    int rc = get_topic(m, code, reason);
    if (rc)
        return rc;
    if (since && !json_is_null(since)) {
        if (!json_is_string(since) ||
            hb_cursor_parse(json_string_value(since), json_string_length(since), &m->since, &why))
            return BAD(HB_EPROTO, "bad_cursor", why ? why : "since must be a string");
        m->has_since = 1;
    }
    return 0;
}

static int get_publish(hb_wsmsg_t *m, size_t max_data, const char **code, const char **reason)
{
    json_t *data = json_object_get(m->root, "data"), *ev = json_object_get(m->root, "event");
    json_t *ik = json_object_get(m->root, "idempotency_key");
    const char *why = NULL;
    int rc = get_topic(m, code, reason);
    if (rc)
        return rc;
    if (!json_is_string(data))
        return BAD(HB_EPROTO, "bad_request", "data must be a string");
    if (ev && !json_is_null(ev)) {
        if (!json_is_string(ev) ||
            hb_event_name_validate(json_string_value(ev), json_string_length(ev), &why))
            return BAD(HB_EPROTO, "bad_request", why ? why : "event must be a string");
        m->event = json_string_value(ev);
        m->event_len = json_string_length(ev);
    }
    if (ik && !json_is_null(ik)) {
        why = NULL;
        if (!json_is_string(ik) ||
            hb_idem_key_validate(json_string_value(ik), json_string_length(ik), &why))
            return BAD(HB_EPROTO, "bad_request", why ? why : "idempotency_key must be a string");
        m->idem = json_string_value(ik);
        m->idem_len = json_string_length(ik);
    }
    if (json_string_length(data) > max_data)
        return BAD(HB_ELIMIT, "too_large", "data larger than --max-message-bytes");
    m->data = json_string_value(data);
    m->data_len = json_string_length(data);
    return 0;
}

int hb_wsmsg_parse(const char *s, size_t len, size_t max_data, hb_wsmsg_t *m, const char **code,
                   const char **reason)
{
    json_error_t err;
    json_t *type, *tok;
    size_t i;
    int rc;

    if (!m)
        return HB_EINVAL;
    memset(m, 0, sizeof(*m));
    if (!s)
        return BAD(HB_EPROTO, "bad_json", "message is not valid JSON");
    if (too_deep(s, len))
        return BAD(HB_EPROTO, "bad_json",
                   "message nests deeper than " STR(HB_WSMSG_DEPTH_MAX) " levels");
    /* JSON_DECODE_ANY only so that a scalar gets the "not an object" reason; same code. */
    m->root = json_loadb(s, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (!m->root)
        return json_error_code(&err) == json_error_out_of_memory
                   ? BAD(HB_ENOMEM, "bad_json", "out of memory")
                   : BAD(HB_EPROTO, "bad_json", "message is not valid JSON");
    if (!json_is_object(m->root))
        return BAD(HB_EPROTO, "bad_json", "message must be a JSON object");
    m->echo = json_object_get(m->root, "id");

    type = json_object_get(m->root, "type");
    if (!json_is_string(type))
        return BAD(HB_EPROTO, "bad_request", "type must be a string");
    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (is_named(type, types[i].name))
            break;
    if (i == sizeof(types) / sizeof(types[0]))
        return BAD(HB_EPROTO, "unknown_type", "unknown message type");
    m->type = types[i].type;

    switch (m->type) {
    case HB_WSMSG_SUBSCRIBE:
        rc = get_subscribe(m, code, reason);
        break;
    case HB_WSMSG_UNSUBSCRIBE:
        rc = get_topic(m, code, reason);
        break;
    case HB_WSMSG_PUBLISH:
        rc = get_publish(m, max_data, code, reason);
        break;
    case HB_WSMSG_AUTH:
        tok = json_object_get(m->root, "token");
        if (json_is_string(tok)) {
            m->token = json_string_value(tok);
            m->token_len = json_string_length(tok);
        }
        rc = 0;
        break;
    default: /* HB_WSMSG_PING: nothing to read */
        rc = 0;
        break;
    }
    if (rc) {
        /* On error only type, root and echo are meaningful: drop what an earlier field set. */
        hb_wsmsg_t keep = {.type = m->type, .root = m->root, .echo = m->echo};
        *m = keep;
    }
    return rc;
}

void hb_wsmsg_cleanup(hb_wsmsg_t *m)
{
    if (!m)
        return;
    json_decref(m->root);
    memset(m, 0, sizeof(*m));
}
