#ifndef HERALD_EDGE_LISTENER_H
#define HERALD_EDGE_LISTENER_H

/*
 * listener.c: a service thread's listening socket, its TLS options and the SIGHUP reload.
 * Private to the service threads (service.c); hb_svc_admit() is declared in service.h, where
 * the transports find it.
 */
#include <libwebsockets.h>

#include "service.h"

/**
 * hb_listener_socket() - a new non-blocking TCP socket bound with SO_REUSEPORT (and
 * SO_REUSEADDR) to --listen-host:--listen-port and listening (backlog 4096); each service
 * thread owns one and adopts it into its lws context, the kernel spreads connections over the
 * threads. Main thread (hb_svc_new()). The descriptor (owned by the caller, closed by
 * hb_svc_free() or by lws once adopted), or HB_EIO with an error logged ("cannot listen").
 */
int hb_listener_socket(hb_edge_t *edge);

/**
 * hb_listener_tls_options() - set @info up for --tls-cert/--tls-key (TLS 1.2+, Mozilla
 * intermediate suites, no compression or renegotiation, ALPN http/1.1) and mark @s as TLS.
 * Makes @s->tls_client_ctx (owned by @s, freed by hb_svc_free(); NULL if OpenSSL could not
 * make one, and lws then makes its own). Main thread, before lws_create_context(); no failure
 * return (a bad pair makes lws_create_context() fail).
 */
void hb_listener_tls_options(hb_svc_t *s, struct lws_context_creation_info *info);

/**
 * hb_listener_tls_reload() - load --tls-cert/--tls-key again into @s's SSL_CTX for new
 * handshakes (a no-op without TLS). Service thread of @s, when hb_svc_tls_reload() asked;
 * main.c checked the pair first. A failure is lws' to log; the old pair stays.
 */
void hb_listener_tls_reload(hb_svc_t *s);

#endif
