/*
 * hb_wsmsg_parse() on arbitrary bytes (one WebSocket text message from any client), against a
 * reference written from its contract on top of a plain jansson parse.
 *
 * Properties:
 *  - the result is 0, or HB_EPROTO/HB_ELIMIT/HB_ENOMEM with one of the six codes and a
 *    constant one-line reason; HB_ELIMIT is exactly too_large;
 *  - the code is the one the reference expects (bad_json for non-JSON, duplicate keys, depth
 *    over HB_WSMSG_DEPTH_MAX and non-objects; then type, topic, since, data, event, size);
 *  - echo is the "id" member of the object (NULL for bad_json), and type is set exactly when
 *    "type" named a request;
 *  - on success the fields agree with the object: the topic validates, since parses to the
 *    same cursor, data_len <= max_data, event validates or is absent, strings are
 *    NUL-terminated at their length; on error every field but type/root/echo is zero;
 *  - max_data only adds too_large: parsing with SIZE_MAX and with a small bound differ only
 *    there; parsing is deterministic;
 *  - cleanup zeroes the struct and is idempotent; nothing leaks (LeakSanitizer).
 *
 * Input: the message bytes.
 */
#include <stdint.h>

#include <jansson.h>

#include "fuzz_util.h"
#include "hb_err.h"
#include "hb_id.h"
#include "hb_topic.h"
#include "hb_wsmsg.h"

#define SMALL_MAX 4

/* Nesting depth of a parsed value (a scalar is 0; jansson itself stops at 2048). */
static size_t depth_of(json_t *v)
{
    size_t d = 0, i;
    const char *k;
    json_t *x;
    if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            size_t e = depth_of(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            size_t e = depth_of(x);
            d = e > d ? e : d;
        }
        return d + 1;
    }
    return 0;
}

static int str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s) &&
           memcmp(json_string_value(v), s, strlen(s)) == 0;
}

/* Reference: the expected code (NULL for success) and type of an object message. */
static const char *ref_code(json_t *o, size_t max_data, int *type)
{
    json_t *t = json_object_get(o, "type");
    *type = 0;
    if (!json_is_string(t))
        return "bad_request";
    if (str_is(t, "subscribe"))
        *type = HB_WSMSG_SUBSCRIBE;
    else if (str_is(t, "unsubscribe"))
        *type = HB_WSMSG_UNSUBSCRIBE;
    else if (str_is(t, "publish"))
        *type = HB_WSMSG_PUBLISH;
    else if (str_is(t, "ping"))
        *type = HB_WSMSG_PING;
    else if (str_is(t, "auth"))
        *type = HB_WSMSG_AUTH;
    else
        return "unknown_type";
    if (*type == HB_WSMSG_PING || *type == HB_WSMSG_AUTH)
        return NULL;
    json_t *topic = json_object_get(o, "topic");
    if (!json_is_string(topic))
        return "bad_request";
    if (hb_topic_validate(json_string_value(topic), json_string_length(topic), NULL) != HB_OK)
        return "bad_topic";
    if (*type == HB_WSMSG_SUBSCRIBE) {
        json_t *since = json_object_get(o, "since");
        hb_cursor_t c;
        if (since && !json_is_null(since) &&
            (!json_is_string(since) ||
             hb_cursor_parse(json_string_value(since), json_string_length(since), &c, NULL)))
            return "bad_cursor";
    } else if (*type == HB_WSMSG_PUBLISH) {
        json_t *data = json_object_get(o, "data"), *ev = json_object_get(o, "event");
        if (!json_is_string(data))
            return "bad_request";
        if (ev && !json_is_null(ev) &&
            (!json_is_string(ev) ||
             hb_event_name_validate(json_string_value(ev), json_string_length(ev), NULL)))
            return "bad_request";
        if (json_string_length(data) > max_data)
            return "too_large";
    }
    return NULL;
}

