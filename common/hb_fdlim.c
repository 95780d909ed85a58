/* Socket and connection limits from RLIMIT_NOFILE (see hb_fdlim.h). */
#include "hb_fdlim.h"

static long reserve_for(int nthreads)
{
    if (nthreads > 1024) /* more than --threads allows: no overflow below */
        nthreads = 1024;
    return HB_FDLIM_RESERVE_BASE + (long)(nthreads > 0 ? nthreads : 1) * HB_FDLIM_RESERVE_THREAD;
}

/* Sockets left for heads (health checks, requests under way) when clients are at their limit:
 * an eighth, at least 8 and at most HB_FDLIM_HEAD_MAX (requests are answered in milliseconds:
 * what they need does not grow with the clients held). */
static long head_room(long sockets)
{
    long h = sockets / 8 > 8 ? sockets / 8 : 8;
    return h > HB_FDLIM_HEAD_MAX ? HB_FDLIM_HEAD_MAX : h;
}

long hb_fdlim_wanted(int nthreads, long max_connections)
{
    long want, extra;
    if (max_connections < 1)
        max_connections = 1;
    if (max_connections > HB_FDLIM_NOFILE_MAX)
        return HB_FDLIM_NOFILE_MAX;
    /* sockets - head_room(sockets) >= max_connections: sockets = max_connections * 8 / 7,
     * rounded up, and never below the head room's floor of 8, nor above its cap */
    extra = max_connections / 7 + 8;
    if (extra > HB_FDLIM_HEAD_MAX)
        extra = HB_FDLIM_HEAD_MAX;
    want = max_connections + extra + reserve_for(nthreads);
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
