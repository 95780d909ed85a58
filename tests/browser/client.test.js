// herald.js in headless Chromium, against one edge: five tabs of one origin share a single
// connection and each gets every event exactly once, in order; closing the leading tab while
// events flow hands the connection over with nothing lost or duplicated in any tab; the SSE and
// long-poll transports deliver and resume too; SIGKILL of the serving edge resumes every tab on
// another edge behind HAProxy, exactly; /herald.js is revalidated by its ETag.
//
// Started by tests/integration/test_browser_client.py, which owns the processes:
//   node tests/browser/client.test.js --edge http://127.0.0.1:LB --redis-port R \
//        --edges PORT:PID,PORT:PID [--scale S]
// Exit 0 on success.
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { execFile } = require("node:child_process");
const crypto = require("node:crypto");
const { chromium } = require("playwright-core");

const argv = process.argv.slice(2);
const arg = (k, d) => {
  const i = argv.indexOf("--" + k);
  return i >= 0 ? argv[i + 1] : d;
};
const EDGE = arg("edge");
const REDIS_PORT = arg("redis-port");
const SCALE = Number(arg("scale", process.env.HERALD_TIMEOUT_SCALE || 1));
const SECRET = arg("jwt-secret");
const COOKIE_EDGE = arg("cookie-edge"); // an edge with --auth-cookie herald_token, no anonymous
const BUSY_EDGE = arg("busy-edge"); // an edge with --topic-rate 5 --threads 1
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const EDGES = (arg("edges") || "").split(",").filter(Boolean).map((x) => {
  const [port, pid] = x.split(":").map(Number);
  return { port, pid, dead: false };
});
if (!EDGE || !REDIS_PORT || !EDGES.length) throw new Error("need --edge, --redis-port, --edges");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, seconds, what) {
  const end = Date.now() + seconds * 1000 * SCALE;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out after " + seconds * SCALE + " s: " + what);
    await sleep(50);
  }
}

// FCALL herald_publish through redis-cli; resolves to the stream ID.
function publish(topic, payload) {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", ["-p", REDIS_PORT, "FCALL", "herald_publish", "1", topic, payload],
      (err, out) => (err ? reject(err) : resolve(out.trim())));
  });
}

