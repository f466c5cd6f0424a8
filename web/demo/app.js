// The tessera demo: a notes app whose every call goes through the gateway.
// It shows how to use tessera.js: login with clear errors, session() for who is
// signed in, fetch() for API calls, and a session that ends without losing the draft.
import * as tessera from "/tessera.js";

const $ = (/** @type {string} */ id) => /** @type {any} */ (document.getElementById(id));
const ui = {
  app: $("app"), account: $("account"), whoami: $("whoami"), roles: $("roles"), avatar: $("avatar"),
  logout: $("logout"), noteForm: $("note-form"), noteText: $("note-text"), noteAdd: $("note-add"),
  noteStatus: $("note-status"), notes: $("notes"), notesEmpty: $("notes-empty"), notesCount: $("notes-count"),
  notesReload: $("notes-reload"), details: $("session-details"), dialog: $("login-dialog"),
  loginForm: $("login-form"), loginTitle: $("login-title"), loginHint: $("login-hint"),
  username: $("username"), password: $("password"), loginError: $("login-error"), loginInfo: $("login-info"),
  loginSubmit: $("login-submit"),
};
const DRAFT_KEY = "tessera-demo-draft";
const DEFAULT_HINT = [...ui.loginHint.childNodes];

/** Thrown when a call still gets 401 after tessera.fetch tried to refresh: the session is over. */
class SessionEnded extends Error {}

/** @type {null | (() => Promise<void>)} the action to run again after signing in again */
let pending = null;
/** @type {string | null} who the app is showing, kept while the login dialog asks again */
let shownUser = null;
/** @type {number | undefined} */
let countdown;
/** Whether the login dialog must stay open (nobody signed in, or the session ended). */
let needLogin = false;

// ---- API calls through the gateway ----

async function api(/** @type {string} */ path, /** @type {RequestInit} */ init = {}) {
  const res = await tessera.fetch(path, init);
  if (res.status === 401) throw new SessionEnded("session ended");
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new Error(body.message || `the server answered ${res.status}`);
  }
  return res.status === 204 ? null : res.json();
}

async function loadNotes() {
  const { notes } = await api("/api/notes");
  renderNotes(notes);
}

async function addNote() {
  const text = ui.noteText.value.trim();
  if (!text) return;
  const { note } = await api("/api/notes", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ text }),
  });
  ui.noteText.value = "";
  sessionStorage.removeItem(DRAFT_KEY);
  prependNote(note);
  say("Saved.");
}

/** Run an action; if the session has ended, ask to sign in again and then run it again. */
async function guarded(/** @type {() => Promise<void>} */ action) {
  try {
    await action();
  } catch (err) {
    if (err instanceof SessionEnded) {
      pending = action;
      if (action === addNote) say("Your note will be saved once you sign in again.");
      askToSignIn("expired");
    } else {
      say(`Something went wrong: ${err instanceof Error ? err.message : err}`, true);
    }
  }
}

// ---- views ----

/** Show the app for the signed-in user (claims from the cookie, no request). */
function showApp() {
  const claims = tessera.session();
  if (claims) {
    shownUser = claims.username;
    ui.whoami.textContent = claims.username;
    ui.avatar.textContent = claims.username.slice(0, 1).toUpperCase();
    ui.roles.replaceChildren(...(claims.roles ?? []).map((role) => el("li", "role", role)));
    renderDetails(claims);
  }
  ui.app.hidden = false;
  ui.account.hidden = false;
  needLogin = false;
  if (ui.dialog.open) ui.dialog.close();
}

/**
 * Nobody is signed in: empty the app and show the login form. After a logout the
 * draft goes too (a shared computer); at start-up it is kept for after the login.
 */
function showLoggedOut(/** @type {string} */ why = "", { loggedOut = true } = {}) {
  pending = null;
  shownUser = null;
  ui.app.hidden = true;
  ui.account.hidden = true;
  ui.notes.replaceChildren();
  ui.details.replaceChildren();
  if (loggedOut) {
    ui.noteText.value = "";
    sessionStorage.removeItem(DRAFT_KEY);
    ui.username.value = "";
  }
  askToSignIn("login", why);
}

