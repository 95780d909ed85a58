/*
 * herald: the edge. main() reads the configuration, creates the service threads' lws contexts
 * (all listening on one port) and the broker, then runs the broker loop on the main thread
 * until a SIGTERM/SIGINT drain completes.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "edge.h"
#include "hb_err.h"
#include "hb_fdlim.h"
#include "hb_log.h"
#include "hb_mem.h"
#include "herald_version.h"
#include "watchdog.h"

/* Fails fast, before any thread starts, when the port is taken (even by a SO_REUSEPORT peer):
 * 0, or HB_EINVAL (not an IP address) / HB_EIO (cannot bind) with the line in err. */
static int check_port_free(const hb_cfg_t *cfg, char *err, size_t errlen)
{
    struct sockaddr_in6 a6;
    struct sockaddr_in a4;
    int v6 = strchr(cfg->listen_host, ':') != NULL;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int one = 1, rc;
    if (fd < 0)
        return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (v6) {
        memset(&a6, 0, sizeof(a6));
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons((uint16_t)cfg->listen_port);
        if (inet_pton(AF_INET6, cfg->listen_host, &a6.sin6_addr) != 1) {
            close(fd);
            snprintf(err, errlen, "invalid --listen address '%s'", cfg->listen_host);
            return HB_EINVAL;
        }
        rc = bind(fd, (struct sockaddr *)&a6, sizeof(a6));
    } else {
        memset(&a4, 0, sizeof(a4));
        a4.sin_family = AF_INET;
        a4.sin_port = htons((uint16_t)cfg->listen_port);
        if (inet_pton(AF_INET, cfg->listen_host, &a4.sin_addr) != 1) {
            close(fd);
            snprintf(err, errlen, "invalid --listen address '%s' (use an IP address)",
                     cfg->listen_host);
            return HB_EINVAL;
        }
        rc = bind(fd, (struct sockaddr *)&a4, sizeof(a4));
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->listen_host, cfg->listen_port,
                 strerror(errno));
        close(fd);
        return HB_EIO;
    }
    close(fd);
    return 0;
}

/* The last OpenSSL error as text ("not PEM data" when OpenSSL gave none). */
static const char *ossl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (!e)
        return "not PEM data";
    ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

/* Never prompt for a passphrase: an encrypted key is refused with a clear message. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/*
 * Fails before listening when --tls-cert/--tls-key are unusable: one without the other, a file
 * that cannot be read, no PEM certificate or key in it, an encrypted key, or a key that does
 * not belong to the certificate. lws would otherwise only fail inside lws_create_context().
 * 0, or HB_EIO (a file cannot be read) / HB_EINVAL (unusable) with the line in err.
 */
static int check_tls(const hb_cfg_t *cfg, char *err, size_t errlen)
{
    const char *files[2] = {cfg->tls_cert, cfg->tls_key};
    const char *flags[2] = {"--tls-cert", "--tls-key"};
    char why[120];
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    FILE *f;
    int rc = HB_EINVAL; /* unusable certificate or key */

    for (int i = 0; i < 2; i++) {
        if (files[i][0] && access(files[i], R_OK) != 0) {
            snprintf(err, errlen, "cannot read %s file '%.200s': %s", flags[i], files[i],
                     strerror(errno));
            return HB_EIO;
        }
    }
    if (!cfg->tls_cert[0] && !cfg->tls_key[0])
        return 0;
    if (!cfg->tls_cert[0] || !cfg->tls_key[0]) {
        snprintf(err, errlen, "%s is given without %s: TLS needs both",
                 cfg->tls_cert[0] ? "--tls-cert" : "--tls-key",
                 cfg->tls_cert[0] ? "--tls-key" : "--tls-cert");
        return HB_EINVAL;
    }
    ERR_clear_error();
    if (!(f = fopen(cfg->tls_cert, "r"))) {
        snprintf(err, errlen, "cannot read --tls-cert file '%.200s': %s", cfg->tls_cert,
                 strerror(errno));
        return HB_EIO;
    }
    cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!cert) {
        snprintf(err, errlen, "--tls-cert file '%.200s' holds no PEM certificate: %.100s",
                 cfg->tls_cert, ossl_reason(why, sizeof(why)));
        goto out;
    }
    if (!(f = fopen(cfg->tls_key, "r"))) {
        snprintf(err, errlen, "cannot read --tls-key file '%.200s': %s", cfg->tls_key,
                 strerror(errno));
        goto out;
    }
    key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (!key) {
        snprintf(err, errlen,
                 "--tls-key file '%.200s' holds no usable PEM private key (encrypted keys are "
                 "not supported): %.100s",
                 cfg->tls_key, ossl_reason(why, sizeof(why)));
        goto out;
    }
    if (X509_check_private_key(cert, key) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "--tls-key '%.200s' does not match the certificate in --tls-cert",
                 cfg->tls_key);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        hb_log_warn("main", "the --tls-cert certificate has expired: clients will refuse it",
                    "{s:s}", "file", cfg->tls_cert);
    rc = 0;
