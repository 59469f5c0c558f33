// The console's shell: sign-in, the navigation and the hash router. Each page is a module in
// pages/ exporting `render(view, ctx)`; ctx carries the signed-in key's identity (role and
// tenant scope, from GET /v1/me) so pages offer only what the key may see — the API enforces
// it either way.

import { api, ApiError, session } from "./api.js";
import { h, route } from "./dom.js";
import * as overview from "./pages/overview.js";
import * as traces from "./pages/traces.js";
import * as findings from "./pages/findings.js";
import * as anomalies from "./pages/anomalies.js";
import * as budgets from "./pages/budgets.js";
import * as playground from "./pages/playground.js";
import * as rules from "./pages/rules.js";

const ROLES = ["viewer", "operator", "admin"];
const PAGES = [
  { id: "overview", title: "Overview", module: overview, role: "viewer" },
  { id: "traces", title: "Traces", module: traces, role: "operator" },
  { id: "findings", title: "Findings", module: findings, role: "viewer" },
  { id: "anomalies", title: "Anomalies", module: anomalies, role: "viewer" },
  { id: "budgets", title: "Budgets", module: budgets, role: "viewer" },
  { id: "playground", title: "Playground", module: playground, role: null },
  { id: "rules", title: "Rules", module: rules, role: null },
];

const view = document.getElementById("view");
let me = null;

const allowed = (page) => !page.role || (me && ROLES.indexOf(me.role) >= ROLES.indexOf(page.role));

function renderChrome(current) {
  const nav = document.getElementById("nav");
  nav.replaceChildren(...PAGES.filter(allowed).map((p) =>
    h("a", { href: "#/" + p.id, class: p.id === current ? "active" : "", "data-page": p.id }, p.title)));
  const who = document.getElementById("who");
  if (me) {
    const scope = me.tenants === null ? "all tenants" : "tenants: " + me.tenants.join(", ");
    who.replaceChildren(
      h("span", { id: "whoami" }, `${me.key_id} · ${me.role} · ${scope}`),
      session.key ? h("button", { onclick: signOut, id: "signout" }, "Sign out") : null);
  } else {
    who.replaceChildren();
  }
}

function signOut() {
  session.key = "";
  me = null;
  location.hash = "#/overview";
  start();
}

/** Marks the view for whoever waits on it (tests, screen readers): the route and its state. */
function mark(state) {
  view.dataset.route = location.hash || "#/overview";
  view.dataset.state = state;
}

function signIn(problem) {
  renderChrome(null);
  mark("signin");
  const input = h("input", { type: "password", id: "key", autocomplete: "off", placeholder: "tg_…", "aria-label": "API key" });
  const msg = h("div", { id: "signin-error" });
  if (problem) msg.append(h("p", { class: "error" }, problem));
  const form = h("form", {
    class: "panel signin", id: "signin",
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        me = await api("me", {}, input.value.trim());
        session.key = input.value.trim();
        show();
      } catch (err) {
        msg.replaceChildren(h("p", { class: "error" }, err instanceof ApiError && err.status === 401
          ? "That key is not valid (revoked, mistyped or for another collector)." : String(err.message)));
      }
    },
  },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "An API key of this collector (`tollgate-collector keys create`, or the bootstrap admin key). It is kept in this browser tab only and sent with each API call; what you see is what the key's role and tenants allow."),
  input, msg, h("p", {}, h("button", { type: "submit" }, "Sign in")),
  h("p", { class: "muted" }, "The ", h("a", { href: "#/playground" }, "playground"), " and the ", h("a", { href: "#/rules" }, "rules"), " work without a key: they run the engine in this browser."));
  view.replaceChildren(form);
  input.focus();
}

let generation = 0;

async function show() {
  const mine = ++generation;
  const current = () => mine === generation;
  const r = route();
  const page = PAGES.find((p) => p.id === r.page) || (r.page === "trace" ? { ...PAGES[1], id: "trace" } : PAGES[0]);
  if (page.role && !me) return signIn();
  if (!allowed(page)) {
    renderChrome(r.page);
    view.replaceChildren(h("p", { class: "error", id: "page-error" }, `This page needs a key with the ${page.role} role; yours is ${me.role}.`));
    mark("error");
    return;
  }
  renderChrome(page.id === "trace" ? "traces" : page.id);
  view.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  mark("loading");
  // the page renders off-screen and is shown only if no later navigation overtook it
  const target = h("div", { class: "page" });
  try {
    await page.module.render(target, { me, route: r });
    if (!current()) return;
    view.replaceChildren(target);
    mark("ready");
  } catch (err) {
    if (!current()) return;
    if (err instanceof ApiError && err.status === 401) {
      session.key = "";
      me = null;
      return signIn("The key was refused; sign in again.");
    }
    view.replaceChildren(h("p", { class: "error", id: "page-error" }, String(err.message || err)));
    mark("error");
  }
}

async function start() {
  try {
    if (session.key) {
      me = await api("me");
    } else {
      const auth = await api("auth", {}, "");
      me = auth.key_required ? null : await api("me", {}, "");
    }
  } catch (err) {
    me = null;
    // a refused key is forgotten; an unreachable collector keeps it for the next try
    if (err instanceof ApiError && err.status === 401) session.key = "";
  }
  show();
}

window.addEventListener("hashchange", show);
start();