/**
 * Open the login form. "expired" keeps the app (and the draft) under the dialog:
 * signing in again closes it and runs the pending action.
 */
function askToSignIn(/** @type {"login" | "expired"} */ mode, /** @type {string} */ why = "") {
  ui.dialog.classList.toggle("over-app", mode === "expired");
  if (mode === "expired") {
    ui.loginTitle.textContent = "Session ended";
    ui.loginHint.textContent = "Sign in again to continue. Nothing you typed is lost.";
    if (shownUser) ui.username.value = shownUser;
  } else {
    ui.loginTitle.textContent = "Sign in";
    ui.loginHint.replaceChildren(...DEFAULT_HINT.map((node) => node.cloneNode(true)));
  }
  showError("");
  showInfo(why); // why the form is back (e.g. signed out in another tab): news, not a failure
  needLogin = true;
  if (!ui.dialog.open) ui.dialog.showModal();
  (ui.username.value ? ui.password : ui.username).focus();
}

function renderNotes(/** @type {Array<{id: string, text: string, created_at: number}>} */ notes) {
  // newest first; the API lists in creation order, so ties within a second keep it reversed
  const sorted = [...notes].reverse().sort((a, b) => b.created_at - a.created_at);
  ui.notes.replaceChildren(...sorted.map(noteItem));
  updateCount();
}

function prependNote(/** @type {{id: string, text: string, created_at: number}} */ note) {
  ui.notes.prepend(noteItem(note));
  updateCount();
}

function noteItem(/** @type {{id: string, text: string, created_at: number}} */ note) {
  const item = el("li", "note");
  item.dataset.id = note.id;
  item.append(el("p", "note-text", note.text));
  const when = new Date(note.created_at * 1000);
  const time = el("time", "note-time", when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }));
  time.setAttribute("datetime", when.toISOString());
  item.append(time);
  return item;
}

function updateCount() {
  const n = ui.notes.children.length;
  ui.notesCount.textContent = n ? String(n) : "";
  ui.notesEmpty.hidden = n > 0;
}

function renderDetails(/** @type {tessera.Claims} */ claims) {
  const rows = [
    ["User id", claims.sub],
    ["Session", claims.sid],
    ["Token issued", new Date(claims.iat * 1000).toLocaleTimeString()],
    ["Token expires", new Date(claims.exp * 1000).toLocaleTimeString()],
  ];
  ui.details.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", "", k), el("dd", "", String(v))]));
}

function say(/** @type {string} */ text, isError = false) {
  ui.noteStatus.textContent = text;
  ui.noteStatus.classList.toggle("is-error", isError);
}

function showError(/** @type {string} */ text) {
  ui.loginError.textContent = text;
  ui.loginError.hidden = !text;
  if (text) showInfo("");
}

/** Neutral news on the login form (role=status), replaced by any error. */
function showInfo(/** @type {string} */ text) {
  ui.loginInfo.textContent = text;
  ui.loginInfo.hidden = !text;
}

/** An element with a class and text (textContent only: notes are never parsed as HTML). */
function el(/** @type {string} */ tag, cls = "", text = "") {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text) node.textContent = text;
  return node;
}

/** What to tell the user when login fails. */
function loginErrorText(/** @type {any} */ err) {
  switch (err?.code) {
    case "invalid_credentials":
      return "Wrong username or password.";
    case "rate_limited":
      return err.retryAfter != null
        ? `Too many sign-in attempts. Try again in ${err.retryAfter} seconds.`
        : "Too many sign-in attempts. Wait a moment and try again.";
    case "overloaded":
    case "unavailable":
      return err.retryAfter != null
        ? `The server is busy. Try again in ${err.retryAfter} seconds.`
        : "The server is busy. Try again in a moment.";
    case "network_error":
      return "Cannot reach the server. Check your connection and try again.";
    default:
      return `Sign-in failed: ${err?.message ?? err}`;
  }
}

