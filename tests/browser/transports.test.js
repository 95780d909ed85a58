// Headless Chromium's native EventSource and WebSocket against one edge, across a SIGKILL and
// restart of that edge: the page (the edge's own origin, so no CORS is involved: it opens
// /healthz and the script is injected) subscribes with both; events are published with
// FCALL herald_publish before, during and after the outage. EventSource resumes by itself with
// Last-Event-ID; the page's WebSocket code reconnects and re-subscribes with since = the last
// id it saw. Each must end with every event exactly once, in order, with the stored ids.
//
// Started by tests/integration/test_browser_transports.py, which owns the processes:
//   node tests/browser/transports.test.js --edge http://127.0.0.1:P --redis-port R \
//        --pid PID --node edge-1 [--topic T] [--scale S]
// Line protocol on stdout/stdin: it prints "killed <node>" after SIGKILLing the edge and then
// waits for the line "restarted" on stdin (the Python side restarts the edge on the same port).
// Exit 0 on success.
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const a = { topic: "browser.transports", scale: Number(process.env.HERALD_TIMEOUT_SCALE || 1) };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, ""), v = argv[i + 1];
    if (v === undefined) throw new Error("missing value for " + argv[i]);
    if (k === "edge") a.edge = v;
    else if (k === "redis-port") a.redisPort = Number(v);
    else if (k === "pid") a.pid = Number(v);
    else if (k === "node") a.node = v;
    else if (k === "topic") a.topic = v;
    else if (k === "scale") a.scale = Number(v);
    else throw new Error("unknown argument " + argv[i]);
  }
  if (!a.edge || !a.redisPort || !a.pid || !a.node) {
    throw new Error("need --edge, --redis-port, --pid and --node");
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const log = (...m) => console.log(...m);

async function waitFor(pred, seconds, what) {
  const end = Date.now() + seconds * 1000 * args.scale;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) {
      throw new Error("timed out after " + seconds * args.scale + "s waiting for " + what);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

// A minimal RESP2 client: bulk and simple strings, integers, arrays, errors.
class Redis {
  constructor(port) {
    this.sock = net.createConnection({ host: "127.0.0.1", port });
    this.sock.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    this.sock.on("data", (d) => { this.buf = Buffer.concat([this.buf, d]); this.drain(); });
    this.sock.on("error", (e) => { for (const w of this.waiting.splice(0)) w.reject(e); });
  }
  parse(pos) { // -> [value, next pos] or null when incomplete
    const i = this.buf.indexOf("\r\n", pos);
    if (i < 0) return null;
    const t = String.fromCharCode(this.buf[pos]), line = this.buf.subarray(pos + 1, i).toString();
    let next = i + 2;
    if (t === "+") return [line, next];
    if (t === "-") return [new Error(line), next];
    if (t === ":") return [Number(line), next];
    if (t === "$") {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (this.buf.length < next + n + 2) return null;
      return [this.buf.subarray(next, next + n).toString(), next + n + 2];
    }
    if (t === "*") {
      const n = Number(line), out = [];
      if (n < 0) return [null, next];
      for (let k = 0; k < n; k++) {
        const r = this.parse(next);
        if (!r) return null;
        out.push(r[0]);
        next = r[1];
      }
      return [out, next];
    }
    throw new Error("bad RESP type " + t);
  }
  drain() {
    while (this.waiting.length) {
      const r = this.parse(0);
      if (!r) return;
      this.buf = this.buf.subarray(r[1]);
      const w = this.waiting.shift();
      if (r[0] instanceof Error) w.reject(r[0]); else w.resolve(r[0]);
    }
  }
  cmd(...a) {
    const parts = [`*${a.length}\r\n`];
    for (const x of a) {
      const s = Buffer.from(String(x));
      parts.push(`$${s.length}\r\n`, s, "\r\n");
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p)))));
    });
  }
  close() { this.sock.destroy(); }
}

