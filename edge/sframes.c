/*
 * The frames a service thread sends as they are, made once when the thread is made: the SSE
 * retry line, heartbeat and token-expired comment, the drain turn-away's retry lines, the
 * WebSocket ping (service.h: hb_svc_frames_new/free). {service thread's creator, then the
 * thread}
 */
#include "service.h"

#include "hb_sse.h"

/* LWS_PRE bytes of headroom, as lws_write() wants when a direct send hands it the rest
 * (csend.h). NULL on OOM. */
static hb_buf_t *frame_new(const void *p, size_t n)
{
    hb_buf_t *b = hb_buf_new(n, LWS_PRE);
    if (b)
        hb_buf_append(b, p, n);
    return b;
}

int hb_svc_frames_new(hb_svc_t *s)
{
    unsigned retry_ms = (unsigned)s->edge->cfg.retry_ms;
    char retry[64];
    int n, ok = 1;
    n = hb_sse_format_retry(retry, sizeof(retry), retry_ms);
    s->retry_frame = frame_new(retry, (size_t)n);
    s->hb_frame = frame_new(": hb\n\n", 6);
    /* a server's ping: FIN, opcode 9, unmasked, one byte of payload (lws 4.1 does not report
     * an empty pong) */
    s->ping_frame = frame_new("\x89\x01h", 3);
    s->expired_frame = frame_new(": token expired\n\n", 17);
    /* drain: retry delays spread over [retry/2, retry) so that clients come back apart */
    for (int i = 0; i < HB_DRAIN_VARIANTS; i++) {
        unsigned ms = retry_ms / 2 + (unsigned)i * retry_ms / HB_DRAIN_VARIANTS;
        n = hb_sse_format_retry(retry, sizeof(retry), ms);
        s->drain_frames[i] = frame_new(retry, (size_t)n);
        ok = ok && s->drain_frames[i];
    }
    if (ok && s->retry_frame && s->hb_frame && s->ping_frame && s->expired_frame)
        return 0;
    hb_svc_frames_free(s);
    return HB_ENOMEM;
}

void hb_svc_frames_free(hb_svc_t *s)
{
    hb_buf_unref(s->retry_frame);
    hb_buf_unref(s->hb_frame);
    hb_buf_unref(s->ping_frame);
    hb_buf_unref(s->expired_frame);
    s->retry_frame = s->hb_frame = s->ping_frame = s->expired_frame = NULL;
    for (int i = 0; i < HB_DRAIN_VARIANTS; i++) {
        hb_buf_unref(s->drain_frames[i]);
        s->drain_frames[i] = NULL;
    }
}
