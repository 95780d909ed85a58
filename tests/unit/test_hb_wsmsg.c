#include "hb_wsmsg.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"
#include "hb_id.h"
#include "hb_topic.h"

#define LIT(s) s, sizeof(s) - 1
#define MAX 1024 /* max_data unless a test says otherwise */

/* 1 when the JSON value v equals the JSON text want (NULL: v must be NULL). */
static int json_is(const json_t *v, const char *want)
{
    if (!want)
        return v == NULL;
    json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
    assert_non_null(w);
    int eq = v != NULL && json_equal((json_t *)v, w);
    json_decref(w);
    return eq;
}

/* Fields other than type, root and echo are zero. */
static void assert_no_fields(const hb_wsmsg_t *m)
{
    assert_null(m->topic);
    assert_int_equal(m->topic_len, 0);
    assert_int_equal(m->has_since, 0);
    assert_null(m->data);
    assert_int_equal(m->data_len, 0);
    assert_null(m->event);
    assert_int_equal(m->event_len, 0);
    assert_null(m->token);
    assert_int_equal(m->token_len, 0);
}

/*
 * Parses (s, n) with max_data and checks the exact result: rc, code, reason, the echoed "id"
 * (as JSON text, NULL for none) and the type known so far (0 for none).
 */
static void expect_err_max(const char *s, size_t n, size_t max_data, int rc, const char *code,
                           const char *reason, const char *echo, int type)
{
    hb_wsmsg_t m;
    const char *c = "unset", *r = "unset";
    memset(&m, 0xa5, sizeof(m)); /* parse must not need an initialised m */
    assert_int_equal(hb_wsmsg_parse(s, n, max_data, &m, &c, &r), rc);
    assert_string_equal(c, code);
    assert_string_equal(r, reason);
    if (!json_is(m.echo, echo))
        fail_msg("echo of %.*s: want %s", (int)n, s, echo ? echo : "none");
    assert_int_equal(m.type, type);
    assert_no_fields(&m);
    if (echo)
        assert_true(json_is_object(m.root) && json_object_get(m.root, "id") == m.echo);
    hb_wsmsg_cleanup(&m);
    assert_null(m.root);
}

static void expect_err(const char *s, const char *code, const char *reason, const char *echo,
                       int type)
{
    expect_err_max(s, strlen(s), MAX, HB_EPROTO, code, reason, echo, type);
}

/* Parses s, which must succeed with the given type; the caller checks the fields. */
static void parse_ok(const char *s, size_t n, size_t max_data, hb_wsmsg_t *m, int type)
{
    const char *c = "unset", *r = "unset";
    memset(m, 0xa5, sizeof(*m));
    assert_int_equal(hb_wsmsg_parse(s, n, max_data, m, &c, &r), HB_OK);
    assert_string_equal(c, "unset"); /* untouched on success */
    assert_string_equal(r, "unset");
    assert_int_equal(m->type, type);
    assert_true(json_is_object(m->root));
}

