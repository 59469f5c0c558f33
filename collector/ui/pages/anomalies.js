// Anomalies, open and recent (GET /v1/anomalies): each with the baseline it was judged against
// (mean ± standard deviation), the latest and peak values, its z-score and its alert deliveries.

import { api } from "../api.js";
import { svg } from "../chart.js";
import { badge, compact, go, h, int, select, table, when } from "../dom.js";

/** A strip: the baseline band (mean ± 2 sd), its mean, and the observed value as a dot. */
function baselineStrip(a) {
  const lo = Math.max(0, a.baseline_mean - 2 * a.baseline_std_dev);
  const hi = a.baseline_mean + 2 * a.baseline_std_dev;
  const top = Math.max(hi, a.observed, a.peak, 1e-9) * 1.1;
  const x = (v) => 4 + (v / top) * 152;
  const s = svg("svg", { viewBox: "0 0 160 16", width: 160, height: 16, role: "img", "aria-label": `baseline ${a.baseline_mean} ± ${a.baseline_std_dev}, observed ${a.observed}` });
  s.append(svg("rect", { x: x(lo), y: 4, width: Math.max(1, x(hi) - x(lo)), height: 8, fill: "#dbe4f7", rx: 2 }),
    svg("line", { x1: x(a.baseline_mean), x2: x(a.baseline_mean), y1: 2, y2: 14, stroke: "#2456c7", "stroke-width": 2 }),
    svg("circle", { cx: x(a.observed), cy: 8, r: 4, fill: a.kind === "drop" ? "#b54708" : "#b42318" }));
  return s;
}

const num = (v) => (Math.abs(v) >= 1000 ? compact(v) : (Math.round(v * 100) / 100).toString());

export async function render(view, { route: r }) {
  const state = r.params.get("state") || "";
  const tenant = r.params.get("tenant") || "";
  const [open, recent] = await Promise.all([
    api("anomalies", { state: "open", tenant, limit: 100 }),
    api("anomalies", { state: state || undefined, tenant, limit: 50 }),
  ]);
  const rows = (list) => list.map((a) => h("tr", { dataset: { anomaly: a.id } },
    h("td", {}, badge(a.state)), h("td", {}, a.tenant), h("td", {}, a.model || "all models"), h("td", {}, a.metric), h("td", {}, a.kind),
    h("td", {}, when(a.started_at)), h("td", {}, a.ended_at ? when(a.ended_at) : "–"),
    h("td", { class: "num", "data-col": "observed" }, num(a.observed)), h("td", { class: "num" }, num(a.peak)),
    h("td", { class: "num", "data-col": "baseline" }, `${num(a.baseline_mean)} ± ${num(a.baseline_std_dev)}`),
    h("td", {}, baselineStrip(a)),
    h("td", { class: "num" }, a.z_score.toFixed(1)), h("td", { class: "num" }, int(a.buckets)),
    h("td", {}, a.deliveries.map((d) => `${d.sink}: ${d.event} ${d.status}`).join("; ") || "–")));
  const head = [["state"], ["tenant"], ["model"], ["metric"], ["kind"], ["started"], ["ended"], ["observed", "num"], ["peak", "num"], ["baseline (mean ± sd)", "num"], ["baseline band · observed"], ["z", "num"], ["buckets", "num"], ["alerts"]];
  view.replaceChildren(
    h("h1", {}, "Anomalies"),
    h("p", { class: "muted" }, "Each tenant (and tenant × model) is judged against its own exponentially weighted baseline; see docs/anomalies.md."),
    h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("anomalies", { state, tenant: e.target.tenant.value.trim() }); } },
      select("recent", state, [["", "open and closed"], ["open"], ["closed"]], (e) => go("anomalies", { state: e.target.value, tenant })),
      h("label", {}, "tenant", h("input", { name: "tenant", value: tenant, placeholder: "all" })),
      h("button", { type: "submit", class: "plain" }, "Apply")),
    h("h2", {}, `Open (${open.anomalies.length})`),
    table(head, rows(open.anomalies), { id: "anomalies-open", empty: "nothing open" }),
    h("h2", {}, "Recent"),
    table(head, rows(recent.anomalies), { id: "anomalies-recent", empty: "no anomalies" }));
}
