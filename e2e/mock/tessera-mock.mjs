#!/usr/bin/env node
// A stand-in for `tessera serve --demo`, for working on tessera.js and the demo
// without the Rust server: TESSERA_BIN=e2e/mock/tessera-mock.mjs e2e/run
//
// It follows docs/http-api.md's browser half only (cookies, CSRF rules, refresh
// rotation with a grace period, the demo notes API), in memory, with a throwaway
// self-signed certificate. It is not tessera: the suite's verdict is the real binary's.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const args = process.argv.slice(2);
const opt = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
if (args[0] !== "serve" || !args.includes("--demo")) {
  console.error("usage: tessera-mock.mjs serve --demo [--config FILE] [--listen HOST:PORT]");
  process.exit(2);
}
const configText = opt("--config") ? readFileSync(opt("--config"), "utf8") : "";
const setting = (key, fallback) => configText.match(new RegExp(`^\\s*${key}\\s*=\\s*"([^"]*)"`, "m"))?.[1] ?? fallback;
const seconds = (text) => Number(text.match(/^(\d+)\s*(s|m|h)?$/)?.[1]) * { s: 1, m: 60, h: 3600 }[text.match(/(s|m|h)$/)?.[1] ?? "s"];
const ACCESS_TTL = seconds(setting("access_ttl", "300s"));
const REFRESH_TTL = seconds(setting("refresh_ttl", "24h"));
const GRACE = seconds(setting("refresh_grace", "5s"));
const [host, port] = (opt("--listen") ?? "127.0.0.1:0").split(/:(?=\d+$)/);

const web = join(dirname(fileURLToPath(import.meta.url)), "../../web");
const files = {
  "/": ["demo/index.html", "text/html"], "/app.js": ["demo/app.js", "text/javascript"],
  "/style.css": ["demo/style.css", "text/css"], "/tessera.js": ["tessera.js", "text/javascript"],
};
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const secret = randomBytes(32);
const mac = (text) => createHmac("sha256", secret).update(text).digest("base64url");
const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);
const same = (a, b) => typeof a === "string" && a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));
const password = randomBytes(9).toString("base64url");
const users = new Map([["demo", { id: "u-demo", username: "demo", password, roles: ["user", "demo"] }]]);
const sessions = new Map(); // sid -> { user, revoked, refresh, previous, rotatedAt, successor, expires }
const notes = new Map(); // user id -> notes
const failures = new Map(); // username -> [timestamps]

function issue(res, session, refreshToken) {
  const header = b64({ alg: "HS256", typ: "at+jwt", kid: "mock" });
  const t = now();
  const claims = { iss: "tessera-mock", aud: "tessera", sub: session.user.id, sid: session.id, iat: t, nbf: t,
    exp: t + ACCESS_TTL, jti: randomBytes(8).toString("hex"), roles: session.user.roles, username: session.user.username };
  const payload = b64(claims);
  const csrf = `${randomBytes(12).toString("base64url")}.${mac(`csrf:${session.id}`)}`;
  res.setHeader("Set-Cookie", [
    `__Host-tessera-claims=${payload}; Secure; SameSite=Lax; Path=/; Max-Age=${ACCESS_TTL}`,
    `__Host-tessera-sig=${header}.${mac(`${header}.${payload}`)}; Secure; HttpOnly; SameSite=Lax; Path=/; Max-Age=${ACCESS_TTL}`,
    `__Secure-tessera-refresh=${refreshToken}; Secure; HttpOnly; SameSite=Strict; Path=/auth; Max-Age=${REFRESH_TTL}`,
    `__Host-tessera-csrf=${csrf}; Secure; SameSite=Strict; Path=/; Max-Age=${REFRESH_TTL}`,
  ]);
  return { user: { id: session.user.id, username: session.user.username, roles: session.user.roles },
    session: { id: session.id, expires_at: session.expires }, csrf_token: csrf };
}

function clearCookies(res) {
  res.setHeader("Set-Cookie", ["__Host-tessera-claims", "__Host-tessera-sig", "__Host-tessera-csrf"]
    .map((n) => `${n}=; Secure; Path=/; Max-Age=0`).concat("__Secure-tessera-refresh=; Secure; Path=/auth; Max-Age=0"));
}

function cookies(req) {
  return Object.fromEntries((req.headers.cookie ?? "").split(";").map((c) => c.trim().split(/=(.*)/s).slice(0, 2)).filter((c) => c[0]));
}

/** The session of a valid access token in the cookies, or null. */
function authenticate(c) {
  const payload = c["__Host-tessera-claims"], sig = c["__Host-tessera-sig"];
  if (!payload || !sig) return null;
  const [header, signature] = sig.split(".");
  if (!same(signature ?? "", mac(`${header}.${payload}`))) return null;
  const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
  const session = sessions.get(claims.sid);
  return claims.exp > now() && session && !session.revoked ? session : null;
}

function csrfOk(req, c, origin) {
  const site = req.headers["sec-fetch-site"];
  if (site && site !== "same-origin" && site !== "none") return false;
  if (req.headers.origin && req.headers.origin !== origin) return false;
  return true;
}

function tokenOk(req, sid) {
  const token = req.headers["x-csrf-token"];
  return typeof token === "string" && same(token.split(".")[1] ?? "", mac(`csrf:${sid}`));
}