static void test_subscribe(void **state)
{
    (void)state;
    hb_wsmsg_t m;
    const char s1[] = "{\"type\":\"subscribe\",\"topic\":\"news\","
                      "\"since\":\"1767225600000-0_m5k2x9a1b\",\"id\":1}";
    parse_ok(LIT(s1), MAX, &m, HB_WSMSG_SUBSCRIBE);
    assert_int_equal(m.topic_len, 4);
    assert_string_equal(m.topic, "news");
    assert_int_equal(m.has_since, 1);
    assert_true(m.since.id.ms == 1767225600000ULL && m.since.id.seq == 0);
    assert_string_equal(m.since.epoch, "m5k2x9a1b");
    assert_true(json_is(m.echo, "1"));
    assert_null(m.data);
    assert_null(m.event);
    assert_null(m.token);
    hb_wsmsg_cleanup(&m);

    /* since absent, or null: no cursor; no id: no echo */
    parse_ok(LIT("{\"type\":\"subscribe\",\"topic\":\"a.b/c~d@e-f_g\"}"), MAX, &m,
             HB_WSMSG_SUBSCRIBE);
    assert_string_equal(m.topic, "a.b/c~d@e-f_g");
    assert_int_equal(m.topic_len, 13);
    assert_int_equal(m.has_since, 0);
    assert_null(m.echo);
    hb_wsmsg_cleanup(&m);
    parse_ok(LIT("{\"since\":null,\"topic\":\"t\",\"type\":\"subscribe\",\"id\":null}"), MAX, &m,
             HB_WSMSG_SUBSCRIBE);
    assert_int_equal(m.has_since, 0);
    assert_true(json_is(m.echo, "null")); /* a null id is still echoed, as null */
    hb_wsmsg_cleanup(&m);

    /* a cursor without epoch; unknown members are ignored */
    parse_ok(LIT("{\"type\":\"subscribe\",\"topic\":\"t\",\"since\":\"5-7\",\"x\":[{}]}"), MAX, &m,
             HB_WSMSG_SUBSCRIBE);
    assert_int_equal(m.has_since, 1);
    assert_true(m.since.id.ms == 5 && m.since.id.seq == 7);
    assert_string_equal(m.since.epoch, "");
    hb_wsmsg_cleanup(&m);
}

static void test_unsubscribe_ping_auth(void **state)
{
    (void)state;
    hb_wsmsg_t m;
    parse_ok(LIT("{\"type\":\"unsubscribe\",\"topic\":\"news\",\"id\":5,\"since\":7}"), MAX, &m,
             HB_WSMSG_UNSUBSCRIBE);
    assert_string_equal(m.topic, "news");
    assert_int_equal(m.topic_len, 4);
    assert_int_equal(m.has_since, 0); /* since is not read for unsubscribe */
    assert_true(json_is(m.echo, "5"));
    hb_wsmsg_cleanup(&m);

    parse_ok(LIT(" {\"type\":\"ping\",\"topic\":5} \r\n"), MAX, &m, HB_WSMSG_PING);
    assert_null(m.echo);
    assert_null(m.topic);
    hb_wsmsg_cleanup(&m);
    parse_ok(LIT("{\"type\":\"ping\",\"id\":{\"a\":[1,2]}}"), MAX, &m, HB_WSMSG_PING);
    assert_true(json_is(m.echo, "{\"a\":[1,2]}")); /* any JSON value is echoed */
    hb_wsmsg_cleanup(&m);

    parse_ok(LIT("{\"type\":\"auth\",\"token\":\"s3cret\",\"id\":3}"), MAX, &m, HB_WSMSG_AUTH);
    assert_int_equal(m.token_len, 6);
    assert_string_equal(m.token, "s3cret");
    assert_true(json_is(m.echo, "3"));
    hb_wsmsg_cleanup(&m);
    parse_ok(LIT("{\"type\":\"auth\",\"token\":\"\"}"), MAX, &m, HB_WSMSG_AUTH);
    assert_non_null(m.token);
    assert_int_equal(m.token_len, 0);
    hb_wsmsg_cleanup(&m);
    /* A missing or non-string token is not a parse error: the caller answers forbidden. */
    parse_ok(LIT("{\"type\":\"auth\"}"), MAX, &m, HB_WSMSG_AUTH);
    assert_null(m.token);
    assert_int_equal(m.token_len, 0);
    hb_wsmsg_cleanup(&m);
    parse_ok(LIT("{\"type\":\"auth\",\"token\":42,\"id\":\"a\"}"), MAX, &m, HB_WSMSG_AUTH);
    assert_null(m.token);
    assert_true(json_is(m.echo, "\"a\""));
    hb_wsmsg_cleanup(&m);
}

