// In your SPA, served by tessera on the same origin as your API (no build step needed).
import * as tessera from "/tessera.js";

export async function addNote(username, password, text) {
  if (!tessera.session()) {
    await tessera.login(username, password); // throws TesseraError {status, code, retryAfter}
  }
  // Same-origin fetch with the cookies; adds X-CSRF-Token to unsafe methods, and on a 401
  // refreshes the session once (single-flight across tabs) and retries.
  const res = await tessera.fetch("/api/notes", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text }),
  });
  if (!res.ok) throw new Error(`POST /api/notes: ${res.status}`);
  const { note } = await res.json();
  const { username: user, client_id } = tessera.session(); // the claims, read from a cookie
  await tessera.logout();
  return { status: res.status, note, user, client_id, after_logout: tessera.session() };
}
