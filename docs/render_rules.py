#!/usr/bin/env python3
"""Renders docs/rules.md from `tollgate rules --format json` (run `make rules-doc`)."""
import collections
import json
import subprocess
import sys

HEAD = """# Rules

Every built-in rule, as `tollgate rules` prints it (regenerate this page with `make rules-doc`
after changing a rule table; a test checks that every rule id appears here).

The **default action** applies when neither `policy.rules` nor `policy.categories` names the rule (see
[configuration.md](configuration.md#policy)). Injection rules block at high/critical severity, tag at medium and log
at low; a request is also blocked when its risk score (`1 - Π(1 - weight)` over the distinct injection
rules matched) reaches `policy.block_threshold`.

Keyword rules (categories `injection.*`) match the normalised text (see [detection.md](detection.md#normalisation));
rules written in other scripts (Cyrillic, Han, kana) are folded the same way. `injection.model` is the learned
scorer ([ADR 0014](../adr/0014-learned-injection-scorer.md)). PII and secret rules match the original text and are
confirmed by validators.
"""


def main() -> int:
    exe = sys.argv[1] if len(sys.argv) > 1 else "target/release/tollgate"
    rules = json.loads(subprocess.run([exe, "rules", "--format", "json"], check=True, capture_output=True).stdout)
    by_cat = collections.OrderedDict()
    for r in rules:
        by_cat.setdefault(r["category"], []).append(r)
    out = [HEAD, "| category | rules |", "|---|---:|"]
    for cat, rs in by_cat.items():
        out.append(f"| `{cat}` | {len(rs)} |")
    out.append(f"| **all** | {len(rules)} |")
    for cat, rs in by_cat.items():
        out += ["", f"## `{cat}`", "", "| id | severity | default action | description |", "|---|---|---|---|"]
        for r in rs:
            desc = r["description"].replace("|", "\\|")
            out.append(f"| `{r['id']}` | {r['severity']} | {r['default_action']} | {desc} |")
    with open("docs/rules.md", "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
