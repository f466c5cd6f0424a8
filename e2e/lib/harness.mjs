// What the end-to-end tests share: a real `tessera serve --demo`, headless Debian
// Chromium (never a downloaded browser), an attacker site, and small helpers.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const ROOT = resolve(here, "../..");
export const ARTIFACTS = join(ROOT, "e2e", "artifacts");

/** Access tokens live 3 s here, so the suite sees expiries and refreshes for real. */
export const ACCESS_TTL_SECONDS = 3;

/**
 * Start `tessera serve --demo` on a free port with its own data folder; `extraConfig`
 * lines are added to its top-level configuration (e.g. `static_dir`).
 * @param {string[]} [extraConfig]
 * @returns {Promise<{ origin: string, username: string, password: string, dataDir: string,
 *   output: () => string, stop: () => Promise<void> }>}
 */
export async function startTessera(extraConfig = []) {
  const bin = process.env.TESSERA_BIN ? resolve(ROOT, process.env.TESSERA_BIN) : join(ROOT, "target/release/tessera");
  const dataDir = mkdtempSync(join(tmpdir(), "tessera-e2e-"));
  const config = join(dataDir, "tessera.toml");
  writeFileSync(
    config,
    [
      `data_dir = ${JSON.stringify(dataDir)}`,
      ...extraConfig,
      "",
      "[tokens]",
      `access_ttl = "${ACCESS_TTL_SECONDS}s"`,
      `refresh_grace = "5s"`,
      "",
    ].join("\n"),
  );
  const child = spawn(bin, ["serve", "--demo", "--config", config, "--listen", "127.0.0.1:0"], {
    cwd: dataDir,
    env: { ...process.env, TESSERA_DATA_DIR: dataDir, RUST_LOG: process.env.RUST_LOG ?? "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const found = new Promise((resolveFound, reject) => {
    const scan = (/** @type {Buffer} */ chunk) => {
      output += chunk.toString();
      const listening = output.match(/listening on (https?:\/\/127\.0\.0\.1:\d+)/);
      const demo = output.match(/demo user: (\S+)\s+password: (\S+)/);
      if (listening && demo) resolveFound({ origin: listening[1], username: demo[1], password: demo[2] });
    };
    child.stdout.on("data", scan);
    child.stderr.on("data", scan);
    child.on("error", reject);
    child.on("exit", (code, signal) =>
      reject(new Error(`tessera exited (code ${code}, signal ${signal}) before it was ready:\n${output}`)),
    );
    setTimeout(() => reject(new Error(`tessera was not ready within 60 s:\n${output}`)), 60_000).unref();
  });
  /** @type {{ origin: string, username: string, password: string }} */
  let ready;
  try {
    ready = await found;
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  return { ...ready, dataDir, output: () => output, stop };
}

/** Headless Debian Chromium, with a fresh profile (Playwright makes a new user-data-dir). */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--ignore-certificate-errors",
    ],
  });
}

/** A fresh browser context (its own cookie jar) that accepts tessera's self-signed certificate. */
export function newContext(/** @type {import("playwright-core").Browser} */ browser) {
  return browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
}

/**
 * Record what a page must never do: break the CSP, throw, or log a script error.
 * (Chromium's "Failed to load resource: … 401" lines are expected and not counted.)
 */
export function watch(/** @type {import("playwright-core").Page} */ page) {
  /** @type {string[]} */
  const problems = [];
  page.on("pageerror", (err) => problems.push(`uncaught: ${err.message}`));
  page.on("console", (msg) => {
    const text = msg.text();
    if (msg.type() === "error" && !/Failed to load resource/.test(text)) problems.push(`console: ${text}`);
    else if (/Content Security Policy|Refused to/.test(text)) problems.push(`csp: ${text}`);
  });
  return problems;
}

/** Sign in through the demo's login form and wait for the app. */
export async function signIn(
  /** @type {import("playwright-core").Page} */ page,
  /** @type {{ origin: string, username: string, password: string }} */ server,
) {
  if (!page.url().startsWith(server.origin)) await page.goto(`${server.origin}/`);
  await page.locator("#login-form").waitFor({ state: "visible" });
  await page.fill("#username", server.username);
  await page.fill("#password", server.password);
  await page.click("#login-submit");
  await page.locator("#app").waitFor({ state: "visible" });
  await page.locator("#login-form").waitFor({ state: "hidden" });
  assert.equal(await page.textContent("#whoami"), server.username);
}

/** The claims the demo sees, from tessera.session(). */
export function claimsIn(/** @type {import("playwright-core").Page} */ page) {
  return page.evaluate(async () => (await import("/tessera.js")).session());
}

/** Wait until the access token in the page's claims cookie has expired (plus a margin). */
export async function waitForExpiry(/** @type {import("playwright-core").Page} */ page, marginMs = 1_500) {
  const exp = await page.evaluate(() => {
    const raw = document.cookie.split("; ").find((c) => c.startsWith("__Host-tessera-claims="));
    if (!raw) return 0;
    const json = atob(raw.split("=")[1].replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(json).exp;
  });
  const wait = exp * 1000 + marginMs - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

/** Record tessera's answers to POST /auth/refresh in a context (or page). */
export function recordRefreshes(/** @type {import("playwright-core").BrowserContext | import("playwright-core").Page} */ target) {
  /** @type {number[]} */
  const statuses = [];
  target.on("response", (res) => {
    if (new URL(res.url()).pathname === "/auth/refresh" && res.request().method() === "POST") statuses.push(res.status());
  });
  return statuses;
}

/**
 * A POST to tessera from outside the browser (no Origin, no Sec-Fetch-Site), with
 * the given cookies; the self-signed certificate is accepted.
 * @returns {Promise<{ status: number, body: string, setCookie: string[] }>}
 */
export function postFromOutside(/** @type {string} */ url, /** @type {Record<string, string>} */ headers) {
  return new Promise((resolveRes, reject) => {
    const req = httpsRequest(url, { method: "POST", headers: { "Content-Length": "0", ...headers }, rejectUnauthorized: false }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => resolveRes({ status: res.statusCode ?? 0, body, setCookie: res.headers["set-cookie"] ?? [] }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A small plain-HTTP site on `localhost`: a different site from tessera at 127.0.0.1. */
export async function startAttackerSite(/** @type {(path: string) => string} */ page) {
  const server = createServer((req, res) => {
    if (req.url === "/favicon.ico") return res.writeHead(404).end();
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(page(req.url ?? "/"));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return { origin: `http://localhost:${port}`, close: () => new Promise((r) => server.close(r)) };
}

/** Run a test body; on failure save a screenshot of each page to e2e/artifacts/ first. */
export async function withScreenshots(
  /** @type {string} */ name,
  /** @type {import("playwright-core").Page[]} */ pages,
  /** @type {() => Promise<void>} */ body,
) {
  try {
    await body();
  } catch (err) {
    mkdirSync(ARTIFACTS, { recursive: true });
    await Promise.all(
      pages.map((p, i) => p.screenshot({ path: join(ARTIFACTS, `failed-${name}-${i}.png`), fullPage: true }).catch(() => {})),
    );
    throw err;
  }
}