// WebSocket connections open at one edge (read from its /metrics, not through the balancer).
async function wsAt(e) {
  if (e.dead) return 0;
  const text = await (await fetch("http://127.0.0.1:" + e.port + "/metrics")).text();
  const m = /^herald_connections\{transport="ws"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

async function wsConnections() {
  let n = 0;
  for (const e of EDGES) n += await wsAt(e);
  return n;
}

// Runs in a page: loads the edge's own /herald.js and records what the handlers receive.
async function startClient([topic, opts]) {
  const mod = await import("/herald.js");
  const rec = { events: [], gaps: [], states: [] };
  window.rec = rec;
  const h = mod.connect(location.origin, opts || {});
  window.h = h;
  h.onGap = (t, reason) => rec.gaps.push(t + ":" + reason);
  h.onState = (s, info) => rec.states.push(s + "/" + info.transport);
  h.subscribe(topic, (ev) => rec.events.push(ev.id.split("_")[0] + "|" + ev.data));
}

function expected(ids, payloads) {
  return ids.map((id, i) => id + "|" + payloads[i]);
}

let browser, context;

test.before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-client-"));
  context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

test.after(async () => {
  if (context) await context.close();
  if (browser) await browser.close();
});

async function openTabs(n, topic, opts) {
  const pages = [];
  for (let i = 0; i < n; i++) {
    const p = await context.newPage();
    await p.goto(EDGE + "/healthz");
    await p.evaluate(startClient, [topic, opts || null]);
    pages.push(p);
  }
  return pages;
}

const live = (p) => p.evaluate(() => window.h.state === "live");
const got = (p) => p.evaluate(() => window.rec.events.slice());

test("five tabs share one WebSocket and each gets every event once", async () => {
  const topic = "client.share." + process.pid;
  const before = await wsConnections();
  const pages = await openTabs(5, topic);
  for (const p of pages) await waitFor(() => live(p), 20, "every tab live");
  await waitFor(async () => (await wsConnections()) === before + 1, 10, "one WebSocket");
  await sleep(300 * SCALE); // the followers' subscriptions reach the leader
  const payloads = Array.from({ length: 40 }, (_, i) => "share-" + i);
  const ids = [];
  for (const x of payloads) ids.push(await publish(topic, x));
  for (const p of pages) {
    await waitFor(async () => (await got(p)).length >= payloads.length, 20, "40 events per tab");
  }
  await sleep(300);
  for (const p of pages) assert.deepStrictEqual(await got(p), expected(ids, payloads));
  assert.strictEqual(await wsConnections(), before + 1, "still one WebSocket for five tabs");

  // Hand-over: close the leading tab while events flow.
  const leads = [];
  for (const p of pages) leads.push(await p.evaluate(() => window.h.leading));
  assert.strictEqual(leads.filter(Boolean).length, 1, "exactly one tab leads");
  const leader = pages[leads.indexOf(true)];
  const rest = pages.filter((p) => p !== leader);
  const more = Array.from({ length: 60 }, (_, i) => "handover-" + i);
  const moreIds = [];
  const flow = (async () => {
    for (const x of more) {
      moreIds.push(await publish(topic, x));
      await sleep(20);
    }
  })();
  await sleep(300);
  await leader.close();
  await flow;
  const all = expected(ids.concat(moreIds), payloads.concat(more));
  for (const p of rest) {
    await waitFor(async () => (await got(p)).length >= all.length, 30, "every event after hand-over");
  }
  await sleep(500);
  for (const p of rest) assert.deepStrictEqual(await got(p), all, "no loss or duplicate");
  await waitFor(async () => (await wsConnections()) === before + 1, 15, "one WebSocket again");
  for (const p of rest) await p.close();
});

for (const transport of ["sse", "poll"]) {
  test(transport + " transport delivers and resumes from a cursor", async () => {
    const topic = "client." + transport + "." + process.pid;
    const [p] = await openTabs(1, topic, { transports: [transport], share: false });
    await waitFor(() => live(p), 20, transport + " live");
    await sleep(300 * SCALE);
    const payloads = ["a", "b\nc", "d"];
    const ids = [];
    for (const x of payloads) ids.push(await publish(topic, x));
    await waitFor(async () => (await got(p)).length >= 3, 20, "3 events over " + transport);
    assert.deepStrictEqual(await got(p), expected(ids, payloads));
    // A second client resumes from the first event's cursor: exactly the two after it.
    const first = ids[0];
    const resumed = await p.evaluate(async ([t, since, tr]) => {
      const mod = await import("/herald.js");
      const out = [];
      const h2 = mod.connect(location.origin, { transports: [tr], share: false });
      h2.subscribe(t, { since }, (ev) => out.push(ev.id.split("_")[0] + "|" + ev.data));
      const end = Date.now() + 20000;
      while (out.length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 300));
      h2.close();
      return out;
    }, [topic, first, transport]);
    assert.deepStrictEqual(resumed, expected(ids.slice(1), payloads.slice(1)));
    await p.close();
  });
}

// Past 64 topics the SSE transport names them in one comma-separated argument: one argument
// each, a request of ~90 was dropped by the edge's HTTP parser without an answer.
test("sse transport with 100 topics on one stream", async () => {
  const topics = Array.from({ length: 100 }, (_, i) => "many." + process.pid + "." + i);
  const p = await context.newPage();
  await p.goto(EDGE + "/healthz");
  await p.evaluate(async (topics) => {
    const mod = await import("/herald.js");
    window.many = [];
    const h = mod.connect(location.origin, { transports: ["sse"], share: false });
    for (const t of topics) h.subscribe(t, (ev) => window.many.push(t + "|" + ev.data));
  }, topics);
  const pick = [topics[0], topics[64], topics[99]];
  await waitFor(async () => {
    const seen = new Set((await p.evaluate(() => window.many.slice())).map((x) => x.split("|")[0]));
    for (const t of pick) if (!seen.has(t)) await publish(t, "hello");
    return pick.every((t) => seen.has(t));
  }, 30, "events on the first, 65th and last of 100 topics over SSE");
  await p.close();
});

test("SIGKILL of the serving edge: every tab resumes on another, exactly", async () => {
  const topic = "client.kill." + process.pid;
  const before = await wsConnections();
  const pages = await openTabs(3, topic);
  for (const p of pages) await waitFor(() => live(p), 20, "every tab live");
  await waitFor(async () => (await wsConnections()) === before + 1, 10, "one WebSocket");
  await sleep(300 * SCALE);
  const payloads = Array.from({ length: 80 }, (_, i) => "kill-" + i);
  const ids = [];
  let serving = null;
  for (let i = 0; i < payloads.length; i++) {
    if (i === 20) {
      for (const e of EDGES) if (!serving && (await wsAt(e)) > 0) serving = e;
      assert.ok(serving, "an edge serves the WebSocket");
      process.kill(serving.pid, "SIGKILL");
      serving.dead = true;
      console.log("killed edge on port " + serving.port);
    }
    ids.push(await publish(topic, payloads[i]));
    await sleep(25);
  }
  const all = expected(ids, payloads);
  for (const p of pages) {
    await waitFor(async () => (await got(p)).length >= all.length, 40, "every event after the kill");
  }
  await sleep(500);
  for (const p of pages) assert.deepStrictEqual(await got(p), all, "no loss or duplicate");
  const states = await pages[0].evaluate(() => window.rec.states);
  assert.ok(states.includes("resuming/ws") || states.some((s) => s.startsWith("resuming")),
    "the tab saw the resume: " + states.join(","));
  for (const p of pages) await p.close();
});

// An HS256 token that lets its bearer subscribe to everything for `seconds`.
function token(seconds) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = b64({ alg: "HS256", typ: "JWT" }) + "." +
    b64({ subscribe: ["*"], exp: Math.floor(Date.now() / 1000) + seconds });
  return body + "." + crypto.createHmac("sha256", SECRET).update(body).digest("base64url");
}