// Runs in the page: EventSource and WebSocket, everything recorded in window.rec.
function pageScript(topic) {
  const rec = { sse: [], ws: [], gaps: [], sseOpens: 0, wsOpens: 0, wsSubscribed: 0,
    wsCloses: [], errors: [] };
  window.rec = rec;
  const es = new EventSource("/events/" + encodeURIComponent(topic));
  es.onopen = () => { rec.sseOpens++; };
  es.onmessage = (e) => { rec.sse.push({ id: e.lastEventId, data: e.data }); };
  es.addEventListener("herald.gap", (e) => { rec.gaps.push({ via: "sse", data: e.data }); });
  let lastId = null;
  function connect() {
    const ws = new WebSocket("ws://" + location.host + "/ws", "herald.v1");
    ws.onopen = () => {
      rec.wsOpens++;
      const m = { type: "subscribe", topic, id: rec.wsOpens };
      if (lastId) m.since = lastId;
      ws.send(JSON.stringify(m));
    };
    ws.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (err) { rec.errors.push("bad JSON " + e.data); return; }
      if (m.type === "event") { rec.ws.push({ id: m.id, data: m.data }); lastId = m.id; }
      else if (m.type === "subscribed") rec.wsSubscribed++;
      else if (m.type === "gap") rec.gaps.push({ via: "ws", data: JSON.stringify(m) });
      else rec.errors.push("unexpected " + e.data);
    };
    ws.onclose = (e) => { rec.wsCloses.push(e.code); setTimeout(connect, 250); };
  }
  connect();
}

function lines() {
  const rl = readline.createInterface({ input: process.stdin });
  const queue = [], waiters = [];
  rl.on("line", (l) => { if (waiters.length) waiters.shift()(l); else queue.push(l); });
  rl.on("close", () => { for (const w of waiters.splice(0)) w(null); });
  const next = () => (queue.length ? Promise.resolve(queue.shift())
    : new Promise((r) => waiters.push(r)));
  return { next, close: () => rl.close() };
}

test("native EventSource and WebSocket recover every event after the edge restarts",
  { timeout: 90000 * args.scale }, async () => {
    const input = lines();
    const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
    });
    const redis = new Redis(args.redisPort);
    try {
      const page = context.pages()[0] || (await context.newPage());
      page.on("pageerror", (e) => log("page error: " + e.message));
      const resp = await page.goto(args.edge + "/healthz");
      assert.strictEqual(resp.status(), 200, "GET /healthz from the browser");
      await page.evaluate(pageScript, args.topic);
      const rec = () => page.evaluate(() => JSON.parse(JSON.stringify(window.rec)));
      const liveChan = `herald:{${args.topic}}:live`;
      const subscribed = async () => (await redis.cmd("PUBSUB", "NUMSUB", liveChan))[1] >= 1;

      await waitFor(async () => { const r = await rec(); return r.sseOpens >= 1 && r.wsSubscribed >= 1; },
        15, "EventSource open and WebSocket subscribed");
      await waitFor(subscribed, 15, "the edge's live subscription");

      const ids = [], datas = [];
      const publish = async (n) => {
        for (let k = 0; k < n; k++) {
          const d = "ev-" + (ids.length + 1);
          ids.push(await redis.cmd("FCALL", "herald_publish", 1, args.topic, d));
          datas.push(d);
        }
      };
      const haveAll = (what) => waitFor(async () => {
        const r = await rec();
        return r.sse.length >= ids.length && r.ws.length >= ids.length;
      }, 20, what);

      await publish(3);
      await haveAll("the first 3 events on both transports");

      process.kill(args.pid, "SIGKILL");
      log(`killed ${args.node}`);
      await publish(3); // while the edge is down: only in the stream
      const line = await input.next();
      assert.strictEqual(line, "restarted", "expected the edge to be restarted");
      await haveAll("the 3 events missed during the outage");
      await waitFor(subscribed, 15, "the restarted edge's live subscription");
      await publish(2);
      await haveAll("2 live events after the restart");

      const epoch = await redis.cmd("GET", `herald:{${args.topic}}:epoch`);
      const want = ids.map((id, k) => ({ id: id + "_" + epoch, data: datas[k] }));
      // one more live event: a late duplicate would arrive before it and show up below
      await publish(1);
      want.push({ id: ids[ids.length - 1] + "_" + epoch, data: datas[datas.length - 1] });
      await haveAll("a final live event");
      const r = await rec();
      log(`reconnect: EventSource opens ${r.sseOpens}, WebSocket opens ${r.wsOpens}, ` +
        `subscribed ${r.wsSubscribed}, close codes ${JSON.stringify(r.wsCloses)}`);
      assert.deepStrictEqual(r.sse, want, "EventSource: every event exactly once, in order");
      assert.deepStrictEqual(r.ws, want, "WebSocket: every event exactly once, in order");
      assert.deepStrictEqual(r.gaps, [], "no gap notice: history covered the outage");
      assert.deepStrictEqual(r.errors, [], "unexpected WebSocket messages");
      assert.ok(r.sseOpens >= 2, "EventSource reconnected by itself");
      assert.ok(r.wsSubscribed >= 2, "WebSocket re-subscribed");
    } finally {
      input.close();
      redis.close();
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    }
  });
