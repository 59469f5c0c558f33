// Overview: requests, tokens, cost, blocked and redacted shares, latency and time to first
// token over a range, per tenant or model — GET /v1/usage (totals, series, the tenant × model
// table) and GET /v1/findings?action=redact (requests with a redaction).

import { api } from "../api.js";
import { barChart, timeChart } from "../chart.js";
import { BUCKETS, bucketStarts, bucketStep, compact, go, h, int, ms, pct, RANGES, select, since, table, timeLabel, usd } from "../dom.js";

const GROUPS = [["tenant", "tenant"], ["model", "model"], ["provider", "provider"], ["route", "route"]];

const reqs = (n) => `${int(n)} ${n === 1 ? "request" : "requests"}`;

function tile(id, label, value, sub) {
  return h("div", { class: "tile", "data-tile": id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
}

export async function render(view, { route: r }) {
  const range = r.params.get("range") || "24h";
  const by = r.params.get("by") || "tenant";
  const bucket = r.params.get("bucket") || (RANGES[range] || RANGES["24h"]).bucket;
  const tenant = r.params.get("tenant") || "";
  const from = since(range);
  const params = { range, by, bucket, tenant };
  const set = (k) => (e) => go("overview", { ...params, [k]: e.target.value, ...(k === "range" ? { bucket: "" } : {}) });

  const [totals, series, grid, redactions] = await Promise.all([
    api("usage", { from, tenant }),
    api("usage", { from, tenant, bucket, group_by: by }),
    api("usage", { from, tenant, group_by: "tenant,model" }),
    api("findings", { from, tenant, action: "redact", by: "tenant" }),
  ]);
  const t = totals.rows[0] || { requests: 0, input_tokens: 0, output_tokens: 0, cached_input_tokens: 0, reasoning_tokens: 0, cost_micro_usd: 0, blocked: 0, errors: 0, estimated_requests: 0, unpriced_requests: 0, latency_ms: {}, time_to_first_token_ms: {} };
  const redacted = redactions.rows.reduce((a, x) => a + x.traces, 0);

  const controls = h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("overview", { ...params, tenant: e.target.tenant.value.trim() }); } },
    select("range", range, Object.keys(RANGES).map((k) => [k, "last " + k]), set("range")),
    select("bucket", bucket, BUCKETS, set("bucket")),
    select("by", by, GROUPS, set("by")),
    h("label", {}, "tenant", h("input", { name: "tenant", value: tenant, placeholder: "all" })),
    h("button", { type: "submit", class: "plain" }, "Apply"));

  const tiles = h("div", { class: "tiles" },
    tile("requests", "Requests", int(t.requests), t.errors ? `${int(t.errors)} upstream errors` : null),
    tile("input_tokens", "Input tokens", int(t.input_tokens), t.cached_input_tokens ? `${int(t.cached_input_tokens)} cached` : null),
    tile("output_tokens", "Output tokens", int(t.output_tokens), t.reasoning_tokens ? `${int(t.reasoning_tokens)} reasoning` : null),
    tile("cost", "Cost", usd(t.cost_micro_usd), t.unpriced_requests ? `${int(t.unpriced_requests)} without a price` : null),
    tile("blocked", "Blocked", pct(t.blocked, t.requests), reqs(t.blocked)),
    tile("redacted", "Redacted", pct(redacted, t.requests), reqs(redacted)),
    tile("latency", "Latency p50 / p95", `${ms(t.latency_ms.p50)} / ${ms(t.latency_ms.p95)}`),
    tile("ttft", "Time to first token p50 / p95", `${ms(t.time_to_first_token_ms.p50)} / ${ms(t.time_to_first_token_ms.p95)}`),
    tile("estimated", "Estimated usage", int(t.estimated_requests), "requests without reported usage"));

  // a per-tenant sum over the tenant × model rows
  const perTenant = (value) => {
    const sums = new Map();
    for (const x of grid.rows) sums.set(x.group.tenant, (sums.get(x.group.tenant) || 0) + value(x));
    return [...sums].map(([name, v]) => ({ name, v })).filter((i) => i.v > 0);
  };

  // one series per group value
  const groups = new Map();
  for (const row of series.rows) {
    const name = row.group[by] || "(none)";
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(row);
  }
  const starts = bucketStarts(from, bucket);
  const line = (id, title, value, format, sums = true) => timeChart({
    id, title, format, timeLabel: timeLabel(bucket), buckets: sums ? starts : null,
    domain: starts ? [starts[0], starts[starts.length - 1]] : null, gap: bucketStep(bucket),
    series: [...groups].map(([name, rows]) => ({ name, points: rows.filter((x) => value(x) !== null && value(x) !== undefined).map((x) => ({ t: Date.parse(x.bucket), v: value(x) })) })),
  });
  const charts = h("div", { class: "charts" },
    line("requests", `Requests per ${bucket}, by ${by}`, (x) => x.requests, compact),
    line("tokens", `Tokens (input + output) per ${bucket}, by ${by}`, (x) => x.input_tokens + x.output_tokens, compact),
    line("cost", `Cost per ${bucket}, by ${by}`, (x) => x.cost_micro_usd, usd),
    line("latency_p95", `Latency p95, by ${by}`, (x) => x.latency_ms.p95, ms, false),
    line("ttft_p95", `Time to first token p95, by ${by}`, (x) => x.time_to_first_token_ms.p95, ms, false),
    barChart({ id: "blocked", title: "Blocked requests, by tenant", items: perTenant((x) => x.blocked), format: int }),
    barChart({ id: "redacted", title: "Requests with a redaction, by tenant", items: redactions.rows.map((x) => ({ name: x.group.tenant, v: x.traces })), format: int }));

  const rows = grid.rows
    .sort((a, b) => b.requests - a.requests)
    .map((x) => h("tr", { dataset: { tenant: x.group.tenant, model: x.group.model } },
      h("td", {}, x.group.tenant), h("td", {}, x.group.model),
      h("td", { class: "num", "data-col": "requests" }, int(x.requests)),
      h("td", { class: "num", "data-col": "input_tokens" }, int(x.input_tokens)),
      h("td", { class: "num", "data-col": "output_tokens" }, int(x.output_tokens)),
      h("td", { class: "num", "data-col": "cost" }, usd(x.cost_micro_usd)),
      h("td", { class: "num", "data-col": "blocked" }, int(x.blocked)),
      h("td", { class: "num", "data-col": "blocked_share" }, pct(x.blocked, x.requests)),
      h("td", { class: "num", "data-col": "errors" }, int(x.errors)),
      h("td", { class: "num" }, ms(x.latency_ms.p50)), h("td", { class: "num" }, ms(x.latency_ms.p95)),
      h("td", { class: "num" }, ms(x.time_to_first_token_ms.p50)), h("td", { class: "num" }, ms(x.time_to_first_token_ms.p95))));
  const grid_table = table([["tenant"], ["model"], ["requests", "num"], ["input tokens", "num"], ["output tokens", "num"], ["cost", "num"], ["blocked", "num"], ["blocked share", "num"], ["errors", "num"], ["latency p50", "num"], ["latency p95", "num"], ["TTFT p50", "num"], ["TTFT p95", "num"]], rows, { id: "usage-table" });

  view.replaceChildren(h("h1", {}, "Overview"), controls, tiles, charts, h("h2", {}, "By tenant and model"), grid_table);
}
