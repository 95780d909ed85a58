#include "hb_topic.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "hb_err.h"

#define TOPIC_BAD "topic has a byte outside [A-Za-z0-9._~@/-]"
#define EVENT_BAD "event name has a byte outside [A-Za-z0-9._:-]"

static void test_topic_valid(void **state)
{
    (void)state;
    const char *ok[] = {"a", "Z", "0", "news/eu", "a.b_c~d@e-f", "user@example.com/inbox",
                        "-", "."};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *reason = "unset";
        assert_int_equal(hb_topic_validate(ok[i], strlen(ok[i]), &reason), HB_OK);
        assert_string_equal(reason, "unset"); /* untouched on success */
    }
}

static void test_topic_length_limit(void **state)
{
    (void)state;
    char buf[HB_TOPIC_MAX + 1];
    memset(buf, 'a', sizeof(buf));
    const char *reason = NULL;
    assert_int_equal(hb_topic_validate(buf, HB_TOPIC_MAX, &reason), HB_OK);
    assert_int_equal(hb_topic_validate(buf, HB_TOPIC_MAX + 1, &reason), HB_EPROTO);
    assert_string_equal(reason, "topic longer than 128 bytes");
    assert_int_equal(hb_topic_validate(buf, 0, &reason), HB_EPROTO);
    assert_string_equal(reason, "topic is empty");
    assert_int_equal(hb_topic_validate(NULL, 0, NULL), HB_EPROTO);
    /* Length is checked before content. */
    buf[0] = ' ';
    assert_int_equal(hb_topic_validate(buf, HB_TOPIC_MAX + 1, &reason), HB_EPROTO);
    assert_string_equal(reason, "topic longer than 128 bytes");
}

static void test_topic_forbidden_bytes(void **state)
{
    (void)state;
    /* One of each class: space, controls, NUL, delimiters, punctuation, high bytes. */
    const char bad[] = {' ', '\t', '\r', '\n', '\0', '\x01', '\x7f',     '|',        '*',
                        ':', '%',  '?',  '#',  '&',  '=',    '+',        ',',        ';',
                        '"', '\'', '\\', '{',  '}',  '[',    ']',        '<',        '>',
                        '!', '$',  '(',  ')',  '^',  '`',    (char)0x80, (char)0xc3, (char)0xff};
    for (size_t i = 0; i < sizeof(bad); i++) {
        char t[3] = {'a', bad[i], 'b'};
        const char *reason = NULL;
        assert_int_equal(hb_topic_validate(t, 3, &reason), HB_EPROTO);
        assert_string_equal(reason, TOPIC_BAD);
        /* First and last positions too. */
        assert_int_equal(hb_topic_validate(t + 1, 2, &reason), HB_EPROTO);
        assert_int_equal(hb_topic_validate(t, 2, &reason), HB_EPROTO);
    }
    /* Every byte value: exactly the 62 alphanumerics and "._~@/-" pass. */
    int passed = 0;
    for (int c = 0; c < 256; c++) {
        char t = (char)c;
        passed += hb_topic_validate(&t, 1, NULL) == HB_OK;
    }
    assert_int_equal(passed, 62 + 6);
}

static void test_event_name(void **state)
{
    (void)state;
    char buf[HB_EVENT_NAME_MAX + 1];
    memset(buf, 'e', sizeof(buf));
    const char *reason = NULL;
    assert_int_equal(hb_event_name_validate(buf, HB_EVENT_NAME_MAX, &reason), HB_OK);
    assert_int_equal(hb_event_name_validate(buf, HB_EVENT_NAME_MAX + 1, &reason), HB_EPROTO);
    assert_string_equal(reason, "event name longer than 64 bytes");
    assert_int_equal(hb_event_name_validate("", 0, &reason), HB_EPROTO);
    assert_string_equal(reason, "event name is empty");
    assert_int_equal(hb_event_name_validate("order:created-v1.2_x", 20, &reason), HB_OK);
    /* the edge's own names: a published herald.gap would pass for a gap notice */
    assert_int_equal(hb_event_name_validate("herald.gap", 10, &reason), HB_EPROTO);
    assert_string_equal(reason, "event names starting with herald. are the edge's own");
    assert_int_equal(hb_event_name_validate("herald.", 7, NULL), HB_EPROTO);
    assert_int_equal(hb_event_name_validate("herald", 6, NULL), HB_OK);
    assert_int_equal(hb_event_name_validate("Herald.gap", 10, NULL), HB_OK);
    assert_int_equal(hb_event_name_validate("x.herald.gap", 12, NULL), HB_OK);
    const char *bad[] = {"a/b", "a~b", "a@b", "a b", "a|b", "a\nb", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reason = NULL;
        assert_int_equal(hb_event_name_validate(bad[i], strlen(bad[i]), &reason), HB_EPROTO);
        assert_string_equal(reason, EVENT_BAD);
    }
    int passed = 0;
    for (int c = 0; c < 256; c++) {
        char t = (char)c;
        passed += hb_event_name_validate(&t, 1, NULL) == HB_OK;
    }
    assert_int_equal(passed, 62 + 4);
}

/* A publish's idempotency key: the bytes of a UUID, base64url and "name:version" keys, bounded
 * (it becomes part of a Redis key name), and no byte that could end the key name early. */
static void test_idem_key(void **state)
{
    (void)state;
    char buf[HB_IDEM_KEY_MAX + 1];
    const char *reason = NULL;
    memset(buf, 'k', sizeof(buf));
    assert_int_equal(hb_idem_key_validate(buf, HB_IDEM_KEY_MAX, &reason), HB_OK);
    assert_int_equal(hb_idem_key_validate(buf, HB_IDEM_KEY_MAX + 1, &reason), HB_EPROTO);
    assert_string_equal(reason, "idempotency key must be 1-64 bytes");
    reason = NULL;
    assert_int_equal(hb_idem_key_validate("", 0, &reason), HB_EPROTO);
    assert_string_equal(reason, "idempotency key must be 1-64 bytes");
    assert_int_equal(hb_idem_key_validate("0b0e7c8e-8f5c-4d1e-9a31-7c1f2a4b5d6e", 36, NULL), HB_OK);
    assert_int_equal(hb_idem_key_validate("order-42:v3", 11, NULL), HB_OK);
    assert_int_equal(hb_idem_key_validate("Zm9v_YmFy-", 10, NULL), HB_OK);
    const char *bad[] = {"a/b", "a b", "a}b", "a{b", "a*b", "\"k\"", "a\nb", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reason = NULL;
        assert_int_equal(hb_idem_key_validate(bad[i], strlen(bad[i]), &reason), HB_EPROTO);
        assert_string_equal(reason, "idempotency key has a byte outside [A-Za-z0-9._:-]");
    }
    assert_int_equal(hb_idem_key_validate("a\0b", 3, NULL), HB_EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_valid),
        cmocka_unit_test(test_topic_length_limit),
        cmocka_unit_test(test_topic_forbidden_bytes),
        cmocka_unit_test(test_event_name),
        cmocka_unit_test(test_idem_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
