/*
 * libwebsockets 4.1 as Debian builds it keeps its debug and parser logging compiled in: its
 * HTTP header parser calls _lws_log() for every byte of every request header, and lws' own
 * _lws_log() sets up its argument list and calls _lws_logv() before the level is looked at.
 * That was 63 calls and about 4,000 instructions of the 39,000 a long-poll cycle costs the edge
 * (callgrind, tests/bench/poll_cost.py), and as much for every SSE, WebSocket and publish
 * request, to print nothing.
 *
 * These definitions replace lws' own for the process (lws calls both through its PLT, and the
 * executable's definition comes first, as in lwstimer.c): _lws_log() tests the level before
 * anything else and hands what is shown to lws' _lws_logv(), which prints it as before;
 * lws_set_log_level() notes the level and sets lws' own through the next definition (lws').
 * Until lws_set_log_level() is called every call is handed on, so nothing lws would print is
 * lost. Only for the lws series it was written against: another keeps its own. Any thread;
 * the level is set before the service threads start (as lws' own).
 */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <libwebsockets.h>

#if LWS_LIBRARY_VERSION_MAJOR == 4 && LWS_LIBRARY_VERSION_MINOR == 1

#include <dlfcn.h>
#include <stdarg.h>

/* the levels lws shows; every bit until the first lws_set_log_level() */
static int shown = -1;

#ifdef HB_LWSLOG_COUNT
/* calls made here: tests/unit/edge/test_lwslog.c builds this file with it, to see that lws'
 * own calls arrive here */
unsigned long hb_lwslog_calls;
#endif

typedef void (*emit_fn)(int level, const char *line);

void lws_set_log_level(int level, emit_fn func)
{
    void (*next)(int, emit_fn);
    *(void **)&next = dlsym(RTLD_NEXT, "lws_set_log_level");
    if (next)
        next(level, func);
    else
        level = -1; /* lws' own not found: hand every call on */
    __atomic_store_n(&shown, level, __ATOMIC_RELAXED);
}

void _lws_log(int filter, const char *format, ...)
{
    va_list ap;
#ifdef HB_LWSLOG_COUNT
    hb_lwslog_calls++;
#endif
    if (!(filter & __atomic_load_n(&shown, __ATOMIC_RELAXED)))
        return;
    va_start(ap, format);
    _lws_logv(filter, format, ap);
    va_end(ap);
}

#endif
