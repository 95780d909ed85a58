"""A small RFC 6455 WebSocket client on raw sockets (Python 3 standard library only).

It does exactly what the integration tests need and nothing clever: the opening handshake
(checking the 101, Sec-WebSocket-Accept and the chosen subprotocol), masked client frames,
fragmented messages, control frames, raw (deliberately bad) frames, reassembly of server
messages, permessage-deflate decoding when the server negotiated it, and the close handshake.

    ws = WSClient(port, protocols=["herald.v1"])
    ws.send_json({"type": "subscribe", "topic": "news", "id": 1})
    ws.recv_json()            # {"type": "subscribed", "topic": "news", "id": 1}

Every wait takes a timeout in seconds, multiplied by harness.SCALE.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time
import zlib

import harness

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class HandshakeError(AssertionError):
    """The server did not upgrade; `status`, `headers` and `body` say what it answered."""

    def __init__(self, msg, status=None, headers=None, body=b""):
        AssertionError.__init__(self, msg)
        self.status = status
        self.headers = headers or {}
        self.body = body


class Closed(AssertionError):
    """The connection is closed; `code`/`reason` are from the server's close frame (None if
    the TCP connection ended without one)."""

    def __init__(self, msg, code=None, reason=None):
        AssertionError.__init__(self, msg)
        self.code = code
        self.reason = reason


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + GUID).digest()).decode("ascii")


def mask_bytes(mask, payload):
    if not payload:
        return b""
    n = len(payload)
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload=b"", fin=True, masked=True, rsv=0, mask=None, length=None):
    """One frame. `length` overrides the encoded payload length (to send lies)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    if n < 126:
        head = struct.pack("!BB", b0, (0x80 if masked else 0) | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, (0x80 if masked else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", b0, (0x80 if masked else 0) | 127, n)
    if masked:
        mask = mask if mask is not None else os.urandom(4)
        return head + mask + mask_bytes(mask, payload)
    return head + payload


class Frame:
    def __init__(self, fin, rsv, opcode, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload

    def __repr__(self):
        return "Frame(fin=%d, rsv=%d, op=%#x, %r)" % (self.fin, self.rsv, self.opcode,
                                                       self.payload[:200])


class WSClient:
    """One WebSocket connection to 127.0.0.1:port.

    protocols: list of subprotocols to offer (None: no Sec-WebSocket-Protocol header).
    headers: extra request headers (dict or list of pairs).
    deflate: offer permessage-deflate.
    auto_pong: answer server pings while receiving (default True).
    Attributes after the handshake: status, headers (lowercase dict), protocol (chosen
    subprotocol or None), extensions (the Sec-WebSocket-Extensions value or None), deflate
    (True when permessage-deflate was negotiated).
    ssl_context: an ssl.SSLContext for wss:// (the edge's own TLS), verified as "localhost".
    tune: called with the socket before it connects (e.g. a small SO_RCVBUF)."""

    def __init__(self, port, path="/ws", protocols=("herald.v1",), headers=None, deflate=False,
                 timeout=10.0, auto_pong=True, host="127.0.0.1", ssl_context=None,
                 tune=None):
        self.port = port
        self.auto_pong = auto_pong
        self.closed = False
        self.close_code = None
        self.close_reason = None
        self.close_sent = False
        self.pings = []          # payloads of pings received from the server
        self.pongs = []          # payloads of pongs received from the server
        self.frames = []         # every frame received, in order (for assertions)
        self._buf = bytearray()
        self._frag_op = None
        self._frag = bytearray()
        self._frag_rsv1 = False
        self._messages = []      # reassembled (opcode, bytes)
        self._inflater = None
        if tune is None:
            self.sock = socket.create_connection((host, port), timeout=timeout * harness.SCALE)
        else:  # socket options that must be set before connecting (SO_RCVBUF, TCP_MAXSEG)
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tune(self.sock)
            self.sock.settimeout(timeout * harness.SCALE)
            self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname="localhost")
        self._handshake(path, protocols, headers, deflate, harness.deadline(timeout))

    # -- handshake --

    def _handshake(self, path, protocols, headers, deflate, end):
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        req = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % self.port, "Upgrade: websocket",
               "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if protocols is not None:
            req.append("Sec-WebSocket-Protocol: " + ", ".join(protocols))
        if deflate:
            req.append("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits")
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        for k, v in items:
            req.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode("latin-1"))
        head = bytearray()
        while True:
            i = head.find(b"\r\n\r\n")
            if i >= 0:
                break
            chunk = self._recv_some(end)
            if chunk is None:
                raise HandshakeError("no handshake answer within the deadline; got %r" % (
                    bytes(head[:500]),))
            if not chunk:
                raise HandshakeError("connection closed during the handshake; got %r" % (
                    bytes(head[:500]),))
            head += chunk
        raw_head = bytes(head[:i]).decode("latin-1")
        self._buf += head[i + 4:]
        lines = raw_head.split("\r\n")
        parts = lines[0].split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        self.headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        if self.status != 101:
            body = bytes(self._buf)
            # a short error body may still be arriving
            n = int(self.headers.get("content-length", "0") or 0)
            while len(body) < n:
                chunk = self._recv_some(end)
                if not chunk:
                    break
                body += chunk
            self.sock.close()
            self.closed = True
            raise HandshakeError("expected 101, got %r: %r" % (lines[0], body[:300]),
                                 self.status, self.headers, body)
        if self.headers.get("upgrade", "").lower() != "websocket":
            raise HandshakeError("101 without Upgrade: websocket: %r" % (self.headers,))
        if "upgrade" not in self.headers.get("connection", "").lower():
            raise HandshakeError("101 without Connection: Upgrade: %r" % (self.headers,))
        if self.headers.get("sec-websocket-accept") != accept_key(key):
            raise HandshakeError("bad Sec-WebSocket-Accept %r (want %r)" % (
                self.headers.get("sec-websocket-accept"), accept_key(key)))
        self.protocol = self.headers.get("sec-websocket-protocol")
        if self.protocol is not None and (protocols is None or self.protocol not in protocols):
            raise HandshakeError("server chose subprotocol %r that was not offered (%r)" % (
                self.protocol, protocols))
        self.extensions = self.headers.get("sec-websocket-extensions")
        self.deflate = bool(self.extensions and "permessage-deflate" in self.extensions)
        if self.deflate and not deflate:
            raise HandshakeError("server enabled permessage-deflate without an offer")
        if self.deflate:
            self._inflater = zlib.decompressobj(-15)
            self._no_ctx = "server_no_context_takeover" in self.extensions

    # -- raw I/O --

    def _recv_some(self, end):
        left = end - time.monotonic()
        if left <= 0:
            return None
        self.sock.settimeout(left)
        try:
            return self.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""

    def send_raw(self, data):
        """Send bytes as they are; False when the socket is already closed by the peer."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def send_frame(self, opcode, payload=b"", fin=True, masked=True, rsv=0):
        return self.send_raw(encode_frame(opcode, payload, fin, masked, rsv))

    def send_text(self, text):
        return self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_json(self, obj):
        return self.send_text(json.dumps(obj, separators=(",", ":")))

    def send_fragmented(self, data, parts, opcode=OP_TEXT, between=None):
        """Send one message as `parts` frames (FIN=0 then continuations). `between`: a list of
        raw frames to send after the first fragment (control frames may be interleaved)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        size = max(1, -(-len(data) // parts))
        chunks = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        for i, chunk in enumerate(chunks):
            op = opcode if i == 0 else OP_CONT
            self.send_frame(op, chunk, fin=(i == len(chunks) - 1))
            if i == 0 and between:
                for raw in between:
                    self.send_raw(raw)

    def ping(self, payload=b""):
        return self.send_frame(OP_PING, payload)

    def close(self, code=1000, reason=""):
        """Start the close handshake (if still open) and then drop the socket."""
        if not self.closed and not self.close_sent:
            payload = struct.pack("!H", code) + reason.encode("utf-8") if code is not None else b""
            self.send_frame(OP_CLOSE, payload)
            self.close_sent = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.closed = True

    # -- frame parser --

    def _parse_frame(self):
        b = self._buf
        if len(b) < 2:
            return None
        b0, b1 = b[0], b[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            if len(b) < 4:
                return None
            n = struct.unpack("!H", bytes(b[2:4]))[0]
            pos = 4
        elif n == 127:
            if len(b) < 10:
                return None
            n = struct.unpack("!Q", bytes(b[2:10]))[0]
            pos = 10
        if b1 & 0x80:
            raise AssertionError("server sent a masked frame (RFC 6455 5.1)")
        if len(b) < pos + n:
            return None
        payload = bytes(b[pos:pos + n])
        del b[:pos + n]
        return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload)

    def _inflate(self, data):
        out = self._inflater.decompress(data + b"\x00\x00\xff\xff")
        if self._no_ctx:
            self._inflater = zlib.decompressobj(-15)
        return out

    def _on_frame(self, f):
        self.frames.append(f)
        if f.opcode == OP_PING:
            self.pings.append(f.payload)
            if self.auto_pong and not self.close_sent:
                self.send_frame(OP_PONG, f.payload)
            return
        if f.opcode == OP_PONG:
            self.pongs.append(f.payload)
            return
        if f.opcode == OP_CLOSE:
            if len(f.payload) >= 2:
                self.close_code = struct.unpack("!H", f.payload[:2])[0]
                self.close_reason = f.payload[2:].decode("utf-8", "replace")
            else:
                self.close_code = 1005
                self.close_reason = ""
            if not self.close_sent:
                # echo the code as RFC 6455 5.5.1 asks
                self.send_frame(OP_CLOSE, f.payload[:2])
                self.close_sent = True
            self.closed = True
            return
        if f.opcode in (OP_TEXT, OP_BINARY):
            if self._frag_op is not None:
                raise AssertionError("server started a new message inside a fragmented one")
            self._frag_op = f.opcode
            self._frag = bytearray(f.payload)
            self._frag_rsv1 = bool(f.rsv & 4)
        elif f.opcode == OP_CONT:
            if self._frag_op is None:
                raise AssertionError("server sent a continuation without a message")
            self._frag += f.payload
        else:
            raise AssertionError("server sent reserved opcode %#x" % f.opcode)
        if f.rsv & 4 and not self.deflate:
            raise AssertionError("RSV1 set without permessage-deflate")
        if f.fin:
            data = bytes(self._frag)
            if self._frag_rsv1:
                data = self._inflate(data)
            self._messages.append((self._frag_op, data))
            self._frag_op = None
            self._frag = bytearray()

    def _pump_once(self, end):
        """Process buffered frames; only when there were none, read more. False on deadline."""
        progressed = False
        while True:
            f = self._parse_frame()
            if f is None:
                break
            progressed = True
            self._on_frame(f)
            if self.closed:
                return True
        if self.closed or progressed:
            return True
        chunk = self._recv_some(end)
        if chunk is None:
            return False
        if not chunk:
            self.closed = True
            return True
        self._buf += chunk
        return True

    def pump(self, timeout):
        """Read and process frames for `timeout` seconds (scaled) or until closed."""
        end = harness.deadline(timeout)
        while not self.closed and self._pump_once(end):
            pass
        return not self.closed

    # -- API --

    def recv_message(self, timeout=10.0):
        """The next (opcode, bytes) data message; Closed when the connection closes first,
        AssertionError on timeout."""
        end = harness.deadline(timeout)
        while not self._messages:
            if self.closed:
                raise Closed("connection closed (code %r, reason %r) before a message" % (
                    self.close_code, self.close_reason), self.close_code, self.close_reason)
            if not self._pump_once(end):
                raise AssertionError("no WebSocket message within %.1fs" % (
                    timeout * harness.SCALE))
        return self._messages.pop(0)

    def recv_json(self, timeout=10.0):
        op, data = self.recv_message(timeout)
        if op != OP_TEXT:
            raise AssertionError("expected a text message, got opcode %#x: %r" % (op, data[:200]))
        obj = json.loads(data.decode("utf-8"))
        if not isinstance(obj, dict):
            raise AssertionError("server message is not a JSON object: %r" % (data[:200],))
        return obj

    def recv_until(self, pred, timeout=10.0, keep=False):
        """JSON messages until pred(msg) is true; returns (skipped, matching). keep: put the
        skipped messages back (in order) so later receives still see them."""
        end = harness.deadline(timeout)
        skipped, raw = [], []
        while True:
            left = (end - time.monotonic()) / harness.SCALE
            if left <= 0:
                if keep:
                    self._messages[0:0] = raw
                raise AssertionError("no matching message within %.1fs; got %r" % (
                    timeout * harness.SCALE, skipped[-10:]))
            try:
                op, data = self.recv_message(left)
            except AssertionError:
                if keep:
                    self._messages[0:0] = raw
                raise
            m = json.loads(data.decode("utf-8")) if op == OP_TEXT else data
            if isinstance(m, dict) and pred(m):
                if keep:
                    self._messages[0:0] = raw
                return skipped, m
            skipped.append(m)
            raw.append((op, data))

    def pending(self):
        """Reassembled messages not yet taken (decoded as JSON where possible)."""
        out = []
        for op, data in self._messages:
            try:
                out.append(json.loads(data.decode("utf-8")))
            except ValueError:
                out.append(data)
        return out

    def wait_closed(self, timeout=10.0):
        """Wait until the server closes; returns the close code (None: TCP closed without a
        close frame). AssertionError if still open at the deadline."""
        end = harness.deadline(timeout)
        while not self.closed:
            if not self._pump_once(end):
                raise AssertionError("connection still open after %.1fs; messages %r" % (
                    timeout * harness.SCALE, self.pending()[:5]))
        return self.close_code

    def wait_tcp_closed(self, timeout=10.0):
        """After a close frame: wait until the server also ends the TCP connection."""
        end = harness.deadline(timeout)
        while True:
            chunk = self._recv_some(end)
            if chunk is None:
                return False
            if not chunk:
                return True

    def wait_ping(self, timeout=10.0):
        """Wait for a protocol-level ping from the server; returns its payload."""
        end = harness.deadline(timeout)
        n = len(self.pings)
        while len(self.pings) == n:
            if self.closed:
                raise Closed("closed (code %r) while waiting for a ping" % self.close_code,
                             self.close_code, self.close_reason)
            if not self._pump_once(end):
                raise AssertionError("no ping within %.1fs" % (timeout * harness.SCALE))
        return self.pings[-1]

    def wait_pong(self, timeout=10.0):
        end = harness.deadline(timeout)
        n = len(self.pongs)
        while len(self.pongs) == n:
            if self.closed:
                raise Closed("closed (code %r) while waiting for a pong" % self.close_code,
                             self.close_code, self.close_reason)
            if not self._pump_once(end):
                raise AssertionError("no pong within %.1fs" % (timeout * harness.SCALE))
        return self.pongs[-1]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def request(ws, msg, timeout=10.0):
    """Send msg (a dict) and return the first reply that is not an event or gap notice; the
    events and gap notices received before it stay queued."""
    ws.send_json(msg)
    _, m = ws.recv_until(lambda x: x.get("type") not in ("event", "gap"), timeout, keep=True)
    return m
