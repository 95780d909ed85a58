/* Socket and connection limits from RLIMIT_NOFILE (see hb_fdlim.h). */
#include "hb_fdlim.h"

static long reserve_for(int nthreads)
{
    if (nthreads > 1024) /* more than --threads allows: no overflow below */
        nthreads = 1024;
    return HB_FDLIM_RESERVE_BASE + (long)(nthreads > 0 ? nthreads : 1) * HB_FDLIM_RESERVE_THREAD;
}

/* Sockets left for heads (health checks, requests under way) when clients are at their limit. */
static long head_room(long sockets)
{
    return sockets / 8 > 8 ? sockets / 8 : 8;
}

long hb_fdlim_wanted(int nthreads, long max_connections)
{
    long want;
    if (max_connections < 1)
        max_connections = 1;
    if (max_connections > HB_FDLIM_NOFILE_MAX)
        return HB_FDLIM_NOFILE_MAX;
    /* sockets - sockets / 8 >= max_connections: sockets = max_connections * 8 / 7, rounded up,
     * and never below the head room's floor of 8 */
    want = max_connections + max_connections / 7 + 8 + reserve_for(nthreads);
    return want > HB_FDLIM_NOFILE_MAX ? HB_FDLIM_NOFILE_MAX : want;
}

void hb_fdlim_compute(long nofile, int nthreads, long max_connections, hb_fdlim_t *out)
{
    long reserve = reserve_for(nthreads);
    long sockets;
    if (nofile < 0)
        nofile = 0;
    if (nofile > HB_FDLIM_NOFILE_MAX)
        nofile = HB_FDLIM_NOFILE_MAX;
    sockets = nofile - reserve;
    if (sockets < HB_FDLIM_MIN_SOCKETS) { /* a tiny limit: serve a few rather than none */
        sockets = nofile / 2 > HB_FDLIM_MIN_SOCKETS ? nofile / 2 : HB_FDLIM_MIN_SOCKETS;
        reserve = nofile > sockets ? nofile - sockets : 0;
    }
    out->nofile = nofile;
    out->reserve = reserve;
    out->sockets = sockets;
    out->connections = sockets - head_room(sockets);
    if (out->connections > max_connections)
        out->connections = max_connections;
    if (out->connections < 1)
        out->connections = 1;
}
