/*
 * floorsrv: the least a fan-out server can do, to measure what latency the generator, Redis and
 * the kernel leave on this machine (the floor under any push server's figures).
 *
 * One thread, one epoll loop: SUBSCRIBE to one Redis channel; accept HTTP connections, answer
 * every request with a plain (not chunked) text/event-stream; for each Redis message build the
 * frame "data: <payload>\n\n" once and send(2) it to every client at once, in a loop. No
 * queue, no history, no ids: a client whose socket does not take a whole frame is dropped and
 * counted (stderr on exit). Not part of Herald; built with -DHERALD_BENCH=ON.
 *
 * --mode ws: every client is a WebSocket (the 101 answer with a real Sec-WebSocket-Accept and
 * subprotocol herald.v1; each client message is answered with {"type":"subscribed",...}, what
 * loadgen waits for), and each Redis message becomes one pre-encoded text frame carrying
 * Herald's event object {"type":"event","topic":...,"id":...,"data":...}, sent once per client
 * (one send(2) per delivery, no coalescing): the floor under a WebSocket fan-out.
 *
 *     floorsrv --listen PORT --redis PORT --channel NAME [--mode sse|ws]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#define MAXC 65536
#define RBUF (1 << 20)

static int clients[MAXC], nclients;
static unsigned char hdr_done[MAXC * 2]; /* by fd: 1 once the request was answered */
static unsigned long long dropped, frames, sends;
static volatile sig_atomic_t stop;
static int ws_mode;       /* --mode ws */
static const char *topic; /* the event objects' topic (--channel) */

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
        perror("floorsrv: listen");
        exit(2);
    }
    return fd;
}

static int redis_sub(int port, const char *chan)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char cmd[512];
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        perror("floorsrv: redis");
        exit(2);
    }
    int n =
        snprintf(cmd, sizeof(cmd), "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(chan), chan);
    if (write(fd, cmd, (size_t)n) != n)
        exit(2);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Reads "$<len>\r\n<bytes>\r\n" at *p; NULL when incomplete. */
static const char *bulk(const char *p, const char *e, const char **s, size_t *len)
{
    const char *nl;
    if (p >= e || *p != '$' || !(nl = memchr(p, '\n', (size_t)(e - p))))
        return NULL;
    *len = strtoul(p + 1, NULL, 10);
    *s = nl + 1;
    if ((size_t)(e - *s) < *len + 2)
        return NULL;
    return *s + *len + 2;
}

/* A server text frame (unmasked, FIN) of body (b, n) at out; returns its length. */
static size_t ws_frame(unsigned char *out, const char *b, size_t n)
{
    size_t h = 0;
    out[h++] = 0x81;
    if (n < 126) {
        out[h++] = (unsigned char)n;
    } else if (n < 65536) {
        out[h++] = 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    memcpy(out + h, b, n);
    return h + n;
}

static void fan_out(const char *payload, size_t n)
{
    static char frame[2 * RBUF + 256];
    static char body[2 * RBUF + 128];
    size_t fl = 0;
    if (ws_mode) { /* Herald's event object, JSON-escaped only as far as " and \ go */
        size_t bl = (size_t)snprintf(body, 128,
                                     "{\"type\":\"event\",\"topic\":\"%s\",\"id\":\"%llu\","
                                     "\"data\":\"",
                                     topic, frames + 1);
        for (size_t i = 0; i < n; i++) {
            if (payload[i] == '"' || payload[i] == '\\')
                body[bl++] = '\\';
            body[bl++] = payload[i];
        }
        body[bl++] = '"';
        body[bl++] = '}';
        fl = ws_frame((unsigned char *)frame, body, bl);
    } else {
        memcpy(frame, "data: ", 6);
        memcpy(frame + 6, payload, n);
        fl = 6 + n;
        frame[fl++] = '\n';
        frame[fl++] = '\n';
    }
    frames++;
    for (int i = 0; i < nclients; i++) {
        ssize_t w = send(clients[i], frame, fl, MSG_DONTWAIT | MSG_NOSIGNAL);
        sends++;
        if (w != (ssize_t)fl) {
            dropped++;
            close(clients[i]);
            clients[i--] = clients[--nclients];
        }
    }
}

/* Parses whole pub/sub replies from buf; returns the bytes used. */
static size_t redis_parse(const char *buf, size_t len)
{
    const char *p = buf, *e = buf + len;
    for (;;) {
        const char *nl, *q, *s[3];
        size_t l[3];
        long cnt;
        if (p >= e || !(nl = memchr(p, '\n', (size_t)(e - p))))
            break;
        if (*p != '*') { /* not expected on a subscriber connection */
            p = nl + 1;
            continue;
        }
        cnt = strtol(p + 1, NULL, 10);
        q = nl + 1;
        if (cnt != 3)
            break;
        if (!(q = bulk(q, e, &s[0], &l[0])) || !(q = bulk(q, e, &s[1], &l[1])))
            break;
        if (q < e && *q == ':') { /* subscribe confirmation: integer */
            if (!(nl = memchr(q, '\n', (size_t)(e - q))))
                break;
            p = nl + 1;
            continue;
        }
        if (!(q = bulk(q, e, &s[2], &l[2])))
            break;
        if (l[0] == 7 && !memcmp(s[0], "message", 7))
            fan_out(s[2], l[2]);
        p = q;
    }
    return (size_t)(p - buf);
}

/* The 101 answer to a WebSocket handshake in (b, r); 0, or -1 without a Sec-WebSocket-Key. */
static int ws_accept(int fd, const char *b, size_t r)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[SHA_DIGEST_LENGTH], acc[64];
    char key[128], resp[512];
    const char *k = memmem(b, r, "Sec-WebSocket-Key:", 18);
    size_t kl = 0;
    if (!k)
        k = memmem(b, r, "sec-websocket-key:", 18);
    if (!k)
        return -1;
    k += 18;
    while (k < b + r && *k == ' ')
        k++;
    while (k + kl < b + r && k[kl] != '\r' && kl < 60)
        kl++;
    memcpy(key, k, kl);
    memcpy(key + kl, guid, sizeof(guid) - 1);
    SHA1((unsigned char *)key, kl + sizeof(guid) - 1, md);
    EVP_EncodeBlock(acc, md, SHA_DIGEST_LENGTH);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: herald.v1\r\n\r\n",
                     (char *)acc);
    return write(fd, resp, (size_t)n) == n ? 0 : -1;
}

