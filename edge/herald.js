// herald.js: the browser client of Herald (served by every edge at /herald.js).
//
//   import { connect } from "https://push.example.com/herald.js";
//   const h = connect("https://push.example.com", { getToken: async () => fetchToken() });
//   const off = h.subscribe("news", { since: savedCursor }, (ev) => save(ev.id));
//   h.onGap = (topic, reason) => reload(topic);
//   h.onState = (state, info) => show(state, info.transport, info.node);
//
// One connection per browser origin: every tab of the page that connects to the same URL joins
// one group; one tab leads (a Web Lock held for as long as the tab lives) and holds the only
// connection to Herald; the others subscribe through it over a BroadcastChannel. Every tab keeps
// its own cursor per topic and takes an event only when it is newer than that cursor, so a
// replay (after a reconnection, a hand-over or another tab's older `since`) never reaches a
// handler twice. When the leading tab closes or crashes, its lock is released, the next tab
// leads, asks the others for their cursors and resumes every topic from the oldest of them.
// Without Web Locks or BroadcastChannel each tab simply holds its own connection.
//
// Transports, in order: WebSocket (herald.v1, token in an `auth` message, never in the URL),
// multi-topic SSE, long-poll. A transport that never went live is given up for the next one.
// Reconnections back off with full jitter (0.5 s doubling up to 30 s).

const PROTOCOL = "herald.v1";
const CURSOR_RE = /^(\d{1,20})-(\d{1,20})(?:_([0-9a-z]{1,16}))?$/;
const HEARTBEAT_MS = 2000;
const STALE_LEADER_MS = 10000;

function parseCursor(c) {
  const m = typeof c === "string" ? CURSOR_RE.exec(c) : null;
  return m ? { ms: BigInt(m[1]), seq: BigInt(m[2]), epoch: m[3] || "" } : null;
}

// Is cursor a after cursor b? A cursor of another epoch counts as after: the stream was
// recreated and the server has sent a `reset` gap notice before it.
function isAfter(a, b) {
  const x = parseCursor(a);
  const y = parseCursor(b);
  if (!x || !y) return !!x;
  if (x.epoch && y.epoch && x.epoch !== y.epoch) return true;
  return x.ms > y.ms || (x.ms === y.ms && x.seq > y.seq);
}

// The older of two cursors (null means "no cursor": live only).
function older(a, b) {
  if (!a) return b;
  if (!b) return a;
  return isAfter(a, b) ? b : a;
}

function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(part)).exp;
    return Number.isFinite(exp) ? exp * 1000 : null;
  } catch (_) {
    return null;
  }
}

function backoff(attempt) {
  return Math.random() * Math.min(30000, 500 * 2 ** Math.min(attempt, 6));
}

