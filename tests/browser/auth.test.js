// What a browser page on another origin sees of tokens and the origin allow-list: headless
// Chromium loads a page from an allowed origin and one from an origin that is not allowed
// (both plain local HTTP servers on other ports than the edge, so every request is
// cross-origin), and from each uses the native EventSource, fetch() and WebSocket.
//
// From the allowed origin: EventSource with ?token= opens and receives the event that fetch()
// publishes with a publishing token (a CORS preflight, then the POST, whose JSON answer the page
// can read); EventSource with a token for other topics, or without a token, is refused and the
// browser gives up (readyState CLOSED, no retry loop); a WebSocket with ?token= subscribes.
// From the other origin: EventSource is refused, fetch() is blocked by CORS, the WebSocket
// handshake fails.
//
// Started by tests/integration/test_browser_auth.py, which owns the processes:
//   node tests/browser/auth.test.js --edge http://127.0.0.1:P --allowed http://127.0.0.1:A/ \
//        --denied http://127.0.0.1:D/ --sub TOKEN --pub TOKEN --other TOKEN [--scale S]
"use strict";

const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const a = { scale: Number(process.env.HERALD_TIMEOUT_SCALE || 1) };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, ""), v = argv[i + 1];
    if (v === undefined) throw new Error("missing value for " + argv[i]);
    if (!["edge", "allowed", "denied", "sub", "pub", "other", "scale"].includes(k)) {
      throw new Error("unknown argument " + argv[i]);
    }
    a[k] = k === "scale" ? Number(v) : v;
  }
  for (const k of ["edge", "allowed", "denied", "sub", "pub", "other"]) {
    if (!a[k]) throw new Error("need --" + k);
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// Runs in the page. Resolves with what the page saw; never rejects.
async function scenario({ edge, sub, pub, other, topic, ms }) {
  const wsUrl = edge.replace(/^http/, "ws");
  const wait = (t) => new Promise((r) => setTimeout(r, t));
  // An EventSource's fate: "open" plus the first message, or "closed" when the browser gave up.
  function eventSource(url, onOpen) {
    return new Promise((resolve) => {
      const es = new EventSource(url);
      const timer = setTimeout(() => { es.close(); resolve({ state: "timeout", ready: es.readyState }); }, ms);
      es.onopen = () => { if (onOpen) onOpen(); };
      es.onmessage = (e) => { clearTimeout(timer); es.close(); resolve({ state: "message", data: e.data, id: e.lastEventId }); };
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) { clearTimeout(timer); resolve({ state: "closed" }); }
      };
    });
  }
  const out = {};
  const publish = async () => {
    try {
      const r = await fetch(`${edge}/publish/${topic}`, {
        method: "POST", headers: { Authorization: "Bearer " + pub, "Content-Type": "text/plain" },
        body: "hello from the page",
      });
      return { status: r.status, body: await r.json() };
    } catch (e) {
      return { error: String(e) };
    }
  };
  let publishing = null;
  out.sse = await eventSource(`${edge}/events/${topic}?token=${sub}`, () => {
    publishing = wait(300).then(publish); // after the edge subscribed in Redis
  });
  // a stream that never opened (origin refused): the page still tries to publish
  out.published = await (publishing || publish());
  out.sseOtherTopic = await eventSource(`${edge}/events/${topic}?token=${other}`);
  out.sseNoToken = await eventSource(`${edge}/events/${topic}`);
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(`${wsUrl}/ws?token=${sub}`, "herald.v1");
    const timer = setTimeout(() => resolve({ state: "timeout" }), ms);
    ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", topic, id: 1 }));
    ws.onmessage = (e) => { clearTimeout(timer); ws.close(); resolve({ state: "message", msg: JSON.parse(e.data) }); };
    ws.onclose = (e) => { clearTimeout(timer); resolve({ state: "closed", code: e.code }); };
  });
  return out;
}

test("tokens and origins as a cross-origin page sees them", { timeout: 90000 * args.scale }, async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const params = { edge: args.edge, sub: args.sub, pub: args.pub, other: args.other,
      topic: "browser.auth", ms: 8000 * args.scale };

    assert.strictEqual((await page.goto(args.allowed)).status(), 200);
    const ok = await page.evaluate(scenario, params);
    console.log("allowed origin: " + JSON.stringify(ok));
    assert.deepStrictEqual(ok.published && ok.published.status, 200, JSON.stringify(ok.published));
    assert.match(ok.published.body.id, /^\d+-\d+$/);
    assert.strictEqual(ok.sse.state, "message");
    assert.strictEqual(ok.sse.data, "hello from the page");
    assert.strictEqual(ok.sse.id.split("_")[0], ok.published.body.id);
    assert.strictEqual(ok.sseOtherTopic.state, "closed", "a 403 makes EventSource give up");
    assert.strictEqual(ok.sseNoToken.state, "closed", "a 401 makes EventSource give up");
    assert.strictEqual(ok.ws.state, "message");
    assert.deepStrictEqual(ok.ws.msg, { type: "subscribed", topic: "browser.auth", id: 1 });

    assert.strictEqual((await page.goto(args.denied)).status(), 200);
    const no = await page.evaluate(scenario, params);
    console.log("other origin: " + JSON.stringify(no));
    assert.strictEqual(no.sse.state, "closed");
    assert.ok(no.published && no.published.error, "fetch() from an origin not allowed is blocked");
    assert.strictEqual(no.sseOtherTopic.state, "closed");
    assert.strictEqual(no.ws.state, "closed");
    assert.notStrictEqual(no.ws.code, 1000);
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
});