test("getToken refreshes a WebSocket's token before it expires", async () => {
  assert.ok(SECRET, "--jwt-secret");
  const topic = "client.token." + process.pid;
  const p = await context.newPage();
  await p.goto(EDGE + "/healthz");
  // Tokens valid for 4 s (the edge adds --jwt-leeway 1): without refresh the WebSocket is
  // closed with 1008 "token expired" after 5 s.
  await p.exposeFunction("nextToken", () => token(4));
  await p.evaluate(async (t) => {
    const mod = await import("/herald.js");
    window.rec = { events: [], states: [], tokens: 0 };
    window.h = mod.connect(location.origin, {
      share: false,
      getToken: async () => {
        window.rec.tokens++;
        return window.nextToken();
      },
    });
    window.h.onState = (s) => window.rec.states.push(s);
    window.h.subscribe(t, (ev) => window.rec.events.push(ev.id.split("_")[0] + "|" + ev.data));
  }, topic);
  await waitFor(() => live(p), 20, "live");
  await sleep(300 * SCALE);
  const payloads = Array.from({ length: 24 }, (_, i) => "tok-" + i);
  const ids = [];
  for (const x of payloads) {
    ids.push(await publish(topic, x));
    await sleep(500);
  }
  await waitFor(async () => (await got(p)).length >= payloads.length, 20, "every event");
  assert.deepStrictEqual(await got(p), expected(ids, payloads));
  const rec = await p.evaluate(() => window.rec);
  assert.ok(rec.tokens >= 3, "getToken called again before each expiry: " + rec.tokens);
  assert.ok(rec.states.length && rec.states.every((x) => x === "live"),
    "never disconnected: " + rec.states.join(","));
  await p.close();
});

