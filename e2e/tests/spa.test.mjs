// A team's own SPA (e2e/spa-app, a Vite production build) served from tessera's
// static_dir under the default static_csp, with spa_fallback = "index.html": it signs in
// with tessera.js, calls the API, moves to a client-side route with history.pushState,
// survives a reload and a deep link there, and breaks no Content-Security-Policy.
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ARTIFACTS, ROOT, launchChromium, newContext, startTessera, watch, withScreenshots } from "../lib/harness.mjs";

const DIST = join(ROOT, "e2e", "spa-app", "dist");
/** docs/configuration.md's default static_csp. */
const DEFAULT_STATIC_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/** @type {Awaited<ReturnType<typeof startTessera>>} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  assert.ok(existsSync(join(DIST, "index.html")), `no Vite build at ${DIST}: e2e/run builds it (npx vite build spa-app)`);
  server = await startTessera([
    `static_dir = ${JSON.stringify(DIST)}`,
    `spa_fallback = "index.html"`,
    `api_prefixes = ["/api/"]`,
  ]);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Collect `securitypolicyviolation` events in every document the page loads. */
async function recordViolations(/** @type {import("playwright-core").BrowserContext} */ context) {
  await context.addInitScript(() => {
    const seen = [];
    Object.defineProperty(window, "__cspViolations", { value: seen });
    document.addEventListener("securitypolicyviolation", (e) =>
      seen.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`),
    );
  });
}

const violations = (/** @type {import("playwright-core").Page} */ page) => page.evaluate(() => window.__cspViolations ?? []);

describe("a team's own Vite-built SPA under tessera", () => {
  it("signs in, calls the API, and keeps its client-side route across a reload and a deep link", async () => {
    const context = await newContext(browser);
    await recordViolations(context);
    const page = await context.newPage();
    const problems = watch(page);
    /** @type {{ url: string, status: number, type: string }[]} */
    const loaded = [];
    page.on("response", (res) => loaded.push({ url: new URL(res.url()).pathname, status: res.status(), type: res.request().resourceType() }));
    try {
      await withScreenshots("spa", [page], async () => {
        const first = await page.goto(`${server.origin}/`);
        assert.equal(first?.status(), 200);
        assert.equal(first?.headers()["content-security-policy"], DEFAULT_STATIC_CSP);
        await page.locator("#login-form").waitFor({ state: "visible" });
        // Vite's hashed script and stylesheet, and tessera.js, all loaded and applied.
        const assets = readdirSync(join(DIST, "assets"));
        assert.ok(assets.some((f) => f.endsWith(".js")) && assets.some((f) => f.endsWith(".css")), String(assets));
        for (const f of assets) {
          assert.ok(loaded.some((r) => r.url === `/assets/${f}` && r.status === 200), `/assets/${f} not loaded: ${JSON.stringify(loaded)}`);
        }
        assert.ok(loaded.some((r) => r.url === "/tessera.js" && r.status === 200), JSON.stringify(loaded));
        assert.equal(await page.evaluate(() => getComputedStyle(document.body).marginTop), "32px", "style.css applied");

        await page.fill("#username", server.username);
        await page.fill("#password", server.password);
        await page.click("#login-submit");
        await page.locator("#app[data-ready=home]").waitFor();
        assert.equal(await page.textContent("#whoami"), server.username);
        assert.notEqual(
          await page.evaluate(() => getComputedStyle(document.querySelector(".badge")).backgroundImage),
          "none",
          "the data: image in style.css applied",
        );

        // An API call through tessera.fetch from the SPA's origin.
        const text = `from the team's SPA ${Date.now()}`;
        const posted = await page.evaluate(async (t) => {
          const tessera = await import("/tessera.js");
          const res = await tessera.fetch("/api/notes", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ text: t }),
          });
          return res.status;
        }, text);
        assert.equal(posted, 201);

        // A client-side route: no document request, the notes view from the API.
        const documentsBefore = loaded.filter((r) => r.type === "document").length;
        await page.click("#nav-notes");
        await page.locator("#app[data-ready=notes]").waitFor();
        assert.equal(new URL(page.url()).pathname, "/notes/all");
        assert.equal(loaded.filter((r) => r.type === "document").length, documentsBefore, "pushState made no request");
        assert.deepEqual(await page.locator("#notes .note").allTextContents(), [text]);

        // Reload on it: spa_fallback answers index.html, the app renders the same route.
        const reloaded = await page.reload();
        assert.equal(reloaded?.status(), 200);
        assert.equal(reloaded?.headers()["cache-control"], "no-cache");
        assert.equal(reloaded?.headers()["content-security-policy"], DEFAULT_STATIC_CSP);
        await page.locator("#app[data-ready=notes]").waitFor();
        assert.equal(await page.textContent("#route"), "/notes/all");
        assert.deepEqual(await page.locator("#notes .note").allTextContents(), [text]);

        // Back with the browser's history, then a deep link in a new tab.
        await page.goBack();
        await page.locator("#app[data-ready=home]").waitFor();
        const deep = await context.newPage();
        const deepProblems = watch(deep);
        const opened = await deep.goto(`${server.origin}/notes/all`);
        assert.equal(opened?.status(), 200);
        await deep.locator("#app[data-ready=notes]").waitFor();
        assert.deepEqual(await deep.locator("#notes .note").allTextContents(), [text]);
        assert.deepEqual(await violations(deep), [], "CSP violations in the deep-linked tab");
        const unknown = await deep.goto(`${server.origin}/no/such-route`);
        assert.equal(unknown?.status(), 200);
        await deep.locator("#app[data-ready=not-found]").waitFor();

        // Not for API calls or files: an API call to a client route gets the upstream's
        // answer, a missing hashed asset is no index.html.
        const apiCall = await deep.evaluate(async () => {
          const res = await fetch("/notes/all", { headers: { Accept: "application/json" } });
          return { status: res.status, type: res.headers.get("content-type") };
        });
        assert.notEqual(apiCall.status, 200, JSON.stringify(apiCall));
        assert.ok(!String(apiCall.type).startsWith("text/html"), JSON.stringify(apiCall));
        // (An empty 404 is no page Chromium navigates to: asked with the context's cookies
        // and a navigation's headers instead.)
        const missing = await context.request.get(`${server.origin}/assets/index-missing.js`, {
          headers: { Accept: "text/html,*/*;q=0.8", "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document" },
        });
        assert.equal(missing.status(), 404, await missing.text());
        assert.ok(!(await missing.text()).includes("<!doctype html>"));

        await page.screenshot({ path: join(ARTIFACTS, "spa.png") });
        assert.deepEqual(await violations(page), [], "CSP violations in the SPA");
        assert.deepEqual(await violations(deep), [], "CSP violations in the deep-linked tab");
        assert.deepEqual(problems, []);
        assert.deepEqual(deepProblems.filter((p) => !/404/.test(p)), []);
        console.log(
          `spa: ${loaded.length} responses, documents ${JSON.stringify(loaded.filter((r) => r.type === "document"))}, ` +
            `assets ${assets.join(", ")}, violations 0`,
        );
      });
    } finally {
      await context.close();
    }
  });
});
