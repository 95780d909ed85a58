// HTTP/2 at the balancer: headless Chromium opens 10 EventSources on one page to one origin.
// Over the HAProxy TLS front (ALPN h2) all 10 open and receive events on one connection; over
// the plain HTTP/1.1 front of the same HAProxy only 6 open (Chromium's per-host connection
// limit) and the other 4 stall. The page is the demo page served by the edges through HAProxy;
// the EventSources are opened by an injected script.
//
// Started by tests/integration/test_ops_h2.py, which owns the processes:
//   node tests/browser/h2.test.js --h2 https://127.0.0.1:T --h1 http://127.0.0.1:P \
//        --edge http://127.0.0.1:E --key PUBLISH_KEY [--scale S]
// Prints one line "result <json>" per origin; exit 0 when both behave as described.
"use strict";

const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const N = 10;
const H1_LIMIT = 6; // Chromium: at most 6 HTTP/1.1 connections per host and port

function parseArgs(argv) {
  const a = { scale: Number(process.env.HERALD_TIMEOUT_SCALE || 1) };
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, ""), v = argv[i + 1];
    if (v === undefined) throw new Error("missing value for " + argv[i]);
    if (["h2", "h1", "edge", "key"].includes(k)) a[k] = v;
    else if (k === "scale") a.scale = Number(v);
    else throw new Error("unknown argument " + argv[i]);
  }
  if (!a.h2 || !a.h1 || !a.edge || !a.key) throw new Error("need --h2, --h1, --edge and --key");
  return a;
}

const args = parseArgs(process.argv.slice(2));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, seconds, what) {
  const end = Date.now() + seconds * 1000 * args.scale;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out after " + seconds * args.scale + "s: " + what);
    await sleep(50);
  }
}

// Injected into the page: N EventSources on the page's own origin, one topic each.
function openStreams([n, prefix]) {
  window.h2t = { opened: Array(n).fill(false), got: Array(n).fill(0), errors: 0 };
  for (let i = 0; i < n; i++) {
    const es = new EventSource("/events/" + prefix + "." + i);
    es.onopen = () => { window.h2t.opened[i] = true; };
    es.onmessage = () => { window.h2t.got[i]++; };
    es.onerror = () => { window.h2t.errors++; };
  }
}

async function publishAll(prefix, seq) {
  await Promise.all(Array.from({ length: N }, async (_, i) => {
    const r = await fetch(args.edge + "/publish/" + prefix + "." + i, {
      method: "POST", body: "tick-" + seq,
      headers: { Authorization: "Bearer " + args.key, "Content-Type": "text/plain" },
    });
    assert.strictEqual(r.status, 200, "publish: HTTP " + r.status);
    await r.text();
  }));
}

async function runCase(context, origin, prefix, expectOpen) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.log("page error: " + e.message));
  const resp = await page.goto(origin + "/");
  assert.strictEqual(resp.status(), 200, "GET / through HAProxy");
  const proto = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
  await page.evaluate(openStreams, [N, prefix]);
  const state = () => page.evaluate(() => JSON.parse(JSON.stringify(window.h2t)));
  const count = (arr) => arr.filter(Boolean).length;
  await waitFor(async () => count((await state()).opened) >= expectOpen, 20,
    expectOpen + " EventSources open on " + origin);
  // Publish until every open stream has an event (the edge subscribes a topic in Redis
  // shortly after its first client), then give the stalled ones time to show they stay so.
  let seq = 0;
  await waitFor(async () => {
    await publishAll(prefix, seq++);
    await sleep(200);
    const s = await state();
    return s.opened.every((o, i) => !o || s.got[i] > 0);
  }, 20, "an event on every open EventSource on " + origin);
  await sleep(1500 * args.scale);
  await publishAll(prefix, seq++);
  await sleep(500);
  const s = await state();
  const result = { origin, proto, opened: count(s.opened), receiving: count(s.got),
    got: s.got, errors: s.errors };
  console.log("result " + JSON.stringify(result));
  await page.close();
  return result;
}

(async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreHTTPSErrors: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
      "--ignore-certificate-errors"],
  });
  let code = 1;
  try {
    const h2 = await runCase(context, args.h2, "h2t.h2", N);
    assert.strictEqual(h2.proto, "h2", "the TLS front did not negotiate HTTP/2");
    assert.strictEqual(h2.opened, N, "EventSources open over h2");
    assert.strictEqual(h2.receiving, N, "EventSources receiving over h2");
    const h1 = await runCase(context, args.h1, "h2t.h1", H1_LIMIT);
    assert.strictEqual(h1.proto, "http/1.1");
    assert.strictEqual(h1.opened, H1_LIMIT, "over HTTP/1.1 only " + H1_LIMIT + " open");
    assert.strictEqual(h1.receiving, H1_LIMIT, "over HTTP/1.1 the others stall");
    console.log("ok");
    code = 0;
  } catch (e) {
    console.log("FAIL: " + (e && e.stack || e));
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.exit(code);
})();