static void test_publish(void **state)
{
    (void)state;
    hb_wsmsg_t m;
    parse_ok(LIT("{\"type\":\"publish\",\"topic\":\"news\",\"data\":\"hi\",\"id\":4}"), MAX, &m,
             HB_WSMSG_PUBLISH);
    assert_string_equal(m.topic, "news");
    assert_int_equal(m.data_len, 2);
    assert_memory_equal(m.data, "hi", 3); /* NUL-terminated */
    assert_null(m.event);
    assert_int_equal(m.event_len, 0);
    assert_true(json_is(m.echo, "4"));
    hb_wsmsg_cleanup(&m);

    parse_ok(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\",\"event\":\"a.b:c-d_E9\"}"),
             MAX, &m, HB_WSMSG_PUBLISH);
    assert_non_null(m.data);
    assert_int_equal(m.data_len, 0);
    assert_int_equal(m.event_len, 10);
    assert_string_equal(m.event, "a.b:c-d_E9");
    hb_wsmsg_cleanup(&m);

    /* an idempotency key (null: none) */
    parse_ok(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\","
                 "\"idempotency_key\":\"0b0e7c8e-8f5c:v1_x.y\"}"),
             MAX, &m, HB_WSMSG_PUBLISH);
    assert_int_equal(m.idem_len, 20);
    assert_string_equal(m.idem, "0b0e7c8e-8f5c:v1_x.y");
    hb_wsmsg_cleanup(&m);
    parse_ok(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\",\"idempotency_key\":null}"),
             MAX, &m, HB_WSMSG_PUBLISH);
    assert_null(m.idem);
    assert_int_equal(m.idem_len, 0);
    hb_wsmsg_cleanup(&m);

    /* event null is no event; escapes are decoded; lengths are in bytes */
    parse_ok(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"event\":null,"
                 "\"data\":\"a\\nb\\\"\\u00ff\\ud83d\\ude00\"}"),
             MAX, &m, HB_WSMSG_PUBLISH);
    assert_null(m.event);
    assert_int_equal(m.event_len, 0);
    assert_int_equal(m.data_len, 10);
    assert_memory_equal(m.data, "a\nb\"\xc3\xbf\xf0\x9f\x98\x80", 10);
    hb_wsmsg_cleanup(&m);
}

/* Every bad_json input: no echo, no type. */
static void test_bad_json(void **state)
{
    (void)state;
    const char *bad = "message is not valid JSON";
    expect_err("not json", "bad_json", bad, NULL, 0);
    expect_err("{\"type\":\"subscribe\",", "bad_json", bad, NULL, 0);
    expect_err("", "bad_json", bad, NULL, 0);
    expect_err("{\"type\":\"ping\"} x", "bad_json", bad, NULL, 0);
    expect_err("{\"type\":\"ping\",\"id\":1,}", "bad_json", bad, NULL, 0);
    expect_err("{'type':'ping'}", "bad_json", bad, NULL, 0);
    /* duplicate keys are refused, even identical ones */
    expect_err("{\"type\":\"ping\",\"type\":\"ping\",\"id\":1}", "bad_json", bad, NULL, 0);
    expect_err("{\"id\":1,\"id\":2,\"type\":\"ping\"}", "bad_json", bad, NULL, 0);
    /* invalid UTF-8 inside a string */
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\xff\"}", "bad_json", bad, NULL,
               0);

    const char *obj = "message must be a JSON object";
    expect_err("[1,2]", "bad_json", obj, NULL, 0);
    expect_err("\"subscribe\"", "bad_json", obj, NULL, 0);
    expect_err("42", "bad_json", obj, NULL, 0);
    expect_err("null", "bad_json", obj, NULL, 0);
    expect_err("[{\"type\":\"ping\",\"id\":1}]", "bad_json", obj, NULL, 0);

    /* a NULL buffer */
    expect_err_max(NULL, 0, MAX, HB_EPROTO, "bad_json", bad, NULL, 0);
}

/*
 * NUL: "\u0000" in data (or any string) is refused as it always was on the edge (jansson without
 * JSON_ALLOW_NUL), and so is a raw NUL byte anywhere in the frame.
 */
