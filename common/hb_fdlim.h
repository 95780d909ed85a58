#ifndef HERALD_COMMON_HB_FDLIM_H
#define HERALD_COMMON_HB_FDLIM_H

/*
 * The edge's socket and connection limits from its file-descriptor limit (RLIMIT_NOFILE):
 * descriptors are kept in reserve for Redis, listeners, event loops and files, and sockets for
 * health checks and requests under way while clients are at their limit. Pure arithmetic.
 */

/* Descriptors kept besides sockets: 96, and 16 per service thread. */
#define HB_FDLIM_RESERVE_BASE 96L
#define HB_FDLIM_RESERVE_THREAD 16L
/* Sockets kept for requests when clients are at their limit: an eighth, at most this many. */
#define HB_FDLIM_HEAD_MAX 1024L
/* The smallest socket limit, however few descriptors there are. */
#define HB_FDLIM_MIN_SOCKETS 16L
/* Capped there (RLIM_INFINITY included): lws allocates tables by descriptor number. */
#define HB_FDLIM_NOFILE_MAX (1L << 24)

typedef struct hb_fdlim {
    long nofile;      /* the RLIMIT_NOFILE the limits are for */
    long reserve;     /* descriptors kept for other things than accepted sockets */
    long sockets;     /* accepted sockets at most: nofile - reserve */
    long connections; /* SSE/WS/long-poll clients at most: max_connections, or sockets less
                         an eighth (at least 8, at most HB_FDLIM_HEAD_MAX) when that is
                         lower */
} hb_fdlim_t;

/**
 * hb_fdlim_wanted() - the RLIMIT_NOFILE under which `max_connections` clients fit with
 * `nthreads` service threads (capped at HB_FDLIM_NOFILE_MAX). Pure; any thread. Never fails;
 * arguments out of range are clamped (nthreads < 1 counts as 1, max_connections < 1 as 1).
 */
long hb_fdlim_wanted(int nthreads, long max_connections);

/**
 * hb_fdlim_compute() - the limits for a process that may open `nofile` descriptors (clamped to
 * 0..HB_FDLIM_NOFILE_MAX). Pure; any thread. Never fails: a tiny `nofile` still gives
 * HB_FDLIM_MIN_SOCKETS sockets and one connection.
 */
void hb_fdlim_compute(long nofile, int nthreads, long max_connections, hb_fdlim_t *out);

#endif
