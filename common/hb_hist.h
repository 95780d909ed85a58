#ifndef HERALD_COMMON_HB_HIST_H
#define HERALD_COMMON_HB_HIST_H

#include <stdatomic.h>
#include <stdio.h>

/*
 * A latency histogram with fixed Prometheus buckets (seconds): 0.5 ms .. 10 s, then +Inf.
 * One writer per histogram (a service thread observes into its own), any number of readers:
 * observing is a plain load and store per field (no locked read-modify-write), a reader sums
 * the per-thread histograms on scrape and may see one observation half applied (the count
 * of one bucket ahead of the sum), which Prometheus tolerates.
 */
#define HB_HIST_BUCKETS 15 /* finite bounds; counts[HB_HIST_BUCKETS] is +Inf */

typedef struct hb_hist {
    atomic_ullong counts[HB_HIST_BUCKETS + 1]; /* per bucket, not cumulative */
    atomic_ullong sum_us;                      /* sum of observations, microseconds */
} hb_hist_t;

/** hb_hist_bound_us() - upper bound of bucket i (i < HB_HIST_BUCKETS), microseconds. */
long long hb_hist_bound_us(int i);

/** hb_hist_observe() - add n observations of us microseconds (negative counts as 0). One
 * writer thread per histogram. */
void hb_hist_observe(hb_hist_t *h, long long us, unsigned long long n);

/**
 * hb_hist_write() - write the Prometheus text of the histogram `name` summed over the nh
 * histograms hs[i] (cumulative _bucket lines with le in seconds, _sum in seconds, _count),
 * with HELP and TYPE lines. Any thread.
 */
void hb_hist_write(FILE *f, const char *name, const char *help, hb_hist_t *const *hs, int nh);

#endif