static void test_nul(void **state)
{
    (void)state;
    const char *bad = "message is not valid JSON";
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"a\\u0000b\",\"id\":1}", "bad_json",
               bad, NULL, 0);
    expect_err("{\"type\":\"auth\",\"token\":\"\\u0000\"}", "bad_json", bad, NULL, 0);
    expect_err_max(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"a\0b\"}"), MAX, HB_EPROTO,
                   "bad_json", bad, NULL, 0);
    expect_err_max(LIT("{\"type\":\"ping\"}\0"), MAX, HB_EPROTO, "bad_json", bad, NULL, 0);
    /* (s, len) is the message: a NUL past len is not read, a C string needs no NUL */
    hb_wsmsg_t m;
    parse_ok("{\"type\":\"ping\"}\0garbage", 15, MAX, &m, HB_WSMSG_PING);
    hb_wsmsg_cleanup(&m);
    char nonul[15];
    memcpy(nonul, "{\"type\":\"ping\"}", 15);
    parse_ok(nonul, sizeof(nonul), MAX, &m, HB_WSMSG_PING);
    hb_wsmsg_cleanup(&m);
}

/* Writes depth nested arrays holding {"type":"ping"} ... as the "x" member of a ping. */
static size_t nested(char *buf, size_t cap, int depth, const char *open, const char *close)
{
    size_t n = (size_t)snprintf(buf, cap, "{\"type\":\"ping\",\"id\":1,\"x\":");
    for (int i = 1; i < depth; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s", open);
    n += (size_t)snprintf(buf + n, cap - n, "0");
    for (int i = 1; i < depth; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s", close);
    n += (size_t)snprintf(buf + n, cap - n, "}");
    assert_true(n < cap);
    return n;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char buf[8192];
    hb_wsmsg_t m;
    const char *deep = "message nests deeper than 32 levels";
    /* the message object is level 1: 31 more levels is the limit */
    size_t n = nested(buf, sizeof(buf), HB_WSMSG_DEPTH_MAX, "[", "]");
    parse_ok(buf, n, MAX, &m, HB_WSMSG_PING);
    assert_true(json_is(m.echo, "1"));
    hb_wsmsg_cleanup(&m);
    n = nested(buf, sizeof(buf), HB_WSMSG_DEPTH_MAX + 1, "[", "]");
    expect_err_max(buf, n, MAX, HB_EPROTO, "bad_json", deep, NULL, 0);
    n = nested(buf, sizeof(buf), HB_WSMSG_DEPTH_MAX, "{\"k\":", "}");
    parse_ok(buf, n, MAX, &m, HB_WSMSG_PING);
    hb_wsmsg_cleanup(&m);
    n = nested(buf, sizeof(buf), HB_WSMSG_DEPTH_MAX + 1, "{\"k\":", "}");
    expect_err_max(buf, n, MAX, HB_EPROTO, "bad_json", deep, NULL, 0);
    /* far past jansson's own limit of 2048: refused before jansson recurses */
    n = nested(buf, sizeof(buf), 3000, "[", "]");
    expect_err_max(buf, n, MAX, HB_EPROTO, "bad_json", deep, NULL, 0);
    /* an unclosed prefix counts too */
    memset(buf, '[', 33);
    expect_err_max(buf, 33, MAX, HB_EPROTO, "bad_json", deep, NULL, 0);
    expect_err_max(buf, 32, MAX, HB_EPROTO, "bad_json", "message is not valid JSON", NULL, 0);

    /* brackets inside strings, also after escaped quotes and backslashes, do not count */
    n = (size_t)snprintf(buf, sizeof(buf),
                         "{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\\\"\\\\");
    memset(buf + n, '[', 100);
    n += 100;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\",\"[[[[\":\"{{{{\"}");
    parse_ok(buf, n, MAX, &m, HB_WSMSG_PUBLISH);
    assert_int_equal(m.data_len, 102);
    hb_wsmsg_cleanup(&m);
    /* sibling containers do not add up */
    n = 0;
    n += (size_t)snprintf(buf, sizeof(buf), "{\"type\":\"ping\",\"x\":[");
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s[[[]]]", i ? "," : "");
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "]}");
    parse_ok(buf, n, MAX, &m, HB_WSMSG_PING);
    hb_wsmsg_cleanup(&m);
}