out:
    X509_free(cert);
    EVP_PKEY_free(key);
    return rc;
}

/*
 * SIGHUP re-reads --tls-cert/--tls-key (a renewed certificate without a restart). The signal is
 * blocked in every thread and taken by a thread of its own, so the files are read and checked
 * off the event loops; each service thread then loads the pair into its own SSL_CTX. A pair
 * that fails the start-up checks is refused and the running certificate stays.
 */
typedef struct reloader {
    pthread_t thread;
    atomic_int stop;
    hb_edge_t *edge;
} reloader_t;

static void *reload_main(void *arg)
{
    reloader_t *r = arg;
    const hb_cfg_t *cfg = &r->edge->cfg;
    sigset_t hup;
    char err[512];
    int sig;

    sigemptyset(&hup);
    sigaddset(&hup, SIGHUP);
    for (;;) {
        if (sigwait(&hup, &sig) != 0)
            continue;
        if (atomic_load(&r->stop))
            break;
        if (!cfg->tls_cert[0]) {
            hb_log_info("main", "SIGHUP: nothing to reload (no --tls-cert)", NULL);
            continue;
        }
        if (check_tls(cfg, err, sizeof(err))) {
            hb_log_error("main", "SIGHUP: TLS reload refused, the running certificate stays",
                         "{s:s}", "err", err);
            continue;
        }
        for (int i = 0; i < r->edge->nthreads; i++)
            hb_svc_tls_reload(r->edge->svcs[i]);
        hb_log_info("main", "SIGHUP: reloading the TLS certificate", "{s:s,s:s}", "cert",
                    cfg->tls_cert, "key", cfg->tls_key);
    }
    return NULL;
}

/*
 * Raises the soft RLIMIT_NOFILE to what --max-connections needs (hb_fdlim_wanted()), within
 * the hard limit, and derives the socket and connection limits from it (hb_fdlim.h): past them a
 * connection is refused or an idle one evicted, so accept() never fails with EMFILE because of
 * clients. A soft limit above both the need and 65536 is lowered: lws sizes tables by it.
 */
static void fd_limits(hb_edge_t *edge)
{
    struct rlimit rl;
    hb_fdlim_t lim;
    long nofile = 1024, want = hb_fdlim_wanted(edge->cfg.threads, edge->cfg.max_connections);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        long cur = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > HB_FDLIM_NOFILE_MAX
                       ? HB_FDLIM_NOFILE_MAX
                       : (long)rl.rlim_cur;
        long max = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > HB_FDLIM_NOFILE_MAX
                       ? HB_FDLIM_NOFILE_MAX
                       : (long)rl.rlim_max;
        /* the current limit stays unless it is too low (raised up to the hard limit) or huge */
        nofile = cur < 65536 ? cur : 65536;
        if (nofile < want)
            nofile = want;
        if (nofile > max)
            nofile = max;
        rl.rlim_cur = (rlim_t)nofile;
        if (nofile != cur && setrlimit(RLIMIT_NOFILE, &rl) != 0)
            nofile = cur;
    }
    hb_fdlim_compute(nofile, edge->cfg.threads, edge->cfg.max_connections, &lim);
    edge->nofile = lim.nofile;
    edge->sock_limit = lim.sockets;
    edge->conn_limit = lim.connections;
    hb_log_info("main", "limits", "{s:I,s:I,s:I,s:I,s:I}", "nofile", (json_int_t)lim.nofile,
                "fd_reserve", (json_int_t)lim.reserve, "socket_limit", (json_int_t)lim.sockets,
                "connection_limit", (json_int_t)lim.connections, "max_connections",
                (json_int_t)edge->cfg.max_connections);
    if (lim.connections < edge->cfg.max_connections)
        hb_log_warn("main",
                    "--max-connections is above what RLIMIT_NOFILE allows: raise the hard "
                    "descriptor limit (ulimit -Hn, LimitNOFILE=) to serve that many",
                    "{s:I,s:I,s:I}", "max_connections", (json_int_t)edge->cfg.max_connections,
                    "connection_limit", (json_int_t)lim.connections, "nofile_needed",
                    (json_int_t)want);
}

