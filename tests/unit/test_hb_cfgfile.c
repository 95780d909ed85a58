#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hb_cfgfile.h"
#include "hb_err.h"

typedef struct seen {
    char out[1024];     /* "line:name=value;" for every entry */
    const char *refuse; /* a name the callback refuses */
} seen_t;

static int on_entry(void *arg, const char *name, const char *value, unsigned line, char *err,
                    size_t errlen)
{
    seen_t *s = arg;
    size_t n = strlen(s->out);
    if (s->refuse && !strcmp(name, s->refuse)) {
        snprintf(err, errlen, "no '%s' here", name);
        return -1;
    }
    snprintf(s->out + n, sizeof(s->out) - n, "%u:%s=%s;", line, name, value);
    return 0;
}

/* Parses a copy of text (with the extra byte the parser needs). */
static int parse(const char *text, size_t len, seen_t *s, char *err, size_t errlen)
{
    char *buf = malloc(len + 1);
    int rc;
    memcpy(buf, text, len);
    rc = hb_cfgfile_parse(buf, len, on_entry, s, err, errlen);
    free(buf);
    return rc;
}

static void test_forms(void **state)
{
    seen_t s = {"", NULL};
    char err[256] = "";
    const char *t = "# comment\n"
                    "\n"
                    "a = 1\n"
                    "  b 2  \n"
                    "c=3\r\n"
                    "d = \"\"\n"
                    "e = \"two words\"\n"
                    "f = 'x#y'\n"
                    "g = \"unbalanced\n"
                    "   # indented comment\n"
                    "h\t=\tlast";
    (void)state;
    assert_int_equal(parse(t, strlen(t), &s, err, sizeof(err)), 0);
    assert_string_equal(s.out, "3:a=1;4:b=2;5:c=3;6:d=;7:e=two words;8:f=x#y;9:g=\"unbalanced;"
                               "11:h=last;");
}

static void test_errors_name_the_line(void **state)
{
    seen_t s = {"", NULL};
    char err[256] = "";
    char big[HB_CFGFILE_LINE_MAX + 16];
    (void)state;
    assert_int_equal(parse("a = 1\nlonely\n", 13, &s, err, sizeof(err)), HB_EPROTO);
    assert_string_equal(err, "2: 'lonely' has no value (write `lonely = VALUE`, or `\"\"`)");
    /* `name =` too: a secret left empty by mistake would turn its check off */
    assert_int_equal(parse("jwt-secret =  \n", 14, &s, err, sizeof(err)), HB_EPROTO);
    assert_string_equal(err,
                        "1: 'jwt-secret' has no value (write `jwt-secret = VALUE`, or `\"\"`)");
    assert_int_equal(parse("a = 1\n\nb = x\0y\n", 15, &s, err, sizeof(err)), HB_EPROTO);
    assert_string_equal(err, "3: a NUL byte: not a text file");
    s.out[0] = '\0';
    s.refuse = "b";
    assert_int_equal(parse("a = 1\nb = 2\nc = 3\n", 18, &s, err, sizeof(err)), HB_EPROTO);
    assert_string_equal(err, "2: no 'b' here");
    assert_string_equal(s.out, "1:a=1;"); /* stopped at the refusal */
    /* a line of exactly the limit is fine, one byte more is not */
    s.refuse = NULL;
    memset(big, 'x', sizeof(big));
    memcpy(big, "k = ", 4);
    big[HB_CFGFILE_LINE_MAX] = '\n';
    assert_int_equal(parse(big, HB_CFGFILE_LINE_MAX + 1, &s, err, sizeof(err)), 0);
    big[HB_CFGFILE_LINE_MAX] = 'x';
    big[HB_CFGFILE_LINE_MAX + 1] = '\n';
    assert_int_equal(parse(big, HB_CFGFILE_LINE_MAX + 2, &s, err, sizeof(err)), HB_EPROTO);
    assert_string_equal(err, "1: line longer than 4096 bytes");
}

static void test_read_limits(void **state)
{
    char path[] = "/tmp/herald-cfgfile-XXXXXX";
    char *buf = NULL;
    size_t len = 0;
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    (void)state;
    for (int i = 0; i < HB_CFGFILE_MAX; i++)
        fputc('#', f);
    fclose(f);
    assert_int_equal(hb_cfgfile_read(path, &buf, &len), 0); /* exactly the limit */
    assert_int_equal(len, HB_CFGFILE_MAX);
    assert_int_equal(buf[len], '\0');
    free(buf);
    f = fopen(path, "a");
    fputc('#', f);
    fclose(f);
    assert_int_equal(hb_cfgfile_read(path, &buf, &len), HB_ELIMIT);
    remove(path);
    assert_int_equal(hb_cfgfile_read(path, &buf, &len), HB_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors_name_the_line),
        cmocka_unit_test(test_read_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