static void test_bad_request(void **state)
{
    (void)state;
    const char *type = "type must be a string";
    expect_err("{}", "bad_request", type, NULL, 0);
    expect_err("{\"id\":1}", "bad_request", type, "1", 0);
    expect_err("{\"type\":1,\"id\":1.5}", "bad_request", type, "1.5", 0);
    expect_err("{\"type\":null,\"id\":\"x\"}", "bad_request", type, "\"x\"", 0);
    expect_err("{\"type\":[\"ping\"],\"id\":true}", "bad_request", type, "true", 0);

    const char *topic = "topic must be a string";
    expect_err("{\"type\":\"subscribe\",\"id\":1}", "bad_request", topic, "1", HB_WSMSG_SUBSCRIBE);
    expect_err("{\"type\":\"unsubscribe\",\"id\":1.5}", "bad_request", topic, "1.5",
               HB_WSMSG_UNSUBSCRIBE);
    expect_err("{\"type\":\"subscribe\",\"topic\":null,\"id\":[]}", "bad_request", topic, "[]",
               HB_WSMSG_SUBSCRIBE);
    expect_err("{\"type\":\"publish\",\"topic\":7,\"data\":\"x\",\"id\":2}", "bad_request", topic,
               "2", HB_WSMSG_PUBLISH);
    /* topic before since */
    expect_err("{\"type\":\"subscribe\",\"since\":\"bad\",\"id\":3}", "bad_request", topic, "3",
               HB_WSMSG_SUBSCRIBE);

    const char *data = "data must be a string";
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"id\":4}", "bad_request", data, "4",
               HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":null,\"id\":4}", "bad_request", data,
               "4", HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":{\"a\":1},\"id\":4}", "bad_request",
               data, "4", HB_WSMSG_PUBLISH);
    /* data before event */
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":1,\"event\":1,\"id\":4}",
               "bad_request", data, "4", HB_WSMSG_PUBLISH);

    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"event\":1,\"id\":5}",
               "bad_request", "event must be a string", "5", HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"event\":false,\"id\":5}",
               "bad_request", "event must be a string", "5", HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"event\":\"\",\"id\":6}",
               "bad_request", "event name is empty", "6", HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"event\":\"a b\",\"id\":7}",
               "bad_request", "event name has a byte outside [A-Za-z0-9._:-]", "7",
               HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"event\":\"a/b\",\"id\":7}",
               "bad_request", "event name has a byte outside [A-Za-z0-9._:-]", "7",
               HB_WSMSG_PUBLISH);
    /* the idempotency key becomes part of a Redis key name: bounded, no byte of another key */
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"idempotency_key\":7,"
               "\"id\":8}",
               "bad_request", "idempotency_key must be a string", "8", HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"idempotency_key\":\"\","
               "\"id\":8}",
               "bad_request", "idempotency key must be 1-64 bytes", "8", HB_WSMSG_PUBLISH);
    expect_err("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"idempotency_key\":\"a}b\","
               "\"id\":8}",
               "bad_request", "idempotency key has a byte outside [A-Za-z0-9._:-]", "8",
               HB_WSMSG_PUBLISH);
}

