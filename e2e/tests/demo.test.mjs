// tessera.js and the demo SPA in a real Chromium against a real `tessera serve --demo`.
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ARTIFACTS,
  ROOT,
  claimsIn,
  launchChromium,
  newContext,
  postFromOutside,
  recordRefreshes,
  signIn,
  startAttackerSite,
  startTessera,
  waitForExpiry,
  watch,
  withScreenshots,
} from "../lib/harness.mjs";

/** @typedef {import("playwright-core").Page} Page */

/** @type {Awaited<ReturnType<typeof startTessera>>} */
let server;
/** @type {import("playwright-core").Browser} */
let browser;

before(async () => {
  server = await startTessera();
  browser = await launchChromium();
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Call the API from the page through tessera.fetch, as the demo does. */
function apiCall(/** @type {Page} */ page, /** @type {string} */ path, /** @type {RequestInit} */ init = {}) {
  return page.evaluate(
    async ([p, i]) => {
      const tessera = await import("/tessera.js");
      const res = await tessera.fetch(p, i);
      const text = await res.text();
      let body = null;
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
      return { status: res.status, body };
    },
    [path, init],
  );
}

const postNote = (/** @type {Page} */ page, /** @type {string} */ text) =>
  apiCall(page, "/api/notes", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
  });

async function noteTexts(/** @type {Page} */ page) {
  return page.locator("#notes .note-text").allTextContents();
}

/** Names of the cookies script can see. */
function scriptCookieNames(/** @type {Page} */ page) {
  return page.evaluate(() => document.cookie.split(";").map((c) => c.trim().split("=")[0]).filter(Boolean));
}

describe("tessera demo in Chromium", () => {
  it("serves web/ as it is in the tree, under a strict Content-Security-Policy", async () => {
    const context = await newContext(browser);
    try {
      for (const [path, file, type] of [
        ["/", "web/demo/index.html", "text/html"],
        ["/app.js", "web/demo/app.js", "javascript"],
        ["/style.css", "web/demo/style.css", "text/css"],
        ["/tessera.js", "web/tessera.js", "javascript"],
      ]) {
        const res = await context.request.get(`${server.origin}${path}`);
        assert.equal(res.status(), 200, path);
        assert.ok(res.headers()["content-type"]?.includes(type), `${path}: ${res.headers()["content-type"]}`);
        const served = await res.text();
        assert.ok(
          served === readFileSync(join(ROOT, file), "utf8"),
          `${path} differs from ${file}: the tessera binary embeds an older copy (rebuild it)`,
        );
        if (path === "/") {
          const csp = res.headers()["content-security-policy"] ?? "";
          assert.match(csp, /script-src 'self'(;|$)/, `CSP: ${csp}`);
          assert.match(csp, /frame-ancestors 'none'/, `CSP: ${csp}`);
          assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, `CSP: ${csp}`);
        }
      }
    } finally {
      await context.close();
    }
  });

  it("logs in through the form; script sees the claims and CSRF cookies, never the signature or refresh token", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const problems = watch(page);
    await withScreenshots("login", [page], async () => {
      await page.goto(`${server.origin}/`);
      await page.locator("#login-form").waitFor({ state: "visible" });
      assert.equal(await page.isVisible("#app"), false, "the app stays hidden until the user signs in");

      // a wrong password is told plainly, and nothing is stored
      await page.fill("#username", server.username);
      await page.fill("#password", "not-the-password");
      const refused = page.waitForResponse((r) => r.url().endsWith("/auth/login"));
      await page.click("#login-submit");
      assert.equal((await refused).status(), 401);
      await page.locator("#login-error").waitFor({ state: "visible" });
      assert.equal(await page.textContent("#login-error"), "Wrong username or password.");
      assert.deepEqual(await scriptCookieNames(page), []);

      const answered = page.waitForResponse((r) => r.url().endsWith("/auth/login"));
      await signIn(page, server);
      const login = await answered;
      assert.equal(login.status(), 200);
      const result = await login.json();
      assert.equal(result.user.username, server.username);
      assert.ok(result.session?.id, "login answers the session");
      assert.equal(typeof result.csrf_token, "string");

      const names = await scriptCookieNames(page);
      assert.ok(names.includes("__Host-tessera-claims"), `claims cookie readable: ${names}`);
      assert.ok(names.includes("__Host-tessera-csrf"), `CSRF cookie readable: ${names}`);
      assert.ok(!names.some((n) => /tessera-(sig|refresh|access)/.test(n)), `no secret cookie readable: ${names}`);

      const jar = Object.fromEntries((await context.cookies()).map((c) => [c.name, c]));
      const sig = jar["__Host-tessera-sig"];
      const refresh = jar["__Secure-tessera-refresh"];
      assert.ok(sig, "the signature cookie is set");
      assert.equal(sig.httpOnly, true);
      assert.equal(sig.secure, true);
      assert.equal(sig.path, "/");
      assert.ok(refresh, "the refresh cookie is set");
      assert.equal(refresh.httpOnly, true);
      assert.equal(refresh.secure, true);
      assert.ok(refresh.path.startsWith("/auth"), `refresh cookie path ${refresh.path}`);
      assert.equal(refresh.sameSite, "Strict");
      assert.equal(jar["__Host-tessera-claims"].httpOnly, false);
      assert.equal(jar["__Host-tessera-csrf"].httpOnly, false);
      assert.equal(jar["__Host-tessera-csrf"].sameSite, "Strict");

      // what the page shows comes from session(): the claims cookie, no request
      const claims = await claimsIn(page);
      assert.ok(claims, "session() has the claims");
      assert.equal(claims.username, server.username);
      assert.equal(claims.sub, result.user.id);
      assert.equal(claims.sid, result.session.id);
      assert.ok(Array.isArray(claims.roles));
      assert.ok(claims.exp * 1000 > Date.now());
      assert.deepEqual(await page.locator("#roles li").allTextContents(), claims.roles);
      assert.deepEqual(problems, []);
    });
    await context.close();
  });

  it("saves a screenshot of the signed-in demo", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const problems = watch(page);
    await withScreenshots("screenshot", [page], async () => {
      await signIn(page, server);
      for (const text of [
        "Rotate the signing keys before Friday's release.",
        "Ask the security team to review the CSRF rules.",
        "tessera.js refreshes tokens once for all tabs.",
      ]) {
        await page.fill("#note-text", text);
        await page.click("#note-add");
        await page.locator("#notes .note-text", { hasText: text }).waitFor();
      }
      await page.fill("#note-text", "Write the README");
      await page.click(".session-info summary");
      const path = join(ARTIFACTS, "demo.png");
      await page.screenshot({ path, fullPage: true, animations: "disabled" });
      assert.ok(existsSync(path) && statSync(path).size > 10_000, "a real picture");
      if (process.env.E2E_UPDATE_DOCS === "1") {
        mkdirSync(join(ROOT, "docs"), { recursive: true });
        copyFileSync(path, join(ROOT, "docs", "demo.png"));
      }
      assert.deepEqual(problems, []);
    });
    await context.close();
  });

  it("keeps the header on one line at a 360 px phone width", async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 360, height: 740 } });
    const page = await context.newPage();
    const problems = watch(page);
    await withScreenshots("phone", [page], async () => {
      await signIn(page, server);
      const layout = await page.evaluate(() => {
        const box = (/** @type {string} */ sel) => document.querySelector(sel)?.getBoundingClientRect();
        const logout = /** @type {HTMLElement} */ (document.querySelector("#logout"));
        const lineHeight = parseFloat(getComputedStyle(logout).lineHeight) || 20;
        return {
          page: document.documentElement.scrollWidth,
          logout: box("#logout"),
          lineHeight,
          textHeight: logout.scrollHeight - parseFloat(getComputedStyle(logout).paddingTop) - parseFloat(getComputedStyle(logout).paddingBottom),
          header: box(".topbar"),
          whoami: box("#whoami"),
        };
      });
      assert.ok(layout.page <= 360, `the page is ${layout.page} px wide at 360`);
      assert.ok(layout.logout && layout.logout.right <= 360, `"Log out" ends at ${layout.logout?.right} px`);
      assert.ok(layout.textHeight < 1.5 * layout.lineHeight, `"Log out" wraps: ${layout.textHeight} px of text, lines of ${layout.lineHeight} px`);
      assert.ok(layout.header && layout.header.height < 80, `header ${layout.header?.height} px high`);
      assert.ok(layout.whoami && layout.whoami.width > 0, "who is signed in is still shown");
      assert.equal(await page.textContent("#whoami"), server.username);
      await page.screenshot({ path: join(ARTIFACTS, "phone-360.png") });
      assert.deepEqual(problems, []);
    });
    await context.close();
  });

  it("explains a rate limit with the wait time, and an overloaded server", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await withScreenshots("login-errors", [page], async () => {
      // tessera's own limits take many attempts to reach: answer as it does instead
      await page.route("**/auth/login", (route) =>
        route.fulfill({
          status: 429,
          headers: { "Content-Type": "application/json", "Retry-After": "42" },
          body: JSON.stringify({ error: "rate_limited", message: "too many attempts" }),
        }),
      );
      await page.goto(`${server.origin}/`);
      await page.fill("#username", server.username);
      await page.fill("#password", server.password);
      await page.click("#login-submit");
      await page.locator("#login-error").waitFor({ state: "visible" });
      assert.match(await page.textContent("#login-error"), /^Too many sign-in attempts\. Try again in 4[0-2] seconds\.$/);
      assert.equal(await page.isDisabled("#login-submit"), true, "no retry before the wait is over");
      const error = await page.evaluate(async () => {
        const tessera = await import("/tessera.js");
        return tessera.login("demo", "x").catch((e) => ({ status: e.status, code: e.code, retryAfter: e.retryAfter }));
      });
      assert.deepEqual(error, { status: 429, code: "rate_limited", retryAfter: 42 });

      const busy = await context.newPage();
      await busy.route("**/auth/login", (route) =>
        route.fulfill({
          status: 503,
          headers: { "Content-Type": "application/json", "Retry-After": "5" },
          body: JSON.stringify({ error: "overloaded", message: "busy" }),
        }),
      );
      await busy.goto(`${server.origin}/`);
      await busy.fill("#username", server.username);
      await busy.fill("#password", server.password);
      await busy.click("#login-submit");
      await busy.locator("#login-error").waitFor({ state: "visible" });
      assert.match(await busy.textContent("#login-error"), /^The server is busy\. Try again in [1-5] seconds\.$/);
    });
    await context.close();
  });

  it("lists and adds notes, and a reload keeps the session", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const problems = watch(page);
    await withScreenshots("notes", [page], async () => {
      await signIn(page, server);
      const text = `Buy milk ${Date.now()}`;
      await page.fill("#note-text", text);
      const created = page.waitForResponse((r) => r.url().endsWith("/api/notes") && r.request().method() === "POST");
      await page.click("#note-add");
      assert.equal((await created).status(), 201);
      await page.locator("#notes .note-text", { hasText: text }).waitFor();
      assert.equal(await page.inputValue("#note-text"), "", "the form is cleared once saved");

      const listed = await apiCall(page, "/api/notes");
      assert.equal(listed.status, 200);
      assert.ok(listed.body.notes.some((n) => n.text === text), "the API has the note");

      await page.reload();
      await page.locator("#app").waitFor({ state: "visible" });
      assert.equal(await page.isVisible("#login-form"), false, "no login after a reload");
      assert.equal(await page.textContent("#whoami"), server.username);
      await page.locator("#notes .note-text", { hasText: text }).waitFor();
      assert.deepEqual(problems, []);
    });
    await context.close();
  });

  it("refuses cross-site requests (CSRF): a form POST and a credentialed fetch from another site", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const mark = `csrf-${Date.now()}`;
    const target = `${server.origin}/api/notes`;
    const attacker = await startAttackerSite(
      () => `<!doctype html><title>free prizes</title>
<form id="f" method="POST" action="${target}" enctype="text/plain">
  <input name='{"text":"${mark}-form","x":"' value='"}'>
</form>
<p id="done"></p>
<script>
  fetch(${JSON.stringify(target)}, {
    method: "POST", mode: "no-cors", credentials: "include",
    headers: { "Content-Type": "text/plain" },
    body: JSON.stringify({ text: "${mark}-fetch" }),
  }).catch(() => {}).finally(() => {
    document.getElementById("done").textContent = "sent";
    setTimeout(() => document.getElementById("f").submit(), 100);
  });
</script>`,
    );
    const evil = await context.newPage();
    try {
      await withScreenshots("csrf", [page, evil], async () => {
        await signIn(page, server);
        /** @type {{ kind: string, status: number }[]} */
        const attempts = [];
        evil.on("response", (res) => {
          if (res.url() === target && res.request().method() === "POST") {
            attempts.push({ kind: res.request().resourceType(), status: res.status() });
          }
        });
        const formAnswer = evil.waitForResponse((r) => r.url() === target && r.request().resourceType() === "document");
        assert.equal((await apiCall(page, "/api/notes")).status, 200, "a fresh access token in the jar");
        await evil.goto(`${attacker.origin}/`);
        await formAnswer;
        await evil.waitForLoadState("load");
        assert.equal(attempts.length, 2, `both forged requests reached tessera: ${JSON.stringify(attempts)}`);
        for (const attempt of attempts) {
          assert.ok([401, 403].includes(attempt.status), `forged ${attempt.kind} POST refused: ${attempt.status}`);
        }

        // same origin, with the cookies, but without the CSRF header, or with a forged one
        // (tessera.fetch first, so that the access token is fresh: tokens live 3 s here)
        const bare = await page.evaluate(async () => {
          await (await import("/tessera.js")).fetch("/api/notes");
          const res = await fetch("/api/notes", {
            method: "POST",
            headers: { "Content-Type": "application/json" },
            body: JSON.stringify({ text: "no header" }),
          });
          return { status: res.status, body: await res.json() };
        });
        assert.equal(bare.status, 403);
        assert.equal(bare.body.error, "csrf_failed");
        const forged = await page.evaluate(async () => {
          await (await import("/tessera.js")).fetch("/api/notes");
          const res = await fetch("/api/notes", {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": "forged" },
            body: JSON.stringify({ text: "forged header" }),
          });
          return res.status;
        });
        assert.equal(forged, 403);

        const listed = await apiCall(page, "/api/notes");
        assert.equal(listed.status, 200);
        const texts = listed.body.notes.map((n) => n.text);
        assert.ok(!texts.some((t) => t.includes(mark) || t.includes("header")), `no forged note: ${texts}`);
      });
    } finally {
      await attacker.close();
      await context.close();
    }
  });

  it("refreshes an expired access token on the next call, without the user noticing", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const problems = watch(page);
    const refreshes = recordRefreshes(page);
    await withScreenshots("expiry", [page], async () => {
      await signIn(page, server);
      const before = await claimsIn(page);
      await waitForExpiry(page);
      assert.equal(await claimsIn(page), null, "session() reports the expired token");
      assert.equal(refreshes.length, 0, "nothing refreshes while idle");

      const text = `after expiry ${Date.now()}`;
      await page.fill("#note-text", text);
      const created = page.waitForResponse(
        (r) => r.url().endsWith("/api/notes") && r.request().method() === "POST" && r.status() !== 401,
      );
      await page.click("#note-add");
      assert.equal((await created).status(), 201);
      await page.locator("#notes .note-text", { hasText: text }).waitFor();
      assert.deepEqual(refreshes, [200], "exactly one refresh, accepted");
      assert.equal(await page.isVisible("#login-form"), false);

      const after = await claimsIn(page);
      assert.ok(after, "fresh claims after the refresh");
      assert.equal(after.sid, before.sid, "same session");
      assert.notEqual(after.jti, before.jti, "a new access token");
      assert.ok(after.exp > before.exp);
      assert.deepEqual(problems, []);
    });
    await context.close();
  });

  for (const tabs of [2, 6]) {
    it(`${tabs} tabs waking up after expiry refresh once and all stay logged in`, async () => {
      const context = await newContext(browser);
      const refreshes = recordRefreshes(context);
      const pages = [await context.newPage()];
      await withScreenshots(`tabs-${tabs}`, pages, async () => {
        await signIn(pages[0], server);
        for (let i = 1; i < tabs; i++) {
          const page = await context.newPage();
          pages.push(page);
          await page.goto(`${server.origin}/`);
          await page.locator("#app").waitFor({ state: "visible" });
        }
        const sid = (await claimsIn(pages[0])).sid;
        for (const page of pages) await waitForExpiry(page);
        const settled = refreshes.length;

        // every tab calls at the same instant of the wall clock
        const at = Date.now() + 500;
        const statuses = await Promise.all(
          pages.map((page) =>
            page.evaluate(async (when) => {
              const tessera = await import("/tessera.js");
              await new Promise((r) => setTimeout(r, when - Date.now()));
              return (await tessera.fetch("/api/notes")).status;
            }, at),
          ),
        );
        assert.deepEqual(statuses, pages.map(() => 200), "every tab's call succeeds");
        assert.deepEqual(refreshes.slice(settled), [200], "one refresh for all the tabs (Web Locks)");

        // the session lives on: a later call in each tab works, the session id is the same
        for (const [i, page] of pages.entries()) {
          const res = await postNote(page, `tab ${i} of ${tabs}`);
          assert.equal(res.status, 201, `tab ${i} can still write`);
          assert.equal((await claimsIn(page)).sid, sid);
        }
        await pages[tabs - 1].click("#notes-reload");
        await pages[tabs - 1].locator("#notes .note-text", { hasText: `tab 0 of ${tabs}` }).waitFor();
        assert.equal(await pages[tabs - 1].isVisible("#login-form"), false);
      });
      await context.close();
    });
  }

  it("without Web Locks, racing tabs each refresh and tessera's grace period keeps the session", async () => {
    const context = await newContext(browser);
    await context.addInitScript(() => {
      Object.defineProperty(Navigator.prototype, "locks", { get: () => undefined });
    });
    const refreshes = recordRefreshes(context);
    const pages = [await context.newPage(), await context.newPage()];
    await withScreenshots("grace", pages, async () => {
      await signIn(pages[0], server);
      await pages[1].goto(`${server.origin}/`);
      await pages[1].locator("#app").waitFor({ state: "visible" });
      assert.equal(await pages[1].evaluate(() => "locks" in navigator && navigator.locks), undefined);
      const sid = (await claimsIn(pages[0])).sid;
      for (const page of pages) await waitForExpiry(page);
      const settled = refreshes.length;

      // both tabs send the same refresh token; each is in flight before either answer
      const at = Date.now() + 500;
      const statuses = await Promise.all(
        pages.map((page) =>
          page.evaluate(async (when) => {
            await new Promise((r) => setTimeout(r, when - Date.now()));
            const csrf = document.cookie.split("; ").find((c) => c.startsWith("__Host-tessera-csrf="))?.split("=")[1];
            const res = await fetch("/auth/refresh", { method: "POST", headers: { "X-CSRF-Token": csrf ?? "" } });
            return res.status;
          }, at),
        ),
      );
      assert.deepEqual(statuses, [200, 200], "both racing refreshes are answered");
      assert.equal(refreshes.length - settled, 2);
      for (const [i, page] of pages.entries()) {
        const res = await postNote(page, `grace tab ${i}`);
        assert.equal(res.status, 201, `tab ${i} still logged in`);
        assert.equal((await claimsIn(page)).sid, sid);
      }
    });
    await context.close();
  });

  it("a logout in one tab logs the other out: its next call gets 401 and it shows the login form", async () => {
    const context = await newContext(browser);
    const first = await context.newPage();
    const second = await context.newPage();
    const problems = watch(second);
    await withScreenshots("logout", [first, second], async () => {
      await signIn(first, server);
      await second.goto(`${server.origin}/`);
      await second.locator("#app").waitFor({ state: "visible" });
      await second.fill("#note-text", "typed in the second tab");

      const loggedOut = first.waitForResponse((r) => r.url().endsWith("/auth/logout"));
      await first.click("#logout");
      assert.equal((await loggedOut).status(), 204);
      await first.locator("#login-form").waitFor({ state: "visible" });
      assert.deepEqual(await scriptCookieNames(first), [], "every readable tessera cookie is gone");
      // The device cookie (the login limit's known device) outlives sessions by design.
      const left = (await context.cookies()).map((c) => c.name)
        .filter((n) => n.includes("tessera") && n !== "__Secure-tessera-device");
      assert.deepEqual(left, [], "the session's HttpOnly cookies are gone too");

      await second.locator("#login-form").waitFor({ state: "visible" });
      // news, not an error: a neutral status line, and no alert
      assert.equal(await second.textContent("#login-info"), "You signed out in another tab.");
      assert.equal(await second.getAttribute("#login-info", "role"), "status");
      assert.equal(await second.isVisible("#login-error"), false, "shown as an error");
      assert.equal(await second.isVisible("#app"), false);
      assert.equal(await second.locator("#notes li").count(), 0, "the notes are no longer on screen");
      assert.equal(await claimsIn(second), null);
      const next = await apiCall(second, "/api/notes");
      assert.equal(next.status, 401);
      assert.equal(next.body.error, "unauthenticated");

      // and a login in one tab is seen by the other
      await signIn(first, server);
      await second.locator("#app").waitFor({ state: "visible" });
      assert.equal(await second.isVisible("#login-form"), false);
      assert.equal(await second.textContent("#whoami"), server.username);
      assert.deepEqual(problems, []);
    });
    await context.close();
  });

  it("logging out after the access token expired still ends the session on the server", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const problems = watch(page);
    /** @type {string[]} */
    const auth = [];
    page.on("response", (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith("/auth/")) auth.push(`${path} ${r.status()}`);
    });
    await withScreenshots("logout-expired", [page], async () => {
      await signIn(page, server);
      await waitForExpiry(page);
      const jar = await context.cookies();
      auth.length = 0;
      await page.click("#logout");
      await page.locator("#login-form").waitFor({ state: "visible" });
      assert.equal(auth.at(-1), "/auth/logout 204", `the logout went through: ${auth}`);
      const left = (await context.cookies()).map((c) => c.name)
        .filter((n) => n.includes("tessera") && n !== "__Secure-tessera-device");
      assert.deepEqual(left, [], "every session cookie is gone (the device cookie stays)");

      // the refresh token the browser held before the logout opens nothing any more
      const cookie = jar.map((c) => `${c.name}=${c.value}`).join("; ");
      const csrf = jar.find((c) => c.name === "__Host-tessera-csrf")?.value ?? "";
      const revived = await postFromOutside(`${server.origin}/auth/refresh`, { Cookie: cookie, "X-CSRF-Token": csrf });
      assert.equal(revived.status, 401, `refresh after logout: ${revived.status} ${revived.body}`);
      assert.deepEqual(problems, []);
    });
    await context.close();
  });

  it("when the session ends (revoked elsewhere), the login form comes up over the app and the draft is kept", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const problems = watch(page);
    const refreshes = recordRefreshes(page);
    await withScreenshots("revoked", [page], async () => {
      await signIn(page, server);
      const draft = `A long thought I do not want to type twice ${Date.now()}`;
      await page.fill("#note-text", draft);

      // the session is revoked behind the browser's back (the cookies stay in the jar)
      const jar = await context.cookies();
      const cookie = jar.map((c) => `${c.name}=${c.value}`).join("; ");
      const csrf = jar.find((c) => c.name === "__Host-tessera-csrf")?.value ?? "";
      const revoked = await postFromOutside(`${server.origin}/auth/logout`, { Cookie: cookie, "X-CSRF-Token": csrf });
      assert.equal(revoked.status, 204, `logout from outside: ${revoked.status} ${revoked.body}`);

      await page.click("#note-add");
      await page.locator("#login-form").waitFor({ state: "visible" });
      assert.equal(await page.textContent("#login-title"), "Session ended");
      assert.ok(refreshes.length >= 1 && refreshes.every((s) => s === 401), `refresh refused: ${refreshes}`);
      assert.equal(await page.inputValue("#note-text"), draft, "the draft is still there");
      assert.equal(await page.inputValue("#username"), server.username, "the username is filled in");
      assert.equal(await page.isVisible("#app"), true, "the app stays under the dialog");
      await page.screenshot({ path: join(ARTIFACTS, "session-ended.png") });

      await page.fill("#password", server.password);
      const created = page.waitForResponse(
        (r) => r.url().endsWith("/api/notes") && r.request().method() === "POST" && r.status() === 201,
      );
      await page.click("#login-submit");
      await created;
      await page.locator("#login-form").waitFor({ state: "hidden" });
      await page.locator("#notes .note-text", { hasText: draft }).waitFor();
      assert.equal(await page.inputValue("#note-text"), "", "posted once signed in again");
      assert.equal((await noteTexts(page)).filter((t) => t === draft).length, 1, "posted once");
      assert.deepEqual(problems, []);
    });
    await context.close();
  });


  // Last: it leaves the client IP with failed attempts on record.
  it("tells the user when tessera rate-limits sign-in attempts, with the wait time", async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    const problems = watch(page);
    await withScreenshots("rate-limit", [page], async () => {
      await page.goto(`${server.origin}/`);
      await page.locator("#login-form").waitFor({ state: "visible" });
      const username = `mallory${Date.now()}`;
      /** @type {number[]} */
      const statuses = [];
      for (let attempt = 0; attempt < 12 && !statuses.includes(429); attempt++) {
        await page.fill("#username", username);
        await page.fill("#password", `guess ${attempt}`);
        const answered = page.waitForResponse((r) => r.url().endsWith("/auth/login"));
        await page.click("#login-submit");
        statuses.push((await answered).status());
        await page.locator("#login-error").waitFor({ state: "visible" });
      }
      assert.equal(statuses.at(-1), 429, `tessera rate-limits guessing: ${statuses}`);
      assert.ok(statuses.slice(0, -1).every((s) => s === 401), `${statuses}`);
      assert.match(await page.textContent("#login-error"), /^Too many sign-in attempts\. Try again in \d+ seconds\.$/);
      assert.equal(await page.isDisabled("#login-submit"), true);
      const error = await page.evaluate(async (name) => {
        const tessera = await import("/tessera.js");
        return tessera.login(name, "one more").catch((e) => ({ status: e.status, code: e.code, retryAfter: e.retryAfter }));
      }, username);
      assert.equal(error.status, 429);
      assert.equal(error.code, "rate_limited");
      assert.ok(Number.isInteger(error.retryAfter) && error.retryAfter > 0, `Retry-After: ${error.retryAfter}`);
      await page.screenshot({ path: join(ARTIFACTS, "rate-limited.png") });
      assert.deepEqual(problems, []);
    });
    await context.close();
  });
});
