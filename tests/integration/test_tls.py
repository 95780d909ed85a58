"""TLS on the edge itself (--tls-cert/--tls-key): SSE, WebSocket (wss://), long-poll, HTTP
publish and /metrics over https with a certificate the client verifies; plain HTTP to the TLS
port is refused without hurting anyone else; unusable certificate or key files stop the edge
with exit 2 and a message naming the flag, before it listens."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import warnings

import harness
from harness import (HERALD_BIN, SCALE, HeraldTestCase, free_port, port_open, split_cursor,
                     wait_live_subscribed)
from wsclient import WSClient, request

KEY = "tls-publish-key"


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=60 * SCALE)


def client_context(cafile):
    """A client that verifies the edge's self-signed certificate for "localhost"."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    ctx.set_alpn_protocols(["h2", "http/1.1"])  # the edge must pick HTTP/1.1
    return ctx


def https(port, ctx, path, method="GET", body=None, headers=None, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SCALE)
    try:
        # connected by hand so the certificate is verified as "localhost"
        conn.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port),
                                                             timeout=timeout * SCALE),
                                    server_hostname="localhost")
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


class TLSHerald(harness.Herald):
    """An edge started with --tls-cert/--tls-key: readiness is asked over https."""

    ctx = None

    def readyz(self):
        return https(self.port, self.ctx, "/readyz", timeout=2.0)[0]