static void test_event_name_limit(void **state)
{
    (void)state;
    char buf[512], ev[HB_EVENT_NAME_MAX + 2];
    hb_wsmsg_t m;
    memset(ev, 'e', sizeof(ev) - 1);
    ev[HB_EVENT_NAME_MAX] = '\0';
    int n = snprintf(buf, sizeof(buf),
                     "{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"event\":\"%s\"}", ev);
    parse_ok(buf, (size_t)n, MAX, &m, HB_WSMSG_PUBLISH);
    assert_int_equal(m.event_len, HB_EVENT_NAME_MAX);
    assert_memory_equal(m.event, ev, HB_EVENT_NAME_MAX);
    hb_wsmsg_cleanup(&m);
    ev[HB_EVENT_NAME_MAX] = 'e';
    ev[HB_EVENT_NAME_MAX + 1] = '\0';
    snprintf(buf, sizeof(buf),
             "{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\",\"event\":\"%s\",\"id\":9}", ev);
    expect_err(buf, "bad_request", "event name longer than 64 bytes", "9", HB_WSMSG_PUBLISH);
}

static void test_unknown_type(void **state)
{
    (void)state;
    const char *why = "unknown message type";
    expect_err("{\"type\":\"frobnicate\",\"id\":\"x\"}", "unknown_type", why, "\"x\"", 0);
    expect_err("{\"type\":\"\",\"id\":1}", "unknown_type", why, "1", 0);
    /* exact, case-sensitive names: no prefixes, no trailing bytes */
    expect_err("{\"type\":\"Subscribe\"}", "unknown_type", why, NULL, 0);
    expect_err("{\"type\":\"sub\"}", "unknown_type", why, NULL, 0);
    expect_err("{\"type\":\"pings\"}", "unknown_type", why, NULL, 0);
    expect_err("{\"type\":\"ping \"}", "unknown_type", why, NULL, 0);
    expect_err("{\"type\":\"authed\"}", "unknown_type", why, NULL, 0);
    expect_err("{\"type\":\"pong\",\"id\":{}}", "unknown_type", why, "{}", 0);
}

static void test_bad_topic(void **state)
{
    (void)state;
    char buf[512], t[HB_TOPIC_MAX + 2];
    hb_wsmsg_t m;
    expect_err("{\"type\":\"subscribe\",\"topic\":\"a b\",\"id\":true}", "bad_topic",
               "topic has a byte outside [A-Za-z0-9._~@/-]", "true", HB_WSMSG_SUBSCRIBE);
    expect_err("{\"type\":\"subscribe\",\"topic\":\"\",\"id\":3}", "bad_topic", "topic is empty",
               "3", HB_WSMSG_SUBSCRIBE);
    expect_err("{\"type\":\"unsubscribe\",\"topic\":\"a:b\",\"id\":5}", "bad_topic",
               "topic has a byte outside [A-Za-z0-9._~@/-]", "5", HB_WSMSG_UNSUBSCRIBE);
    expect_err("{\"type\":\"publish\",\"topic\":\"\\u00e9\",\"data\":1,\"id\":5}", "bad_topic",
               "topic has a byte outside [A-Za-z0-9._~@/-]", "5", HB_WSMSG_PUBLISH);
    /* topic before since */
    expect_err("{\"type\":\"subscribe\",\"topic\":\"a b\",\"since\":1}", "bad_topic",
               "topic has a byte outside [A-Za-z0-9._~@/-]", NULL, HB_WSMSG_SUBSCRIBE);

    /* the limit: 128 bytes, then 129 */
    memset(t, 't', sizeof(t) - 1);
    t[HB_TOPIC_MAX] = '\0';
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"subscribe\",\"topic\":\"%s\"}", t);
    parse_ok(buf, (size_t)n, MAX, &m, HB_WSMSG_SUBSCRIBE);
    assert_int_equal(m.topic_len, HB_TOPIC_MAX);
    assert_memory_equal(m.topic, t, HB_TOPIC_MAX + 1);
    hb_wsmsg_cleanup(&m);
    t[HB_TOPIC_MAX] = 't';
    t[HB_TOPIC_MAX + 1] = '\0';
    snprintf(buf, sizeof(buf), "{\"type\":\"publish\",\"topic\":\"%s\",\"data\":\"x\",\"id\":4}",
             t);
    expect_err(buf, "bad_topic", "topic longer than 128 bytes", "4", HB_WSMSG_PUBLISH);
}

