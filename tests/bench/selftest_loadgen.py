#!/usr/bin/env python3
"""Checks that tests/bench/loadgen finds what it claims to find, before its figures are used.

A fake server on a free loopback port answers every subscriber with a known sequence of events
(one gap, one duplicate, one late event), split into awkward pieces: SSE with chunked transfer
coding cut in the middle of chunk-size lines and of payloads, and WebSocket frames cut in the
middle of headers, with a server ping the client must answer with a masked pong. loadgen must
count exactly 1 gap, 1 duplicate and 1 reordered event per subscriber, and answer the ping.

    python3 tests/bench/selftest_loadgen.py path/to/loadgen
"""

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

CONNS = 3
SEQS = [1, 2, 4, 4, 3, 6]        # 5 never comes: 1 gap; 4 twice: 1 dup; 3 late: 1 reordered


def payload(seq):
    return ("@s%d.%d.0." % (seq, int(time.monotonic() * 1e6))).ljust(200, "x").encode()


def send_slowly(conn, data, cut):
    """Send data in pieces of `cut` bytes with pauses, so the reader sees partial input."""
    for i in range(0, len(data), cut):
        conn.sendall(data[i:i + cut])
        time.sleep(0.002)


def serve_sse(conn, req):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    body = b"retry: 1000\n\n: hb\n\n"
    for s in SEQS:
        body += b"id: %d\ndata: " % s + payload(s) + b"\n\n"
    out = b""
    for i in range(0, len(body), 97):          # chunks that cut lines anywhere
        part = body[i:i + 97]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    send_slowly(conn, out, 13)                 # reads that cut chunk-size lines too


def ws_frame(op, data):
    n = len(data)
    if n < 126:
        h = struct.pack("!BB", 0x80 | op, n)
    else:
        h = struct.pack("!BBH", 0x80 | op, 126, n)
    return h + data


def read_frame(conn):
    h = conn.recv(2, socket.MSG_WAITALL)
    op, n = h[0] & 15, h[1] & 127
    masked = h[1] & 0x80
    if n == 126:
        n = struct.unpack("!H", conn.recv(2, socket.MSG_WAITALL))[0]
    key = conn.recv(4, socket.MSG_WAITALL) if masked else b"\0\0\0\0"
    data = bytearray(conn.recv(n, socket.MSG_WAITALL)) if n else bytearray()
    for i in range(n):
        data[i] ^= key[i & 3]
    return op, bytes(data), bool(masked)


def serve_ws(conn, req, results):
    import base64
    import hashlib
    key = [l.split(b":", 1)[1].strip() for l in req.split(b"\r\n")
           if l.lower().startswith(b"sec-websocket-key:")][0]
    acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc +
                 b"\r\nSec-WebSocket-Protocol: herald.v1\r\n\r\n")
    op, data, masked = read_frame(conn)       # the subscribe message
    sub = json.loads(data) if op == 1 else None
    conn.sendall(ws_frame(1, b'{"type":"subscribed","topic":"%s"}' % sub["topic"].encode()))
    conn.sendall(ws_frame(9, b"ping!"))
    op2, data2, masked2 = read_frame(conn)    # the pong
    results.append((sub, masked, op2, data2, masked2))
    out = b""
    for s in SEQS:
        ev = b'{"type":"event","topic":"t","id":"1-0_e","data":"' + payload(s) + b'"}'
        out += ws_frame(1, ev)
    send_slowly(conn, out, 7)


def main():
    lg = sys.argv[1]
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    ws_results = []
    hold = []

    def accept_loop():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            hold.append(c)

            def handle(c=c):
                req = b""
                while b"\r\n\r\n" not in req:
                    d = c.recv(4096)
                    if not d:
                        return
                    req += d
                if b"upgrade: websocket" in req.lower():
                    serve_ws(c, req, ws_results)
                else:
                    serve_sse(c, req)
            threading.Thread(target=handle, daemon=True).start()
    threading.Thread(target=accept_loop, daemon=True).start()

    failures = []
    for mode in ("sse", "ws"):
        r = subprocess.run([lg, "--target", "127.0.0.1:%d" % port, "--mode", mode, "--conns",
                            str(CONNS), "--src-addrs", "2", "--rate", "0", "--duration", "2",
                            "--settle", "0", "--quiet"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            failures.append("%s: loadgen exited %d: %s" % (mode, r.returncode, r.stderr))
            continue
        d = json.loads(r.stdout)
        want = {"ready": CONNS, "deliveries": CONNS * len(SEQS), "gaps": CONNS,
                "duplicates": CONNS, "out_of_order": CONNS, "malformed": 0,
                "closed_by_server": 0}
        for k, v in want.items():
            if d[k] != v:
                failures.append("%s: %s = %s, want %s" % (mode, k, d[k], v))
    if len(ws_results) != CONNS:
        failures.append("ws: %d of %d subscribers answered the ping" % (len(ws_results), CONNS))
    for sub, masked, op2, data2, masked2 in ws_results:
        if sub.get("type") != "subscribe" or not masked:
            failures.append("ws: subscribe message %r masked=%s" % (sub, masked))
        if op2 != 10 or data2 != b"ping!" or not masked2:
            failures.append("ws: pong op=%d data=%r masked=%s" % (op2, data2, masked2))
    srv.close()
    for c in hold:
        c.close()
    if failures:
        print("selftest_loadgen: FAILED\n  " + "\n  ".join(failures), file=sys.stderr)
        sys.exit(1)
    print("selftest_loadgen: ok (gaps, duplicates, reordering, chunked SSE, split WS frames, "
          "masked subscribe and pong)", file=sys.stderr)


if __name__ == "__main__":
    main()