const send = (res, status, body, headers = {}) => {
  res.writeHead(status, { "Content-Type": "application/json", "Cache-Control": "no-store", ...headers });
  res.end(body === undefined ? "" : JSON.stringify(body));
};
const fail = (res, status, error, message, headers) => send(res, status, { error, message }, headers);
const body = (req) => new Promise((resolve) => {
  let data = "";
  req.on("data", (chunk) => (data += chunk));
  req.on("end", () => { try { resolve(JSON.parse(data)); } catch { resolve(null); } });
});

async function handle(req, res, origin) {
  const url = new URL(req.url, origin);
  const c = cookies(req);
  const unsafe = !["GET", "HEAD", "OPTIONS"].includes(req.method);
  if (files[url.pathname] && req.method === "GET") {
    const [file, type] = files[url.pathname];
    res.writeHead(200, { "Content-Type": `${type}; charset=utf-8`, "Content-Security-Policy": CSP, "Cache-Control": "no-cache" });
    return res.end(readFileSync(join(web, file)));
  }
  if (url.pathname === "/auth/login" && req.method === "POST") {
    if (!csrfOk(req, c, origin)) return fail(res, 403, "csrf_failed", "cross-site request refused");
    const input = await body(req);
    const user = users.get(input?.username);
    const recent = (failures.get(input?.username) ?? []).filter((t) => t > now() - 60);
    if (recent.length >= 5) return fail(res, 429, "rate_limited", "too many attempts", { "Retry-After": String(recent[0] + 60 - now()) });
    if (!user || user.password !== input?.password) {
      failures.set(input?.username, [...recent, now()]);
      return fail(res, 401, "invalid_credentials", "invalid username or password");
    }
    const session = { id: randomBytes(8).toString("hex"), user, revoked: false, expires: now() + REFRESH_TTL };
    session.refresh = randomBytes(32).toString("base64url");
    sessions.set(session.id, session);
    return send(res, 200, issue(res, session, session.refresh));
  }
  if (url.pathname === "/auth/refresh" && req.method === "POST") {
    const token = c["__Secure-tessera-refresh"];
    const session = [...sessions.values()].find((s) => s.refresh === token || s.previous === token);
    if (!session || session.revoked) return clearCookies(res), fail(res, 401, "unauthenticated", "no session");
    if (!csrfOk(req, c, origin) || !tokenOk(req, session.id)) return fail(res, 403, "csrf_failed", "CSRF check failed");
    if (session.previous === token) {
      if (now() - session.rotatedAt > GRACE) {
        session.revoked = true;
        return clearCookies(res), fail(res, 401, "refresh_token_reused", "refresh token reused");
      }
      return send(res, 200, issue(res, session, session.refresh));
    }
    session.previous = token;
    session.rotatedAt = now();
    session.refresh = randomBytes(32).toString("base64url");
    return send(res, 200, issue(res, session, session.refresh));
  }
  const session = authenticate(c);
  if (url.pathname === "/auth/logout" && req.method === "POST") {
    if (!session) return fail(res, 401, "unauthenticated", "no valid access token"); // the client refreshes first
    if (!csrfOk(req, c, origin) || !tokenOk(req, session.id)) return fail(res, 403, "csrf_failed", "CSRF check failed");
    session.revoked = true;
    clearCookies(res);
    return send(res, 204);
  }
  if (!session) return fail(res, 401, "unauthenticated", "sign in first");
  if (unsafe && (!csrfOk(req, c, origin) || !tokenOk(req, session.id))) return fail(res, 403, "csrf_failed", "CSRF check failed");
  if (url.pathname === "/auth/session" && req.method === "GET") {
    const claims = JSON.parse(Buffer.from(c["__Host-tessera-claims"], "base64url").toString());
    return send(res, 200, { user: { id: session.user.id, username: session.user.username, roles: session.user.roles },
      session: { id: session.id, expires_at: session.expires }, claims });
  }
  if (url.pathname === "/api/notes") {
    const list = notes.get(session.user.id) ?? [];
    notes.set(session.user.id, list);
    if (req.method === "GET") return send(res, 200, { notes: list });
    if (req.method === "POST") {
      if (!/^application\/json/.test(req.headers["content-type"] ?? "")) return fail(res, 415, "invalid_request", "JSON only");
      const input = await body(req);
      if (typeof input?.text !== "string" || !input.text) return fail(res, 400, "invalid_request", "text required");
      const note = { id: randomBytes(6).toString("hex"), text: input.text, created_at: now() };
      list.push(note);
      return send(res, 201, { note });
    }
  }
  return fail(res, 404, "not_found", "no such path");
}

const certDir = mkdtempSync(join(tmpdir(), "tessera-mock-"));
execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
  "-subj", "/CN=127.0.0.1", "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem")], { stdio: "ignore" });
const server = createServer({ key: readFileSync(join(certDir, "key.pem")), cert: readFileSync(join(certDir, "cert.pem")) });
server.on("request", (req, res) => {
  const origin = `https://${host}:${server.address().port}`;
  handle(req, res, origin).catch((err) => { console.error(err); fail(res, 400, "invalid_request", "bad request"); });
});
server.listen(Number(port), host, () => {
  console.log(`tessera-mock listening on https://${host}:${server.address().port}`);
  console.log(`demo user: demo  password: ${password}`);
});