class TLS(HeraldTestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="herald-tls-")
        d = cls.dir
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out",
                "cert.pem", "-days", "2", "-subj", "/CN=localhost", "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=d)
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
                "other.pem", cwd=d)
        openssl("pkey", "-in", "key.pem", "-aes256", "-passout", "pass:secret", "-out",
                "encrypted.pem", cwd=d)
        with open(os.path.join(d, "garbage.pem"), "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n")
        cls.cert = os.path.join(d, "cert.pem")
        cls.key = os.path.join(d, "key.pem")
        cls.ctx = client_context(cls.cert)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tls_edge(self, srv, node_id="tls-1", args=()):
        TLSHerald.ctx = self.ctx
        h = TLSHerald(srv.port, node_id, ["--tls-cert", self.cert, "--tls-key", self.key,
                                          "--publish-key", KEY] + list(args))
        self._heralds.append(h)
        return h

    def publish(self, h, topic, payload, ctx=None):
        status, _, body = https(h.port, ctx or self.ctx, "/publish/" + topic, "POST",
                                payload.encode(), {"Authorization": "Bearer " + KEY})
        self.assertEqual(status, 200, body)
        return json.loads(body)["id"]

    def tls_sse(self, h, path):
        c = harness.SSEClient(h.port, path, ssl_context=self.ctx)
        self._closers.append(c)
        return c

    def test_every_transport_over_tls(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.tls_edge(srv)
        self.publish(h, "secure", "seed")  # so a long-poll has a cursor to wait after

        sse = self.tls_sse(h, "/events/secure")
        self.assertEqual(sse.status, 200)
        self.assertEqual(sse.sock.version() in ("TLSv1.2", "TLSv1.3"), True, sse.sock.version())
        self.assertEqual(sse.sock.selected_alpn_protocol(), "http/1.1")
        sse.wait_retry()
        ws = WSClient(h.port, ssl_context=self.ctx)
        self._closers.append(ws)
        self.assertEqual(request(ws, {"type": "subscribe", "topic": "secure", "id": 1}),
                         {"type": "subscribed", "topic": "secure", "id": 1})
        status, _, body = https(h.port, self.ctx, "/poll/secure?timeout=0")
        self.assertEqual(status, 200, body)
        since = json.loads(body)["next"]
        self.assertTrue(since, body)
        wait_live_subscribed(r, "secure", 1)

        sid = self.publish(h, "secure", "over tls")
        e = sse.next_event()
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "over tls"))
        _, m = ws.recv_until(lambda x: x.get("type") == "event")
        self.assertEqual((m["topic"], split_cursor(m["id"])[0], m["data"]), ("secure", sid, "over tls"))
        status, _, body = https(h.port, self.ctx, "/poll/secure?since=%s&timeout=10" % since,
                                timeout=20)
        self.assertEqual(status, 200, body)
        evs = json.loads(body)["events"]
        self.assertEqual([(split_cursor(x["id"])[0], x["data"]) for x in evs], [(sid, "over tls")])

        status, _, body = https(h.port, self.ctx, "/metrics")
        self.assertEqual(status, 200)
        self.assertIn(b"herald_connections", body)

        # a client that does not trust the certificate is refused by its own verification
        with self.assertRaises(ssl.SSLCertVerificationError):
            https(h.port, ssl.create_default_context(), "/healthz")
        # an old protocol version is refused by the edge
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.check_hostname = False
        old.verify_mode = ssl.CERT_NONE
        try:
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
            old.set_ciphers("ALL:@SECLEVEL=0")
        except (ValueError, ssl.SSLError) as exc:
            harness.log("this Python cannot offer TLS 1.1 (%s): version check skipped" % exc)
        else:
            with self.assertRaises((ssl.SSLError, ConnectionError)) as cm:
                https(h.port, old, "/healthz")
            # the edge's alert, not a client that could not offer the version
            self.assertIn("ALERT_PROTOCOL_VERSION", str(cm.exception))
        self.assertTrue(h.alive())

    def test_tls13_key_update_keeps_an_sse_stream(self):
        """A TLS 1.3 KeyUpdate (every peer must accept one, RFC 8446 4.6.3) from an SSE client,
        with and without update_requested: its bytes on the socket are a TLS record, not HTTP
        input; the stream stays open and gets the next event (it was closed as "unexpected
        input on an SSE stream")."""
        import select
        srv = self.redis()
        r = self.client(srv)
        h = self.tls_edge(srv)
        p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % h.port,
                              "-tls1_3"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = bytearray()

        def read_until(needle, timeout):
            end = time.monotonic() + timeout * SCALE
            while needle not in out and time.monotonic() < end:
                ready, _, _ = select.select([p.stdout], [], [], 0.1)
                if ready:
                    chunk = os.read(p.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    out.extend(chunk)
            return needle in out

        try:
            p.stdin.write(b"GET /events/ku HTTP/1.1\r\nHost: x\r\n\r\n")
            p.stdin.flush()
            self.assertTrue(read_until(b"retry:", 10), "%r\n%s" % (bytes(out[-300:]), h.log()[-1500:]))
            harness.wait_live_subscribed(r, "ku")
            for upd in (b"k\n", b"K\n"):  # update_not_requested, update_requested
                p.stdin.write(upd)
                p.stdin.flush()
                self.assertTrue(read_until(b"KEYUPDATE", 5), bytes(out[-500:]))
                del out[:out.index(b"KEYUPDATE") + 9]
                time.sleep(0.5)  # the edge's peer check has run
                harness.fcall_publish(r, "ku", "after-" + upd.decode().strip())
                self.assertTrue(read_until(b"data: after-" + upd.strip(), 10),
                                "no event after a KeyUpdate: %r\n%s" % (bytes(out[-500:]),
                                                                          h.log()[-2000:]))
        finally:
            p.kill()
            p.wait()
        self.assertNotIn("unexpected input on an SSE stream", h.log())

    def incomplete(self, h):
        _, _, body = https(h.port, self.ctx, "/metrics")
        m = re.search(rb'herald_rejected_total\{reason="incomplete_request"\} (\d+)', body)
        self.assertIsNotNone(m, body[:3000])
        return int(m.group(1))

    def test_plain_http_on_the_tls_port_is_refused(self):
        srv = self.redis()
        r = self.client(srv)
        h = self.tls_edge(srv, args=["--handshake-timeout", "2"])
        # a connection that never completes a handshake (slowloris on TLS) is cut off
        silent = [socket.create_connection(("127.0.0.1", h.port), timeout=30 * SCALE)
                  for _ in range(2)]
        silent[1].sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
        sse = self.tls_sse(h, "/events/mixed")
        sse.wait_retry()
        wait_live_subscribed(r, "mixed", 1)

        for junk in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"GET /events/mixed HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n",
                     b"\x16\x03\x01\x00\x05hello", os.urandom(2048)):
            got = harness.raw_request(h.port, junk, timeout=5.0)
            self.assertFalse(got.startswith(b"HTTP/"), "plain HTTP answered on the TLS port: %r"
                             % got[:200])
        self.assertTrue(h.alive(), h.log())
        # the operator sees them: counted like plain connections that sent no whole request
        harness.wait_until(lambda: self.incomplete(h) >= 4, what="incomplete_request >= 4")
        sid = self.publish(h, "mixed", "still here")
        e = sse.next_event()
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "still here"))
        status, _, _ = https(h.port, self.ctx, "/healthz")
        self.assertEqual(status, 200)
        for s in silent:
            try:
                self.assertEqual(s.recv(100), b"", "the edge answered a silent connection")
            except ConnectionResetError:
                pass
            s.close()

    def test_sighup_reloads_the_certificate(self):
        d = tempfile.mkdtemp(prefix="herald-tls-reload-", dir=self.dir)
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key2.pem", "-out",
                "cert2.pem", "-days", "2", "-subj", "/CN=localhost", "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1", cwd=d)
        cert, key = os.path.join(d, "live-cert.pem"), os.path.join(d, "live-key.pem")
        shutil.copy(self.cert, cert)
        shutil.copy(self.key, key)
        ctx = client_context(self.cert)
        ctx.load_verify_locations(os.path.join(d, "cert2.pem"))  # trusts both
        with open(self.cert, "rb") as f:
            der1 = ssl.PEM_cert_to_DER_cert(f.read().decode())
        with open(os.path.join(d, "cert2.pem"), "rb") as f:
            der2 = ssl.PEM_cert_to_DER_cert(f.read().decode())

        def served_cert():
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", h.port), timeout=10),
                                server_hostname="localhost")
            try:
                return s.getpeercert(binary_form=True)
            finally:
                s.close()

        srv = self.redis()
        r = self.client(srv)
        TLSHerald.ctx = ctx
        h = TLSHerald(srv.port, "reload", ["--tls-cert", cert, "--tls-key", key,
                                           "--publish-key", KEY, "--threads", "2"])
        self._heralds.append(h)
        self.assertEqual(served_cert(), der1)
        sse = harness.SSEClient(h.port, "/events/reload", ssl_context=ctx)
        self._closers.append(sse)
        sse.wait_retry()
        wait_live_subscribed(r, "reload", 1)

        # a renewed pair: replaced file by file, then SIGHUP
        shutil.copy(os.path.join(d, "cert2.pem"), cert)
        shutil.copy(os.path.join(d, "key2.pem"), key)
        h.proc.send_signal(signal.SIGHUP)
        # every service thread serves the new one (the kernel spreads connections over them)
        harness.wait_until(lambda: all(served_cert() == der2 for _ in range(8)),
                           what="the renewed certificate on new connections")
        # the connection opened before the reload is still served
        sid = self.publish(h, "reload", "after reload", ctx)
        e = sse.next_event()
        self.assertEqual((split_cursor(e.id)[0], e.data), (sid, "after reload"))

        # a broken pair is refused: the running certificate stays
        with open(key, "w") as f:
            f.write("not a key\n")
        h.proc.send_signal(signal.SIGHUP)
        harness.wait_until(lambda: "TLS reload refused" in h.log(), what="the refusal logged")
        self.assertEqual(served_cert(), der2)
        self.assertTrue(h.alive())

    def run_bad(self, args):
        port = free_port()
        p = subprocess.run([HERALD_BIN, "--listen", "127.0.0.1:%d" % port, "--node-id", "bad"] +
                           args, capture_output=True, timeout=30 * SCALE,
                           stdin=subprocess.DEVNULL)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 2, "%r: exit %s, stderr %r" % (args, p.returncode, err))
        self.assertFalse(port_open(port), "%r: listened before checking TLS" % args)
        harness.log("%r -> %s" % ([os.path.basename(a) for a in args], err.strip()[:160]))
        return err

    def test_unusable_certificate_or_key_exits_2_before_listening(self):
        d = self.dir
        cases = [
            (["--tls-cert", self.cert], "--tls-cert is given without --tls-key"),
            (["--tls-key", self.key], "--tls-key is given without --tls-cert"),
            (["--tls-cert", self.cert, "--tls-key", os.path.join(d, "missing.pem")],
             "cannot read --tls-key file"),
            (["--tls-cert", os.path.join(d, "missing.pem"), "--tls-key", self.key],
             "cannot read --tls-cert file"),
            (["--tls-cert", self.cert, "--tls-key", os.path.join(d, "garbage.pem")],
             "--tls-key file"),
            (["--tls-cert", self.cert, "--tls-key", os.path.join(d, "encrypted.pem")],
             "encrypted keys are not supported"),
            (["--tls-cert", self.cert, "--tls-key", os.path.join(d, "other.pem")],
             "does not match the certificate"),
            (["--tls-cert", self.key, "--tls-key", self.key], "holds no PEM certificate"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                err = self.run_bad(args)
                self.assertIn(needle, err)
                self.assertEqual(len([ln for ln in err.splitlines() if ln.strip()]), 1, err)


if __name__ == "__main__":
    harness.main()
