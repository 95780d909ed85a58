// The demo page as deploy/local.sh prints it: /?redis_port=R&topic=T&connect=1#key=K fills
// the publish key from the fragment, shows the shell hints with the real Redis port, origin
// and key, and its Publish button delivers an event to its own subscription.
//
// Started by tests/integration/test_ops_demo.py:
//   node tests/browser/demo.test.js --url http://127.0.0.1:P --redis-port R --key K [--scale S]
// Exit 0 on success.
"use strict";

const assert = require("node:assert");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const a = { scale: 1 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i].replace(/^--/, "");
  if (!["url", "redis-port", "key", "scale"].includes(k) || argv[i + 1] === undefined) {
    throw new Error("bad argument " + argv[i]);
  }
  a[k] = argv[i + 1];
}
const scale = Number(a.scale);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, seconds, what) {
  const end = Date.now() + seconds * 1000 * scale;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out after " + seconds * scale + "s: " + what);
    await sleep(50);
  }
}

(async () => {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"],
  });
  let code = 1;
  try {
    const page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (e) => console.log("page error: " + e.message));
    const url = a.url + "/?redis_port=" + a["redis-port"] + "&topic=demo.t&connect=1#key=" +
      encodeURIComponent(a.key);
    assert.strictEqual((await page.goto(url)).status(), 200);
    const text = (sel) => page.$eval(sel, (e) => e.textContent);
    assert.strictEqual(await text("#hint-redis"),
      "redis-cli -p " + a["redis-port"] + " PUBLISH demo.t hello");
    assert.strictEqual(await text("#hint-curl"), "curl -H 'Authorization: Bearer " + a.key +
      "' -d hello " + a.url + "/publish/demo.t");
    assert.strictEqual(await page.$eval("#key", (e) => e.value), a.key);
    await waitFor(() => page.evaluate(() => window.herald.opens >= 1), 20, "EventSource open");
    // Publish with the page's button until its own subscription shows the event (the edge
    // subscribes the topic in Redis just after the first client).
    await page.fill("#payload", "from-the-button");
    await waitFor(async () => {
      await page.click("#pub");
      await sleep(300);
      return page.evaluate(() => window.herald.data.includes("from-the-button"));
    }, 20, "the published event on the page");
    const logText = await text("#log");
    assert.match(logText, /publish: HTTP 200/);
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
