// Findings by category or rule over time (GET /v1/findings, bucketed and in total), each row
// linked to the traces behind it.

import { api } from "../api.js";
import { barChart, timeChart } from "../chart.js";
import { BUCKETS, bucketStarts, go, h, int, RANGES, select, since, table, timeLabel } from "../dom.js";

export async function render(view, { me, route: r }) {
  const range = r.params.get("range") || "24h";
  const by = r.params.get("by") || "category";
  const bucket = r.params.get("bucket") || (RANGES[range] || RANGES["24h"]).bucket;
  const direction = r.params.get("direction") || "";
  const action = r.params.get("action") || "";
  const params = { range, by, bucket, direction, action };
  const set = (k) => (e) => go("findings", { ...params, [k]: e.target.value, ...(k === "range" ? { bucket: "" } : {}) });
  const from = since(range);
  const [series, totals] = await Promise.all([
    api("findings", { from, by, bucket, direction, action }),
    api("findings", { from, by, direction, action }),
  ]);
  const groups = new Map();
  for (const row of series.rows) {
    const name = row.group[by];
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push({ t: Date.parse(row.bucket), v: row.findings });
  }
  const canTrace = me && me.role !== "viewer";
  const rows = totals.rows.sort((a, b) => b.findings - a.findings).map((row) => {
    const name = row.group[by];
    const filter = by === "rule" ? { rule_id: name, has_findings: "true" } : { category: name, has_findings: "true" };
    return h("tr", { dataset: { group: name } },
      h("td", {}, by === "rule" ? h("a", { href: "#/rules?id=" + encodeURIComponent(name) }, name) : name),
      h("td", { class: "num", "data-col": "findings" }, int(row.findings)),
      h("td", { class: "num", "data-col": "traces" }, int(row.traces)),
      h("td", {}, canTrace ? h("a", { href: "#", onclick: (e) => { e.preventDefault(); go("traces", filter); } }, "traces →") : ""));
  });
  view.replaceChildren(
    h("h1", {}, "Findings"),
    h("div", { class: "controls" },
      select("range", range, Object.keys(RANGES).map((k) => [k, "last " + k]), set("range")),
      select("bucket", bucket, BUCKETS, set("bucket")),
      select("by", by, [["category"], ["rule"]], set("by")),
      select("direction", direction, [["", "both"], ["request"], ["response"]], set("direction")),
      select("action", action, [["", "any"], ["log"], ["tag"], ["redact"], ["block"]], set("action"))),
    h("div", { class: "charts" },
      timeChart({ id: "findings-over-time", title: `Findings per ${bucket}, by ${by}`, timeLabel: timeLabel(bucket), buckets: bucketStarts(from, bucket), format: int, series: [...groups].map(([name, points]) => ({ name, points })) }),
      barChart({ id: "findings-total", title: `Findings in the range, by ${by}`, format: int, items: totals.rows.map((x) => ({ name: x.group[by], v: x.findings })) })),
    h("h2", {}, "In the range"),
    table([[by], ["findings", "num"], ["traces", "num"], [""]], rows, { id: "findings-totals", empty: "no findings in this range" }));
}