int main(int argc, char **argv)
{
    static hb_edge_t edge;
    static reloader_t reloader;
    char err[512];
    sigset_t block, old;
    int rc;
    struct timespec ts;
    struct stat st;

    for (int a = 1; a < argc; a++)
        if (!strcmp(argv[a], "--version")) {
            printf("herald %s%s%s%s\n", HERALD_VERSION, HERALD_REVISION[0] ? " (git " : "",
                   HERALD_REVISION, HERALD_REVISION[0] ? ")" : "");
            return 0;
        }
    rc = hb_cfg_load(&edge.cfg, argc, argv, stdout, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc != 0) {
        fprintf(stderr, "herald: %s\n", err);
        return 2;
    }
    hb_log_init((hb_log_level_t)edge.cfg.log_level, edge.cfg.node_id, 2);
    if (check_tls(&edge.cfg, err, sizeof(err)) || check_port_free(&edge.cfg, err, sizeof(err))) {
        fprintf(stderr, "herald: %s\n", err);
        return 2;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    srandom((unsigned)(ts.tv_nsec ^ ts.tv_sec ^ getpid()));
    signal(SIGPIPE, SIG_IGN);
    fd_limits(&edge);
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "herald: libevent without pthreads support\n");
        return 1;
    }

    edge.nthreads = edge.cfg.threads;
    edge.to_broker = hb_queue_new(65536);
    edge.svcs = hb_xcalloc((size_t)edge.nthreads, sizeof(*edge.svcs));
    edge.broker = hb_broker_new(&edge);
    if (!edge.broker) {
        fprintf(stderr, "herald: cannot create the event loop\n");
        return 1;
    }
    for (int i = 0; i < edge.nthreads; i++) {
        edge.svcs[i] = hb_svc_new(&edge, i);
        if (!edge.svcs[i]) {
            if (edge.cfg.tls_cert[0])
                fprintf(stderr,
                        "herald: cannot listen with TLS on %s:%d (see the log line "
                        "above)\n",
                        edge.cfg.listen_host, edge.cfg.listen_port);
            else
                fprintf(stderr, "herald: cannot listen on %s:%d\n", edge.cfg.listen_host,
                        edge.cfg.listen_port);
            return 2;
        }
    }

    /* Signals go to the broker thread only: the service threads start with them blocked. */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (int i = 0; i < edge.nthreads; i++)
        if (hb_svc_start(edge.svcs[i]) != 0) {
            fprintf(stderr, "herald: cannot start a service thread\n");
            return 1;
        }
    if (hb_watchdog_start(&edge) != 0) {
        fprintf(stderr, "herald: cannot start the drain watchdog thread\n");
        return 1;
    }
    /* SIGHUP stays blocked here too: only the reload thread takes it */
    sigdelset(&old, SIGHUP);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    reloader.edge = &edge;
    if (pthread_create(&reloader.thread, NULL, reload_main, &reloader) != 0) {
        fprintf(stderr, "herald: cannot start the SIGHUP thread\n");
        return 1;
    }
    pthread_setname_np(reloader.thread, "hb-sighup");

    if (!edge.cfg.jwt_secret_len)
        hb_log_warn("main", "no --jwt-secret: any client may subscribe to any topic", NULL);
    else if (edge.cfg.allow_anonymous)
        hb_log_warn("main", "--allow-anonymous: clients without a token may subscribe", NULL);
    if (edge.cfg.config_secret && stat(edge.cfg.config, &st) == 0 && (st.st_mode & S_IROTH))
        hb_log_warn("main",
                    "the --config file holds a secret and every user may read it "
                    "(chmod 600)",
                    "{s:s}", "file", edge.cfg.config);
    hb_log_info("main", "listening", "{s:s,s:i,s:i,s:s,s:b,s:b,s:s}", "host", edge.cfg.listen_host,
                "port", edge.cfg.listen_port, "threads", edge.nthreads, "redis", edge.cfg.redis_url,
                "ingest", edge.cfg.ingest, "tls", edge.cfg.tls_cert[0] != 0, "config",
                edge.cfg.config);
    hb_broker_run(edge.broker);
    atomic_store(&reloader.stop, 1);
    pthread_kill(reloader.thread, SIGHUP);
    pthread_join(reloader.thread, NULL);

    /* Stop the service threads, then free the broker (its pending Redis callbacks still push
     * into the service queues), and only then free the service threads. */
    for (int i = 0; i < edge.nthreads; i++)
        hb_svc_join(edge.svcs[i]);
    hb_broker_free(edge.broker);
    edge.broker = NULL; /* the clients closed by hb_svc_free() no longer tell it anything */
    for (int i = 0; i < edge.nthreads; i++)
        hb_svc_free(edge.svcs[i]);
    {
        void *items[256];
        size_t n;
        while ((n = hb_queue_pop(edge.to_broker, items, 256)) > 0)
            for (size_t i = 0; i < n; i++)
                free(items[i]);
    }
    hb_queue_free(edge.to_broker);
    free(edge.svcs);
    hb_log_info("main", "stopped", NULL);
    return 0;
}