static int known_code(const char *c)
{
    static const char *const codes[] = {"bad_json",  "bad_request", "unknown_type",
                                        "bad_topic", "bad_cursor",  "too_large"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (c && strcmp(c, codes[i]) == 0)
            return 1;
    return 0;
}

/* The string member k of o is exactly (p, n), in place. */
static int is_member(json_t *o, const char *k, const char *p, size_t n)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) && json_string_value(v) == p && json_string_length(v) == n &&
           p[n] == '\0';
}

static void check_fields(const hb_wsmsg_t *m, size_t max_data)
{
    json_t *o = m->root;
    switch (m->type) {
    case HB_WSMSG_SUBSCRIBE:
    case HB_WSMSG_UNSUBSCRIBE:
    case HB_WSMSG_PUBLISH:
        FZ_CHECK(is_member(o, "topic", m->topic, m->topic_len));
        FZ_CHECK(hb_topic_validate(m->topic, m->topic_len, NULL) == HB_OK);
        break;
    default:
        FZ_CHECK(m->topic == NULL && m->topic_len == 0);
    }
    if (m->has_since) {
        json_t *s = json_object_get(o, "since");
        hb_cursor_t c;
        FZ_CHECK(m->has_since == 1 && m->type == HB_WSMSG_SUBSCRIBE && json_is_string(s));
        FZ_CHECK(hb_cursor_parse(json_string_value(s), json_string_length(s), &c, NULL) == HB_OK);
        FZ_CHECK(hb_id_cmp(&c.id, &m->since.id) == 0 && strcmp(c.epoch, m->since.epoch) == 0);
    } else if (m->type == HB_WSMSG_SUBSCRIBE) {
        json_t *s = json_object_get(o, "since");
        FZ_CHECK(s == NULL || json_is_null(s));
    }
    if (m->type == HB_WSMSG_PUBLISH) {
        FZ_CHECK(is_member(o, "data", m->data, m->data_len));
        FZ_CHECK(m->data_len <= max_data);
        if (m->event_len) {
            FZ_CHECK(is_member(o, "event", m->event, m->event_len));
            FZ_CHECK(hb_event_name_validate(m->event, m->event_len, NULL) == HB_OK);
        } else {
            json_t *e = json_object_get(o, "event");
            FZ_CHECK(m->event == NULL && (e == NULL || json_is_null(e)));
        }
    } else {
        FZ_CHECK(m->data == NULL && m->data_len == 0 && m->event == NULL && m->event_len == 0);
    }
    if (m->type == HB_WSMSG_AUTH && m->token) {
        FZ_CHECK(is_member(o, "token", m->token, m->token_len));
    } else {
        FZ_CHECK(m->token == NULL && m->token_len == 0);
        FZ_CHECK(m->type != HB_WSMSG_AUTH || !json_is_string(json_object_get(o, "token")));
    }
}

static void check_no_fields(const hb_wsmsg_t *m)
{
    FZ_CHECK(m->topic == NULL && m->topic_len == 0 && m->has_since == 0);
    FZ_CHECK(m->data == NULL && m->data_len == 0 && m->event == NULL && m->event_len == 0);
    FZ_CHECK(m->token == NULL && m->token_len == 0);
}

static void check_cleanup(hb_wsmsg_t *m)
{
    hb_wsmsg_t zero;
    memset(&zero, 0, sizeof(zero));
    hb_wsmsg_cleanup(m);
    FZ_CHECK(memcmp(m, &zero, sizeof(zero)) == 0);
    hb_wsmsg_cleanup(m); /* idempotent */
    FZ_CHECK(memcmp(m, &zero, sizeof(zero)) == 0);
}

