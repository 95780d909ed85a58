/* The broker's messages to the service threads (hb_msg_t, reference-counted) and the service
 * threads' requests to the broker (hb_req_t): allocation and release (edge.h). Any thread. */
#include "edge.h"

#include <stdlib.h>
#include <string.h>

#include "hb_err.h"
#include "hb_mem.h"

hb_edge_t *hb_edge;

hb_msg_t *hb_msg_new(hb_msg_type_t type, const char *topic, size_t topic_len)
{
    hb_msg_t *m = hb_xcalloc(1, sizeof(*m));
    m->type = type;
    atomic_init(&m->refs, 1);
    if (topic_len > HB_TOPIC_MAX)
        topic_len = HB_TOPIC_MAX;
    memcpy(m->topic, topic, topic_len);
    m->topic_len = topic_len;
    return m;
}

hb_msg_t *hb_msg_ref(hb_msg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void hb_msg_unref(hb_msg_t *m)
{
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    hb_ev_release(&m->ev);
    for (size_t i = 0; i < m->n; i++)
        hb_ev_release(&m->evs[i]);
    free(m->evs);
    free(m->blob);
    free(m);
}

void hb_req_free(hb_req_t *q)
{
    if (!q)
        return;
    free(q->payload);
    hb_hflag_unref(q->cancel);
    free(q);
}
