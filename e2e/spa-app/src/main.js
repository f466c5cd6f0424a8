// A team's own SPA, built by Vite and served from tessera's static_dir. tessera.js comes
// from tessera itself (same origin), left external by vite.config.mjs.
import * as tessera from "/tessera.js";
import { routeOf } from "./routes.js";
import "./style.css";

const $ = (id) => document.getElementById(id);

async function render() {
  const claims = tessera.session();
  $("login-form").hidden = claims !== null;
  $("app").hidden = claims === null;
  if (!claims) return;
  $("whoami").textContent = claims.username;
  $("route").textContent = location.pathname;
  const route = routeOf(location.pathname);
  const view = $("view");
  view.replaceChildren();
  if (route.name === "home") {
    const p = document.createElement("p");
    p.id = "home";
    p.textContent = "Welcome.";
    view.append(p);
  } else if (route.name === "notes") {
    const res = await tessera.fetch("/api/notes", { headers: { Accept: "application/json" } });
    const body = await res.json();
    const list = document.createElement("ul");
    list.id = "notes";
    for (const note of body.notes ?? []) {
      const li = document.createElement("li");
      li.className = "note";
      li.textContent = note.text;
      list.append(li);
    }
    view.append(list);
  } else {
    const p = document.createElement("p");
    p.id = "not-found";
    p.textContent = "No such page.";
    view.append(p);
  }
  $("app").dataset.ready = route.name;
}

function navigate(path) {
  history.pushState({}, "", path);
  render();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("login-error").textContent = "";
  try {
    await tessera.login($("username").value, $("password").value);
    await render();
  } catch (err) {
    $("login-error").textContent = err.code ?? String(err);
  }
});
for (const a of document.querySelectorAll("nav a")) {
  a.addEventListener("click", (e) => {
    e.preventDefault();
    navigate(a.getAttribute("href"));
  });
}
window.addEventListener("popstate", () => render());
tessera.onChange(() => render());
render();
