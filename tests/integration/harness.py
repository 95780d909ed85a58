"""Integration-test harness for Herald (Python 3 standard library only).

Every test starts its own redis-server and herald processes on free loopback ports, waits for
them by polling with a deadline (never a fixed sleep), and kills them on every exit path.

Environment:
    HERALD_BIN            path to the herald binary (set by CTest)
    HERALD_SRC            repository root (set by CTest)
    HERALD_TIMEOUT_SCALE  multiplies every deadline (default 1, 3 when HERALD_BIN looks like
                          a sanitizer build)
"""

import atexit
import base64
import codecs
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("HERALD_SRC") or os.path.normpath(os.path.join(HERE, "..", ".."))
HERALD_BIN = os.environ.get("HERALD_BIN") or os.path.join(SRC, "build", "herald")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _default_scale():
    v = os.environ.get("HERALD_TIMEOUT_SCALE")
    if v:
        return float(v)
    return 3.0 if re.search(r"asan|san", HERALD_BIN) else 1.0


SCALE = _default_scale()
PREFIX = "herald:"
LEASE_KEY = PREFIX + "ingest:lease"
CURSOR_RE = re.compile(r"^(\d+)-(\d+)_([0-9a-z]{1,16})$")
SANITIZER_RE = re.compile(
    rb"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    rb"WARNING: ThreadSanitizer|SUMMARY: (Address|Undefined|Leak)Sanitizer")

# Every child process we start, so that nothing outlives the test run.
_LIVE = set()
_LIVE_LOCK = threading.Lock()


def _reap_all():
    with _LIVE_LOCK:
        procs = list(_LIVE)
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
                p.wait(5)
            except Exception:
                pass


atexit.register(_reap_all)


def _on_signal(signum, frame):
    _reap_all()
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        signal.signal(_sig, _on_signal)
    except (ValueError, OSError):
        pass


def log(*args):
    """Print a measured figure or a progress line (visible in `ctest -V` and on failure)."""
    print(*args, flush=True)


def deadline(seconds):
    """An absolute monotonic deadline `seconds` (times SCALE) from now."""
    return time.monotonic() + seconds * SCALE


def wait_until(pred, timeout=10.0, interval=0.05, what=None):
    """Poll pred() until it returns a truthy value, which is returned. The timeout is
    multiplied by SCALE. Raises AssertionError (naming `what`) when the deadline passes."""
    end = deadline(timeout)
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # a predicate may fail while a server comes up
            last_exc = e
        if time.monotonic() >= end:
            msg = "timed out after %.1fs waiting for %s" % (timeout * SCALE, what or pred)
            if last_exc is not None:
                msg += " (last error: %r)" % (last_exc,)
            raise AssertionError(msg)
        time.sleep(interval)


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _tail(path, limit=20000):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "<cannot read %s: %s>" % (path, e)
    if len(data) > limit:
        data = b"...[cut]...\n" + data[-limit:]
    return data.decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# RESP client
# --------------------------------------------------------------------------------------------

def end_process(p, term_timeout=None):
    """End a child we started: SIGTERM and wait up to term_timeout seconds first when given,
    then SIGKILL; forget it in the atexit list. Returns its exit code, or None if it did not
    exit within the final 10 s."""
    if p is None:
        return None
    if term_timeout is not None and p.poll() is None:
        p.terminate()
        try:
            p.wait(term_timeout)
        except subprocess.TimeoutExpired:
            log("pid %d ignored SIGTERM for %.0fs; killing" % (p.pid, term_timeout))
    if p.poll() is None:
        p.kill()
    try:
        code = p.wait(10)
    except subprocess.TimeoutExpired:
        code = None
    with _LIVE_LOCK:
        _LIVE.discard(p)
    return code


class RedisError(Exception):
    """An error reply (-ERR ...) from Redis."""


class RedisClient:
    """A tiny blocking RESP2 client: cmd() returns simple strings as str, bulk strings as bytes,
    integers as int, arrays as lists, nil as None, and raises RedisError for error replies.
    cmd() and pipeline() may be called from several threads: each holds the connection from
    its send to its last reply (unlocked, two threads read each other's replies)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout * SCALE)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.lock = threading.RLock()

    @staticmethod
    def _arg(a):
        if isinstance(a, bytes):
            return a
        if isinstance(a, (bytearray, memoryview)):
            return bytes(a)
        return str(a).encode("utf-8")

    @classmethod
    def encode(cls, args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = cls._arg(a)
            out.append(b"$%d\r\n" % len(b))
            out.append(b)
            out.append(b"\r\n")
        return b"".join(out)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("redis closed the connection")
        self.buf += chunk

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n + 2]
        return data

    def read_reply(self):
        """Read one reply; error replies are returned as RedisError instances."""
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode("utf-8", "replace")
        if t == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        raise RedisError("protocol error: unexpected reply %r" % line[:80])

    def cmd(self, *args):
        with self.lock:
            self.sock.sendall(self.encode(args))
            r = self.read_reply()
        if isinstance(r, RedisError):
            raise r
        return r

    def pipeline(self, commands):
        """Send every command at once, then read all replies (errors returned, not raised)."""
        with self.lock:
            self.sock.sendall(b"".join(self.encode(c) for c in commands))
            return [self.read_reply() for _ in commands]

    def publish(self, channel, payload):
        """Raw PUBLISH; returns the number of receivers."""
        return self.cmd("PUBLISH", channel, payload)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def stream_key(topic, prefix=PREFIX):
    return "%s{%s}:log" % (prefix, topic)


def live_channel(topic, prefix=PREFIX):
    return "%s{%s}:live" % (prefix, topic)


def fcall_publish(r, topic, payload, event=None):
    """FCALL herald_publish 1 <topic> <payload> [<event>] -> the stream ID (str)."""
    args = ["FCALL", "herald_publish", 1, topic, payload]
    if event is not None:
        args.append(event)
    rid = r.cmd(*args)
    if isinstance(rid, bytes):
        rid = rid.decode()
    return rid


def paced_publisher(port, topic, payloads, rate, ids, errors):
    """Starts a daemon thread that publishes payloads with herald_publish on its own connection
    to the Redis on `port`, `rate` per second, appending each stream ID to `ids` and an
    exception to `errors` (for the main thread to report). Returns the thread."""
    def run():
        try:
            with RedisClient(port) as pr:
                start = time.monotonic()
                for i, p in enumerate(payloads):
                    ids.append(fcall_publish(pr, topic, p))
                    lag = start + (i + 1) / rate - time.monotonic()
                    if lag > 0:
                        time.sleep(lag)  # pacing the publisher, not synchronising
        except Exception as e:  # reported by the main thread
            errors.append(e)
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def xrange(r, topic, start="-", end="+"):
    """[(id str, {field str: value bytes})] for the topic's stream."""
    out = []
    for eid, fields in r.cmd("XRANGE", stream_key(topic), start, end) or []:
        d = {}
        for i in range(0, len(fields), 2):
            d[fields[i].decode()] = fields[i + 1]
        out.append((eid.decode(), d))
    return out


def split_cursor(cursor):
    """'<ms>-<seq>_<epoch>' -> ('<ms>-<seq>', '<epoch>'); AssertionError if malformed."""
    m = CURSOR_RE.match(cursor or "")
    if not m:
        raise AssertionError("malformed cursor %r" % (cursor,))
    return "%s-%s" % (m.group(1), m.group(2)), m.group(3)


def id_key(stream_id):
    ms, seq = stream_id.split("-")
    return (int(ms), int(seq))


def sub_socket_flushed(r):
    """True when Redis's output buffer for an edge's subscriber connection (the client named
    ...-sub) is empty: what it published was written to the edge's socket."""
    for line in r.cmd("CLIENT", "LIST").decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if f.get("name", "").endswith("-sub"):
            return f.get("omem") == "0" and f.get("obl") == "0"
    return False


def wait_live_subscribed(r, topic, n=1, timeout=10.0):
    """Wait until at least n connections are SUBSCRIBEd to the topic's live channel."""
    ch = live_channel(topic)

    def ok():
        reply = r.cmd("PUBSUB", "NUMSUB", ch)
        return reply[1] >= n
    wait_until(ok, timeout, what="%d subscriber(s) on %s" % (n, ch))


def raw_listeners(r):
    """Clients subscribed to a pattern (the edges' raw-ingest connections)."""
    return r.cmd("CLIENT", "LIST").decode().count(" psub=1 ")


def client_ids(r):
    """{name: client id} of Redis's named connections (the edges name theirs
    herald-<node id>-<cmd|sub|ingest|node>)."""
    out = {}
    for line in r.cmd("CLIENT", "LIST").decode().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split(" ") if "=" in kv)
        if f.get("name"):
            out[f["name"]] = f["id"]
    return out