function randomId() {
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

// ---- transports: each keeps a set of topics with their resume cursors and calls back
// on(kind, ...) with "open" (node), "event" (event object), "gap" (topic, reason), "down".

class WsTransport {
  constructor(base, auth, on) {
    this.on = on;
    this.topics = new Map(); // topic -> since
    this.busy = new Map(); // topic -> subscribes the edge turned away as busy in a row
    this.auth = auth;
    const u = new URL("/ws", base);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(u.href, PROTOCOL);
    this.open = false;
    this.ws.onopen = async () => {
      this.open = true;
      const token = await this.auth.token();
      if (token) this.send({ type: "auth", token });
      for (const [topic, since] of this.topics) this.sub(topic, since);
      this.send({ type: "ping" }); // the pong names the edge
      this.on("open", null);
    };
    this.ws.onmessage = (m) => {
      let o;
      try {
        o = JSON.parse(m.data);
      } catch (_) {
        return;
      }
      if (o.type === "event") this.on("event", o);
      else if (o.type === "gap") this.on("gap", o.topic, o.reason);
      else if (o.type === "error" && o.code === "busy" && this.topics.has(o.topic)) {
        this.again(o.topic); // the edge takes on new topics at a bounded rate: not an error
      } else if (o.type === "error") this.on("error", o);
      else if (o.type === "subscribed") this.busy.delete(o.topic);
      else if (o.type === "pong" && o.node) this.on("node", o.node);
    };
    this.ws.onclose = () => this.on("down", this.open);
  }
  send(o) {
    if (this.ws.readyState === 1) this.ws.send(JSON.stringify(o));
  }
  sub(topic, since) {
    const o = { type: "subscribe", topic };
    if (since) o.since = since;
    this.send(o);
  }
  // A subscribe the edge turned away as busy (--topic-rate): sent again after a backoff, with
  // the topic's cursor as it stands then, while the topic is still wanted.
  again(topic) {
    const n = this.busy.get(topic) || 0;
    this.busy.set(topic, n + 1);
    setTimeout(() => {
      if (this.open && this.topics.has(topic)) this.sub(topic, this.topics.get(topic));
    }, backoff(n));
  }
  set(topic, since, replay) {
    const had = this.topics.has(topic);
    this.topics.set(topic, since);
    if (!this.open) return;
    if (had && replay) this.send({ type: "unsubscribe", topic });
    if (!had || replay) this.sub(topic, since);
  }
  remove(topic) {
    this.busy.delete(topic);
    if (this.topics.delete(topic)) this.send({ type: "unsubscribe", topic });
  }
  reauth(token) {
    this.send({ type: "auth", token });
  }
  close() {
    this.ws.onclose = null;
    this.ws.close(1000);
  }
}

// Multi-topic SSE, read with fetch (so the token travels in the Authorization header, never
// in the URL, and events of every name arrive in one place): one stream for every topic; any
// change of the set reopens it with the composite cursor of the topics' resume points.
class SseTransport {
  constructor(base, auth, on) {
    this.base = base;
    this.auth = auth;
    this.on = on;
    this.topics = new Map();
    this.ctl = null;
    this.open = false;
    this.timer = null;
  }
  reopen() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(), 0);
  }
  async start() {
    if (this.ctl) this.ctl.abort();
    this.ctl = null;
    if (!this.topics.size) return;
    const ctl = new AbortController();
    this.ctl = ctl;
    const u = new URL("/events", this.base);
    // One argument per topic, or past 64 one comma-separated list: the edge's HTTP parser
    // takes at most about 90 header lines and query arguments (older edges take no lists).
    const names = [...this.topics.keys()];
    if (names.length > 64) u.searchParams.set("topic", names.join(","));
    else for (const t of names) u.searchParams.append("topic", t);
    const headers = { Accept: "text/event-stream" };
    const last = [...this.topics.values()].map((c) => c || "").join(",");
    if (last.replace(/,/g, "")) headers["Last-Event-ID"] = last;
    const token = await this.auth.token();
    if (token) headers.Authorization = "Bearer " + token;
    let r;
    try {
      r = await fetch(u.href, { headers, signal: ctl.signal, cache: "no-store" });
      refused(r, this.on);
      if (!r.ok || !r.body) throw new Error("SSE answered " + r.status);
    } catch (e) {
      if (!ctl.signal.aborted) this.on("down", this.open);
      return;
    }
    this.open = true;
    this.on("open", r.headers.get("x-herald-node"));
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    let name = "";
    let data = [];
    const dispatch = () => {
      const text = data.join("\n");
      const n = name;
      name = "";
      data = [];
      if (!text) return;
      let o;
      try {
        o = JSON.parse(text);
      } catch (_) {
        return;
      }
      if (n === "herald.gap") this.on("gap", o.topic, o.reason);
      else if (o.type === "event") {
        this.topics.set(o.topic, o.id);
        this.on("event", o);
      }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        const lines = buf.split(/\r\n|\r|\n/);
        buf = lines.pop();
        for (const line of lines) {
          if (line === "") dispatch();
          else if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
          else if (line.startsWith("event:")) name = line.slice(line[6] === " " ? 7 : 6);
        }
      }
    } catch (_) {}
    if (this.ctl === ctl && !ctl.signal.aborted) this.on("down", true);
  }
  set(topic, since, replay) {
    const had = this.topics.has(topic);
    if (had && !replay) return;
    this.topics.set(topic, since);
    this.reopen();
  }
  remove(topic) {
    if (this.topics.delete(topic)) this.reopen();
  }
  reauth() {
    this.reopen();
  }
  close() {
    clearTimeout(this.timer);
    if (this.ctl) this.ctl.abort();
    this.ctl = null;
  }
}

