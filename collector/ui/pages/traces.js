// Traces: the filterable, cursor-paged list (GET /v1/traces) and one trace's detail
// (GET /v1/traces/{id}) — findings as rule ids and byte spans; the API holds no prompt text.

import { api, ApiError } from "../api.js";
import { badge, go, h, int, ms, select, table, usd, when } from "../dom.js";

const OUTCOMES = ["", "allowed", "tagged", "redacted", "blocked", "rate_limited", "unanalysed", "error"];
const FILTERS = ["tenant", "model", "provider", "outcome", "category", "rule_id", "min_latency_ms", "has_findings"];
const PAGE = 25;
/** The list's address last shown, so a trace's page leads back to the same filters and page. */
let lastList = "#/traces";

export async function render(view, ctx) {
  if (ctx.route.page === "trace") return detail(view, ctx.route.rest[0]);
  const p = ctx.route.params;
  const filters = Object.fromEntries(FILTERS.map((k) => [k, p.get(k) || ""]));
  // cursors of the pages before this one, so "previous" can go back
  const trail = (p.get("trail") || "").split(",").filter(Boolean);
  const cursor = p.get("cursor") || "";
  lastList = location.hash;

  const input = (name, placeholder) => h("label", {}, name.replace(/_/g, " "), h("input", { name, value: filters[name], placeholder }));
  const form = h("form", {
    class: "controls", id: "trace-filters",
    onsubmit: (e) => {
      e.preventDefault();
      go("traces", Object.fromEntries(FILTERS.map((k) => [k, (e.target.elements[k]?.value || "").trim()])));
    },
  }, input("tenant", "any"), input("model", "any"), input("provider", "any"), select("outcome", filters.outcome, OUTCOMES.map((o) => [o, o || "any"])),
  input("category", "e.g. pii"), input("rule_id", "any"), input("min_latency_ms", "0"),
  select("has_findings", filters.has_findings, [["", "any"], ["true", "with findings"], ["false", "without"]]),
  h("button", { type: "submit" }, "Filter"));

  let page;
  try {
    page = await api("traces", { ...filters, limit: PAGE, cursor });
  } catch (err) {
    // a filter the API refuses (400 names it): keep the form to fix it
    if (!(err instanceof ApiError) || err.status !== 400) throw err;
    view.replaceChildren(h("h1", {}, "Traces"), form, h("p", { class: "error", id: "page-error" }, err.message));
    return;
  }

  const rows = page.traces.map((t) => h("tr", { class: "link", dataset: { requestId: t.request_id }, onclick: () => go("trace/" + encodeURIComponent(t.request_id)) },
    h("td", {}, when(t.start)), h("td", {}, t.tenant), h("td", {}, t.model || "–"), h("td", {}, badge(t.outcome)),
    h("td", {}, [...new Set(t.findings.map((f) => f.category))].join(", ") || "–"),
    h("td", { class: "num" }, ms(t.latency_ms)), h("td", { class: "num" }, ms(t.time_to_first_token_ms)),
    h("td", { class: "num" }, t.usage ? `${int(t.usage.input_tokens)} / ${int(t.usage.output_tokens)}${t.usage.estimated ? " ≈" : ""}` : "–"),
    h("td", { class: "num" }, usd(t.cost_micro_usd))));
  const list = table([["time"], ["tenant"], ["model"], ["outcome"], ["findings"], ["latency", "num"], ["TTFT", "num"], ["tokens in / out", "num"], ["cost", "num"]], rows, { id: "traces-table", empty: "no trace matches" });

  const pager = h("div", { class: "pager" },
    h("button", { class: "plain", id: "prev", disabled: trail.length === 0 && !cursor, onclick: () => {
      const back = trail.slice(0, -1);
      go("traces", { ...filters, cursor: trail[trail.length - 1] === "first" ? "" : trail[trail.length - 1] || "", trail: back.join(",") });
    } }, "← Newer"),
    h("button", { class: "plain", id: "next", disabled: !page.next_cursor, onclick: () => go("traces", { ...filters, cursor: page.next_cursor, trail: [...trail, cursor || "first"].join(",") }) }, "Older →"),
    h("span", { class: "muted" }, `${page.traces.length} on this page`));
  view.replaceChildren(h("h1", {}, "Traces"), form, list, pager);
}

async function detail(view, id) {
  const t = await api("traces/" + encodeURIComponent(id));
  const kv = (k, v) => [h("dt", {}, k), h("dd", { dataset: { field: k } }, v ?? "–")];
  const u = t.usage;
  const facts = h("dl", { class: "kv" },
    kv("request id", h("code", {}, t.request_id)), kv("trace id", t.trace_id), kv("tenant", `${t.tenant} (${t.tenant_source || "default"})`),
    kv("provider / operation", `${t.provider} / ${t.operation}`), kv("model", t.model), kv("route", t.route),
    kv("outcome", badge(t.outcome)), kv("blocked by", t.blocked_by), kv("status", String(t.status_code)),
    kv("start", when(t.start)), kv("latency", ms(t.latency_ms)), kv("time to first token", ms(t.time_to_first_token_ms)),
    kv("stream", t.stream ? (t.stream_incomplete ? "yes (incomplete)" : "yes") : "no"),
    kv("tokens", u ? `${int(u.input_tokens)} in (${int(u.cached_input_tokens)} cached) / ${int(u.output_tokens)} out${u.estimated ? " — estimated" : ""}` : "–"),
    kv("cost", usd(t.cost_micro_usd)), kv("risk score", t.risk_score?.toFixed(3)),
    kv("bytes", `${int(t.request_bytes)} request / ${int(t.response_bytes)} response`),
    kv("unanalysed", [t.request_unanalysed, t.response_unanalysed].filter(Boolean).join(", ") || null),
    kv("user agent", t.user_agent), kv("Envoy", [t.envoy_node, t.envoy_cluster].filter(Boolean).join(" / ") || null));
  const rows = t.findings.map((f) => h("tr", {},
    h("td", {}, h("a", { href: "#/rules?id=" + encodeURIComponent(f.rule_id) }, f.rule_id)), h("td", {}, f.category), h("td", {}, badge(f.severity)),
    h("td", {}, badge(f.action)), h("td", {}, f.direction), h("td", { class: "num" }, String(f.message_index)), h("td", { class: "num" }, `${f.start}..${f.end}`)));
  view.replaceChildren(
    h("p", {}, h("a", { href: lastList }, "← Traces")),
    h("h1", {}, "Trace"),
    h("div", { class: "panel" }, facts),
    h("h2", {}, `Findings (${t.findings_total})`),
    h("p", { class: "muted" }, "Rule ids and byte spans in the message text; the collector never stores the text itself."),
    table([["rule"], ["category"], ["severity"], ["action"], ["direction"], ["message", "num"], ["bytes", "num"]], rows, { id: "findings-table", empty: "no findings" }));
}