static void test_bad_cursor(void **state)
{
    (void)state;
    const char *type = "{\"type\":\"subscribe\",\"topic\":\"err.c\",";
    static const struct {
        const char *since, *reason;
    } cases[] = {
        {"\"abc\"", "stream id is not <ms>-<seq>"},
        {"\"1-\"", "stream id part is empty"},
        {"\"1-2_UPPER\"", "cursor epoch has a byte outside [0-9a-z]"},
        {"\"1-2_aaaaaaaaaaaaaaaaa\"", "cursor epoch longer than 16 bytes"},
        {"\"18446744073709551616-0\"", "stream id part out of range"},
        {"\"\"", "cursor is empty"},
        {"\"18446744073709551615-18446744073709551615_0123456789abcdefg\"",
         "cursor longer than 58 bytes"},
        {"1", "since must be a string"},
        {"true", "since must be a string"},
        {"{}", "since must be a string"},
        {"[\"1-0\"]", "since must be a string"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), "%s\"since\":%s,\"id\":%zu}", type, cases[i].since, i);
        char id[8];
        snprintf(id, sizeof(id), "%zu", i);
        expect_err(buf, "bad_cursor", cases[i].reason, id, HB_WSMSG_SUBSCRIBE);
    }
    /* the longest cursor, 58 bytes */
    hb_wsmsg_t m;
    const char max[] = "{\"type\":\"subscribe\",\"topic\":\"t\","
                       "\"since\":\"18446744073709551615-18446744073709551615_0123456789abcdef\"}";
    parse_ok(LIT(max), MAX, &m, HB_WSMSG_SUBSCRIBE);
    assert_int_equal(m.has_since, 1);
    assert_true(m.since.id.ms == UINT64_MAX && m.since.id.seq == UINT64_MAX);
    assert_string_equal(m.since.epoch, "0123456789abcdef");
    hb_wsmsg_cleanup(&m);
}

static void test_too_large(void **state)
{
    (void)state;
    char buf[2048];
    hb_wsmsg_t m;
    int n;
    /* data at max_data is accepted, max_data + 1 is refused */
    n = snprintf(buf, sizeof(buf),
                 "{\"type\":\"publish\",\"topic\":\"big\",\"data\":\"%0*d\",\"id\":1}", MAX, 0);
    parse_ok(buf, (size_t)n, MAX, &m, HB_WSMSG_PUBLISH);
    assert_int_equal(m.data_len, MAX);
    assert_int_equal(m.data[MAX], '\0');
    hb_wsmsg_cleanup(&m);
    n = snprintf(buf, sizeof(buf),
                 "{\"type\":\"publish\",\"topic\":\"big\",\"data\":\"%0*d\",\"id\":1}", MAX + 1, 0);
    expect_err_max(buf, (size_t)n, MAX, HB_ELIMIT, "too_large",
                   "data larger than --max-message-bytes", "1", HB_WSMSG_PUBLISH);

    /* the limit counts decoded bytes: "\u00ff" is 2 bytes of UTF-8, "\n" is 1 */
    const char two[] = "{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\\u00ff\",\"id\":2}";
    parse_ok(LIT(two), 2, &m, HB_WSMSG_PUBLISH);
    assert_int_equal(m.data_len, 2);
    hb_wsmsg_cleanup(&m);
    expect_err_max(LIT(two), 1, HB_ELIMIT, "too_large", "data larger than --max-message-bytes", "2",
                   HB_WSMSG_PUBLISH);
    parse_ok(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\\n\\n\"}"), 2, &m,
             HB_WSMSG_PUBLISH);
    hb_wsmsg_cleanup(&m);
    /* max_data 0: only empty data */
    parse_ok(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"\"}"), 0, &m, HB_WSMSG_PUBLISH);
    hb_wsmsg_cleanup(&m);
    expect_err_max(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"x\"}"), 0, HB_ELIMIT,
                   "too_large", "data larger than --max-message-bytes", NULL, HB_WSMSG_PUBLISH);
    /* a bad event wins over the size */
    expect_err_max(LIT("{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"xx\",\"event\":\"a b\"}"),
                   1, HB_EPROTO, "bad_request", "event name has a byte outside [A-Za-z0-9._:-]",
                   NULL, HB_WSMSG_PUBLISH);
    /* the size is not checked for other types */
    parse_ok(LIT("{\"type\":\"auth\",\"token\":\"long token\"}"), 0, &m, HB_WSMSG_AUTH);
    hb_wsmsg_cleanup(&m);
}

