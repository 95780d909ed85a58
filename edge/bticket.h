#ifndef HERALD_EDGE_BTICKET_H
#define HERALD_EDGE_BTICKET_H

/* The broker thread's side of single-use sign-in tickets (the service side: ticket.h). */

#include "handoff.h"

struct hb_broker;

/**
 * hb_ticket_broker() - broker thread: run request @q (HB_REQ_TICKET_ISSUE: SET, or
 * HB_REQ_TICKET_REDEEM: GETDEL; @q stays the caller's) and answer with one HB_MSG_TICKET to the
 * asking thread (error set when Redis is down or failed; on redeem, blob NULL when there was no
 * such ticket). A full service queue drops the answer (counted): the request times out there.
 */
void hb_ticket_broker(struct hb_broker *b, hb_req_t *q);

#endif
