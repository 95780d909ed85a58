/*
 * The listening side of a service thread: its own SO_REUSEPORT listening socket (lws 4.1
 * cannot share a port between contexts; admit.c accepts from it), the admission of a new
 * subscriber connection, and TLS: the options each thread's lws context is made with and the
 * SIGHUP certificate reload. Service thread, except hb_listener_socket() and
 * hb_listener_tls_options() (main thread, from hb_svc_new()).
 */
#include "listener.h"
#include "admit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hb_err.h"
#include "hb_log.h"

#define MOD "service" /* the log lines keep the module they had in service.c */

/* ---- the listening socket ---- */

int hb_listener_socket(hb_edge_t *edge)
{
    const hb_cfg_t *cfg = &edge->cfg;
    int v6 = strchr(cfg->listen_host, ':') != NULL, one = 1;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (fd < 0) {
        hb_log_error(MOD, "cannot listen", "{s:s}", "err", strerror(errno));
        return HB_EIO;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    memset(&ss, 0, sizeof(ss));
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)cfg->listen_port);
        inet_pton(AF_INET6, cfg->listen_host, &a->sin6_addr);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)cfg->listen_port);
        inet_pton(AF_INET, cfg->listen_host, &a->sin_addr);
        sl = sizeof(*a);
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4096) != 0) {
        hb_log_error(MOD, "cannot listen", "{s:s}", "err", strerror(errno));
        close(fd);
        return HB_EIO;
    }
    return fd;
}

/* ---- TLS ---- */

/* Mozilla's "intermediate" TLS 1.2 suites (all forward secret, AEAD) but its two DHE ones,
 * which need DH parameters the edge does not set (they were listed and never negotiated);
 * TLS 1.3 keeps OpenSSL's defaults. */
#define HB_TLS12_CIPHERS                                                                           \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/*
 * TLS on the edge's own vhost (--tls-cert/--tls-key, checked by main before listening):
 * TLS 1.2 or newer, no compression, no renegotiation, HTTP/1.1 only through ALPN (SSE,
 * long-poll and the WebSocket upgrade are served over HTTP/1.1). Each service thread's context
 * loads the pair into its own SSL_CTX.
 */
void hb_listener_tls_options(hb_svc_t *s, struct lws_context_creation_info *info)
{
    s->tls = 1;
    info->options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    info->ssl_cert_filepath = s->edge->cfg.tls_cert;
    info->ssl_private_key_filepath = s->edge->cfg.tls_key;
    info->ssl_cipher_list = HB_TLS12_CIPHERS;
    info->ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                            SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                            SSL_OP_CIPHER_SERVER_PREFERENCE;
    info->alpn = "http/1.1";
    /* The edge makes no TLS connections. Without a client context of ours, lws would build
     * one per context and load the system's CA store into it (and not free all of it). */
    s->tls_client_ctx = SSL_CTX_new(TLS_client_method());
    info->provided_client_ssl_ctx = s->tls_client_ctx;
}

/* SIGHUP (main.c checked the pair): swap it into this thread's SSL_CTX for new handshakes. */
void hb_listener_tls_reload(hb_svc_t *s)
{
    const hb_cfg_t *cfg = &s->edge->cfg;
    if (s->tls)
        lws_tls_cert_updated(s->ctx, cfg->tls_cert, cfg->tls_key, NULL, 0, NULL, 0);
}

/* ---- admission (admit.c counts the sockets) ---- */

/* Clients counted over every service thread (relaxed atomic loads). Any service thread. */
static size_t total_clients(hb_svc_t *s)
{
    size_t total = 0;
    for (int i = 0; i < s->edge->nthreads; i++)
        total += hb_svc_clients(s->edge->svcs[i]);
    return total;
}

int hb_svc_admit(hb_svc_t *s, struct lws *wsi)
{
    if (s->draining)
        return 0;
    if (total_clients(s) >= (size_t)s->edge->conn_limit) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_max_conn, 1, memory_order_relaxed);
        return 0;
    }
    if (hb_admit_ip_over(s->admit, wsi)) {
        atomic_fetch_add_explicit(&s->edge->stats.rejected_per_ip, 1, memory_order_relaxed);
        hb_log_ratelimited("per-ip", 1000, HB_LOG_WARN, MOD,
                           "connection refused: per-address limit", NULL);
        return 0;
    }
    return 1;
}