static void test_args_and_cleanup(void **state)
{
    (void)state;
    hb_wsmsg_t m;
    const char msg[] = "{\"type\":\"ping\"}";
    assert_int_equal(hb_wsmsg_parse(LIT(msg), MAX, NULL, NULL, NULL), HB_EINVAL);
    /* code and reason are optional */
    assert_int_equal(hb_wsmsg_parse(LIT("[]"), MAX, &m, NULL, NULL), HB_EPROTO);
    hb_wsmsg_cleanup(&m);
    assert_int_equal(hb_wsmsg_parse(LIT(msg), MAX, &m, NULL, NULL), HB_OK);
    assert_int_equal(m.type, HB_WSMSG_PING);
    /* cleanup zeroes m, so a second cleanup (and one of NULL) is harmless */
    hb_wsmsg_cleanup(&m);
    hb_wsmsg_t zero;
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&m, &zero, sizeof(m));
    hb_wsmsg_cleanup(&m);
    hb_wsmsg_cleanup(NULL);
    /* a struct is reusable after cleanup */
    assert_int_equal(
        hb_wsmsg_parse(LIT("{\"type\":\"auth\",\"token\":\"k\"}"), MAX, &m, NULL, NULL), HB_OK);
    assert_string_equal(m.token, "k");
    hb_wsmsg_cleanup(&m);
}

/* Every example request of PROTOCOL.md section 5 parses as its type. */
static void test_protocol_examples(void **state)
{
    (void)state;
    static const struct {
        const char *msg;
        int type;
    } ex[] = {
        {"{\"type\":\"subscribe\",\"topic\":\"t\",\"since\":\"1-0\"}", HB_WSMSG_SUBSCRIBE},
        {"{\"type\":\"unsubscribe\",\"topic\":\"t\"}", HB_WSMSG_UNSUBSCRIBE},
        {"{\"type\":\"auth\",\"token\":\"<publish key>\"}", HB_WSMSG_AUTH},
        {"{\"type\":\"publish\",\"topic\":\"t\",\"data\":\"...\",\"event\":\"name\"}",
         HB_WSMSG_PUBLISH},
        {"{\"type\":\"ping\"}", HB_WSMSG_PING},
        {"{\"type\":\"subscribe\",\"topic\":\"news\",\"since\":\"1767225600000-0_m5k2x9a1b\","
         "\"id\":1}",
         HB_WSMSG_SUBSCRIBE},
        {"{\"type\":\"publish\",\"topic\":\"news\",\"data\":\"hi\",\"id\":2}", HB_WSMSG_PUBLISH},
        {"{\"type\":\"auth\",\"token\":\"s3cret\",\"id\":3}", HB_WSMSG_AUTH},
        {"{\"type\":\"unsubscribe\",\"topic\":\"news\",\"id\":5}", HB_WSMSG_UNSUBSCRIBE},
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        hb_wsmsg_t m;
        parse_ok(ex[i].msg, strlen(ex[i].msg), MAX, &m, ex[i].type);
        hb_wsmsg_cleanup(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_unsubscribe_ping_auth),
        cmocka_unit_test(test_publish),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_bad_request),
        cmocka_unit_test(test_event_name_limit),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_bad_topic),
        cmocka_unit_test(test_bad_cursor),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_args_and_cleanup),
        cmocka_unit_test(test_protocol_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
