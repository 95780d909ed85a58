#ifndef HERALD_EDGE_LIBRARY_H
#define HERALD_EDGE_LIBRARY_H

/*
 * The deployment's Redis function library on one command connection: read what is loaded
 * (<lib>_info: version and settings) and load this edge's own only when there is none or an
 * older version, so that an edge started with other settings is told instead of replacing the
 * library of every edge of its deployment in silence.
 */

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

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
/**
 * hb_library_missing() - 1 when r (any reply; NULL: 0) is Redis's answer to an FCALL of a
 * function it does not have (`ERR Function not found`): the library was removed from a
 * running Redis (FUNCTION FLUSH / DELETE / RESTORE FLUSH). The connection's set-up, which
 * loads it, must run again. Any thread; r is only read.
 */
int hb_library_missing(const redisReply *r);
/**
 * hb_library_recover() - {broker thread} r is the reply, on ac (b's command connection or a
 * Cluster node's), of an FCALL sent every second (the canary's heartbeat). When it says the
 * library is missing (hb_library_missing()), logs it, counts stats.library_lost and disconnects
 * ac: its reconnection's set-up loads the library again, and refills what the gap held up.
 * 1 when it did, else 0. Call only from a reply callback of ac.
 */
int hb_library_recover(struct hb_broker *b, redisAsyncContext *ac, const redisReply *r);

/* The outcome of the last check is in stats.library_mismatch (edge.h), for /metrics. */

#endif