/** Keep the submit button disabled while the server asks us to wait, counting down. */
function waitBeforeRetry(/** @type {any} */ err) {
  clearInterval(countdown);
  let left = err.retryAfter;
  ui.loginSubmit.disabled = true;
  countdown = setInterval(() => {
    left -= 1;
    if (left > 0) {
      showError(loginErrorText({ ...err, code: err.code, retryAfter: left }));
    } else {
      clearInterval(countdown);
      ui.loginSubmit.disabled = false;
      showError("You can try again now.");
    }
  }, 1000);
}

// ---- events ----

ui.loginForm.addEventListener("submit", async (/** @type {SubmitEvent} */ event) => {
  event.preventDefault();
  const username = ui.username.value.trim();
  const password = ui.password.value;
  if (!username || !password) return showError("Enter your username and password.");
  showError("");
  showInfo("");
  ui.loginSubmit.disabled = true;
  ui.loginForm.setAttribute("aria-busy", "true");
  try {
    await tessera.login(username, password);
  } catch (err) {
    showError(loginErrorText(err));
    if (/** @type {any} */ (err).retryAfter > 0) waitBeforeRetry(err);
    else ui.loginSubmit.disabled = false;
    ui.password.select();
    return;
  } finally {
    ui.loginForm.removeAttribute("aria-busy");
  }
  ui.loginSubmit.disabled = false;
  ui.password.value = "";
  await resume(username);
});

/** After a login (here or in another tab): show the app, then finish what was interrupted. */
async function resume(/** @type {string} */ username) {
  const sameUser = shownUser === null || shownUser === username;
  const action = sameUser ? pending : null;
  pending = null;
  if (!sameUser) ui.noteText.value = ""; // another person's draft is not theirs to post
  showApp();
  await guarded(loadNotes);
  if (action && action !== loadNotes) await guarded(action);
}

ui.noteForm.addEventListener("submit", async (/** @type {SubmitEvent} */ event) => {
  event.preventDefault();
  if (!ui.noteText.value.trim()) return say("Write something first.", true);
  ui.noteAdd.disabled = true;
  say("Saving…");
  await guarded(addNote);
  ui.noteAdd.disabled = false;
});

ui.noteText.addEventListener("input", () => {
  sessionStorage.setItem(DRAFT_KEY, ui.noteText.value);
  if (!ui.noteStatus.classList.contains("is-error")) say("");
});
ui.noteText.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) ui.noteForm.requestSubmit();
});
ui.notesReload.addEventListener("click", () => guarded(loadNotes));

ui.logout.addEventListener("click", async () => {
  ui.logout.disabled = true;
  try {
    await tessera.logout(); // onChange("logout") shows the login form
  } catch (err) {
    say(`Could not log out: ${err instanceof Error ? err.message : err}`, true);
  } finally {
    ui.logout.disabled = false;
  }
});

// The login form is the only way on while signed out: Escape does not close it.
ui.dialog.addEventListener("cancel", (/** @type {Event} */ event) => event.preventDefault());
ui.dialog.addEventListener("close", () => needLogin && ui.dialog.showModal());

tessera.onChange((event) => {
  switch (event.type) {
    case "logout":
      showLoggedOut(event.remote ? "You signed out in another tab." : "");
      break;
    case "expired":
      if (!ui.app.hidden) askToSignIn("expired");
      break;
    case "login":
      if (event.remote && ui.dialog.open && event.claims) resume(event.claims.username);
      break;
    case "refresh":
      if (event.claims) renderDetails(event.claims);
      break;
  }
});

// ---- start: a session may still be there (the claims cookie, or a refresh token) ----

ui.noteText.value = sessionStorage.getItem(DRAFT_KEY) ?? "";
try {
  await loadNotes(); // tessera.fetch refreshes an expired access token on its own
  showApp();
} catch (err) {
  if (err instanceof SessionEnded) showLoggedOut("", { loggedOut: false });
  else {
    showApp();
    say(`Could not load your notes: ${err instanceof Error ? err.message : err}`, true);
  }
}
