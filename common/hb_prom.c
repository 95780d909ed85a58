/* Prometheus text exposition writer (see hb_prom.h). */
#include "hb_prom.h"

#include <string.h>

#include "hb_err.h"

/* help text: backslash and newline escaped (the format's rule for HELP) */
static void put_help(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

void hb_prom_family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s ", name);
    put_help(f, help);
    fprintf(f, "\n# TYPE %s %s\n", name, type);
}

void hb_prom_sample(FILE *f, const char *name, const char *labels, unsigned long long v)
{
    fprintf(f, "%s%s %llu\n", name, labels, v);
}

int hb_prom_label(char *out, size_t cap, const char *key, const char *value)
{
    size_t n = 0, kl = strlen(key);
    if (cap == 0)
        return HB_ELIMIT;
    if (kl + 4 > cap)
        goto full;
    out[n++] = '{';
    memcpy(out + n, key, kl);
    n += kl;
    out[n++] = '=';
    out[n++] = '"';
    for (const char *p = value; *p; p++) {
        char esc = *p == '\\' ? '\\' : *p == '"' ? '"' : *p == '\n' ? 'n' : 0;
        if (n + (esc ? 2 : 1) + 3 > cap) /* room for the closing "} and the NUL */
            goto full;
        if (esc) {
            out[n++] = '\\';
            out[n++] = esc;
        } else {
            out[n++] = *p;
        }
    }
    out[n++] = '"';
    out[n++] = '}';
    out[n] = '\0';
    return (int)n;
full:
    out[0] = '\0';
    return HB_ELIMIT;
}
