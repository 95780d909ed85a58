/*
 * GET /metrics: the Prometheus text exposition of the edge's counters and gauges (summed over
 * the service threads where each thread keeps its own), the latency histograms, the canary's
 * and the process' figures. Service thread, at scrape time: off the fan-out path.
 */
#include "http.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "broker.h"
#include "hb_prom.h"
#include "sentinel.h"

/* Deliveries (which 0) or bytes out (1) summed over the service threads. */
static unsigned long long svc_count_sum(hb_svc_t *s, int which)
{
    unsigned long long n = 0;
    for (int i = 0; i < s->edge->nthreads; i++) {
        hb_svc_t *t = s->edge->svcs[i];
        n += atomic_load_explicit(which ? &t->bytes_out : &t->deliveries, memory_order_relaxed);
    }
    return n;
}

enum { SUM_INQ, SUM_QUEUED, SUM_SUBS, SUM_HREADS, SUM_HWAIT };

/* A gauge summed over the service threads (each writes only its own). */
static unsigned long long svc_sum(hb_svc_t *s, int which)
{
    unsigned long long n = 0;
    for (int i = 0; i < s->edge->nthreads; i++) {
        hb_svc_t *t = s->edge->svcs[i];
        if (which == SUM_INQ)
            n += hb_queue_len(t->inq);
        else
            n += atomic_load_explicit(which == SUM_SUBS     ? &t->subscriptions
                                      : which == SUM_HREADS ? &t->hist_inflight
                                      : which == SUM_HWAIT  ? &t->hist_waiting
                                                            : &t->queued,
                                      memory_order_relaxed);
    }
    return n;
}

/* Descriptors open now (the entries of /proc/self/fd, less the one reading it); -1 unknown.
 * A scrape-time walk: at 20,000 connections it reads 20,000 names, off the fan-out path. */
static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long long n = -1;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 2; /* n counted every entry but one: less ".", ".." and the directory's own fd */
}