// Long-poll: one request loop per topic.
class PollTransport {
  constructor(base, auth, on) {
    this.base = base;
    this.auth = auth;
    this.on = on;
    this.topics = new Map();
    this.loops = new Map(); // topic -> AbortController
    this.open = false;
    this.closed = false;
  }
  set(topic, since, replay) {
    const had = this.topics.has(topic);
    if (had && !replay) return;
    this.topics.set(topic, since);
    if (this.loops.has(topic)) this.loops.get(topic).abort();
    this.loop(topic);
  }
  remove(topic) {
    this.topics.delete(topic);
    const a = this.loops.get(topic);
    if (a) a.abort();
    this.loops.delete(topic);
  }
  async loop(topic) {
    const ctl = new AbortController();
    this.loops.set(topic, ctl);
    let failures = 0;
    while (!this.closed && !ctl.signal.aborted && this.topics.has(topic)) {
      const u = new URL("/poll/" + topic, this.base);
      const since = this.topics.get(topic);
      // Without a cursor the first request answers at once with the topic's tail cursor, so
      // the client is live from then on and loses nothing between two requests.
      if (since) u.searchParams.set("since", since);
      u.searchParams.set("timeout", since ? "25" : "0");
      const headers = {};
      const token = await this.auth.token();
      if (token) headers.Authorization = "Bearer " + token;
      try {
        const r = await fetch(u.href, { headers, signal: ctl.signal, cache: "no-store" });
        refused(r, this.on, topic);
        if (!r.ok) throw new Error("poll " + r.status);
        const body = await r.json();
        if (!this.open) {
          this.open = true;
          this.on("open", r.headers.get("x-herald-node"));
        }
        failures = 0;
        if (body.gap) this.on("gap", topic, body.gap);
        for (const o of body.events) this.on("event", o);
        // An empty `next` means the topic has no stream yet: everything from its start is new.
        if (this.topics.has(topic) && !ctl.signal.aborted) this.topics.set(topic, body.next || "0-0");
      } catch (e) {
        if (ctl.signal.aborted || this.closed) return;
        if (++failures >= 2) {
          this.on("down", this.open);
          return;
        }
        await new Promise((res) => setTimeout(res, backoff(failures)));
      }
    }
  }
  reauth() {}
  close() {
    this.closed = true;
    for (const a of this.loops.values()) a.abort();
  }
}

// A 401 or 403 is told to the page (onError) before the transport retries.
function refused(r, on, topic) {
  if (r.status === 401 || r.status === 403) {
    on("error", { topic, code: r.status === 401 ? "unauthorized" : "forbidden",
      message: "HTTP " + r.status });
  }
}

const TRANSPORTS = { ws: WsTransport, sse: SseTransport, poll: PollTransport };

// ---- the tab's client

class Herald {
  constructor(url, opts) {
    this.url = new URL(url, typeof location !== "undefined" ? location.href : undefined).href;
    this.opts = opts;
    this.tab = randomId();
    this.subs = new Map(); // topic -> { handlers: Set, cursor }
    this.onGap = null;
    this.onState = null;
    this.onError = null;
    this.state = "connecting";
    this.info = { transport: null, node: null, leader: false };
    this.closed = false;
    this._token = opts.token || null;
    this._tokenTimer = null;
    // leader side
    this.leading = false;
    this.conn = null;
    this.kind = 0;
    this.attempt = 0;
    this.resume = new Map(); // topic -> cursor the connection resumes from
    this.wants = new Map(); // tab -> Map(topic -> cursor)
    this.lastLeadBeat = 0;
    this.groupLast = new Map(); // topic -> newest cursor seen in the group
    const shared = opts.share !== false && typeof BroadcastChannel !== "undefined" &&
      typeof navigator !== "undefined" && navigator.locks;
    if (shared) {
      this.bc = new BroadcastChannel("herald:" + this.url);
      this.bc.onmessage = (m) => this._onGroup(m.data);
      this._requestLead(false);
      this._watchLeader();
      this._announce();
      addEventListener("pagehide", () => this.close());
    } else {
      this._lead();
    }
    this._scheduleRefresh();
  }

  // ---- public API

  subscribe(topic, options, onEvent) {
    if (typeof options === "function") [options, onEvent] = [{}, options];
    let s = this.subs.get(topic);
    const fresh = !s;
    const since = (options && options.since) || null;
    if (fresh) {
      // Without a cursor a subscription takes events after now: the group's newest cursor of
      // the topic (when another tab has it) keeps replays for other tabs away from it.
      s = { handlers: new Set(), cursor: since || this.groupLast.get(topic) || null };
      this.subs.set(topic, s);
    }
    s.handlers.add(onEvent);
    if (fresh) this._want(topic, since, !!since);
    return () => {
      s.handlers.delete(onEvent);
      if (!s.handlers.size && this.subs.get(topic) === s) {
        this.subs.delete(topic);
        this._want(topic, undefined, false);
      }
    };
  }

