// tessera.js — the browser side of tessera's cookie sessions.
//
// A small ES module with no dependencies and no build step. Serve it from the
// same origin as tessera (tessera itself serves it at /tessera.js) and import it:
//
//     import * as tessera from "/tessera.js";
//     await tessera.login("ada", "correct horse battery staple");
//     const res = await tessera.fetch("/api/notes", { method: "POST", body: "…" });
//
// The tokens never reach script: the signature half of the access token and the
// refresh token are HttpOnly cookies. Script sees only the claims cookie (what
// the token says, nothing secret) and the CSRF cookie (echoed in X-CSRF-Token).
// session() and the cross-tab refresh check need that claims cookie, i.e. tessera's
// default `cookies.mode = "split"`; in "whole" mode session() is always null.

/** @typedef {{ iss: string, aud: string | string[], sub: string, sid: string, iat: number,
 *    nbf: number, exp: number, jti: string, roles: string[], username: string }} Claims */
/** @typedef {"login" | "logout" | "refresh" | "expired"} ChangeType */
/** @typedef {{ type: ChangeType, claims: Claims | null, remote: boolean }} ChangeEvent */
/** @typedef {{ user: { id: string, username: string, roles: string[] },
 *    session: { id: string, expires_at: number | string }, csrf_token: string }} LoginResult */

const CLAIMS_COOKIE = "__Host-tessera-claims";
const CSRF_COOKIE = "__Host-tessera-csrf";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** @type {Set<(event: ChangeEvent) => void>} */
const listeners = new Set();
const channel = typeof BroadcastChannel === "function" ? new BroadcastChannel("tessera") : null;
/** @type {Promise<boolean> | null} refresh in flight in this tab (used without Web Locks) */
let inFlight = null;

/** An error answered by tessera: HTTP status, stable code, and Retry-After when given. */
export class TesseraError extends Error {
  /** @param {string} message @param {{ status: number, code: string, retryAfter?: number | null }} details */
  constructor(message, { status, code, retryAfter = null }) {
    super(message);
    this.name = "TesseraError";
    /** HTTP status, or 0 when the server could not be reached. */
    this.status = status;
    /** Stable code such as `invalid_credentials`, `rate_limited`, `overloaded`, `network_error`. */
    this.code = code;
    /** Seconds to wait before trying again (from Retry-After), or null. */
    this.retryAfter = retryAfter;
  }
}

/**
 * The current user's claims, read from the claims cookie without a request.
 * @returns {Claims | null} null when logged out or when the access token has expired
 */
export function session() {
  const claims = readClaims();
  return claims && claims.exp * 1000 > Date.now() ? claims : null;
}

/**
 * Log in with a username and password; tessera answers with cookies.
 * @param {string} username
 * @param {string} password
 * @returns {Promise<LoginResult>}
 * @throws {TesseraError} `invalid_credentials` (401), `rate_limited` (429), `overloaded` (503), …
 */