/* Parses (s, n) with max_data, checks it against the reference; returns rc and *code. */
static int check_parse(const char *s, size_t n, size_t max_data, json_t *ref, const char **out_code,
                       hb_wsmsg_t *m)
{
    const char *code = NULL, *reason = NULL;
    memset(m, 0x5a, sizeof(*m)); /* need not be initialised */
    int rc = hb_wsmsg_parse(s, n, max_data, m, &code, &reason);
    FZ_CHECK(rc == HB_OK || rc == HB_EPROTO || rc == HB_ELIMIT || rc == HB_ENOMEM);
    if (rc != HB_OK) {
        FZ_CHECK(known_code(code));
        FZ_CHECK(fz_reason_ok(reason));
        FZ_CHECK((rc == HB_ELIMIT) == (strcmp(code, "too_large") == 0));
        FZ_CHECK(rc != HB_ENOMEM || strcmp(code, "bad_json") == 0);
        check_no_fields(m);
    }
    *out_code = rc == HB_OK ? NULL : code;

    /* bad_json: exactly when the reference did not give an object of depth <= the limit */
    int deep = ref && depth_of(ref) > HB_WSMSG_DEPTH_MAX;
    if (!ref || deep || !json_is_object(ref)) {
        if (rc == HB_ENOMEM)
            return rc; /* jansson failed on one side only */
        FZ_CHECK(rc == HB_EPROTO && strcmp(code, "bad_json") == 0);
        FZ_CHECK(m->echo == NULL && m->type == 0);
        FZ_CHECK(!deep || (m->root == NULL && strstr(reason, "deeper") != NULL));
        return rc;
    }
    if (rc == HB_ENOMEM)
        return rc;
    FZ_CHECK(json_is_object(m->root) && json_equal(m->root, ref));
    json_t *id = json_object_get(ref, "id");
    FZ_CHECK((m->echo == NULL) == (id == NULL));
    FZ_CHECK(m->echo == json_object_get(m->root, "id"));

    int type;
    const char *want = ref_code(ref, max_data, &type);
    FZ_CHECK((int)m->type == type);
    if (want == NULL) {
        FZ_CHECK(rc == HB_OK);
        check_fields(m, max_data);
    } else {
        FZ_CHECK(rc != HB_OK && strcmp(code, want) == 0);
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fz_dup(data, size);
    json_t *ref = json_loadb(s, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
    hb_wsmsg_t a, b;
    const char *ca, *cb;

    int ra = check_parse(s, size, SIZE_MAX, ref, &ca, &a);
    /* Only publish can be too large, and not with an unbounded max_data. */
    FZ_CHECK(ra != HB_ELIMIT);
    int rb = check_parse(s, size, SMALL_MAX, ref, &cb, &b);
    if (ra == HB_OK && a.type == HB_WSMSG_PUBLISH && a.data_len > SMALL_MAX) {
        FZ_CHECK(rb == HB_ELIMIT && b.type == HB_WSMSG_PUBLISH &&
                 b.echo == json_object_get(b.root, "id"));
    } else if (ra != HB_ENOMEM && rb != HB_ENOMEM) {
        /* same answer, field for field */
        FZ_CHECK(ra == rb && a.type == b.type && (ca == NULL) == (cb == NULL));
        FZ_CHECK(ca == NULL || strcmp(ca, cb) == 0);
        FZ_CHECK(a.topic_len == b.topic_len && a.data_len == b.data_len);
        FZ_CHECK(a.event_len == b.event_len && a.token_len == b.token_len);
        FZ_CHECK(a.has_since == b.has_since);
        FZ_CHECK(!a.has_since || (hb_id_cmp(&a.since.id, &b.since.id) == 0 &&
                                  strcmp(a.since.epoch, b.since.epoch) == 0));
        FZ_CHECK(a.topic_len == 0 || memcmp(a.topic, b.topic, a.topic_len) == 0);
        FZ_CHECK(a.data_len == 0 || memcmp(a.data, b.data, a.data_len) == 0);
    }
    check_cleanup(&a);
    check_cleanup(&b);
    hb_wsmsg_cleanup(NULL);
    json_decref(ref);
    free(s);
    return 0;
}
