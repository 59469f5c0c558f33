// Small DOM helpers: elements built from data with text nodes only (nothing the API or a user
// typed is ever parsed as HTML), number and time formats, the query string of the hash route.

/** h("td", {class: "num"}, "12") — strings become text nodes; arrays are flattened. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const int = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
export const usd = (micro) => (micro === null || micro === undefined ? "–" : "$" + (micro / 1e6).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: micro !== 0 && Math.abs(micro) < 10000 ? 6 : 2 }));
export const ms = (v) => (v === null || v === undefined ? "–" : v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(v < 10 ? 1 : 0) + " ms");
export const pct = (part, whole) => (whole > 0 ? ((100 * part) / whole).toFixed(1) + "%" : "–");
export const compact = (n) => (Math.abs(n) >= 1e6 ? (n / 1e6).toFixed(1) + "M" : Math.abs(n) >= 1e4 ? (n / 1e3).toFixed(0) + "k" : Math.abs(n) >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(Math.round(n * 100) / 100));

export function when(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
}

/** The hash route: "#/traces?outcome=blocked" → {page: "traces", rest: [], params}. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const cut = hash.indexOf("?");
  const [path, query] = cut < 0 ? [hash, ""] : [hash.slice(0, cut), hash.slice(cut + 1)];
  const decode = (part) => { try { return decodeURIComponent(part); } catch { return part; } };
  const [page, ...rest] = path.split("/").map(decode);
  return { page: page || "overview", rest, params: new URLSearchParams(query) };
}

/** Navigates to a page; the same address again reloads it (Apply with unchanged filters). */
export function go(page, params) {
  const q = new URLSearchParams(Object.entries(params || {}).filter(([, v]) => v !== "" && v !== undefined && v !== null));
  const s = q.toString();
  const hash = "#/" + page + (s ? "?" + s : "");
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

/** Buckets the API groups by. */
export const BUCKETS = [["minute"], ["hour"], ["day"], ["week"]];

export function badge(text) {
  return h("span", { class: "badge " + String(text) }, text);
}

export function table(headers, rows, opts = {}) {
  return h("div", { class: "table-wrap" },
    h("table", { id: opts.id },
      h("thead", {}, h("tr", {}, headers.map(([label, cls]) => h("th", { class: cls }, label)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, opts.empty || "nothing in this range")))));
}

/** Ranges offered by the pages, with the bucket that suits each. */
export const RANGES = {
  "1h": { ms: 3600e3, bucket: "minute" },
  "24h": { ms: 86400e3, bucket: "hour" },
  "7d": { ms: 7 * 86400e3, bucket: "day" },
  "30d": { ms: 30 * 86400e3, bucket: "day" },
};

export function since(range) {
  return new Date(Date.now() - (RANGES[range] || RANGES["24h"]).ms).toISOString().replace(/\.\d+Z$/, "Z");
}

const STEP = { minute: 60e3, hour: 3600e3, day: 86400e3, week: 7 * 86400e3 };

/** A bucket's length in ms (null for months). */
export const bucketStep = (bucket) => STEP[bucket] ?? null;

/** Every bucket start (UTC, ms) from `from` to now, for minute, hour and day buckets; null for
 *  the others (weeks and months are drawn from the rows alone). */
export function bucketStarts(from, bucket) {
  const step = bucket === "week" ? null : STEP[bucket];
  const first = Math.floor(Date.parse(from) / step) * step;
  if (!step || (Date.now() - first) / step > 2000) return null;
  const out = [];
  for (let t = first; t <= Date.now(); t += step) out.push(t);
  return out;
}

export function timeLabel(bucket) {
  return (t, full) => {
    const iso = new Date(t).toISOString();
    if (full) return iso.replace("T", " ").slice(0, 16) + "Z";
    return bucket === "day" || bucket === "week" || bucket === "month" ? iso.slice(5, 10) : iso.slice(11, 16);
  };
}

export function select(name, value, options, onchange) {
  return h("label", {}, name,
    h("select", { name, onchange },
      options.map(([v, label]) => {
        const o = h("option", { value: v }, label ?? v);
        if (v === value) o.selected = true;
        return o;
      })));
}