export async function login(username, password) {
  const res = await post("/auth/login", {
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) throw await errorFrom(res);
  const result = await res.json();
  announce("login");
  return result;
}

/**
 * Log out: tessera revokes the session and clears its cookies. Every tab is told.
 * @returns {Promise<void>}
 * @throws {TesseraError} when tessera could not be reached or refused (the session may live on)
 */
export async function logout() {
  // through fetch(): with an expired access token, refresh first, or the refresh token would outlive the logout
  const res = await reach(fetch("/auth/logout", { method: "POST" }));
  if (!res.ok && res.status !== 401) throw await errorFrom(res); // 401: no session any more
  announce("logout");
}

/**
 * `fetch` for calls through tessera. It sends the cookies (same origin only),
 * adds X-CSRF-Token to unsafe methods, and on a 401 refreshes the session once and
 * retries once. A final 401 means the session is over: the response is returned as is.
 * @param {RequestInfo | URL} input
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export async function fetch(input, init) {
  const request = new Request(input, { ...init, credentials: "same-origin" });
  if (new URL(request.url).origin !== location.origin) return globalThis.fetch(request); // no token leaves
  const replay = request.clone(); // the body can be read once: keep a copy for the retry
  const sentWith = stamp();
  const res = await send(request);
  if (res.status !== 401 || !(await refresh(sentWith))) return res;
  return send(replay);
}

/**
 * Be told when the session changes, in this tab or another one:
 * `login`, `logout`, `refresh`, or `expired` (the session ended without a logout).
 * @param {(event: ChangeEvent) => void} callback
 * @returns {() => void} call it to unsubscribe
 */
export function onChange(callback) {
  listeners.add(callback);
  return () => listeners.delete(callback);
}

/**
 * Refresh the session, once across all tabs. Inside the lock, a tab first checks
 * whether another tab has already refreshed since `sentWith` and then skips the
 * request, so many tabs waking up at once spend the refresh token only once.
 * @param {string | null} sentWith the claims stamp when the failed request was sent
 * @returns {Promise<boolean>} whether the session is usable again
 */
async function refresh(sentWith) {
  const run = async () => {
    const now = stamp();
    if (now !== null && now !== sentWith && session()) return true; // another tab did it
    if (!readCookie(CSRF_COOKIE)) return false; // logged out: nothing to refresh
    let res;
    try {
      res = await post("/auth/refresh");
    } catch {
      return false; // offline: the caller gets its 401, the session may still live
    }
    if (res.ok) announce("refresh");
    else if (res.status === 401) announce("expired");
    return res.ok;
  };
  if (navigator.locks) return navigator.locks.request("tessera-refresh", run);
  return (inFlight ??= run().finally(() => (inFlight = null)));
}

/** Send a same-origin request, with X-CSRF-Token (read now: a refresh may change it). */
function send(/** @type {Request} */ request) {
  const csrf = readCookie(CSRF_COOKIE);
  if (SAFE_METHODS.has(request.method) || !csrf) return globalThis.fetch(request);
  const headers = new Headers(request.headers);
  headers.set("X-CSRF-Token", csrf);
  return globalThis.fetch(new Request(request, { headers }));
}

/** POST to one of tessera's own endpoints. */
function post(/** @type {string} */ path, /** @type {RequestInit} */ init = {}) {
  return reach(send(new Request(path, { ...init, method: "POST", credentials: "same-origin" })));
}

/** A network failure becomes a TesseraError with status 0. */
async function reach(/** @type {Promise<Response>} */ pending) {
  try {
    return await pending;
  } catch (err) {
    throw new TesseraError(`tessera could not be reached (${err})`, { status: 0, code: "network_error" });
  }
}

/** Tell this tab's listeners and the other tabs. */
function announce(/** @type {ChangeType} */ type) {
  channel?.postMessage({ type });
  notify(type, false);
}

function notify(/** @type {ChangeType} */ type, /** @type {boolean} */ remote) {
  const event = { type, claims: session(), remote };
  for (const listener of listeners) {
    try {
      listener(event);
    } catch (err) {
      console.error("tessera: onChange listener failed", err);
    }
  }
}

if (channel) {
  channel.onmessage = (/** @type {MessageEvent} */ msg) => {
    const type = msg.data?.type;
    if (["login", "logout", "refresh", "expired"].includes(type)) notify(type, true);
  };
}

/** Identifies the current access token (`jti` and `exp`), or null without one. */
function stamp() {
  const claims = readClaims();
  return claims ? `${claims.jti}/${claims.exp}` : null;
}

/** @returns {Claims | null} the claims cookie decoded (base64url JSON), expired or not */
function readClaims() {
  const value = readCookie(CLAIMS_COOKIE);
  if (!value) return null;
  try {
    const base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims.exp === "number" ? claims : null;
  } catch {
    return null;
  }
}

/** @returns {string | null} */
function readCookie(/** @type {string} */ name) {
  for (const part of document.cookie.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Turn an error response into a TesseraError. */
async function errorFrom(/** @type {Response} */ res) {
  /** @type {{ error?: string, message?: string }} */
  let body = {};
  try {
    body = await res.json();
  } catch {
    // not JSON (a proxy in front of tessera, say): keep the status
  }
  return new TesseraError(body.message || `HTTP ${res.status}`, {
    status: res.status,
    code: body.error || `http_${res.status}`,
    retryAfter: parseRetryAfter(res.headers.get("Retry-After")),
  });
}

/** Retry-After is seconds or an HTTP date (RFC 9110 §10.2.3). @returns {number | null} */
function parseRetryAfter(/** @type {string | null} */ value) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}
