#define _GNU_SOURCE /* pthread_setname_np */
/*
 * The drain watchdog (see watchdog.h). It polls the draining flag five times a second: a
 * SIGTERM handled by the broker sets it, and a stuck broker or service thread cannot keep the
 * watchdog from reading it or the clock.
 */
#include "watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "hb_err.h"
#include "hb_log.h"

#define MOD "main"
#define POLL_NS (200L * 1000 * 1000)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *watchdog_main(void *arg)
{
    hb_edge_t *edge = arg;
    struct timespec poll = {0, POLL_NS};
    double since = 0, limit = (double)edge->cfg.drain_timeout + HB_WATCHDOG_GRACE_S;
    for (;;) {
        nanosleep(&poll, NULL);
        if (!atomic_load(&edge->stats.draining))
            continue;
        if (since == 0)
            since = now_s();
        if (now_s() - since < limit)
            continue;
        hb_log_error(MOD,
                     "drain deadline passed: a thread is stuck, exiting without a clean "
                     "shutdown",
                     "{s:i,s:i,s:i}", "drain_timeout_s", edge->cfg.drain_timeout, "grace_s",
                     HB_WATCHDOG_GRACE_S, "exit_code", HB_WATCHDOG_EXIT);
        _exit(HB_WATCHDOG_EXIT);
    }
    return NULL;
}

int hb_watchdog_start(hb_edge_t *edge)
{
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog_main, edge) != 0)
        return HB_EIO;
    pthread_setname_np(t, "hb-watchdog");
    pthread_detach(t);
    return 0;
}
