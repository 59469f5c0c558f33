// Charts as plain SVG: time series (one line per group) and horizontal bars. Every drawn value
// carries its number (`data-value`, a <title> tooltip) and every series its total
// (`data-total`), so what a chart shows can be read back and checked.

const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2456c7", "#e4572e", "#17a398", "#f3a712", "#8e44ad", "#5d6678", "#c2185b", "#2e7d32"];

/** An SVG element with attributes (and text). */
export function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function legend(names) {
  const el = document.createElement("div");
  el.className = "legend";
  names.forEach((n, i) => {
    const s = document.createElement("span");
    s.style.setProperty("--c", PALETTE[i % PALETTE.length]);
    s.textContent = n;
    el.append(s);
  });
  return el;
}

function frame(title, id) {
  const box = document.createElement("section");
  box.className = "chart";
  if (id) box.dataset.chart = id;
  const h = document.createElement("h3");
  h.textContent = title;
  box.append(h);
  return box;
}

/**
 * A time-series chart.
 * series: [{name, points: [{t: ms since epoch, v: number}]}]; format(v) labels values;
 * timeLabel(ms) labels the x axis. With `buckets` (every bucket start in the range), a bucket a
 * series has no row for counts as 0 (for sums; leave it out for percentiles). `domain` ([t0, t1])
 * fixes the x axis to the chosen range; with `gap` (ms), points further apart than a gap are not
 * joined (a bucket without data is not drawn as if it had some).
 */
export function timeChart({ title, id, series, format = String, timeLabel, buckets = null, domain = null, gap = null }) {
  const box = frame(title, id);
  const W = 640, H = 200, L = 56, R = 10, T = 10, B = 26;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  if (buckets) {
    const inRange = new Set(buckets);
    series = series.map((s) => {
      const have = new Map(s.points.map((p) => [p.t, p.v]));
      return { ...s, points: buckets.map((t) => ({ t, v: have.get(t) ?? 0 })).concat(s.points.filter((p) => !inRange.has(p.t))) };
    });
  }
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    root.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, "no data in this range"));
    box.append(root);
    return box;
  }
  const ts = all.map((p) => p.t);
  let [t0, t1] = domain || (buckets ? [buckets[0], buckets[buckets.length - 1]] : [Math.min(...ts), Math.max(...ts)]);
  if (t0 === t1) { t0 -= 1; t1 += 1; }
  const top = niceMax(Math.max(...all.map((p) => p.v)));
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  root.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }));
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    root.append(svg("line", { x1: L, y1: y(v), x2: W - R, y2: y(v), class: "axis", "stroke-dasharray": "2 3" }));
    root.append(svg("text", { x: L - 6, y: y(v) + 3, "text-anchor": "end", class: "tick" }, format(v)));
  }
  const ticks = domain || buckets ? 6 : Math.min(6, new Set(ts).size);
  for (let i = 0; i < ticks; i++) {
    const t = ticks === 1 ? t0 : t0 + ((t1 - t0) * i) / (ticks - 1);
    const anchor = ticks === 1 ? "middle" : i === 0 ? "start" : i === ticks - 1 ? "end" : "middle";
    root.append(svg("text", { x: x(t), y: H - 8, "text-anchor": anchor, class: "tick" }, timeLabel(t)));
  }
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a.t - b.t);
    const total = pts.reduce((a, p) => a + p.v, 0);
    const g = svg("g", { "data-series": s.name, "data-total": total });
    // runs of points close enough to be joined
    const runs = [];
    for (const p of pts) {
      const run = runs[runs.length - 1];
      if (run && !(gap && p.t - run[run.length - 1].t > gap * 1.5)) run.push(p);
      else runs.push([p]);
    }
    for (const run of runs.filter((r) => r.length > 1)) {
      g.append(svg("polyline", {
        points: run.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" "),
        fill: "none", stroke: color, "stroke-width": 2,
      }));
    }
    for (const p of pts) {
      if (buckets && p.v === 0 && pts.length > 1) continue; // empty buckets: the line says it
      const c = svg("circle", { cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3, fill: color, "data-value": p.v });
      c.append(svg("title", {}, `${s.name} · ${timeLabel(p.t, true)}: ${format(p.v)}`));
      g.append(c);
    }
    root.append(g);
  });
  box.append(root, legend(series.map((s) => s.name)));
  return box;
}

/** Horizontal bars: items [{name, v}], largest first. */
export function barChart({ title, id, items, format = String }) {
  const box = frame(title, id);
  const rows = [...items].sort((a, b) => b.v - a.v).slice(0, 12);
  const W = 640, rowH = 22, L = 220, R = 70;
  const H = Math.max(40, rows.length * rowH + 8);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  if (rows.length === 0) {
    root.append(svg("text", { x: W / 2, y: 24, "text-anchor": "middle", class: "empty" }, "no data in this range"));
  }
  const top = Math.max(...rows.map((r) => r.v), 1);
  rows.forEach((r, i) => {
    const yy = 4 + i * rowH;
    const g = svg("g", { "data-series": r.name, "data-total": r.v });
    g.append(svg("text", { x: L - 8, y: yy + 14, "text-anchor": "end", class: "tick" }, r.name));
    const rect = svg("rect", { x: L, y: yy + 3, width: Math.max(1, ((W - L - R) * r.v) / top), height: rowH - 8, rx: 3, fill: PALETTE[i % PALETTE.length], "data-value": r.v });
    rect.append(svg("title", {}, `${r.name}: ${format(r.v)}`));
    g.append(rect, svg("text", { x: L + Math.max(1, ((W - L - R) * r.v) / top) + 6, y: yy + 14, class: "tick" }, format(r.v)));
    root.append(g);
  });
  box.append(root);
  return box;
}