int hb_http_metrics(hb_svc_t *s, hb_client_t *c)
{
    hb_stats_t *st = &s->edge->stats;
    char *buf = NULL;
    size_t len = 0;
    long size_pages = 0, rss_pages = 0;
    FILE *f, *statm = fopen("/proc/self/statm", "r");
    int rc;
    char master[HB_CFG_STR_MAX + 8], master_lbl[HB_PROM_LABEL_MAX(HB_CFG_STR_MAX + 8)];
    unsigned long long switches = 0;
    hb_broker_master(s->edge->broker, master, sizeof(master), &switches);
    /* the address is Sentinel's word: escaped (a master_lbl always holds it) */
    hb_prom_label(master_lbl, sizeof(master_lbl), "addr", master);
#define LOAD(x) ((unsigned long long)atomic_load_explicit(&st->x, memory_order_relaxed))
    const struct {
        const char *name, *type, *help, *labels;
        unsigned long long v;
    } rows[] = {
        {"herald_connections", "gauge", "Open client connections by transport.",
         "{transport=\"sse\"}", LOAD(conn_sse)},
        {"herald_connections", NULL, NULL, "{transport=\"ws\"}", LOAD(conn_ws)},
        {"herald_connections", NULL, NULL, "{transport=\"poll\"}", LOAD(conn_poll)},
        {"herald_events_in_total", "counter", "Events received from Redis.", "", LOAD(events_in)},
        {"herald_live_untrusted_total", "counter",
         "Live-channel messages Herald would not have published (an ID more than 2 s ahead of "
         "this edge's clock, a payload over --max-message-bytes): not delivered; their topic "
         "was read from its stream instead.",
         "{reason=\"ahead\"}", LOAD(live_ahead)},
        {"herald_live_untrusted_total", NULL, NULL, "{reason=\"too_large\"}", LOAD(live_too_large)},
        {"herald_stored_entries_skipped_total", "counter",
         "Stream entries read from history that Herald would not have stored (a payload over "
         "--max-message-bytes, a bad event name), passed over undelivered.",
         "", LOAD(stored_skipped)},
        {"herald_deliveries_total", "counter", "Events queued to clients.", "",
         svc_count_sum(s, 0)},
        {"herald_bytes_out_total", "counter",
         "Bytes written to clients: streams, long-poll and other answers, their heads.", "",
         svc_count_sum(s, 1)},
        {"herald_slow_disconnects_total", "counter",
         "Clients cut off for exceeding their queue bound.", "", LOAD(slow_disconnects)},
        {"herald_io_uring_sends_total", "counter",
         "Sends to clients made in io_uring submissions (--io-uring).", "", LOAD(sends_batched)},
        {"herald_io_uring_submissions_total", "counter",
         "io_uring submissions of those sends (one per fan-out or keepalive tick, or per 1,024).",
         "", LOAD(send_batches)},
        {"herald_io_uring_threads", "gauge",
         "Service threads sending through io_uring (0: --io-uring off, or the kernel refuses it).",
         "", LOAD(io_uring_threads)},
        {"herald_writes_delayed_total", "counter",
         "Client writes held back by --write-delay-ms, each taking what queued meanwhile.", "",
         LOAD(writes_delayed)},
        {"herald_history_reads", "gauge",
         "Paced history reads: in flight to Redis (at most 16 per service thread), and resuming "
         "subscriptions waiting for one (sampled every 250 ms).",
         "{state=\"inflight\"}", svc_sum(s, SUM_HREADS)},
        {"herald_history_reads", NULL, NULL, "{state=\"waiting\"}", svc_sum(s, SUM_HWAIT)},
        {"herald_history_requests_total", "counter",
         "Clients' history requests (a resume, a long-poll with a cursor, a further page): read "
         "from Redis, or answered without a read because the cursor is where the edge's live "
         "delivery of the topic stands.",
         "{source=\"redis\"}", LOAD(history_redis)},
        {"herald_history_requests_total", NULL, NULL, "{source=\"live\"}", LOAD(history_live)},
        {"herald_join_catchups_total", "counter",
         "Fresh subscriptions read from the time they asked because their service thread joined "
         "the topic after events of it went to the edge's other threads.",
         "", LOAD(join_catchups)},
        {"herald_lost_catchups_total", "counter",
         "Subscriptions that read their topic on from their position, keeping their "
         "connection, because an event of it was dropped on a full hand-off queue.",
         "", LOAD(lost_catchups)},
        {"herald_queue_drops_total", "counter",
         "Broker hand-offs dropped because a queue was full.", "",
         LOAD(queue_drops) + LOAD(req_drops)},
        {"herald_redis_data_lost_total", "counter",
         "Times Redis was found to have lost its data (a new dataset marker): subscriptions "
         "whose stream the edge had not read were sent a reset notice.",
         "", LOAD(redis_data_lost)},
        {"herald_rejected_total", "counter", "Requests refused, by reason.",
         "{reason=\"bad_request\"}", LOAD(bad_requests)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"max_connections\"}",
         LOAD(rejected_max_conn)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"per_ip\"}", LOAD(rejected_per_ip)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"too_large\"}", LOAD(rejected_too_large)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"publish_backlog\"}",
         LOAD(rejected_pub_backlog)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"unauthorized\"}", LOAD(rejected_auth)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"forbidden\"}", LOAD(rejected_forbidden)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"origin\"}", LOAD(rejected_origin)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"incomplete_request\"}",
         LOAD(rejected_incomplete)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"too_many_topics\"}",
         LOAD(rejected_topics)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"topic_rate\"}", LOAD(rejected_topic_rate)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"ticket_rate\"}",
         LOAD(rejected_ticket_rate)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"socket_limit\"}",
         LOAD(rejected_sock_limit)},
        {"herald_rejected_total", NULL, NULL, "{reason=\"evicted\"}", LOAD(evicted)},
        {"herald_sockets", "gauge", "Accepted sockets open (clients, requests, idle).", "",
         LOAD(sockets)},
        {"herald_socket_limit", "gauge", "Accepted sockets at most (from RLIMIT_NOFILE).", "",
         (unsigned long long)s->edge->sock_limit},
        {"herald_connection_limit", "gauge",
         "Clients at most: --max-connections, or less when RLIMIT_NOFILE is lower.", "",
         (unsigned long long)s->edge->conn_limit},
        {"herald_accept_pauses_total", "counter",
         "Times accept() ran out of descriptors and accepting paused for 100 ms.", "",
         LOAD(accept_pauses)},
        {"herald_redis_reconnects_total", "counter", "Redis connections lost.", "",
         LOAD(redis_reconnects)},
        {"herald_redis_library_lost_total", "counter",
         "Times the function library was found missing in a running Redis (FUNCTION FLUSH or "
         "DELETE) and a connection was made again to load it.",
         "", LOAD(library_lost)},
        {"herald_redis_setup_timeouts_total", "counter",
         "Redis connections made again because their set-up was not answered within "
         "--redis-timeout-ms.",
         "", LOAD(redis_setup_timeouts)},
        {"herald_redis_answer_timeouts_total", "counter",
         "Redis connections made again because they owed answers and read nothing for "
         "--redis-timeout-ms (Redis stalled, answers lost); what waited on them failed.",
         "", LOAD(redis_answer_timeouts)},
        {"herald_redis_master", "gauge", "The Redis master in use.", master_lbl, master[0] != 0},
        {"herald_redis_master_switches_total", "counter", "Redis master changes.", "", switches},
        {"herald_redis_cluster_primaries", "gauge",
         "Redis Cluster primaries in the slot map in use (0 outside cluster mode).", "",
         LOAD(cluster_primaries)},
        {"herald_redis_cluster_redirects_total", "counter",
         "Redis Cluster redirections followed, by kind.", "{kind=\"moved\"}", LOAD(cluster_moved)},
        {"herald_redis_cluster_redirects_total", NULL, NULL, "{kind=\"ask\"}", LOAD(cluster_ask)},
        {"herald_redis_cluster_map_refreshes_total", "counter",
         "Redis Cluster slot maps fetched (every 5 s, and after a redirection or a lost node).", "",
         LOAD(cluster_map_updates)},
        {"herald_redis_cluster_giveups_total", "counter",
         "Commands not placed on a Redis Cluster node before their deadline (failed).", "",
         LOAD(cluster_giveups)},
        {"herald_ready", "gauge", "1 when Redis is reachable and subscriptions are in place.", "",
         (unsigned long long)atomic_load(&st->ready)},
        {"herald_draining", "gauge", "1 after SIGTERM.", "",
         (unsigned long long)atomic_load(&st->draining)},
        {"herald_ingest_leader", "gauge", "1 while this edge holds the raw-ingest lease.", "",
         (unsigned long long)atomic_load(&st->leader)},
        {"herald_ingested_total", "counter", "Raw PUBLISHes stored by this edge.", "",
         LOAD(ingested)},
        {"herald_ingest_rejected_total", "counter", "Raw PUBLISHes refused (bad topic, too large).",
         "", LOAD(ingest_rejected)},
        {"herald_ingest_standby_overflow_total", "counter", "Raw messages a standby had to forget.",
         "", LOAD(ingest_standby_overflow)},
        {"herald_ingest_unled_total", "counter",
         "Raw messages a standby dropped unmatched: heard before the leader subscribed again, or "
         "kept across its own raw-subscription reconnection.",
         "", LOAD(ingest_unled)},
        {"herald_ingest_unknown_total", "counter",
         "Raw messages whose store was in flight when the Redis connection went (stored or not).",
         "", LOAD(ingest_unknown)},
        {"herald_published_total", "counter", "HTTP and WebSocket publishes stored.", "",
         LOAD(published)},
        {"herald_publish_errors_total", "counter",
         "HTTP and WebSocket publishes that failed, by reason: not_sent (Redis unavailable, "
         "not stored), outcome_unknown (sent, no answer came: may be stored), refused (bad "
         "input), redis_error (Redis refused it: OOM, READONLY, ...; not stored).",
         "{reason=\"not_sent\"}", LOAD(publish_err_not_sent)},
        {"herald_publish_errors_total", NULL, NULL, "{reason=\"outcome_unknown\"}",
         LOAD(publish_err_unknown)},
        {"herald_publish_errors_total", NULL, NULL, "{reason=\"refused\"}",
         LOAD(publish_err_refused)},
        {"herald_publish_errors_total", NULL, NULL, "{reason=\"redis_error\"}",
         LOAD(publish_err_redis)},
        {"herald_publish_duplicates_total", "counter",
         "HTTP and WebSocket publishes not stored because their idempotency key was stored "
         "for the topic within --idempotency-window (answered with the first one's ID).",
         "", LOAD(publish_duplicates)},
        {"herald_broker_queue_depth", "gauge", "Requests waiting for the broker thread.", "",
         hb_queue_len(s->edge->to_broker)},
        {"herald_service_queue_depth", "gauge", "Broker messages waiting for the service threads.",
         "", svc_sum(s, SUM_INQ)},
        {"herald_client_queue_frames", "gauge",
         "Frames queued for clients, all connections (sampled every 250 ms).", "",
         svc_sum(s, SUM_QUEUED)},
        {"herald_subscriptions", "gauge", "Client subscriptions (client x topic).", "",
         svc_sum(s, SUM_SUBS)},
        {"herald_topics", "gauge", "Topics this edge is subscribed to in Redis.", "", LOAD(topics)},
        {"herald_auth_expired_total", "counter", "Connections ended when their token expired.", "",
         LOAD(auth_expired)},
        {"herald_tickets_total", "counter",
         "Sign-in tickets: issued (POST /tickets), redeemed, refused (unknown, used, expired).",
         "{outcome=\"issued\"}", LOAD(tickets_issued)},
        {"herald_tickets_total", NULL, NULL, "{outcome=\"redeemed\"}", LOAD(tickets_redeemed)},
        {"herald_tickets_total", NULL, NULL, "{outcome=\"refused\"}", LOAD(tickets_refused)},
        {"herald_redis_up", "gauge",
         "1 while the edge's Redis connections are up (same as herald_ready, without the "
         "subscriptions condition).",
         "", (unsigned long long)atomic_load(&st->redis_up)},
    };
#undef LOAD
    if (statm) {
        if (fscanf(statm, "%ld %ld", &size_pages, &rss_pages) != 2)
            rss_pages = 0;
        fclose(statm);
    }
    f = open_memstream(&buf, &len);
    if (!f)
        return hb_http_respond_text(c, 503, "out of memory\n", 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (rows[i].type)
            hb_prom_family(f, rows[i].name, rows[i].type, rows[i].help);
        hb_prom_sample(f, rows[i].name, rows[i].labels, rows[i].v);
    }
    {
        hb_hist_t *dh[64], *ph[64];
        int nt = s->edge->nthreads > 64 ? 64 : s->edge->nthreads;
        for (int i = 0; i < nt; i++) {
            dh[i] = &s->edge->svcs[i]->deliv_hist;
            ph[i] = &s->edge->svcs[i]->pub_hist;
        }
        hb_hist_write(f, "herald_delivery_latency_seconds",
                      "From publish (the event's stream id time) to the write to the client.", dh,
                      nt);
        hb_hist_write(f, "herald_publish_latency_seconds",
                      "HTTP and WebSocket publish: request to Redis' answer.", ph, nt);
    }
    {
        long long expect = atomic_load(&st->canary_expect_us);
        if (expect > 0) { /* a canary runs */
            double age = hb_now() - (double)expect / 1e6;
            hb_prom_family(f, "herald_canary_age_seconds", "gauge",
                           "Seconds since this edge last received its own heartbeat through "
                           "Redis pub/sub (or since it began to expect one).");
            fprintf(f, "herald_canary_age_seconds %.3f\n", age < 0 ? 0.0 : age);
        }
        hb_prom_family(f, "herald_library_mismatch", "gauge",
                       "1 when the function library in Redis has other settings or a newer "
                       "version than this edge's.");
        hb_prom_sample(f, "herald_library_mismatch", "",
                       (unsigned long long)atomic_load(&st->library_mismatch));
    }
    {
        struct rlimit rl;
        long long fds = open_fds();
        if (fds >= 0) {
            hb_prom_family(f, "process_open_fds", "gauge", "Open file descriptors.");
            hb_prom_sample(f, "process_open_fds", "", (unsigned long long)fds);
        }
        if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur != RLIM_INFINITY) {
            hb_prom_family(f, "process_max_fds", "gauge",
                           "Maximum number of open file descriptors.");
            hb_prom_sample(f, "process_max_fds", "", (unsigned long long)rl.rlim_cur);
        }
    }
    hb_prom_family(f, "process_resident_memory_bytes", "gauge", "Resident memory.");
    hb_prom_sample(f, "process_resident_memory_bytes", "", (unsigned long long)rss_pages * 4096);
    fclose(f);
    rc = hb_http_respond(c, 200, "text/plain; version=0.0.4", buf, len, 0);
    free(buf);
    return rc;
}