test("cookie sign-in works from the edge's own origin and is refused from another", async () => {
  assert.ok(COOKIE_EDGE, "--cookie-edge");
  const topic = "client.cookie." + process.pid;
  const p = await context.newPage();
  await p.goto(COOKIE_EDGE + "/healthz");
  await p.evaluate((t) => {
    document.cookie = "herald_token=" + t + "; path=/; SameSite=Strict";
  }, token(600));
  await p.evaluate(startClient, [topic, { share: false }]);
  await waitFor(() => live(p), 20, "live with the cookie");
  await sleep(300 * SCALE);
  const id = await publish(topic, "with-cookie");
  await waitFor(async () => (await got(p)).length >= 1, 20, "the event");
  assert.deepStrictEqual(await got(p), [id + "|with-cookie"]);
  await p.close();
  // A page of another origin on the same site (the balancer's port): the browser sends the
  // cookie with its WebSocket handshake, and the edge gives it no rights.
  const q = await context.newPage();
  await q.goto(EDGE + "/healthz");
  const out = await q.evaluate(async ([url, t]) => {
    const mod = await import("/herald.js");
    const errors = [];
    const events = [];
    const h = mod.connect(url, { share: false });
    h.onError = (e) => errors.push(e.code);
    h.subscribe(t, (ev) => events.push(ev.data));
    const end = Date.now() + 10000;
    while (!errors.length && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
    h.close();
    return { errors, events };
  }, [COOKIE_EDGE, topic]);
  assert.deepStrictEqual(out, { errors: ["unauthorized"], events: [] });
  await q.close();
});

// --topic-rate: an edge that takes on 5 new topics a second (a burst of 64) turns a WebSocket
// subscribe past it away as `busy`; herald.js sends it again after a backoff until it holds,
// without reporting an error. Another socket of the page spends the burst first.
test("subscriptions the edge turns away as busy are sent again until they hold", async () => {
  const p = await context.newPage();
  await p.goto(BUSY_EDGE + "/healthz");
  const topics = Array.from({ length: 20 }, (_, i) => "busy." + process.pid + "." + i);
  const refused = async () => {
    const text = await (await fetch(BUSY_EDGE + "/metrics")).text();
    const m = /^herald_rejected_total\{reason="topic_rate"\} (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  };
  await p.evaluate(async (n) => { // spends the burst: n made-up topics on a plain WebSocket
    const ws = new WebSocket(location.origin.replace("http", "ws") + "/ws", "herald.v1");
    await new Promise((r) => { ws.onopen = r; });
    let left = n;
    const done = new Promise((r) => { ws.onmessage = () => { if (--left === 0) r(); }; });
    for (let i = 0; i < n; i++) ws.send(JSON.stringify({ type: "subscribe", topic: "spend." + i }));
    await done;
    window.spender = ws;
  }, 60);
  await p.evaluate(async (topics) => {
    const mod = await import("/herald.js");
    window.busy = { events: [], errors: [] };
    const h = mod.connect(location.origin, { transports: ["ws"], share: false });
    h.onError = (e) => window.busy.errors.push(e.code);
    for (const t of topics) h.subscribe(t, (ev) => window.busy.events.push(t + "|" + ev.data));
  }, topics);
  await waitFor(async () => (await refused()) > 0, 20, "subscribes turned away as busy");
  // fresh subscriptions start live: publish to each topic until every one has had an event
  const have = async () => new Set((await p.evaluate(() => window.busy.events.slice()))
    .map((x) => x.split("|")[0]));
  await waitFor(async () => {
    const seen = await have();
    for (const t of topics) if (!seen.has(t)) await publish(t, "hello");
    return seen.size === topics.length;
  }, 60, "every topic subscribed after busy refusals");
  assert.deepStrictEqual(await p.evaluate(() => window.busy.errors), []);
  await p.close();
});

// The demo page on herald.js: each event line names the transport and edge that delivered it;
// at phone width nothing overflows sideways. Screenshots go to $HERALD_SCREENSHOT_DIR (or the
// temp dir) for a person to look at.
test("the demo page on herald.js, at 1280 and 390 px wide", async () => {
  const topic = "client.demo." + process.pid;
  const dir = process.env.HERALD_SCREENSHOT_DIR || os.tmpdir();
  for (const width of [1280, 390]) {
    const p = await context.newPage();
    await p.setViewportSize({ width, height: 900 });
    await p.goto(EDGE + "/?topic=" + topic + "&connect=1");
    await waitFor(() => p.evaluate(() => /^live/.test(document.getElementById("state").textContent)),
      20, "the demo live");
    await sleep(300 * SCALE);
    const id = await publish(topic, "hello at " + width);
    await waitFor(() => p.evaluate(() => window.herald.ids.length >= 1), 20, "the event");
    const text = await p.evaluate(() => document.getElementById("events").textContent);
    assert.match(text, new RegExp(id + "_[0-9a-z]+  hello at " + width + "   via ws@edge-\\d"));
    const log = await p.evaluate(() => document.getElementById("log").textContent);
    assert.match(log, /live over ws on edge-\d, this tab holds the connection/);
    const overflow = await p.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert.ok(overflow <= 0, "no sideways scrolling at " + width + " px: " + overflow);
    const file = path.join(dir, "herald-demo-" + width + ".png");
    await p.screenshot({ path: file, fullPage: true });
    console.log("screenshot " + file);
    await p.close();
  }
});

test("/herald.js is revalidated by its ETag", async () => {
  const r = await fetch(EDGE + "/herald.js");
  assert.strictEqual(r.status, 200);
  assert.match(r.headers.get("content-type"), /javascript/);
  const etag = r.headers.get("etag");
  assert.ok(etag, "an ETag");
  const again = await fetch(EDGE + "/herald.js", { headers: { "If-None-Match": etag } });
  assert.strictEqual(again.status, 304);
});
