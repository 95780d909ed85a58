// Headless Chromium's own EventSource through the load balancer survives the SIGKILL of its
// edge: the demo page (served by the edges at /) subscribes with EventSource and records the
// id of every event; while FCALL herald_publish runs at ~50/s, the edge the page is on (its
// X-Herald-Node, seen by the browser's network layer) is SIGKILLed; the browser reconnects
// through the LB with Last-Event-ID and must end with every event exactly once, in order.
//
// Started by tests/integration/test_browser_failover.py, which owns the processes:
//   node tests/browser/failover.test.js --lb http://127.0.0.1:P --redis-port R \
//        --edges edge-1:PID,edge-2:PID,edge-3:PID [--topic T] [--scale S]
// Prints "killed <node>" and the measured reconnect time. Exit 0 on success.
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const a = { topic: "browser.failover", scale: Number(process.env.HERALD_TIMEOUT_SCALE || 1) };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, ""), v = argv[i + 1];
    if (v === undefined) throw new Error("missing value for " + argv[i]);
    if (k === "lb") a.lb = v;
    else if (k === "redis-port") a.redisPort = Number(v);
    else if (k === "topic") a.topic = v;
    else if (k === "scale") a.scale = Number(v);
    else if (k === "edges") a.edges = Object.fromEntries(v.split(",").map((e) => {
      const [node, pid] = e.split(":");
      return [node, Number(pid)];
    }));
    else throw new Error("unknown argument " + argv[i]);
  }
  if (!a.lb || !a.redisPort || !a.edges) throw new Error("need --lb, --redis-port and --edges");
  return a;
}

const args = parseArgs(process.argv.slice(2));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const log = (...m) => console.log(...m);

// Poll `pred` until it returns a truthy value; throws after `seconds` (times the scale).
async function waitFor(pred, seconds, what) {
  const end = Date.now() + seconds * 1000 * args.scale;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out after " + seconds * args.scale + "s waiting for " + what);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// A minimal RESP client: enough for FCALL replies (bulk strings, errors, integers).
class Redis {
  constructor(port) {
    this.sock = net.createConnection({ host: "127.0.0.1", port });
    this.sock.setNoDelay(true);
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    this.sock.on("data", (d) => { this.buf = Buffer.concat([this.buf, d]); this.drain(); });
    this.sock.on("error", (e) => { for (const w of this.waiting.splice(0)) w.reject(e); });
  }
  drain() {
    while (this.waiting.length) {
      const i = this.buf.indexOf("\r\n");
      if (i < 0) return;
      const t = String.fromCharCode(this.buf[0]), line = this.buf.subarray(1, i).toString();
      let value, used = i + 2;
      if (t === "$") {
        const n = Number(line);
        if (n >= 0) {
          if (this.buf.length < used + n + 2) return;
          value = this.buf.subarray(used, used + n).toString();
          used += n + 2;
        } else value = null;
      } else if (t === "-") value = new Error(line);
      else value = line;
      this.buf = this.buf.subarray(used);
      const w = this.waiting.shift();
      value instanceof Error ? w.reject(value) : w.resolve(value);
    }
  }
  cmd(...parts) {
    const enc = parts.map((p) => { const b = Buffer.from(String(p)); return `$${b.length}\r\n${b}\r\n`; });
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(`*${parts.length}\r\n` + enc.join(""));
    });
  }
  close() { this.sock.destroy(); }
}

const streamId = (cursor) => {
  const m = /^(\d+-\d+)_[0-9a-z]{1,16}$/.exec(cursor || "");
  assert.ok(m, "malformed cursor " + JSON.stringify(cursor));
  return m[1];
};

test("EventSource in Chromium resumes through the LB after its edge is SIGKILLed", { timeout: 90000 * args.scale }, async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
  });
  const redis = new Redis(args.redisPort);
  let publishing = true;
  try {
    const page = context.pages()[0] || (await context.newPage());
    const conns = []; // { at, node, status }
    page.on("response", (r) => {
      if (new URL(r.url()).pathname.startsWith("/events/")) {
        const c = { at: Date.now(), node: r.headers()["x-herald-node"], status: r.status() };
        conns.push(c);
        log(`connection ${conns.length}: HTTP ${c.status} from ${c.node}`);
      }
    });
    page.on("pageerror", (e) => log("page error: " + e.message));

    const url = `${args.lb}/?topic=${encodeURIComponent(args.topic)}&transport=sse&connect=1`;
    const resp = await page.goto(url);
    assert.strictEqual(resp.status(), 200, "the demo page at / through the LB");
    await waitFor(() => conns.length >= 1 && page.evaluate(() => window.herald.opens >= 1), 10,
      "the page's EventSource to open");
    const victim = conns[0].node;
    assert.ok(victim in args.edges, `unknown X-Herald-Node ${victim}`);

    // Publisher: FCALL herald_publish at ~50/s, payload p<n>; keeps the returned IDs.
    const ids = [];
    const pubDone = (async () => {
      let t = Date.now();
      while (publishing) {
        ids.push(await redis.cmd("FCALL", "herald_publish", 1, args.topic, "p" + (ids.length + 1)));
        t += 20;
        await new Promise((r) => setTimeout(r, Math.max(0, t - Date.now())));
      }
    })();
    const pageIds = () => page.evaluate(() => window.herald.ids.slice());

    await waitFor(async () => ids.length >= 25 && (await pageIds()).length >= 10, 10,
      "25 events published and 10 received");
    const killedAt = Date.now();
    process.kill(args.edges[victim], "SIGKILL");
    const before = (await pageIds()).length;
    log(`killed ${victim} (pid ${args.edges[victim]}) after ${ids.length} published, ${before} received`);

    const again = await waitFor(() => conns.find((c) => c.at >= killedAt && c.status === 200), 20,
      "the EventSource to reconnect through the LB");
    const firstNew = await waitFor(async () => {
      const got = await pageIds();
      return got.length > before ? Date.now() : 0;
    }, 10, "an event after the reconnect");
    const opens = await page.evaluate(() => window.herald.opens);
    assert.notStrictEqual(again.node, victim, "the LB sent the browser back to the dead edge");
    log(`reconnect: ${victim} -> ${again.node}; new stream ${again.at - killedAt} ms after the SIGKILL, ` +
      `first event after it <= ${firstNew - killedAt} ms after (EventSource retry delay included); page opens ${opens}`);

    const n = ids.length;
    await waitFor(() => ids.length >= n + 50, 10, "one more second of publishing");
    publishing = false;
    await pubDone;
    const want = ids.slice();
    const got = await waitFor(async () => {
      const g = await pageIds();
      return g.length >= want.length ? g : null;
    }, 15, `the page to receive all ${want.length} events`);
    const gotIds = got.map(streamId);
    assert.strictEqual(new Set(gotIds).size, gotIds.length, "duplicate events in the browser");
    assert.deepStrictEqual(gotIds, want, "not every event exactly once, in order");
    const data = await page.evaluate(() => window.herald.data.slice());
    assert.deepStrictEqual(data, want.map((_, i) => "p" + (i + 1)));
    log(`browser received all ${want.length} events exactly once, in order, across ${conns.length} connections`);
  } finally {
    publishing = false;
    redis.close();
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
});
