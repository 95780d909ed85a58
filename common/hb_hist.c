#include "hb_hist.h"

static const long long bounds_us[HB_HIST_BUCKETS] = {
    500,    1000,   2500,    5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 7500000, 10000000,
};

long long hb_hist_bound_us(int i)
{
    return i >= 0 && i < HB_HIST_BUCKETS ? bounds_us[i] : -1;
}

static void bump(atomic_ullong *c, unsigned long long n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

void hb_hist_observe(hb_hist_t *h, long long us, unsigned long long n)
{
    int i = 0;
    if (us < 0)
        us = 0;
    while (i < HB_HIST_BUCKETS && us > bounds_us[i])
        i++;
    bump(&h->counts[i], n);
    bump(&h->sum_us, (unsigned long long)us * n);
}

void hb_hist_write(FILE *f, const char *name, const char *help, hb_hist_t *const *hs, int nh)
{
    unsigned long long cum = 0, sum = 0;
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i <= HB_HIST_BUCKETS; i++) {
        for (int k = 0; k < nh; k++)
            cum += atomic_load_explicit(&hs[k]->counts[i], memory_order_relaxed);
        if (i < HB_HIST_BUCKETS)
            fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bounds_us[i] / 1e6, cum);
        else
            fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, cum);
    }
    for (int k = 0; k < nh; k++)
        sum += atomic_load_explicit(&hs[k]->sum_us, memory_order_relaxed);
    fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, (double)sum / 1e6, name, cum);
}
