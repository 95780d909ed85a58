#ifndef HERALD_COMMON_HB_PROM_H
#define HERALD_COMMON_HB_PROM_H

/*
 * The Prometheus text exposition format (version 0.0.4), the writer /metrics uses: a family's
 * HELP and TYPE lines, one sample line, and a label set built from a value that may come from
 * outside (a Redis master's address named by Sentinel) and is escaped here so that it can
 * never end the label, the line or the exposition. Pure; any thread.
 */
#include <stddef.h>
#include <stdio.h>

/** Bytes that always hold a label set of one key (< 32 bytes) and a value of n bytes. */
#define HB_PROM_LABEL_MAX(n) (32 + 2 * (n) + 8)

/**
 * hb_prom_family() - "# HELP <name> <help>\n# TYPE <name> <type>\n". name, type and help are
 * the caller's constants (a newline or backslash in help is escaped all the same).
 */
void hb_prom_family(FILE *f, const char *name, const char *type, const char *help);
/**
 * hb_prom_sample() - "<name><labels> <v>\n"; labels is "" or a set made by hb_prom_label().
 */
void hb_prom_sample(FILE *f, const char *name, const char *labels, unsigned long long v);
/**
 * hb_prom_label() - the label set {key="value"} into out[cap], with the value escaped as the
 * format wants (backslash, double quote and newline as \\, \" and \n). key is the caller's
 * constant (a valid label name). Returns its length, or HB_ELIMIT when it does not fit (out is
 * "" then; cap > 0). HB_PROM_LABEL_MAX(strlen(value)) always fits.
 */
int hb_prom_label(char *out, size_t cap, const char *key, const char *value);

#endif
