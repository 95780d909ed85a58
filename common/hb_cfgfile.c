#include "hb_cfgfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hb_err.h"

int hb_cfgfile_read(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *buf;
    size_t n;
    int saved;

    if (!f)
        return HB_EIO;
    buf = malloc(HB_CFGFILE_MAX + 2);
    if (!buf) {
        fclose(f);
        return HB_ENOMEM;
    }
    n = fread(buf, 1, HB_CFGFILE_MAX + 1, f);
    if (ferror(f)) {
        saved = errno;
        fclose(f);
        free(buf);
        errno = saved;
        return HB_EIO;
    }
    fclose(f);
    if (n > HB_CFGFILE_MAX) {
        free(buf);
        return HB_ELIMIT;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Skips blanks at the front of [p, end) and cuts blanks and a CR off its end. */
static char *trim(char *p, char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = '\0';
    return p;
}

int hb_cfgfile_parse(char *text, size_t len, hb_cfgfile_entry_fn fn, void *arg, char *err,
                     size_t errlen)
{
    char why[512];
    unsigned line = 0;
    char *nul = memchr(text, '\0', len);

    text[len] = '\0';
    if (nul) {
        for (char *p = text; p < nul; p++)
            line += *p == '\n';
        snprintf(err, errlen, "%u: a NUL byte: not a text file", line + 1);
        return HB_EPROTO;
    }
    for (char *p = text; p < text + len;) {
        char *eol = memchr(p, '\n', (size_t)(text + len - p));
        char *end = eol ? eol : text + len;
        char *name, *val, *q;
        size_t nlen;

        line++;
        *end = '\0';
        if ((size_t)(end - p) > HB_CFGFILE_LINE_MAX) {
            snprintf(err, errlen, "%u: line longer than %d bytes", line, HB_CFGFILE_LINE_MAX);
            return HB_EPROTO;
        }
        name = trim(p, end);
        p = end + 1;
        if (!*name || *name == '#')
            continue;
        for (q = name; *q && *q != ' ' && *q != '\t' && *q != '='; q++)
            ;
        nlen = (size_t)(q - name);
        val = trim(q, q + strlen(q));
        if (*val == '=')
            val = trim(val + 1, val + strlen(val));
        if (!*val) {
            /* `name` and `name =` alike: an empty value is written "" (a secret left empty
             * by mistake would otherwise turn its check off) */
            snprintf(err, errlen, "%u: '%.*s' has no value (write `%.*s = VALUE`, or `\"\"`)", line,
                     (int)(nlen > 100 ? 100 : nlen), name, (int)(nlen > 100 ? 100 : nlen), name);
            return HB_EPROTO;
        }
        name[nlen] = '\0'; /* after the value was found: it may start right there */
        nlen = strlen(val);
        if (nlen >= 2 && (val[0] == '"' || val[0] == '\'') && val[nlen - 1] == val[0]) {
            val[nlen - 1] = '\0';
            val++;
        }
        if (fn(arg, name, val, line, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%u: %s", line, why);
            return HB_EPROTO;
        }
    }
    return 0;
}
