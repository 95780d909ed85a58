/*
 * A service thread's clients at SIGTERM (service.h hb_svc_drain_clients): each is told the
 * transport's way, once. Service thread only.
 */
#include "admit.h"
#include "service.h"
#include "transport.h"

/* A socket at drain time: every WebSocket not drained through its topics (one with no
 * subscription, ever or any more: a publisher) is drained too. */
static void drain_unsubscribed(struct lws *wsi, void *arg)
{
    hb_client_t *c = lws_wsi_user(wsi);
    (void)arg;
    if (c && c->wsi == wsi && c->ops == &hb_ws_ops && !c->closing)
        c->ops->drain(c, 0); /* once: ws_drain() knows a client it drained */
}

void hb_svc_drain_clients(hb_svc_t *s)
{
    size_t it = 0, klen;
    const void *k;
    void *v;
    unsigned i = 0;
    while (hb_dict_next(s->topics, &it, &k, &klen, &v)) {
        ltopic_t *t = v;
        for (hb_list_t *l = t->subs.next; l != &t->subs; l = l->next) {
            hb_client_t *c = hb_list_container(l, hb_sub_t, tlink)->c;
            if (c->closing || c->close_after_flush || !c->ops->drain)
                continue;
            c->ops->drain(c, i++); /* the transport's way (SSE: a jittered retry) */
        }
    }
    /* and the clients with no subscription: 1001 too, or the drain waited --drain-timeout for
     * them and dropped them without a close frame */
    hb_admit_each(s->admit, drain_unsubscribed, NULL);
}
