#include "psconn.h"

#include <stdarg.h>
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "hb_err.h"
#include "hb_mem.h"

#define READ_CHUNK 16384
#define READS_PER_WAKE 32

/* Owner: the broker (edge/cluster.c). {broker thread} */
struct hb_psconn {
    struct bufferevent *bev;
    redisReader *reader;
    hb_ps_up_fn on_up;
    hb_ps_reply_fn on_reply;
    void *arg;
    int up;
    int dead;
    int starting; /* inside hb_ps_connect(): a failure is returned, not called back */
    int skip;     /* replies still to drop: the CLIENT SETNAME's */
};

static void ps_close(hb_psconn_t *c)
{
    /* The owner may free c inside this call: touch nothing after it. */
    c->up = 0;
    c->dead = 1;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    if (c->starting)
        return;
    c->on_reply(c, NULL, c->arg);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    hb_psconn_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char buf[READ_CHUNK];

    for (int i = 0; i < READS_PER_WAKE && evbuffer_get_length(in) > 0; i++) {
        int n = evbuffer_remove(in, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
            ps_close(c);
            return;
        }
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
                ps_close(c); /* protocol error */
                return;
            }
            if (!reply)
                break;
            if (c->skip) { /* the name's answer: nothing was subscribed before it */
                c->skip--;
                freeReplyObject(reply);
                continue;
            }
            c->on_reply(c, reply, c->arg);
            freeReplyObject(reply);
            if (c->dead)
                return;
        }
    }
    if (evbuffer_get_length(in) > 0) /* bounded work per wake-up: come back for the rest */
        bufferevent_trigger(bev, EV_READ, BEV_TRIG_DEFER_CALLBACKS);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    hb_psconn_t *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        bufferevent_set_timeouts(bev, NULL, NULL);
        c->up = 1;
        c->on_up(c, c->arg);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        ps_close(c);
}

hb_psconn_t *hb_ps_connect(struct event_base *base, const char *host, int port, int timeout_ms,
                           const char *name, hb_ps_up_fn on_up, hb_ps_reply_fn on_reply, void *arg)
{
    hb_psconn_t *c = hb_xcalloc(1, sizeof(*c));
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    c->on_up = on_up;
    c->on_reply = on_reply;
    c->arg = arg;
    c->reader = redisReaderCreate();
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (!c->reader || !c->bev)
        goto fail;
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->starting = 1;
    if (bufferevent_socket_connect_hostname(c->bev, NULL, AF_UNSPEC, host, port) != 0 || c->dead)
        goto fail;
    c->starting = 0;
    /* written ahead of everything else: the bufferevent sends it once connected */
    if (name && hb_ps_command(c, "CLIENT SETNAME %s", name) == 0)
        c->skip = 1;
    return c;
fail:
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->reader)
        redisReaderFree(c->reader);
    free(c);
    return NULL;
}

int hb_ps_command(hb_psconn_t *c, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    int len;
    if (c->dead)
        return HB_EIO;
    va_start(ap, fmt);
    len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return HB_ENOMEM;
    if (bufferevent_write(c->bev, cmd, (size_t)len) != 0) {
        redisFreeCommand(cmd);
        return HB_EIO;
    }
    redisFreeCommand(cmd);
    return 0;
}

int hb_ps_is_up(const hb_psconn_t *c)
{
    return c->up && !c->dead;
}

void hb_ps_free(hb_psconn_t *c)
{
    if (!c)
        return;
    bufferevent_free(c->bev);
    redisReaderFree(c->reader);
    free(c);
}
