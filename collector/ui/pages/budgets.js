// Budgets: each tenant's shared limits in their current windows (GET /v1/budgets, from the
// collector's Redis counters) — used, limit, remaining and when the window resets.

import { api } from "../api.js";
import { h, int, table, usd, when } from "../dom.js";

export async function render(view) {
  const b = await api("budgets");
  if (!b.enabled) {
    view.replaceChildren(h("h1", {}, "Budgets"),
      h("p", { class: "note", id: "budgets-off" }, "Shared limits are off on this collector (no limits.redis). Limits counted by each Envoy alone show in its x-ratelimit headers and metrics; see docs/limits.md."));
    return;
  }
  const money = (id) => id.startsWith("cost_micro_usd");
  const used = (x) => (x.limit_value > 0 ? x.used / x.limit_value : 0);
  const rows = [...b.budgets].sort((x, y) => used(y) - used(x)).map((x) => {
    const share = Math.min(1, used(x));
    const bar = h("div", { class: "bar" + (share >= 0.9 ? " hot" : "") }, h("div"));
    bar.firstChild.style.width = (share * 100).toFixed(1) + "%";
    const f = money(x.limit) ? usd : int;
    return h("tr", { dataset: { tenant: x.tenant, limit: x.limit } },
      h("td", {}, x.tenant), h("td", {}, h("code", {}, x.limit)),
      h("td", { class: "num", "data-col": "used" }, f(x.used)), h("td", { class: "num", "data-col": "limit" }, f(x.limit_value)),
      h("td", { class: "num", "data-col": "remaining" }, f(x.remaining)), h("td", {}, bar, h("span", { class: "muted" }, ` ${(share * 100).toFixed(0)}%`)),
      h("td", {}, when(x.resets_at)));
  });
  view.replaceChildren(h("h1", {}, "Budgets"),
    h("p", { class: "muted" }, "Shared limits in their current window, closest to the limit first."),
    table([["tenant"], ["limit"], ["used", "num"], ["limit", "num"], ["remaining", "num"], ["share"], ["resets"]],
      rows, { id: "budgets-table", empty: "no counters in their current window" }));
}
