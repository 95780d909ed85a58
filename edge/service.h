#ifndef HERALD_EDGE_SERVICE_H
#define HERALD_EDGE_SERVICE_H

/* Private to the service threads (service.c). */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <libwebsockets.h>

#include "edge.h"
#include "hb_dict.h"

#define HB_SVC_WBUF 65536 /* bytes coalesced into one write */

typedef struct hb_svc hb_svc_t;
typedef struct hb_client hb_client_t;

/* A topic with local subscribers. {service thread} */
typedef struct ltopic {
    char name[HB_TOPIC_MAX + 1];
    size_t len;
    hb_client_t *head; /* subscribers */
    size_t nclients;
    uint64_t seq;      /* last EVENT sequence seen, to detect a dropped hand-off */
    int have_seq;
    int told;          /* the broker was told we want it */
    int dirty;         /* a SUB/UNSUB could not be queued; retried by housekeeping */
} ltopic_t;

typedef enum { K_NONE = 0, K_SIMPLE, K_SSE } kind_t;
typedef enum { C_LIVE = 0, C_RESUMING, C_CLOSING } cstate_t;

/* One HTTP transaction / SSE client: lws' per-session data. {service thread} */
struct hb_client {
    struct lws *wsi;
    hb_svc_t *svc;
    kind_t kind;
    cstate_t state;
    uint64_t id;
    ltopic_t *topic;
    hb_client_t *prev, *next; /* in topic->head */
    /* outgoing queue: refs to shared frames */
    hb_buf_t **q;
    uint32_t qcap, qhead, qlen;
    size_t qbytes;
    size_t off; /* bytes of q[qhead] already written */
    /* live events received while history is being read */
    hb_msg_t **pend;
    uint32_t npend, cappend;
    hb_id_t last; /* last event id queued */
    int have_last;
    int history_started;
    int want_more;
    int close_after_flush;
    int cleaned;
    lws_usec_t last_write;
    /* K_SIMPLE */
    char simple[256];
    size_t simple_len;
};

struct hb_svc {
    hb_edge_t *edge;
    int idx;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    int listen_fd; /* our SO_REUSEPORT listener, adopted into ctx as a raw file */
    pthread_t thread;
    int started;
    atomic_int stop;
    hb_queue_t *inq; /* from the broker {inq lock} */
    hb_dict_t *topics;   /* name -> ltopic_t */
    hb_dict_t *resuming; /* client id -> hb_client_t, while history is read */
    uint64_t next_id;
    atomic_size_t nclients;
    atomic_int drain_req;
    int draining;
    lws_sorted_usec_list_t sul_hb;
    hb_buf_t *retry_frame, *hb_frame;
    hb_buf_t *drain_frames[8];
    unsigned char wbuf[LWS_PRE + HB_SVC_WBUF];
};

#endif
