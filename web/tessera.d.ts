// Types for tessera.js, the browser client of tessera's cookie sessions.

/** The access token's claims, as read from the `__Host-tessera-claims` cookie. */
export interface Claims {
  iss: string;
  aud: string | string[];
  /** Stable user id. */
  sub: string;
  /** Session id. */
  sid: string;
  iat: number;
  nbf: number;
  /** Expiry, in seconds since the Unix epoch. */
  exp: number;
  jti: string;
  roles: string[];
  username: string;
  /** The client the token was issued to (RFC 9068 §2.2): `"browser"` for cookie sessions. */
  client_id: string;
  /** How the user authenticated (RFC 8176 method values, e.g. `["pwd"]`). */
  amr?: string[];
  /** When the user authenticated, in seconds since the Unix epoch; a refresh keeps it. */
  auth_time?: number;
  [claim: string]: unknown;
}

/** What `POST /auth/login` (and `/auth/refresh`) answer. */
export interface LoginResult {
  user: { id: string; username: string; roles: string[] };
  session: { id: string; expires_at: number | string };
  csrf_token: string;
}

/**
 * `login`, `logout` and `refresh` as they happen; `expired` when a refresh was
 * refused (the session ended without a logout: revoked, timed out, reused token).
 */
export type ChangeType = "login" | "logout" | "refresh" | "expired";

export interface ChangeEvent {
  type: ChangeType;
  /** The claims after the change, or null when logged out. */
  claims: Claims | null;
  /** True when the change happened in another tab. */
  remote: boolean;
}

/** An error answered by tessera. */
export class TesseraError extends Error {
  constructor(message: string, details: { status: number; code: string; retryAfter?: number | null });
  /** HTTP status, or 0 when tessera could not be reached. */
  status: number;
  /** Stable code: `invalid_credentials`, `rate_limited`, `overloaded`, `network_error`, … */
  code: string;
  /** Seconds to wait before trying again (from Retry-After), or null. */
  retryAfter: number | null;
}

/** The current claims, read from the claims cookie without a request; null if absent or expired. */
export function session(): Claims | null;

/** Log in; rejects with a TesseraError (`invalid_credentials`, `rate_limited`, `overloaded`, …). */
export function login(username: string, password: string): Promise<LoginResult>;

/** Log out (the session is revoked, every tab is told); rejects with a TesseraError if refused. */
export function logout(): Promise<void>;

/**
 * Like `window.fetch`, with `credentials: "same-origin"` and `X-CSRF-Token` on unsafe
 * methods; on a 401 it refreshes the session once (single-flight across tabs) and retries once.
 */
export function fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;

/** Subscribe to session changes in this tab and the others; returns the unsubscribe function. */
export function onChange(callback: (event: ChangeEvent) => void): () => void;
