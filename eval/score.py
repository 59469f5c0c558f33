#!/usr/bin/env python3
"""Score the Tollgate CLI against the eval corpora (stdlib only).

Usage (from the repo root):
  python3 eval/score.py [--tollgate target/release/tollgate] [--config FILE]

Runs `tollgate scan --jsonl [--config FILE] < input > output` over:
  eval/corpus/injection.jsonl + eval/corpus/benign.jsonl   (one timed run: throughput)
  eval/corpus/hard_negatives.jsonl
  eval/corpus/pii.jsonl
  ../shared/data/secrets-fixtures.jsonl                      (if present)

Markdown tables go to stdout (paste into docs/detection.md); diagnostics
(top false positives, false negatives, per-rule hits) go to stderr.
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

def score_injection(data: dict[str, tuple[list[dict], list[dict]]], md: list[str], summary: dict) -> None:
    inj_rows, inj_out = data["injection"]
    det = sum(1 for o in inj_out if findings(o, "injection."))
    det_b = sum(1 for o in inj_out if is_blocked(o, "injection."))
    summary["injection"] = {"n": len(inj_rows), "detected": det, "blocked": det_b}

    md.append("### Prompt injection\n")
    md.append("| corpus | items | flagged (any `injection.*` finding) | rate | blocked | block rate |")
    md.append("|---|---:|---:|---:|---:|---:|")
    md.append(f"| injection.jsonl (detection) | {len(inj_rows)} | {det} | {pct(det, len(inj_rows))} | {det_b} | {pct(det_b, len(inj_rows))} |")
    fp_tot = fpb_tot = n_tot = 0
    fps_all = []
    for name in ("benign", "hard_negatives"):
        rows, out = data[name]
        fp = [(r, o) for r, o in zip(rows, out) if findings(o, "injection.")]
        fpb = sum(1 for o in out if is_blocked(o, "injection."))
        fp_tot += len(fp)
        fpb_tot += fpb
        n_tot += len(rows)
        fps_all += [(name, r, o) for r, o in fp]
        summary[name] = {"n": len(rows), "fp": len(fp), "fp_blocked": fpb}
        md.append(f"| {name}.jsonl (false positives) | {len(rows)} | {len(fp)} | {pct(len(fp), len(rows))} | {fpb} | {pct(fpb, len(rows))} |")
    md.append(f"| benign + hard_negatives (false positives) | {n_tot} | {fp_tot} | {pct(fp_tot, n_tot)} | {fpb_tot} | {pct(fpb_tot, n_tot)} |")
    md.append("")

    # per-source detection on injection corpus
    by_src = collections.defaultdict(lambda: [0, 0])
    for r, o in zip(inj_rows, inj_out):
        src = r.get("source", "?")
        key = src.split(":", 1)[0] + ":" + src.split(":", 1)[-1].split("/")[0]
        if r.get("attack_kind") == "indirect":
            key += " (indirect, embedded)"
        elif "/in_the_wild/" in src:
            key = "pyrit:jailbreak/templates/in_the_wild"
        by_src[key][0] += 1
        by_src[key][1] += 1 if findings(o, "injection.") else 0
    md.append("| injection source | items | detected | rate |")
    md.append("|---|---:|---:|---:|")
    for k in sorted(by_src):
        n, d = by_src[k]
        md.append(f"| {k} | {n} | {d} | {pct(d, n)} |")
    md.append("")

    # diagnostics
    log("== Top false positives (injection.*) on benign + hard_negatives ==")
    fps_all.sort(key=lambda x: -float(x[2].get("risk_score") or 0))
    for name, r, o in fps_all[:20]:
        rules = ",".join(sorted({f.get("rule_id", "?") for f in findings(o, "injection.")}))
        log(f"  [{name}] {rules}: {short(r['text'])}")
    hits = collections.defaultdict(collections.Counter)
    for name in ("injection", "benign", "hard_negatives"):
        for o in data[name][1]:
            for rid in {f.get("rule_id", "?") for f in findings(o, "injection.")}:
                hits[rid][name] += 1
    log("== Per-rule hit counts (items with >=1 hit): rule  injection  benign  hard_negatives ==")
    for rid in sorted(hits, key=lambda r: -sum(hits[r].values())):
        c = hits[rid]
        log(f"  {rid:48s} {c['injection']:6d} {c['benign']:6d} {c['hard_negatives']:6d}")
    missed = [r for r, o in zip(inj_rows, inj_out) if not findings(o, "injection.")]
    log(f"== Missed injections: {len(missed)} (first 15) ==")
    for r in missed[:15]:
        log(f"  [{r.get('source')}] {short(r['text'])}")
    summary["per_rule_hits"] = {k: dict(v) for k, v in hits.items()}


def overlaps(a0: int, a1: int, b0: int, b1: int) -> bool:
    return a0 < b1 and b0 < a1


def score_pii(rows: list[dict], out: list[dict], md: list[str], summary: dict) -> None:
    tp = collections.Counter()
    fp = collections.Counter()
    fn = collections.Counter()
    recalled = collections.Counter()
    n_spans = collections.Counter()
    fp_list, fn_list = [], []
    neg_lines = neg_fp_lines = 0
    for r, o in zip(rows, out):
        spans = r.get("spans") or []
        text_b = r["text"].encode("utf-8")
        pf = findings(o, "pii")
        if not spans:
            neg_lines += 1
            if pf:
                neg_fp_lines += 1
        for f in pf:
            rid = str(f.get("rule_id", ""))
            t = rid[4:] if rid.startswith("pii.") else rid
            try:
                s0, s1 = int(f["start"]), int(f["end"])
            except (KeyError, TypeError, ValueError):
                s0 = s1 = -1
            if any(sp["type"] == t and overlaps(s0, s1, sp["start"], sp["end"]) for sp in spans):
                tp[t] += 1
            else:
                fp[t] += 1
                frag = text_b[max(0, s0) : max(0, s1)].decode("utf-8", "replace") if s0 >= 0 else "?"
                fp_list.append((t, frag, r))
        for sp in spans:
            n_spans[sp["type"]] += 1
            hit = any(
                str(f.get("rule_id", "")) == "pii." + sp["type"]
                and overlaps(int(f.get("start", -1)), int(f.get("end", -1)), sp["start"], sp["end"])
                for f in pf
            )
            if hit:
                recalled[sp["type"]] += 1
            else:
                fn[sp["type"]] += 1
                fn_list.append((sp["type"], sp["value"], r))

    md.append("### PII\n")
    md.append("| type | labelled spans | TP (findings) | FP (findings) | FN (spans) | precision | recall |")
    md.append("|---|---:|---:|---:|---:|---:|---:|")
    types = PII_TYPES + sorted(t for t in set(fp) | set(tp) if t not in PII_TYPES)
    summary["pii"] = {}
    for t in types:
        p = pct(tp[t], tp[t] + fp[t])
        rc = pct(recalled[t], n_spans[t])
        md.append(f"| {t} | {n_spans[t]} | {tp[t]} | {fp[t]} | {fn[t]} | {p} | {rc} |")
        summary["pii"][t] = {"spans": n_spans[t], "tp": tp[t], "fp": fp[t], "fn": fn[t]}
    T, F, N, R = sum(tp.values()), sum(fp.values()), sum(n_spans.values()), sum(recalled.values())
    md.append(f"| **all** | {N} | {T} | {F} | {N - R} | {pct(T, T + F)} | {pct(R, N)} |")
    md.append("")
    md.append(f"Hard-negative lines (no PII, look-alikes such as Luhn-failing 16-digit numbers, invalid SSNs, bad-checksum IBANs, UUIDs, hashes, timestamps, versions): "
              f"{neg_fp_lines} of {neg_lines} lines had a `pii` finding ({pct(neg_fp_lines, neg_lines)}).\n")
    summary["pii_negative_lines"] = {"n": neg_lines, "flagged": neg_fp_lines}
    log(f"== PII false negatives: {len(fn_list)} (first 30) ==")
    for t, v, r in fn_list[:30]:
        log(f"  [{t}] {v!r} in: {short(r['text'])}")
    log(f"== PII false positives: {len(fp_list)} (first 30) ==")
    for t, frag, r in fp_list[:30]:
        log(f"  [{t}] {frag!r} in: {short(r['text'])}")


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
    return src or "?"


def score_secrets(rows: list[dict], out: list[dict], ordinary: list[tuple[str, dict, dict]], md: list[str], summary: dict) -> None:
    pos = [(r, o) for r, o in zip(rows, out) if r.get("label") == "secret"]
    neg = [(r, o) for r, o in zip(rows, out) if r.get("label") != "secret"]
    pos_excl = [p for p in pos if p[0].get("needs_custom_config")]
    neg_excl = [p for p in neg if p[0].get("needs_custom_config")]
    pos = [p for p in pos if not p[0].get("needs_custom_config")]
    neg = [p for p in neg if not p[0].get("needs_custom_config")]
    rec = sum(1 for r, o in pos if findings(o, "secret"))
    fpn = sum(1 for r, o in neg if findings(o, "secret"))
    ord_fp = [(name, r, o) for name, r, o in ordinary if findings(o, "secret")]
    md.append("### Secrets\n")
    md.append("| measure | count | of | rate |")
    md.append("|---|---:|---:|---:|")
    md.append(f"| recall on `secret` fixtures | {rec} | {len(pos)} | {pct(rec, len(pos))} |")
    md.append(f"| false positives on `no_secret` fixtures | {fpn} | {len(neg)} | {pct(fpn, len(neg))} |")
    md.append(f"| false positives on ordinary prose and code (benign + hard_negatives) | {len(ord_fp)} | {len(ordinary)} | {pct(len(ord_fp), len(ordinary))} |")
    md.append("")
    md.append(f"Excluded as `needs_custom_config`: {len(pos_excl)} secret and {len(neg_excl)} no_secret fixtures.\n")
    groups = collections.defaultdict(lambda: [0, 0])
    for r, o in pos:
        g = secret_group(r)
        groups[g][0] += 1
        groups[g][1] += 1 if findings(o, "secret") else 0
    md.append("| secret fixture group | items | detected | recall |")
    md.append("|---|---:|---:|---:|")
    for g in sorted(groups):
        n, d = groups[g]
        md.append(f"| {g} | {n} | {d} | {pct(d, n)} |")
    md.append("")
    summary["secrets"] = {"recall": [rec, len(pos)], "fp_no_secret": [fpn, len(neg)], "fp_ordinary": [len(ord_fp), len(ordinary)],
                          "excluded_needs_custom_config": {"secret": len(pos_excl), "no_secret": len(neg_excl)}}
    log("== Missed secrets (first 30) ==")
    for r, o in [p for p in pos if not findings(p[1], "secret")][:30]:
        log(f"  [{secret_group(r)}] {short(r['text'])}")
    log("== Secret false positives on no_secret fixtures ==")
    for r, o in [p for p in neg if findings(p[1], "secret")][:30]:
        log(f"  [{','.join(f.get('rule_id', '?') for f in findings(o, 'secret'))}] {short(r['text'])}")
    log("== Secret findings on ordinary prose/code ==")
    for name, r, o in ord_fp[:30]:
        log(f"  [{name}] [{','.join(f.get('rule_id', '?') for f in findings(o, 'secret'))}] {short(r['text'])}")


# ---------------------------------------------------------------------------

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
    need = ["injection", "benign", "hard_negatives", "pii"]
    for n in need:
        if not (corpus / f"{n}.jsonl").exists():
            log(f"error: missing {corpus / (n + '.jsonl')}; run eval/build_corpus.py")
            return 2
    rows = {n: load_jsonl(corpus / f"{n}.jsonl") for n in need}

    md: list[str] = []
    summary: dict = {"cli": cli}
    try:
        # 1. injection + benign in one timed run (throughput)
        both = rows["injection"] + rows["benign"]
        out_both, dt = run_scan(cli, both, args.timeout)
        ni = len(rows["injection"])
        data = {
            "injection": (rows["injection"], out_both[:ni]),
            "benign": (rows["benign"], out_both[ni:]),
        }
        nbytes = sum(len(r["text"].encode("utf-8")) for r in both)
        out_hn, _ = run_scan(cli, rows["hard_negatives"], args.timeout)
        data["hard_negatives"] = (rows["hard_negatives"], out_hn)
        out_pii, _ = run_scan(cli, rows["pii"], args.timeout)
        sec_path = Path(args.secrets)
        sec_rows = load_jsonl(sec_path) if sec_path.exists() else None
        out_sec = run_scan(cli, sec_rows, args.timeout)[0] if sec_rows else None
    except CliError as e:
        log(f"error: {e}")
        return 2

    md.append(f"## Tollgate detection metrics\n")
    md.append(f"Command: `{' '.join(['tollgate'] + cli[1:])}`; corpus: `eval/corpus/` (built by `eval/build_corpus.py`).\n")
    score_injection(data, md, summary)
    score_pii(rows["pii"], out_pii, md, summary)
    ordinary = [("benign", r, o) for r, o in zip(*data["benign"])] + [("hard_negatives", r, o) for r, o in zip(*data["hard_negatives"])]
    if sec_rows is not None:
        score_secrets(sec_rows, out_sec, ordinary, md, summary)
    else:
        md.append(f"### Secrets\n\nFixture file not found at `{sec_path}`; skipped.\n")
        log(f"warning: secrets fixtures not found at {sec_path}")
    md.append("### Throughput\n")
    md.append("| run | items | MB | seconds | items/s | MB/s |")
    md.append("|---|---:|---:|---:|---:|---:|")
    md.append(f"| `scan --jsonl` over injection + benign (process start included) | {len(both)} | {nbytes / 1e6:.2f} | {dt:.2f} | {len(both) / dt:.0f} | {nbytes / 1e6 / dt:.2f} |")
    md.append("")
    summary["throughput"] = {"items": len(both), "bytes": nbytes, "seconds": dt}
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


# Quality gates: the targets where they are met today, and the measured level (minus a
# small margin) where they are not yet, so that a regression fails the build. Raise them as the
# rules improve; docs/detection.md reports the exact figures.
GATES = {
    "injection false-positive rate on benign + hard negatives <= 1%": lambda s: (s["benign"]["fp"] + s["hard_negatives"]["fp"]) <= 0.01 * (s["benign"]["n"] + s["hard_negatives"]["n"]),
    "injection detection rate >= 85%": lambda s: s["injection"]["detected"] >= 0.85 * s["injection"]["n"],
    "PII precision >= 0.99 for every type": lambda s: all(v["tp"] / max(1, v["tp"] + v["fp"]) >= 0.99 for v in s["pii"].values()),
    "PII recall >= 0.99 for every type": lambda s: all(v["tp"] / max(1, v["spans"]) >= 0.99 for v in s["pii"].values()),
    "no PII finding on the look-alike lines": lambda s: s["pii_negative_lines"]["flagged"] == 0,
    "secrets recall >= 0.95": lambda s: s["secrets"]["recall"][0] >= 0.95 * s["secrets"]["recall"][1],
    "no secret finding on ordinary prose and code": lambda s: s["secrets"]["fp_ordinary"][0] == 0,
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