def stored_data(r, topic):
    """The `d` field (str) of every entry of topic's stream, in stream order."""
    return [d.get("d", b"").decode() for _, d in xrange(r, topic)]


def lease_holder(r):
    """The node id of the ingest leader (token '<node id>:...'), or None."""
    tok = r.cmd("GET", LEASE_KEY)
    if tok is None:
        return None
    tok = tok.decode("utf-8", "replace")
    return tok.split(":", 1)[0] if ":" in tok else tok


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------

class RedisServer:
    """A private redis-server on a free loopback port with its own temp dir."""

    def __init__(self, port=None, extra=()):
        self.extra = list(extra)  # more redis-server arguments (e.g. --replicaof H P)
        self.dir = tempfile.mkdtemp(prefix="herald-it-redis-")
        self.port = port
        self.proc = None
        self.log_path = os.path.join(self.dir, "redis.log")
        self.start()

    def _spawn(self, port):
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.dir,
                "--pidfile", os.path.join(self.dir, "redis.pid"), "--daemonize", "no",
                "--logfile", ""] + self.extra
        return self._popen(args)

    def _popen(self, args):
        """Start args with the log file as output, registered for the end-of-run reaper."""
        logf = open(self.log_path, "ab")
        try:
            p = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        finally:
            logf.close()
        with _LIVE_LOCK:
            _LIVE.add(p)
        return p

    def _ping(self):
        with RedisClient(self.port, timeout=1.0) as c:
            return c.cmd("PING") == "PONG"

    def start(self):
        """Start (or start again, on the same port if one was already chosen)."""
        fixed = self.port is not None
        for attempt in range(8):
            port = self.port if fixed else free_port()
            self.port = port
            self.proc = self._spawn(port)
            end = deadline(10)
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    break
                try:
                    if self._ping():
                        return self
                except (OSError, RedisError, ConnectionError):
                    pass
                time.sleep(0.02)
            self._reap()
            if not fixed:
                continue  # the port was probably lost: take another
            if attempt < 7:
                time.sleep(0.25)  # same port wanted: give the old socket time to go
                continue
        raise RuntimeError("redis-server did not start on %s:\n%s" % (self.port, _tail(self.log_path)))

    def client(self):
        return RedisClient(self.port)

    def _reap(self):
        end_process(self.proc)

    def stop(self):
        """SIGTERM, wait, then SIGKILL. With --save '' nothing is written."""
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10 * SCALE)
            except subprocess.TimeoutExpired:
                p.kill()
        self._reap()
        self.proc = None

    def restart(self, keep_data=False):
        """Stop and start again on the same port and dir. keep_data: SAVE to dump.rdb in the
        same dir first (the restarted server loads it); otherwise the server comes back empty."""
        dump = os.path.join(self.dir, "dump.rdb")
        if keep_data:
            with self.client() as c:
                c.cmd("SAVE")
        self.stop()
        if not keep_data and os.path.exists(dump):
            os.unlink(dump)
        self.start()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Herald:
    """One herald edge process: `$HERALD_BIN --listen 127.0.0.1:P --redis redis://127.0.0.1:RP
    --node-id NAME [extra]`, stdout and stderr to a log file in its own temp dir."""

    def __init__(self, redis_port, node_id="edge-1", args=(), port=None, env=None, wait=True,
                 ready_timeout=20.0):
        self.redis_port = redis_port
        self.node_id = node_id
        self.args = list(args)
        self.env = env
        self.dir = tempfile.mkdtemp(prefix="herald-it-%s-" % node_id)
        self.log_path = os.path.join(self.dir, "herald.log")
        self.port = port
        self.proc = None
        self.expected_exit = False
        self.exit_code = None
        self.start(wait=wait, ready_timeout=ready_timeout)

    def argv(self):
        return [HERALD_BIN, "--listen", "127.0.0.1:%d" % self.port,
                "--redis", "redis://127.0.0.1:%d" % self.redis_port,
                "--node-id", self.node_id] + self.args

    def _spawn(self):
        env = dict(os.environ)
        if self.env:
            env.update(self.env)
        logf = open(self.log_path, "ab")
        try:
            p = subprocess.Popen(self.argv(), stdout=logf, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
        finally:
            logf.close()
        with _LIVE_LOCK:
            _LIVE.add(p)
        return p

    def start(self, wait=True, ready_timeout=20.0):
        fixed = self.port is not None
        for attempt in range(4):
            if not fixed:
                self.port = free_port()
            self.expected_exit = False
            self.exit_code = None
            self.proc = self._spawn()
            if not wait:
                return self
            end = deadline(ready_timeout)
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    break
                try:
                    if self.readyz() == 200:
                        return self
                except OSError:
                    pass
                time.sleep(0.05)
            died = self.proc.poll() is not None
            lost_port = died and re.search(r"in use|EADDRINUSE", self.log(), re.I)
            if died and lost_port and not fixed and attempt < 3:
                self._reap()
                continue
            self.expected_exit = True
            self._reap()
            raise AssertionError("herald %s did not become ready on port %d (%s):\n%s" % (
                self.node_id, self.port,
                "exited with %s" % self.exit_code if died else "GET /readyz never answered 200",
                self.log()))
        raise AssertionError("unreachable")

    def readyz(self):
        return http_get(self.port, "/readyz", timeout=2.0)[0]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return _tail(self.log_path)

    def sanitizer_report(self):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError:
            return None
        m = SANITIZER_RE.search(data)
        return data[max(0, m.start() - 200):].decode("utf-8", "replace") if m else None

    def _reap(self):
        if self.proc is not None:
            code = end_process(self.proc)
            if code is not None:
                self.exit_code = code

    def kill(self, sig=signal.SIGKILL):
        """Send a signal; SIGKILL/SIGTERM/SIGINT mark the exit as expected."""
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            self.expected_exit = True
        if self.alive():
            self.proc.send_signal(sig)
        if sig == signal.SIGKILL:
            self._reap()

    def stop(self, timeout=15.0):
        """SIGTERM, wait up to timeout (times SCALE), then SIGKILL. Returns the exit code
        (negative: killed by that signal), or None if it was never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.expected_exit = True
            self.proc.terminate()
            try:
                self.exit_code = self.proc.wait(timeout * SCALE)
            except subprocess.TimeoutExpired:
                log("herald %s ignored SIGTERM for %.0fs; killing" % (self.node_id, timeout * SCALE))
                self.proc.kill()
        self._reap()
        return self.exit_code

    def close(self):
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

def http_get(port, path, headers=None, timeout=10.0, method="GET", body=None):
    """One request with http.client -> (status, {lowercase header: value}, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SCALE)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        return resp.status, hdrs, data
    finally:
        conn.close()


def raw_request(port, data, timeout=5.0):
    """Send raw bytes, read until the server closes (or `timeout` of silence) and return what
    came back (b"" if the server closed without answering)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SCALE)
    out = bytearray()
    try:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may close while we are still sending
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                # A complete non-streaming answer is enough: stop once headers+body are in.
                resp = parse_response(bytes(out))
                if resp is not None and resp[3]:
                    break
        except (socket.timeout, ConnectionResetError, OSError):
            pass
    finally:
        s.close()
    return bytes(out)


def parse_response(raw):
    """Parse a raw HTTP/1.x response -> (status, headers lowercase, body, complete) or None when
    the status line and headers are not all there yet. complete is True when Content-Length
    bytes (or the final chunk) were received."""
    i = raw.find(b"\r\n\r\n")
    if i < 0:
        return None
    head, body = raw[:i].decode("latin-1"), raw[i + 4:]
    lines = head.split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        return None
    status = int(parts[1])
    hdrs = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
    complete = False
    if "content-length" in hdrs:
        n = int(hdrs["content-length"])
        complete = len(body) >= n
        body = body[:n]
    elif hdrs.get("transfer-encoding", "").lower() == "chunked":
        dec = _Dechunker()
        body = dec.feed(body)
        complete = dec.done
    return status, hdrs, body, complete


class _Dechunker:
    """Incremental decoder for Transfer-Encoding: chunked."""

    def __init__(self):
        self.buf = bytearray()
        self.state = "size"  # size line, chunk data, or the CRLF after the data
        self.left = 0
        self.done = False

    def feed(self, data):
        self.buf += data
        out = bytearray()
        while not self.done:
            if self.state == "size":
                i = self.buf.find(b"\r\n")
                if i < 0:
                    break
                size = int(bytes(self.buf[:i]).split(b";")[0].strip() or b"0", 16)
                del self.buf[:i + 2]
                if size == 0:
                    self.done = True
                    break
                self.left = size
                self.state = "data"
            elif self.state == "data":
                if not self.buf:
                    break
                n = min(self.left, len(self.buf))
                out += self.buf[:n]
                del self.buf[:n]
                self.left -= n
                if self.left == 0:
                    self.state = "crlf"
            else:
                if len(self.buf) < 2:
                    break
                del self.buf[:2]
                self.state = "size"
        return bytes(out)


# --------------------------------------------------------------------------------------------
# SSE client
# --------------------------------------------------------------------------------------------

class SSEEvent:
    """One dispatched event. `id` is the id field of this event block (None if it had none);
    `last_event_id` is the WHATWG last-event-ID buffer at dispatch; `event` is the event field
    (None if absent; `type` gives 'message' then); `data` is str."""

    def __init__(self, id, last_event_id, event, data):
        self.id = id
        self.last_event_id = last_event_id
        self.event = event
        self.data = data

    @property
    def type(self):
        return self.event or "message"

    def __repr__(self):
        return "SSEEvent(id=%r, event=%r, data=%r)" % (self.id, self.event, self.data)


class SSEClient:
    """A raw-socket EventSource: sends GET, reads the response head, then parses the event
    stream incrementally by the WHATWG rules (lines end in LF, CRLF or CR; fields id, event,
    data, retry; ':' comments). Every body byte is kept in `raw` for exact-wire assertions."""

    def __init__(self, port, path, headers=None, timeout=10.0, ssl_context=None):
        self.port = port
        self.path = path
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SCALE)
        if ssl_context is not None:  # https: the edge's own TLS (--tls-cert)
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname="localhost")
        req = ["GET %s HTTP/1.1" % path, "Host: 127.0.0.1:%d" % port,
               "Accept: text/event-stream", "Cache-Control: no-cache"]
        for k, v in (headers or {}).items():
            req.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(req) + "\r\n\r\n").encode("utf-8"))
        self.raw = bytearray()        # body bytes (de-chunked)
        self.comments = []            # comment lines, without the leading ':'
        self.retry = None             # last valid retry field
        self.last_event_id = ""
        self.closed = False
        self.events_seen = 0
        self._events = []
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._text = ""
        self._skip_lf = False
        self._bom_checked = False
        self._data = []
        self._has_data = False
        self._event = None
        self._id = None
        self._chunked = None
        self._dechunk = _Dechunker()
        self._read_head(deadline(timeout))

    # -- transport --

    def _recv(self, end):
        left = end - time.monotonic()
        if left <= 0:
            return None
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return None
        except (ConnectionResetError, OSError):
            chunk = b""
        if not chunk:
            self.closed = True
        return chunk

    def _read_head(self, end):
        buf = bytearray()
        while True:
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                break
            chunk = self._recv(end)
            if chunk is None:
                raise AssertionError("no response head from :%d%s; got %r" % (
                    self.port, self.path, bytes(buf[:500])))
            if not chunk:
                raise AssertionError("connection closed before the response head; got %r" % (
                    bytes(buf[:500]),))
            buf += chunk
        parsed = parse_response(bytes(buf[:i + 4]))
        self.status, self.headers = parsed[0], parsed[1]
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        self._feed_body(bytes(buf[i + 4:]))

    def _feed_body(self, data):
        if self._chunked:
            data = self._dechunk.feed(data)
        if not data:
            return
        self.raw += data
        self._text += self._decoder.decode(data)
        self._parse()

    def pump(self, timeout):
        """Read whatever arrives within `timeout` seconds (scaled); False once closed."""
        end = deadline(timeout)
        while not self.closed:
            chunk = self._recv(end)
            if chunk is None:
                break
            self._feed_body(chunk)
        return not self.closed

    # -- WHATWG event-stream interpretation --

    def _parse(self):
        t = self._text
        if not self._bom_checked and t:
            if t[0] == "\ufeff":
                t = t[1:]
            self._bom_checked = True
        pos = 0
        n = len(t)
        while pos < n:
            if self._skip_lf:
                self._skip_lf = False
                if t[pos] == "\n":
                    pos += 1
                    continue
            j = pos
            while j < n and t[j] not in "\r\n":
                j += 1
            if j == n:
                break  # incomplete line
            line = t[pos:j]
            if t[j] == "\r":
                self._skip_lf = True
            pos = j + 1
            self._line(line)
        self._text = t[pos:]

    def _line(self, line):
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            self.comments.append(line[1:])
            return
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "id":
            if "\0" not in value:
                self.last_event_id = value
                self._id = value
        elif field == "retry":
            if value.isdigit() and value.isascii():
                self.retry = int(value)

    def _dispatch(self):
        if self._has_data:
            self._events.append(SSEEvent(self._id, self.last_event_id, self._event,
                                         "\n".join(self._data)))
            self.events_seen += 1
        self._data = []
        self._has_data = False
        self._event = None
        self._id = None

    # -- API --

    def next_event(self, timeout=10.0):
        """The next dispatched event; AssertionError if none arrives within timeout (scaled)."""
        end = deadline(timeout)
        while not self._events:
            if self.closed:
                raise AssertionError("SSE stream closed before the next event; tail %r" % (
                    bytes(self.raw[-300:]),))
            chunk = self._recv(end)
            if chunk is None:
                raise AssertionError("no SSE event within %.1fs; tail %r" % (
                    timeout * SCALE, bytes(self.raw[-300:])))
            self._feed_body(chunk)
        return self._events.pop(0)

    def events(self, n, timeout=10.0):
        """The next n events (timeout applies to each)."""
        return [self.next_event(timeout) for _ in range(n)]

    def pending(self):
        """Events already parsed but not yet taken."""
        return list(self._events)

    def wait_comments(self, count, timeout=10.0):
        """Wait until at least `count` comments were seen in total."""
        end = deadline(timeout)
        while len(self.comments) < count:
            if self.closed:
                raise AssertionError("SSE stream closed while waiting for comments")
            chunk = self._recv(end)
            if chunk is None:
                raise AssertionError("only %d comment(s) within %.1fs, wanted %d" % (
                    len(self.comments), timeout * SCALE, count))
            self._feed_body(chunk)

    def wait_retry(self, timeout=10.0):
        """Wait until a retry field was seen; returns its value."""
        end = deadline(timeout)
        while self.retry is None:
            if self.closed:
                raise AssertionError("SSE stream closed before a retry field; got %r" % (
                    bytes(self.raw[:300]),))
            chunk = self._recv(end)
            if chunk is None:
                raise AssertionError("no retry field within %.1fs; got %r" % (
                    timeout * SCALE, bytes(self.raw[:300])))
            self._feed_body(chunk)
        return self.retry

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------
# TestCase base
# --------------------------------------------------------------------------------------------

class HeraldTestCase(unittest.TestCase):
    """Starts processes through self.redis()/self.edge()/self.edges(); in tearDown stops them,
    fails on an edge that died unexpectedly or wrote a sanitizer report, and dumps the logs
    when the test failed."""

    maxDiff = None

    def setUp(self):
        if not os.access(HERALD_BIN, os.X_OK):
            self.fail("HERALD_BIN %r is not an executable" % HERALD_BIN)
        self._redises = []
        self._heralds = []
        self._closers = []

    def redis(self):
        r = RedisServer()
        self._redises.append(r)
        return r

    def client(self, server):
        c = server.client()
        self._closers.append(c)
        return c

    def sse(self, port, path, headers=None, timeout=10.0):
        c = SSEClient(port, path, headers, timeout)
        self._closers.append(c)
        return c

    def edge(self, server, node_id="edge-1", args=(), **kw):
        h = Herald(server.port, node_id, args, **kw)
        self._heralds.append(h)
        return h

    def edge_behind(self, proxy, node_id="edge-1", args=()):
        """An edge whose Redis is proxy (a proxykit proxy, closed after the test)."""
        self._closers.append(proxy)
        h = Herald(proxy.port, node_id, args)
        self._heralds.append(h)
        return h

    def edges(self, server, n, args=()):
        return [self.edge(server, "edge-%d" % (i + 1), args) for i in range(n)]

    def edge_by_node(self, node_id):
        for h in self._heralds:
            if h.node_id == node_id:
                return h
        return None

    def assert_serving(self, h, topic="alive-check"):
        """The edge is alive and answers a fresh SSE client with 200 and the retry field."""
        self.assertTrue(h.alive(), "edge %s died:\n%s" % (h.node_id, h.log()))
        c = SSEClient(h.port, "/events/" + topic)
        try:
            self.assertEqual(c.status, 200)
            c.wait_retry(10)
        finally:
            c.close()

    def _failed(self):
        outcome = getattr(self, "_outcome", None)
        if outcome is None:
            return False
        if hasattr(outcome, "success") and not outcome.success:
            return True
        result = getattr(outcome, "result", None)
        if result is not None:  # Python 3.11 records a failure in the result before tearDown
            for test, _ in list(getattr(result, "failures", [])) + list(getattr(result, "errors", [])):
                if test is self or getattr(test, "test_case", None) is self:
                    return True
        if hasattr(outcome, "success"):
            return False
        errors = getattr(outcome, "errors", [])
        return any(exc for _, exc in errors)

    def tearDown(self):
        failed = self._failed()
        for c in self._closers:
            c.close()
        problems = []
        for h in self._heralds:
            died = h.proc is not None and h.proc.poll() is not None and not h.expected_exit
            if died:
                problems.append("edge %s exited unexpectedly with code %s" % (
                    h.node_id, h.proc.returncode))
            code = h.stop()
            log("edge %s: stopped, exit code %s" % (h.node_id, code))
        for h in self._heralds:
            rep = h.sanitizer_report()
            if rep:
                problems.append("edge %s wrote a sanitizer report:\n%s" % (h.node_id, rep[:20000]))
        if failed or problems:
            for h in self._heralds:
                sys.stderr.write("\n===== log of %s (%s) =====\n%s\n" % (
                    h.node_id, " ".join(h.argv()), h.log()))
            for r in self._redises:
                sys.stderr.write("\n===== redis-server :%s =====\n%s\n" % (
                    r.port, _tail(r.log_path, 4000)))
            sys.stderr.flush()
        for r in self._redises:
            r.close()
        for h in self._heralds:
            shutil.rmtree(h.dir, ignore_errors=True)
        if problems:
            self.fail("\n".join(problems))


def main():
    unittest.main(verbosity=2)


# --------------------------------------------------------------------------------------------
# Operators and attackers: metrics scrapes and tokens
# --------------------------------------------------------------------------------------------

def scrape(port):
    """GET /metrics -> {'name{labels}': float}; asserts the scrape answered 200."""
    status, _, body = http_get(port, "/metrics")
    assert status == 200, "GET /metrics answered %d" % status
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name.strip()] = float(value)
    return out


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode("ascii")


def make_jwt(secret, claims, header=None, sign=True):
    """An HS256 JWT over `claims` with `secret` (bytes or str). header overrides the JOSE
    header; sign=False leaves the signature empty (for alg "none" forgeries)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    h = _b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = _b64url(json.dumps(claims).encode())
    sig = ""
    if sign:
        sig = _b64url(hmac.new(secret, ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest())
    return "%s.%s.%s" % (h, p, sig)
