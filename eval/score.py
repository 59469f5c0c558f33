#!/usr/bin/env python3
"""Score the Tollgate CLI against the eval corpora (stdlib only).

Usage (from the repo root):
  python3 eval/score.py [--tollgate target/release/tollgate] [--config FILE]

Runs `tollgate scan --jsonl [--config FILE] < input > output` over:
  eval/corpus/{injection,benign,authored_tune,authored_test,hard_negatives}.jsonl
                                      (attacks and ordinary texts; one timed run: throughput)
  eval/corpus/pii.jsonl
  ../shared/data/secrets-fixtures.jsonl and eval/corpus/secrets_generated.jsonl

Every row carries a `split`: `tune` (the rules and the learned scorer were developed looking at
it) or `test` (held out: measured, never read while tuning). Figures are reported per split;
the gates (`--check`) hold on the test split only. Markdown tables go to stdout (paste into
docs/detection.md); diagnostics with texts (false positives, misses, per-rule hits) go to
stderr for the tune split only.
Exit status: 0 ok, 2 CLI missing / failed / malformed output.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parent
REPO = EVAL_DIR.parent
PII_TYPES = ["email", "phone", "card", "ssn", "iban", "ipv4", "ipv6"]


class CliError(Exception):
    pass


QUIET = False


def log(*a):
    if not QUIET:
        print(*a, file=sys.stderr)


def load_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"error: {path}:{n}: invalid JSON: {e}")
    return rows


def run_scan(cli: list[str], rows: list[dict], timeout: float) -> tuple[list[dict], float]:
    """Feed rows (text only) to `tollgate scan --jsonl`; return outputs in input order and seconds."""
    with tempfile.TemporaryFile("w+b") as fin, tempfile.TemporaryFile("w+b") as fout, tempfile.TemporaryFile("w+b") as ferr:
        for r in rows:
            fin.write((json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n").encode("utf-8"))
        fin.flush()
        fin.seek(0)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cli, stdin=fin, stdout=fout, stderr=ferr, timeout=timeout)
        except FileNotFoundError as e:
            raise CliError(f"cannot execute {cli[0]}: {e}")
        except subprocess.TimeoutExpired:
            raise CliError(f"{' '.join(cli)} timed out after {timeout}s on {len(rows)} items")
        dt = time.perf_counter() - t0
        ferr.seek(0)
        err = ferr.read().decode("utf-8", "replace")
        if proc.returncode != 0:
            raise CliError(f"{' '.join(cli)} exited with {proc.returncode}; stderr tail:\n{err[-2000:]}")
        fout.seek(0)
        lines = [l for l in fout.read().decode("utf-8", "replace").splitlines() if l.strip()]
    if len(lines) != len(rows):
        raise CliError(f"expected {len(rows)} output lines, got {len(lines)}; stderr tail:\n{err[-2000:]}")
    out = []
    for i, l in enumerate(lines):
        try:
            o = json.loads(l)
        except json.JSONDecodeError as e:
            raise CliError(f"output line {i + 1} is not JSON ({e}): {l[:200]}")
        if not isinstance(o, dict):
            raise CliError(f"output line {i + 1} is not an object: {l[:200]}")
        if "index" in o and o["index"] != i:
            raise CliError(f"output line {i + 1} has index {o['index']}, expected {i} (out of order?)")
        o.setdefault("findings", [])
        out.append(o)
    return out, dt


def findings(o: dict, prefix: str, blocking: bool = False) -> list[dict]:
    fs = [f for f in o.get("findings") or [] if str(f.get("category", "")).startswith(prefix)]
    if blocking:
        fs = [f for f in fs if f.get("action") == "block"]
    return fs


def is_blocked(o: dict, prefix: str) -> bool:
    """Blocking = the overall action is block and it is caused by a finding of that family.

    If findings carry their own action, require a blocking finding of the family;
    otherwise fall back to the overall action plus any finding of the family.
    """
    fs = findings(o, prefix)
    if not fs:
        return False
    if any("action" in f for f in fs):
        return any(f.get("action") == "block" for f in fs)
    return o.get("action") == "block"


def pct(n: int, d: int) -> str:
    return "n/a" if d == 0 else f"{100.0 * n / d:.1f}%"


def short(text: str, n: int = 120) -> str:
    t = " ".join(text.split())
    return t[:n]


# ---------------------------------------------------------------------------

def rate(n: int, d: int) -> float:
    return n / d if d else 0.0


def split_of(r: dict) -> str:
    return r.get("split", "tune")


def family_of(r: dict) -> str:
    fam = r.get("family") or r.get("source", "?").split(":")[0]
    return "bigbench" if fam.startswith("bigbench:") else fam


def score_injection(rows: list[dict], out: list[dict], md: list[str], summary: dict) -> None:
    """Attacks and ordinary texts of every file, reported per split, family and language.

    Diagnostics (texts of misses and false positives) are printed for the tune split only: the
    test split is measured, never read while tuning.
    """
    flagged = [bool(findings(o, "injection.")) for o in out]
    blocked = [is_blocked(o, "injection.") for o in out]
    summary["injection"] = {}
    md.append("### Prompt injection\n")
    md.append("| split | attacks | flagged | detection | blocked | block rate | ordinary texts | flagged | false positives | blocked | blocked share |")
    md.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for split in ("tune", "test"):
        idx = [i for i, r in enumerate(rows) if split_of(r) == split]
        att = [i for i in idx if rows[i]["label"] == "injection"]
        ben = [i for i in idx if rows[i]["label"] == "benign"]
        d = sum(flagged[i] for i in att)
        b = sum(blocked[i] for i in att)
        fp = sum(flagged[i] for i in ben)
        fpb = sum(blocked[i] for i in ben)
        summary["injection"][split] = {"attacks": len(att), "detected": d, "blocked": b, "ordinary": len(ben), "fp": fp, "fp_blocked": fpb}
        md.append(f"| **{split}** | {len(att)} | {d} | {pct(d, len(att))} | {b} | {pct(b, len(att))} | {len(ben)} | {fp} | {pct(fp, len(ben))} | {fpb} | {pct(fpb, len(ben))} |")
    md.append("")

    def table(split: str, key, title: str) -> dict:
        groups: dict = collections.defaultdict(lambda: [0, 0, 0, 0, 0])
        for i, r in enumerate(rows):
            if split_of(r) != split:
                continue
            g = groups[key(r)]
            if r["label"] == "injection":
                g[0] += 1
                g[1] += flagged[i]
                g[2] += blocked[i]
            else:
                g[3] += 1
                g[4] += flagged[i]
        md.append(f"| {title} | attacks | detected | rate | blocked | ordinary | false positives | FP rate |")
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for k in sorted(groups):
            a, d, b, n, f = groups[k]
            md.append(f"| {k} | {a} | {d} | {pct(d, a) if a else '–'} | {b} | {n} | {f} | {pct(f, n) if n else '–'} |")
        md.append("")
        return {k: dict(zip(("attacks", "detected", "blocked", "ordinary", "fp"), v)) for k, v in groups.items()}

    md.append("Held-out (`test`) split, per source family (BIG-bench tasks together):\n")
    summary["injection"]["test_by_family"] = table("test", family_of, "family (test)")
    md.append("Held-out (`test`) split, per language:\n")
    summary["injection"]["test_by_lang"] = table("test", lambda r: r.get("lang", "en"), "language (test)")
    md.append("Held-out (`test`) attacks, direct and indirect (inside documents and tool results):\n")
    table("test", lambda r: ("indirect" if r.get("attack_kind") == "indirect" else "direct") if r["label"] == "injection" else "ordinary", "kind (test)")
    md.append("Tuning (`tune`) split, per source family (the rules and the scorer were developed on these):\n")
    summary["injection"]["tune_by_family"] = table("tune", family_of, "family (tune)")

    # diagnostics: tune split only
    tune = [i for i, r in enumerate(rows) if split_of(r) == "tune"]
    fps = [i for i in tune if rows[i]["label"] == "benign" and flagged[i]]
    fps.sort(key=lambda i: -float(out[i].get("risk_score") or 0))
    log("== Tune split: false positives (injection.*) ==")
    for i in fps[:25]:
        rules = ",".join(sorted({f.get("rule_id", "?") for f in findings(out[i], "injection.")}))
        log(f"  [{rows[i].get('family', '?')}] {rules}: {short(rows[i]['text'])}")
    hits = collections.defaultdict(collections.Counter)
    for i in tune:
        for rid in {f.get("rule_id", "?") for f in findings(out[i], "injection.")}:
            hits[rid][rows[i]["label"]] += 1
    log("== Tune split, per-rule hits: rule  attacks  ordinary ==")
    for rid in sorted(hits, key=lambda r: -sum(hits[r].values())):
        log(f"  {rid:48s} {hits[rid]['injection']:6d} {hits[rid]['benign']:6d}")
    missed = [i for i in tune if rows[i]["label"] == "injection" and not flagged[i]]
    log(f"== Tune split: missed attacks: {len(missed)} (first 25) ==")
    for i in missed[:25]:
        log(f"  [{rows[i].get('source')}] {short(rows[i]['text'])}")
    test = [i for i, r in enumerate(rows) if split_of(r) == "test"]
    log(f"== Test split: {sum(1 for i in test if rows[i]['label'] == 'injection' and not flagged[i])} attacks missed, "
        f"{sum(1 for i in test if rows[i]['label'] == 'benign' and flagged[i])} false positives (texts not shown: held out) ==")


def overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 < b1 and b0 < a1


def score_pii(rows: list[dict], out: list[dict], md: list[str], summary: dict) -> None:
    """Recall per labelled span (a span counts once, however many findings cover it) and
    precision per distinct finding span, per split; look-alike lines separately."""
    md.append("### PII\n")
    summary["pii"] = {}
    for split in ("tune", "test"):
        pairs = [(r, o) for r, o in zip(rows, out) if split_of(r) == split]
        if not pairs:
            continue
        n_spans, recalled, tp, fp = (collections.Counter() for _ in range(4))
        neg_lines = neg_flagged = 0
        by_locale = collections.defaultdict(lambda: [0, 0])
        no_context = [0, 0]
        fn_list, fp_list = [], []
        for r, o in pairs:
            spans = r.get("spans") or []
            text_b = r["text"].encode("utf-8")
            uniq = {}
            for f in findings(o, "pii"):
                try:
                    key = (str(f.get("rule_id", "")), int(f["start"]), int(f["end"]))
                except (KeyError, TypeError, ValueError):
                    continue
                uniq[key] = f
            if not spans:
                neg_lines += 1
                neg_flagged += 1 if uniq else 0
            for rid, s0, s1 in uniq:
                t = rid[4:] if rid.startswith("pii.") else rid
                if any(sp["type"] == t and overlaps(s0, s1, sp["start"], sp["end"]) for sp in spans):
                    tp[t] += 1
                else:
                    fp[t] += 1
                    fp_list.append((t, text_b[s0:s1].decode("utf-8", "replace"), r))
            for sp in spans:
                t = sp["type"]
                n_spans[t] += 1
                hit = any(rid == "pii." + t and overlaps(s0, s1, sp["start"], sp["end"]) for rid, s0, s1 in uniq)
                recalled[t] += hit
                if t == "phone":
                    loc = by_locale[r.get("locale", "?")]
                    loc[0] += 1
                    loc[1] += hit
                    if sp.get("context") is False:
                        no_context[0] += 1
                        no_context[1] += hit
                if not hit:
                    fn_list.append((t, sp.get("value"), r))
        md.append(f"`{split}` split:\n")
        md.append("| type | labelled spans | found | recall | distinct findings | correct | wrong | precision |")
        md.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        types = PII_TYPES + sorted(t for t in set(fp) | set(tp) | set(n_spans) if t not in PII_TYPES)
        per = {}
        for t in types:
            if not (n_spans[t] or tp[t] or fp[t]):
                continue
            md.append(f"| {t} | {n_spans[t]} | {recalled[t]} | {pct(recalled[t], n_spans[t])} | {tp[t] + fp[t]} | {tp[t]} | {fp[t]} | {pct(tp[t], tp[t] + fp[t])} |")
            per[t] = {"spans": n_spans[t], "recalled": recalled[t], "tp": tp[t], "fp": fp[t]}
        N, R, T, F = sum(n_spans.values()), sum(recalled.values()), sum(tp.values()), sum(fp.values())
        md.append(f"| **all** | {N} | {R} | {pct(R, N)} | {T + F} | {T} | {F} | {pct(T, T + F)} |")
        md.append("")
        md.append(f"Look-alike lines (no PII): {neg_flagged} of {neg_lines} had a `pii` finding ({pct(neg_flagged, neg_lines)}). "
                  f"Phone numbers written without any phone word nearby: {no_context[1]} of {no_context[0]} found.\n")
        if by_locale:
            md.append("| phone locale | spans | found | recall |")
            md.append("|---|---:|---:|---:|")
            for loc in sorted(by_locale):
                n, h = by_locale[loc]
                md.append(f"| {loc} | {n} | {h} | {pct(h, n)} |")
            md.append("")
        summary["pii"][split] = {"types": per, "all": {"spans": N, "recalled": R, "tp": T, "fp": F},
                                 "negative_lines": {"n": neg_lines, "flagged": neg_flagged},
                                 "phone_by_locale": {k: {"spans": v[0], "found": v[1]} for k, v in by_locale.items()}}
        if split == "tune":
            log(f"== PII ({split}) false negatives: {len(fn_list)} (first 40) ==")
            for t, v, r in fn_list[:40]:
                log(f"  [{t}/{r.get('locale', '')}] {v!r} in: {short(r['text'])}")
            log(f"== PII ({split}) false positives: {len(fp_list)} (first 40) ==")
            for t, frag, r in fp_list[:40]:
                log(f"  [{t}] {frag!r} in: {short(r['text'])}")
        else:
            log(f"== PII ({split}): {len(fn_list)} spans missed, {len(fp_list)} wrong findings (held out, not shown) ==")


def secret_group(r: dict) -> str:
    i = str(r.get("id", ""))
    src = str(r.get("source", ""))
    head = i.split("/")[0]
    if src.startswith("detect-secrets"):
        return "detect-secrets:" + head.replace("_test.py", "")
    if src.startswith("secretlint"):
        return "secretlint:" + head.replace("secretlint-rule-", "")
    if src.startswith("ripsecrets"):
        rest = i.split("/", 1)[-1].split(":")[0]
        return "ripsecrets:" + (rest or head)
    return r.get("kind") or src or "?"


def secret_found(r: dict, o: dict) -> bool:
    """A secret line is found when a `secret` finding overlaps its labelled span (any secret
    finding when the line has no span)."""
    fs = findings(o, "secret")
    spans = [sp for sp in (r.get("spans") or []) if "start" in sp]
    if not spans:
        return bool(fs)
    return all(any(overlaps(int(f.get("start", -1)), int(f.get("end", -1)), sp["start"], sp["end"]) for f in fs) for sp in spans)


def score_secrets(sets: dict[str, tuple[list[dict], list[dict]]], ordinary: list[tuple[dict, dict]], md: list[str], summary: dict) -> None:
    md.append("### Secrets\n")
    md.append("| set | split | secrets | found | recall | look-alikes | flagged | false-positive rate |")
    md.append("|---|---|---:|---:|---:|---:|---:|---:|")
    summary["secrets"] = {}
    for set_name, (all_rows, all_out) in sets.items():
      for split in ("tune", "test"):
        pairs = [(r, o) for r, o in zip(all_rows, all_out) if not r.get("needs_custom_config") and split_of(r) == split]
        if not pairs:
            continue
        name = f"{set_name}:{split}"
        pos = [(r, o) for r, o in pairs if r.get("label") == "secret"]
        neg = [(r, o) for r, o in pairs if r.get("label") != "secret"]
        rec = sum(1 for r, o in pos if secret_found(r, o))
        fpn = sum(1 for r, o in neg if findings(o, "secret"))
        md.append(f"| {set_name} | {split} | {len(pos)} | {rec} | {pct(rec, len(pos))} | {len(neg)} | {fpn} | {pct(fpn, len(neg))} |")
        summary["secrets"][name] = {"split": split, "secrets": len(pos), "found": rec, "lookalikes": len(neg), "flagged": fpn}
        groups = collections.defaultdict(lambda: [0, 0])
        for r, o in pos:
            g = groups[secret_group(r)]
            g[0] += 1
            g[1] += secret_found(r, o)
        if split == "tune":
            summary["secrets"][name]["missed_groups"] = {k: v[0] - v[1] for k, v in groups.items() if v[1] < v[0]}
            log(f"== Missed secrets in {name} (first 40) ==")
            for r, o in [p for p in pos if not secret_found(*p)][:40]:
                log(f"  [{secret_group(r)}] {short(r['text'], 200)}")
            log(f"== Secret findings on look-alikes in {name} ==")
            for r, o in [p for p in neg if findings(p[1], "secret")][:40]:
                log(f"  [{','.join(f.get('rule_id', '?') for f in findings(o, 'secret'))}] {short(r['text'], 200)}")
        else:
            log(f"== {name} (held out): {len(pos) - rec} secrets missed, {fpn} look-alikes flagged (not shown) ==")
    ord_fp = [(r, o) for r, o in ordinary if findings(o, "secret")]
    md.append(f"| ordinary prompts (every split) | – | – | – | – | {len(ordinary)} | {len(ord_fp)} | {pct(len(ord_fp), len(ordinary))} |")
    md.append("")
    summary["secrets"]["ordinary"] = {"n": len(ordinary), "flagged": len(ord_fp)}
    for r, o in [p for p in ord_fp if split_of(p[0]) == "tune"][:20]:
        log(f"  [ordinary/tune] [{','.join(f.get('rule_id', '?') for f in findings(o, 'secret'))}] {short(r['text'])}")


# ---------------------------------------------------------------------------

TEXT_FILES = ["injection", "benign", "authored_tune", "translated_tune", "authored_tune_languages", "authored_tune_documents", "authored_test", "hard_negatives"]


def main() -> int:
    ap = argparse.ArgumentParser(description="Score the Tollgate CLI on eval/corpus (see module docstring).")
    ap.add_argument("--tollgate", default=str(REPO / "target" / "release" / "tollgate"), help="path to the tollgate binary")
    ap.add_argument("--config", help="passed to `tollgate scan --config`")
    ap.add_argument("--corpus", default=str(EVAL_DIR / "corpus"))
    ap.add_argument("--secrets", default=str(REPO.parent / "shared" / "data" / "secrets-fixtures.jsonl"))
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per CLI run")
    ap.add_argument("--json", metavar="FILE", help="also write the raw numbers as JSON")
    ap.add_argument("--check", action="store_true",
                    help="exit 1 unless the quality gates in GATES hold (used by `make test`)")
    args = ap.parse_args()
    global QUIET
    QUIET = args.check

    exe = Path(args.tollgate)
    if not exe.is_file() or not os.access(exe, os.X_OK):
        log(f"error: Tollgate CLI not found or not executable at {exe}.\n"
            f"Build it first (cargo build --release) or pass --tollgate PATH.")
        return 2
    cli = [str(exe), "scan", "--jsonl"]
    if args.config:
        cli += ["--config", args.config]

    corpus = Path(args.corpus)
    for n in ("injection", "benign", "hard_negatives", "pii"):
        if not (corpus / f"{n}.jsonl").exists():
            log(f"error: missing {corpus / (n + '.jsonl')}; run eval/build_corpus.py")
            return 2
    texts: list[dict] = []
    for n in TEXT_FILES:
        path = corpus / f"{n}.jsonl"
        if path.exists():
            for r in load_jsonl(path):
                if n == "hard_negatives":
                    r.setdefault("family", "handwritten")
                if r.get("label") in ("injection", "benign"):
                    texts.append(r)
    pii_rows = load_jsonl(corpus / "pii.jsonl")
    secret_sets: dict[str, list[dict]] = {}
    fixtures = Path(args.secrets)
    if fixtures.exists():
        secret_sets["secrets-fixtures (../shared/data)"] = [dict(r, split="tune") for r in load_jsonl(fixtures)]
    else:
        log(f"warning: secrets fixtures not found at {fixtures}")
    generated = corpus / "secrets_generated.jsonl"
    if generated.exists():
        secret_sets["secrets_generated.jsonl"] = load_jsonl(generated)

    md: list[str] = []
    summary: dict = {"cli": cli}
    try:
        out_texts, dt = run_scan(cli, texts, args.timeout)
        nbytes = sum(len(r["text"].encode("utf-8")) for r in texts)
        out_pii, _ = run_scan(cli, pii_rows, args.timeout)
        out_sec = {k: run_scan(cli, v, args.timeout)[0] for k, v in secret_sets.items()}
    except CliError as e:
        log(f"error: {e}")
        return 2

    md.append("## Tollgate detection metrics\n")
    md.append(f"Command: `{' '.join(['tollgate'] + cli[1:])}`; corpus: `eval/corpus/` (see its README for sources and splits).\n")
    score_injection(texts, out_texts, md, summary)
    score_pii(pii_rows, out_pii, md, summary)
    ordinary = [(r, o) for r, o in zip(texts, out_texts) if r["label"] == "benign"]
    score_secrets({k: (secret_sets[k], out_sec[k]) for k in secret_sets}, ordinary, md, summary)
    md.append("### Throughput\n")
    md.append("| run | items | MB | seconds | items/s | MB/s |")
    md.append("|---|---:|---:|---:|---:|---:|")
    md.append(f"| `scan --jsonl` over every attack and ordinary text (process start included) | {len(texts)} | {nbytes / 1e6:.2f} | {dt:.2f} | {len(texts) / dt:.0f} | {nbytes / 1e6 / dt:.2f} |")
    md.append("")
    summary["throughput"] = {"items": len(texts), "bytes": nbytes, "seconds": dt}
    print("\n".join(md))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if args.check:
        failed = check_gates(summary)
        for f in failed:
            print(f"GATE FAILED: {f}", file=sys.stderr)
        passed = len(GATES) - len(failed)
        print(f"detection gates: {passed} passed, {len(failed)} failed", file=sys.stderr)
        return 1 if failed else 0
    return 0


def _inj(s: dict, split: str = "test") -> dict:
    return s["injection"][split]


def _pii_types(s: dict) -> dict:
    return s["pii"]["test"]["types"]


def _held(s: dict) -> dict:
    return s["secrets"]["secrets_generated.jsonl:test"]


# Quality gates, all on the held-out (`test`) parts. Where the target is met the gate is
# the target; where it is not yet, the gate sits just under (for error rates, just over) what
# docs/detection.md reports, so that a regression of a few items fails the build:
#   injection detection 68.3% (target 85%), block rate 47.4%, false positives 0.83% (target
#   <= 1%: met), blocked ordinary texts 0.17%; phone recall 98.2% (target 99%); secret
#   look-alikes flagged 5.6%.
GATES = {
    "at least 10,000 held-out ordinary texts": lambda s: _inj(s)["ordinary"] >= 10000,
    "held-out injection detection >= 67% (target 85%)": lambda s: _inj(s)["detected"] >= 0.67 * _inj(s)["attacks"],
    "held-out injection block rate >= 46%": lambda s: _inj(s)["blocked"] >= 0.46 * _inj(s)["attacks"],
    "held-out false positives <= 1%": lambda s: _inj(s)["fp"] <= 0.01 * _inj(s)["ordinary"],
    "held-out ordinary texts blocked <= 0.2%": lambda s: _inj(s)["fp_blocked"] <= 0.002 * _inj(s)["ordinary"],
    "held-out PII recall >= 99% for every type but phone": lambda s: all(v["recalled"] >= 0.99 * v["spans"] for t, v in _pii_types(s).items() if v["spans"] and t != "phone"),
    "held-out phone recall >= 97.5% (target 99%)": lambda s: _pii_types(s)["phone"]["recalled"] >= 0.975 * _pii_types(s)["phone"]["spans"],
    "held-out PII precision >= 99% for every type": lambda s: all(v["tp"] >= 0.99 * (v["tp"] + v["fp"]) for v in _pii_types(s).values()),
    "held-out PII look-alike lines flagged <= 1%": lambda s: s["pii"]["test"]["negative_lines"]["flagged"] <= 0.01 * s["pii"]["test"]["negative_lines"]["n"],
    "held-out secrets recall >= 99%": lambda s: _held(s)["found"] >= 0.99 * _held(s)["secrets"],
    "held-out secret look-alikes flagged <= 6.5%": lambda s: _held(s)["flagged"] <= 0.065 * _held(s)["lookalikes"],
    "secrets fixtures recall >= 93.5%": lambda s: s["secrets"]["secrets-fixtures (../shared/data):tune"]["found"] >= 0.935 * s["secrets"]["secrets-fixtures (../shared/data):tune"]["secrets"],
    "secret findings on ordinary texts <= 0.05%": lambda s: s["secrets"]["ordinary"]["flagged"] <= 0.0005 * s["secrets"]["ordinary"]["n"],
}


def check_gates(summary: dict) -> list[str]:
    failed = []
    for name, ok in GATES.items():
        try:
            good = bool(ok(summary))
        except (KeyError, ZeroDivisionError, TypeError) as e:
            good = False
            name = f"{name} ({e!r})"
        if not good:
            failed.append(name)
    return failed


if __name__ == "__main__":
    sys.exit(main())