/* Input from a WebSocket client (its subscribe message, pongs): a text frame is answered
 * with the subscribed reply; a close frame ends it (-1). */
static int ws_input(int fd, const unsigned char *b, size_t r)
{
    char body[160];
    unsigned char out[200];
    if (r < 2)
        return 0;
    if ((b[0] & 0x0f) == 8)
        return -1;
    if ((b[0] & 0x0f) == 1) {
        int n = snprintf(body, sizeof(body), "{\"type\":\"subscribed\",\"topic\":\"%s\"}", topic);
        size_t fl = ws_frame(out, body, (size_t)n);
        if (write(fd, out, fl) != (ssize_t)fl)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int lport = 0, rport = 0, ep, lfd, rfd, one = 1;
    const char *chan = "bench.0";
    static char rbuf[RBUF];
    size_t rlen = 0;
    struct rlimit rl = {MAXC, MAXC};
    struct epoll_event ev, evs[256];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen"))
            lport = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--redis"))
            rport = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--channel"))
            chan = argv[i + 1];
        else if (!strcmp(argv[i], "--mode"))
            ws_mode = !strcmp(argv[i + 1], "ws");
    }
    topic = chan;
    if (!lport || !rport) {
        fprintf(stderr,
                "usage: floorsrv --listen PORT --redis PORT [--channel NAME] [--mode sse|ws]\n");
        return 2;
    }
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(0);
    lfd = listen_on(lport);
    rfd = redis_sub(rport, chan);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = rfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, rfd, &ev);
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= MAXC * 2) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    hdr_done[c] = 0;
                    ev.events = EPOLLIN;
                    ev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
            } else if (fd == rfd) {
                ssize_t r;
                while ((r = read(rfd, rbuf + rlen, sizeof(rbuf) - rlen)) > 0) {
                    size_t used;
                    rlen += (size_t)r;
                    used = redis_parse(rbuf, rlen);
                    memmove(rbuf, rbuf + used, rlen - used);
                    rlen -= used;
                }
                if (r == 0) {
                    fprintf(stderr, "floorsrv: Redis closed the connection\n");
                    stop = 1;
                }
            } else {
                char b[4096];
                ssize_t r = read(fd, b, sizeof(b));
                if (r > 0 && hdr_done[fd] && ws_mode &&
                    ws_input(fd, (unsigned char *)b, (size_t)r) == 0)
                    continue;
                if (r <= 0 || hdr_done[fd]) { /* gone, or input after the request: done */
                    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    for (int k = 0; k < nclients; k++)
                        if (clients[k] == fd) {
                            clients[k] = clients[--nclients];
                            break;
                        }
                    close(fd);
                    continue;
                }
                if (memmem(b, (size_t)r, "\r\n\r\n", 4) && nclients < MAXC) {
                    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
                                             "\r\nCache-Control: no-cache\r\n\r\n";
                    if (ws_mode ? ws_accept(fd, b, (size_t)r) == 0
                                : write(fd, ok, sizeof(ok) - 1) == (ssize_t)sizeof(ok) - 1) {
                        hdr_done[fd] = 1;
                        clients[nclients++] = fd;
                    }
                }
            }
        }
    }
    fprintf(stderr, "floorsrv: frames %llu, sends %llu, clients dropped %llu\n", frames, sends,
            dropped);
    return 0;
}
