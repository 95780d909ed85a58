#ifndef HERALD_EDGE_LIBRARY_H
#define HERALD_EDGE_LIBRARY_H

/*
 * The deployment's Redis function library on one command connection: read what is loaded
 * (<lib>_info: version and settings) and load this edge's own only when there is none or an
 * older version, so that an edge started with other settings is told instead of replacing the
 * library of every edge of its deployment in silence.
 */

#include <hiredis/async.h>

struct hb_broker;

/* The outcome: ok 1 = the functions can be called (ours, or another edge's, maybe with other
 * settings: see stats.library_mismatch); 0 = failed (the caller drops the connection to retry).
 * Not called when the connection goes away meanwhile. {broker thread} */
typedef void (*hb_library_done_fn)(redisAsyncContext *ac, int ok, void *arg);

/**
 * hb_library_ensure() - check and if needed load b->library on ac (a connected command
 * connection whose data is b), then call done(ac, ok, arg) once. A library of the same version
 * and other settings, or of a newer version, is kept and logged as an error (once per
 * connection) and counted in stats.library_mismatch. {broker thread}
 */
void hb_library_ensure(struct hb_broker *b, redisAsyncContext *ac, hb_library_done_fn done,
                       void *arg);

/* The outcome of the last check is in stats.library_mismatch (edge.h), for /metrics. */

#endif
