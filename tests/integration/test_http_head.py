"""HEAD (RFC 9110 section 9.3.2): the plain resources answer it as they answer GET, head only
(a load balancer's `HEAD /readyz` health check, a `curl -I`), and no answer to a HEAD carries
content: after it the same connection serves the next request. The streams answer it 405
(`allow: GET`), also without content. Before: every HEAD was answered 405 with a body, which a
client that keeps the connection reads as the start of the next response."""

import socket

import harness
from harness import HeraldTestCase, parse_response


class Head(HeraldTestCase):

    def setUp(self):
        super().setUp()
        self.srv = self.redis()
        self.h = self.edge(self.srv)

    def exchange(self, requests):
        """Sends the requests on one connection, one after the other, each answered before
        the next goes; returns [(status, headers, bytes received after the head)]. A HEAD's
        answer is read up to its head and a little after, to see that nothing follows."""
        s = socket.create_connection(("127.0.0.1", self.h.port), timeout=5 * harness.SCALE)
        self._closers.append(s)
        out = []
        for method, path in requests:
            s.sendall(("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (method, path)).encode())
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "%s %s: closed before the head" % (method, path))
                buf += chunk
            status, hdrs, _, _ = parse_response(buf)
            rest = buf[buf.index(b"\r\n\r\n") + 4:]
            if method == "HEAD":
                s.settimeout(0.3 * harness.SCALE)
                try:
                    rest += s.recv(65536)
                except socket.timeout:
                    pass
                s.settimeout(5 * harness.SCALE)
            else:
                n = int(hdrs.get("content-length", "0"))
                while len(rest) < n:
                    chunk = s.recv(65536)
                    self.assertTrue(chunk, "%s %s: closed in the body" % (method, path))
                    rest += chunk
            out.append((status, hdrs, rest))
        return out

    def test_plain_resources_answer_head_like_get(self):
        paths = ["/healthz", "/readyz", "/metrics", "/herald.js", "/ws"]
        for path in paths:
            (gs, gh, gbody), (hs, hh, hbody), (ns, _, nbody) = self.exchange(
                [("GET", path), ("HEAD", path), ("GET", "/healthz")])
            self.assertEqual(hs, gs, path)
            self.assertEqual(hh.get("content-type"), gh.get("content-type"), path)
            if path != "/metrics":  # its figures move between the two requests
                self.assertEqual(hh.get("content-length"), str(len(gbody)), path)
            self.assertEqual(hbody, b"", "%s: HEAD answered with content" % path)
            # the connection goes on: the next answer is read where it starts
            self.assertEqual((ns, nbody), (200, b"ok\n"), path)

    def test_streams_refuse_head_without_content(self):
        for path in ["/events/t.head", "/events?topic=t.head", "/poll/t.head"]:
            (status, hdrs, body), = self.exchange([("HEAD", path)])
            self.assertEqual(status, 405, path)
            self.assertEqual(hdrs.get("allow"), "GET", path)
            self.assertEqual(body, b"", "%s: HEAD answered with content" % path)
        (status, _, body), = self.exchange([("HEAD", "/publish/t.head")])
        self.assertEqual((status, body), (405, b""))


if __name__ == "__main__":
    harness.main()
