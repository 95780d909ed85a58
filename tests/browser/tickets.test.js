// Sign-in tickets as a cross-origin page uses them: headless Chromium loads a page from an
// origin listed in --allowed-origins (a plain local HTTP server on another port than the edge)
// and, with the native fetch() and EventSource only:
//   - POST /tickets with its token in Authorization (a CORS preflight, then the POST, whose JSON
//     answer the page can read);
//   - opens an EventSource with ?ticket= (no token in the URL) and receives the event published
//     once it is open;
//   - opens a second EventSource with the same ticket: refused (401), and the browser gives up
//     (readyState CLOSED, no retry loop);
//   - a WebSocket with a fresh ticket subscribes.
//
// Started by tests/integration/test_browser_tickets.py, which owns the processes:
//   node tests/browser/tickets.test.js --edge http://127.0.0.1:P --page http://127.0.0.1:A/ \
//        --sub TOKEN --pub TOKEN [--scale S]
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
    if (!["edge", "page", "sub", "pub", "scale"].includes(k)) {
      throw new Error("unknown argument " + argv[i]);
    }
    a[k] = k === "scale" ? Number(v) : v;
  }
  for (const k of ["edge", "page", "sub", "pub"]) {
    if (!a[k]) throw new Error("need --" + k);
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// Runs in the page. Resolves with what the page saw; never rejects.
async function scenario({ edge, sub, pub, topic, ms }) {
  const wsUrl = edge.replace(/^http/, "ws");
  const wait = (t) => new Promise((r) => setTimeout(r, t));
  function eventSource(url, onOpen) {
    return new Promise((resolve) => {
      const es = new EventSource(url);
      const timer = setTimeout(() => { es.close(); resolve({ state: "timeout", ready: es.readyState }); }, ms);
      es.onopen = () => { if (onOpen) onOpen(); };
      es.onmessage = (e) => { clearTimeout(timer); es.close(); resolve({ state: "message", data: e.data }); };
      es.onerror = () => {
        if (es.readyState === EventSource.CLOSED) { clearTimeout(timer); resolve({ state: "closed" }); }
      };
    });
  }
  async function ticket() {
    try {
      const r = await fetch(`${edge}/tickets`, { method: "POST", headers: { Authorization: "Bearer " + sub } });
      return { status: r.status, body: await r.json() };
    } catch (e) {
      return { error: String(e) };
    }
  }
  const publish = () => fetch(`${edge}/publish/${topic}`, {
    method: "POST", headers: { Authorization: "Bearer " + pub, "Content-Type": "text/plain" },
    body: "hello with a ticket",
  }).then((r) => r.status, (e) => String(e));
  const out = {};
  out.issued = await ticket();
  const t = out.issued.body && out.issued.body.ticket;
  let publishing = null;
  out.sse = await eventSource(`${edge}/events/${topic}?ticket=${t}`, () => {
    publishing = wait(300).then(publish); // after the edge subscribed in Redis
  });
  out.published = await publishing;
  out.sseAgain = await eventSource(`${edge}/events/${topic}?ticket=${t}`);
  const t2 = (await ticket()).body.ticket;
  out.ws = await new Promise((resolve) => {
    const ws = new WebSocket(`${wsUrl}/ws?ticket=${t2}`, "herald.v1");
    const timer = setTimeout(() => resolve({ state: "timeout" }), ms);
    ws.onopen = () => ws.send(JSON.stringify({ type: "subscribe", topic, id: 1 }));
    ws.onmessage = (e) => { clearTimeout(timer); ws.close(); resolve({ state: "message", msg: JSON.parse(e.data) }); };
    ws.onclose = (e) => { clearTimeout(timer); resolve({ state: "closed", code: e.code }); };
  });
  return out;
}

test("a ticket signs in an EventSource once", { timeout: 90000 * args.scale }, async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    assert.strictEqual((await page.goto(args.page)).status(), 200);
    const out = await page.evaluate(scenario, { edge: args.edge, sub: args.sub, pub: args.pub,
      topic: "browser.ticket", ms: 8000 * args.scale });
    console.log("page: " + JSON.stringify(out));
    assert.strictEqual(out.issued.status, 200, JSON.stringify(out.issued));
    assert.match(out.issued.body.ticket, /^[A-Za-z0-9_-]{32}$/);
    assert.strictEqual(out.issued.body.expires_in, 30);
    assert.strictEqual(out.published, 200);
    assert.deepStrictEqual(out.sse, { state: "message", data: "hello with a ticket" });
    assert.strictEqual(out.sseAgain.state, "closed", "a used ticket: 401, EventSource gives up");
    assert.strictEqual(out.ws.state, "message");
    assert.deepStrictEqual(out.ws.msg, { type: "subscribed", topic: "browser.ticket", id: 1 });
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
});
