#ifndef HERALD_EDGE_WATCHDOG_H
#define HERALD_EDGE_WATCHDOG_H

/*
 * The drain deadline, enforced from outside the event loops: once the edge drains (SIGTERM or
 * SIGINT), a thread of its own ends the process HB_WATCHDOG_GRACE_S seconds after
 * --drain-timeout if it is still running, even when a service thread or the broker is stuck
 * (spinning in a callback, blocked, stopped).
 */

#include "edge.h"

#define HB_WATCHDOG_GRACE_S 3
#define HB_WATCHDOG_EXIT 3 /* exit status of a drain the watchdog had to end */

/**
 * hb_watchdog_start() - starts the watchdog thread for `edge` (which must outlive the process's
 * threads). Main thread, once. It watches edge->stats.draining and calls _exit(HB_WATCHDOG_EXIT)
 * after logging one error line. Returns 0, or HB_EIO when the thread cannot be created.
 */
int hb_watchdog_start(hb_edge_t *edge);

#endif