  cursor(topic) {
    const s = this.subs.get(topic);
    return s ? s.cursor : null;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this._tokenTimer);
    clearInterval(this._beat);
    clearInterval(this._watch);
    if (this.bc) {
      this.bc.postMessage({ t: "bye", tab: this.tab });
      this.bc.close();
    }
    if (this._abort) this._abort.abort();
    if (this._release) this._release();
    if (this.conn) this.conn.close();
    this.conn = null;
  }

  // ---- delivery inside a tab: every tab (the leader too) filters by its own cursor

  _deliver(o) {
    const g = this.groupLast.get(o.topic);
    if (!g || isAfter(o.id, g)) this.groupLast.set(o.topic, o.id);
    const s = this.subs.get(o.topic);
    if (!s || (s.cursor && !isAfter(o.id, s.cursor))) return;
    s.cursor = o.id;
    const ev = { topic: o.topic, id: o.id, event: o.event || null, data: o.data };
    if (o.encoding === "base64") ev.encoding = "base64";
    for (const f of [...s.handlers]) {
      try {
        f(ev);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  _gap(topic, reason) {
    if (this.subs.has(topic) && this.onGap) this.onGap(topic, reason);
  }

  _error(o) {
    if (this.onError && (!o.topic || this.subs.has(o.topic))) {
      this.onError({ topic: o.topic || null, code: o.code, message: o.message });
    }
  }

  _setState(state, info) {
    this.state = state;
    Object.assign(this.info, info || {});
    if (this.leading) this._beacon();
    if (this.onState) this.onState(state, { ...this.info });
  }

  // ---- the group (BroadcastChannel)

  _send(m) {
    if (this.bc && !this.closed) this.bc.postMessage(m);
  }

  _announce() {
    const topics = {};
    for (const [t, s] of this.subs) topics[t] = s.cursor;
    this._send({ t: "want", tab: this.tab, topics });
  }

  _want(topic, cursor, replay) {
    if (this.leading) {
      const mine = this.wants.get(this.tab) || new Map();
      if (cursor === undefined) mine.delete(topic);
      else mine.set(topic, cursor);
      this.wants.set(this.tab, mine);
      this._plan(topic, cursor, replay);
    } else {
      this._send({ t: "sub", tab: this.tab, topic, cursor, replay });
    }
  }

  _onGroup(m) {
    if (this.closed || !m || m.tab === this.tab) return;
    switch (m.t) {
      case "ev":
        if (!m.to || m.to === this.tab) this._deliver(m.o);
        break;
      case "gap":
        this._gap(m.topic, m.reason);
        break;
      case "err":
        this._error(m.o);
        break;
      case "state":
        this.lastLeadBeat = Date.now();
        if (!this.leading) this._setState(m.state, { ...m.info, leader: false });
        break;
      case "hello": // a new leader asks for every tab's topics and cursors
        this._announce();
        break;
      case "want":
        if (this.leading) this._merge(m.tab, m.topics);
        break;
      case "sub":
        if (this.leading) {
          const w = this.wants.get(m.tab) || new Map();
          if (m.cursor === undefined) w.delete(m.topic);
          else w.set(m.topic, m.cursor);
          this.wants.set(m.tab, w);
          this._plan(m.topic, m.cursor, m.replay);
        }
        break;
      case "bye":
        if (this.leading && this.wants.delete(m.tab)) this._prune();
        break;
    }
  }

  // ---- leading: the only connection of the group

  _lead() {
    if (this.closed) return Promise.resolve();
    this.leading = true;
    this.info.leader = true;
    const mine = new Map();
    for (const [t, s] of this.subs) mine.set(t, s.cursor);
    this.wants.set(this.tab, mine);
    for (const [t, c] of mine) this.resume.set(t, older(this.resume.get(t), c));
    this._send({ t: "hello", tab: this.tab });
    this._beat = setInterval(() => this._beacon(), HEARTBEAT_MS);
    this._connect();
    return new Promise((res) => (this._release = res));
  }

  _beacon() {
    this._send({ t: "state", tab: this.tab, state: this.state,
      info: { transport: this.info.transport, node: this.info.node } });
  }

  // A leader that stops beating (a frozen tab) is replaced: its lock is stolen, and when it
  // wakes up its lock request fails and it steps down.
  _watchLeader() {
    this._watch = setInterval(() => {
      if (this.leading || this.closed || !this.lastLeadBeat) return;
      if (Date.now() - this.lastLeadBeat < STALE_LEADER_MS) return;
      this.lastLeadBeat = 0;
      this._requestLead(true);
    }, HEARTBEAT_MS);
  }

  _requestLead(steal) {
    if (this._abort) this._abort.abort();
    this._abort = new AbortController();
    const opts = steal ? { steal: true } : { signal: this._abort.signal };
    navigator.locks
      .request("herald-lead:" + this.url, opts, () => this._lead())
      .catch(() => this._stepDown());
  }

  _stepDown() {
    if (!this.leading || this.closed) return;
    this.leading = false;
    this.info.leader = false;
    clearInterval(this._beat);
    if (this.conn) this.conn.close();
    this.conn = null;
    this.resume.clear();
    this.wants.clear();
    this._announce();
    this._requestLead(false);
  }

  _merge(tab, topics) {
    const w = new Map(Object.entries(topics || {}));
    this.wants.set(tab, w);
    for (const [t, c] of w) this._plan(t, c, !!c);
  }

  // A tab wants topic t from cursor c: the connection resumes from the older of its own
  // position and c (a replay that the tabs already past it ignore).
  _plan(t, c, replay) {
    if (c === undefined) return this._prune();
    const had = this.resume.has(t);
    const cur = this.resume.get(t);
    const from = had ? (c ? older(cur, c) : cur) : c;
    const back = had && c && cur && isAfter(cur, c);
    this.resume.set(t, from || null);
    if (this.conn && (!had || (replay && back))) this.conn.set(t, from || null, back);
  }

  _prune() {
    const needed = new Set();
    for (const w of this.wants.values()) for (const t of w.keys()) needed.add(t);
    for (const t of [...this.resume.keys()]) {
      if (!needed.has(t)) {
        this.resume.delete(t);
        if (this.conn) this.conn.remove(t);
      }
    }
  }

  _connect() {
    if (this.closed) return;
    const order = this.opts.transports || ["ws", "sse", "poll"];
    const name = order[Math.min(this.kind, order.length - 1)];
    const auth = { token: () => this._getToken() };
    let conn;
    const on = (what, a, b) => {
      if (conn !== this.conn) return;
      if (what === "open") {
        this.attempt = 0;
        this.everLive = true;
        this._setState("live", { transport: name, node: a || this.info.node });
      } else if (what === "event") {
        if (!this.resume.has(a.topic)) return;
        if (!this.resume.get(a.topic) || isAfter(a.id, this.resume.get(a.topic))) {
          this.resume.set(a.topic, a.id);
        }
        this._send({ t: "ev", tab: this.tab, o: a });
        this._deliver(a);
      } else if (what === "node") {
        this._setState(this.state, { node: a });
      } else if (what === "error") {
        this._send({ t: "err", tab: this.tab, o: a });
        this._error(a);
      } else if (what === "gap") {
        this._send({ t: "gap", tab: this.tab, topic: a, reason: b });
        this._gap(a, b);
      } else if (what === "down") {
        conn.close();
        this.conn = null;
        if (!a && !this.everLive && this.kind < order.length - 1) this.kind++;
        this._setState(this.everLive ? "resuming" : "connecting");
        const wait = backoff(this.attempt++);
        if (this.attempt > 3) this._setState("offline");
        setTimeout(() => this._connect(), wait);
      }
    };
    conn = new TRANSPORTS[name](this.url, auth, on);
    this.conn = conn;
    for (const [t, c] of this.resume) conn.set(t, c, false);
  }

  // ---- tokens: fetched with getToken, refreshed a minute (or a fifth of the lifetime)
  // before they expire; the live connection is handed the new one.

  async _getToken() {
    if (this._token) {
      const exp = tokenExpiry(this._token);
      if (!exp || exp > Date.now() + 5000 || !this.opts.getToken) return this._token;
    }
    if (!this.opts.getToken) return this._token;
    this._token = await this.opts.getToken();
    this._scheduleRefresh();
    return this._token;
  }

  _scheduleRefresh() {
    clearTimeout(this._tokenTimer);
    if (!this._token || !this.opts.getToken) return;
    const exp = tokenExpiry(this._token);
    if (!exp) return;
    const left = exp - Date.now();
    const lead = Math.min(60000, left / 5);
    this._tokenTimer = setTimeout(async () => {
      this._token = await this.opts.getToken();
      this._scheduleRefresh();
      if (this.conn) this.conn.reauth(this._token);
    }, Math.max(1000, left - lead));
  }
}

/** connect(url, {token, getToken, transports, share}) -> a client (see the top of this file). */
export function connect(url, opts = {}) {
  return new Herald(url, opts);
}

export const herald = { connect };
export default herald;
