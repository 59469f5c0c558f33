// Rules: every rule of the configuration the playground holds (the defaults unless changed),
// listed by the engine itself — the same table docs/rules.md is generated from.

import { loadEngine, workspace } from "../engine.js";
import { badge, go, h, table } from "../dom.js";

export async function render(view, { route: r }) {
  const engine = await loadEngine();
  const q = (r.params.get("q") || "").toLowerCase();
  const id = r.params.get("id");
  let rules;
  let source = workspace.config.trim() ? "the playground's configuration" : "the default configuration";
  try {
    rules = engine.rules(workspace.config);
  } catch (err) {
    rules = engine.rules("");
    source = "the default configuration (the playground's does not compile)";
  }
  const shown = id ? rules.filter((x) => x.id === id)
    : rules.filter((x) => !q || x.id.toLowerCase().includes(q) || x.category.toLowerCase().includes(q) || x.description.toLowerCase().includes(q));
  const rows = shown.map((x) => h("tr", { id: "rule-" + x.id, dataset: { rule: x.id } },
    h("td", {}, h("code", {}, x.id)), h("td", {}, x.category), h("td", {}, badge(x.severity)), h("td", {}, badge(x.default_action)),
    h("td", { class: "wrap" }, x.description)));
  const search = h("input", { name: "q", value: id || q, placeholder: "id, category or words", "aria-label": "search rules" });
  view.replaceChildren(
    h("h1", {}, "Rules"),
    h("p", { class: "muted" }, `${rules.length} rules of ${source}, engine ${engine.version}. The default action applies unless policy.rules or policy.categories says otherwise (docs/rules.md, docs/configuration.md).`),
    h("form", { class: "controls", onsubmit: (e) => { e.preventDefault(); go("rules", { q: search.value.trim() }); } }, h("label", {}, "search", search), h("button", { type: "submit", class: "plain" }, "Search")),
    table([["id"], ["category"], ["severity"], ["default action"], ["description"]], rows, { id: "rules-table", empty: "no rule matches" }),
    id || q ? h("p", {}, h("a", { href: "#/rules" }, "all rules")) : null);
}
