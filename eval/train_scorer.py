#!/usr/bin/env python3
"""Train Tollgate's learned injection scorer (ADR 0014) and write the engine's model file.

The features come from the engine itself: `tollgate features` folds, tokenises and windows each
text exactly as the filter does at run time, so this script never re-implements tokenisation.
The model is a logistic regression over hashed unigram + bigram counts of a window, divided by
the square root of the window's feature count; the engine scores every window of a text and
keeps the best one.

Training data is the `tune` split only (see eval/corpus/README.md): the `test` split is what
docs/detection.md reports, and must never reach this script.

  * attacks: `injection.jsonl` and the hand-written `authored_tune*.jsonl` /
    `translated_tune.jsonl` rows labelled `injection`;
  * ordinary texts: `benign.jsonl`, the same hand-written files' rows labelled `benign`,
    `hard_negatives.jsonl`.

A long attack is mostly ordinary text around one injected passage, so training runs twice: the
first model picks the two best windows of each long attack and the second one is trained on
those (multiple-instance learning, in its simplest form). Thresholds are calibrated on the tune
split's ordinary texts scored out of fold by source (`CV_FOLDS`: four groups of sources, each
scored by a model trained on the other three, so that the thresholds hold for traffic unlike any
training source): `threshold` at --flag-fp, `block_threshold` at --block-fp. `--cv-folds`
reports the same leave-sources-out figures for choosing settings (--c was chosen with it:
recall at 1% held-out false positives 14% at C=2, 18% at C=8 and C=16).

Usage (from the repo root, after `cargo build --release -p tollgate-cli`):
  eval/.venv/bin/pip install -r eval/requirements-train.txt
  eval/.venv/bin/python eval/train_scorer.py            # writes filter/engine/src/detect/scorer_model.bin
  eval/.venv/bin/python eval/train_scorer.py --swap     # the other way round: train on test, report tune (not written)
"""
from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

EVAL_DIR = Path(__file__).resolve().parent
REPO = EVAL_DIR.parent
CORPUS = EVAL_DIR / "corpus"
MODEL = REPO / "filter" / "engine" / "src" / "detect" / "scorer_model.bin"
# the engine's floor on a window's feature count (detect/scorer.rs MIN_FEATURES)
MIN_FEATURES = 24
SOURCES = ["injection.jsonl", "benign.jsonl", "authored_tune.jsonl", "translated_tune.jsonl", "authored_tune_languages.jsonl", "authored_tune_documents.jsonl", "authored_test.jsonl", "hard_negatives.jsonl"]


def load(split: str, corpus: Path = CORPUS) -> list[dict]:
    rows = []
    for name in SOURCES:
        path = corpus / name
        if not path.exists():
            continue
        for line in path.open(encoding="utf-8"):
            if not line.strip():
                continue
            r = json.loads(line)
            # hand-written hard negatives were written while looking at the rules: tune
            if r.get("split", "tune") != split:
                continue
            if r.get("label") not in ("injection", "benign"):
                continue
            rows.append(r)
    return rows


def features(cli: str, rows: list[dict], bits: int, window: int) -> list[list[list[int]]]:
    with tempfile.TemporaryFile("w+b") as fin:
        for r in rows:
            fin.write((json.dumps({"text": r["text"]}, ensure_ascii=False) + "\n").encode())
        fin.seek(0)
        out = subprocess.run(
            [cli, "features", "--bits", str(bits), "--window", str(window)],
            stdin=fin, capture_output=True, check=True,
        ).stdout.decode()
    res = [json.loads(l)["windows"] for l in out.splitlines()]
    if len(res) != len(rows):
        raise SystemExit(f"expected {len(rows)} feature lines, got {len(res)}")
    return res


def matrix(windows: list[list[int]], dim: int) -> sparse.csr_matrix:
    indptr, indices, data = [0], [], []
    for w in windows:
        if not w:
            indptr.append(len(indices))
            continue
        idx, counts = np.unique(np.asarray(w, dtype=np.int64), return_counts=True)
        indices.extend(idx.tolist())
        data.extend((counts / np.sqrt(max(len(w), MIN_FEATURES))).tolist())
        indptr.append(len(indices))
    return sparse.csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(indices), np.asarray(indptr)), shape=(len(windows), dim))


def fit(X, y, c: float) -> LogisticRegression:
    m = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="liblinear")
    m.fit(X, y)
    return m


class Quantised:
    """The model as the engine holds it: int8 weights times one scale, plus a bias."""

    def __init__(self, m: LogisticRegression):
        coef = m.coef_.ravel()
        self.scale = float(np.abs(coef).max() / 127.0) or 1.0
        self.w = np.clip(np.rint(coef / self.scale), -127, 127).astype(np.int8)
        self.bias = float(m.intercept_[0])

    def text_scores(self, feats: list[list[list[int]]]) -> np.ndarray:
        out = np.empty(len(feats))
        wf = self.w.astype(np.float64) * self.scale
        for i, windows in enumerate(feats):
            best = -np.inf
            for w in windows:
                if w:
                    best = max(best, self.bias + wf[np.asarray(w)].sum() / np.sqrt(max(len(w), MIN_FEATURES)))
            out[i] = 1.0 / (1.0 + np.exp(-best)) if np.isfinite(best) else 0.0
        return out


def train(cli: str, rows: list[dict], bits: int, window: int, c: float):
    feats = features(cli, rows, bits, window)
    dim = 1 << bits
    X_w, y_w, owner = [], [], []
    for i, (r, ws) in enumerate(zip(rows, feats)):
        for w in ws:
            X_w.append(w)
            y_w.append(1 if r["label"] == "injection" else 0)
            owner.append(i)
    X = matrix(X_w, dim)
    y = np.asarray(y_w)
    m1 = fit(X, y, c)
    # second round: a long attack keeps only its two most attack-like windows
    p = m1.decision_function(X)
    keep = np.ones(len(y_w), dtype=bool)
    by_owner: dict[int, list[int]] = {}
    for k, o in enumerate(owner):
        if y_w[k] == 1:
            by_owner.setdefault(o, []).append(k)
    for ks in by_owner.values():
        if len(ks) > 2:
            best = sorted(ks, key=lambda k: -p[k])[:2]
            for k in ks:
                keep[k] = k in best
    m2 = fit(X[keep], y[keep], c)
    return Quantised(m2), feats


def calibrate(scores: np.ndarray, fp: float) -> float:
    """The smallest probability above which at most `fp` of the ordinary texts score."""
    s = np.sort(scores)[::-1]
    k = int(np.floor(fp * len(s)))
    cut = s[k] if k < len(s) else 0.0
    return float(min(0.999, max(0.05, np.nextafter(cut, 1.0))))


def report(name: str, rows: list[dict], scores: np.ndarray, t: float, b: float) -> dict:
    att = np.asarray([r["label"] == "injection" for r in rows])
    res = {
        "attacks": int(att.sum()),
        "ordinary": int((~att).sum()),
        "attacks_flagged": float((scores[att] >= t).mean()) if att.any() else None,
        "attacks_blocked": float((scores[att] >= b).mean()) if att.any() else None,
        "ordinary_flagged": float((scores[~att] >= t).mean()) if (~att).any() else None,
        "ordinary_blocked": float((scores[~att] >= b).mean()) if (~att).any() else None,
    }
    print(f"{name}: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items()), file=sys.stderr)
    return res


def write_model(q: Quantised, bits: int, window: int, t: float, b: float) -> None:
    head = b"TGSM" + bytes([1, bits]) + struct.pack("<H", window) + struct.pack("<ffff", q.scale, q.bias, t, b)
    MODEL.write_bytes(head + q.w.tobytes())


def out_of_fold_ordinary(cli: str, rows: list[dict], a) -> np.ndarray:
    """Scores of every ordinary text from a model trained on the other half of the rows
    (split by a hash of the text)."""
    import zlib
    half = [zlib.crc32(r["text"].encode()) % 2 for r in rows]
    scores = []
    for k in (0, 1):
        train_rows = [r for r, h in zip(rows, half) if h != k]
        held = [r for r, h in zip(rows, half) if h == k and r["label"] == "benign"]
        q, _ = train(cli, train_rows, a.bits, a.window, a.c)
        scores.append(q.text_scores(features(cli, held, a.bits, a.window)))
    return np.concatenate(scores)


def cross_validate(cli: str, rows: list[dict], a) -> None:
    """Leave one attack family out (ordinary texts split in two by a hash): how the scorer does
    on attacks of a kind it was not trained on, with thresholds calibrated without the texts it
    is measured on. Used to choose --c, --window and --bits without looking at the test split."""
    import zlib
    fams = sorted({r.get("family", "?") for r in rows if r["label"] == "injection"})
    half = lambda r: zlib.crc32(r["text"].encode()) % 2
    for fam in fams:
        train_rows = [r for r in rows if (r["label"] == "injection" and r.get("family") != fam) or (r["label"] == "benign" and half(r) == 0)]
        held = [r for r in rows if (r["label"] == "injection" and r.get("family") == fam) or (r["label"] == "benign" and half(r) == 1)]
        q, feats = train(cli, train_rows, a.bits, a.window, a.c)
        fit_scores = q.text_scores(feats)
        t = calibrate(np.asarray([s for s, r in zip(fit_scores, train_rows) if r["label"] == "benign"]), a.flag_fp)
        b = max(t, calibrate(np.asarray([s for s, r in zip(fit_scores, train_rows) if r["label"] == "benign"]), a.block_fp))
        hs = q.text_scores(features(cli, held, a.bits, a.window))
        report(f"without {fam}", held, hs, t, b)


# Source folds for --cv-folds: each holds attack families and ordinary-text sources together
# (a hand-written set's attacks with its own ordinary texts), so a fold is "a source never
# trained on" for both detection and false positives.
CV_FOLDS = {
    "pyrit": 0, "promptfoo": 0, "bigbench": 0,
    "agentdojo": 1, "django-po": 1, "stdlib-code": 1,
    "authored-doc": 2, "inspect-evals": 2, "pypi-readme": 2,
    "authored-tune": 3, "translated-tune": 3, "?": 3,
}


def source_fold(r: dict) -> int:
    fam = r.get("family", "?").split(":")[0]
    return CV_FOLDS.get(fam, 3)


def cross_validate_sources(cli: str, rows: list[dict], a) -> None:
    """Leave one fold of sources out (CV_FOLDS): attacks *and* ordinary texts of sources the
    model never saw, with thresholds calibrated on the ordinary texts it was trained on, as
    the shipped model's are. The pooled figures estimate what a new source does."""
    tot = np.zeros(4)
    att_scores, ord_scores = [], []
    for k in sorted(set(CV_FOLDS.values())):
        train_rows = [r for r in rows if source_fold(r) != k]
        held = [r for r in rows if source_fold(r) == k]
        q, feats = train(cli, train_rows, a.bits, a.window, a.c)
        fit_ord = np.asarray([s for s, r in zip(q.text_scores(feats), train_rows) if r["label"] == "benign"])
        t = calibrate(fit_ord, a.flag_fp)
        b = max(t, calibrate(fit_ord, a.block_fp))
        hs = q.text_scores(features(cli, held, a.bits, a.window))
        res = report(f"fold {k}", held, hs, t, b)
        att_scores += [x for x, r in zip(hs, held) if r["label"] == "injection"]
        ord_scores += [x for x, r in zip(hs, held) if r["label"] == "benign"]
        att, ordn = res["attacks"], res["ordinary"]
        tot += [att, (res["attacks_flagged"] or 0) * att, ordn, (res["ordinary_flagged"] or 0) * ordn]
    print(f"pooled: attacks flagged {tot[1] / tot[0]:.4f} of {int(tot[0])}, "
          f"ordinary flagged {tot[3] / tot[2]:.4f} of {int(tot[2])}", file=sys.stderr)
    for fp in (0.005, 0.01):
        cut = calibrate(np.asarray(ord_scores), fp)
        print(f"  at a threshold giving {fp:.1%} of held-out ordinary texts ({cut:.3f}): "
              f"attacks flagged {np.mean(np.asarray(att_scores) >= cut):.4f}", file=sys.stderr)
    return np.asarray(ord_scores)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tollgate", default=str(REPO / "target" / "release" / "tollgate"))
    ap.add_argument("--bits", type=int, default=18)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--c", type=float, default=8.0, help="inverse L2 strength (chosen with --cv-folds)")
    ap.add_argument("--flag-fp", type=float, default=0.008, help="share of out-of-fold tune ordinary texts allowed over `threshold`")
    ap.add_argument("--block-fp", type=float, default=0.002, help="share allowed over `block_threshold`")
    ap.add_argument("--calibration", choices=["sources", "halves"], default="sources", help="how ordinary texts are held out to set the thresholds")
    ap.add_argument("--swap", action="store_true", help="train on the test split and report on tune; writes nothing")
    ap.add_argument("--dry-run", action="store_true", help="train and report, write nothing")
    ap.add_argument("--cv", action="store_true", help="leave-one-family-out on the tune split; writes nothing")
    ap.add_argument("--cv-folds", action="store_true", help="leave one fold of sources out (attacks and ordinary texts) on the tune split; writes nothing")
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--stats", default=str(EVAL_DIR / "scorer_stats.json"))
    a = ap.parse_args()

    fit_split, other = ("test", "tune") if a.swap else ("tune", "test")
    rows = load(fit_split, Path(a.corpus))
    if a.cv:
        cross_validate(a.tollgate, rows, a)
        return 0
    if a.cv_folds:
        cross_validate_sources(a.tollgate, rows, a)
        return 0
    print(f"training on {fit_split}: {sum(r['label'] == 'injection' for r in rows)} attacks, "
          f"{sum(r['label'] == 'benign' for r in rows)} ordinary texts", file=sys.stderr)
    q, feats = train(a.tollgate, rows, a.bits, a.window, a.c)
    fit_scores = q.text_scores(feats)
    # thresholds from out-of-fold scores (in-sample scores are optimistic and would set them
    # too low): by default each ordinary text scored by a model trained without its *source*
    # (CV_FOLDS), which is what a new kind of traffic looks like to the shipped model; with
    # --calibration halves, by a model trained without a random half (too optimistic for new
    # sources: 0.5% on tune became 1.3% on the held-out sources)
    if a.calibration == "sources":
        oof = cross_validate_sources(a.tollgate, rows, a)
    else:
        oof = out_of_fold_ordinary(a.tollgate, rows, a)
    t = calibrate(oof, a.flag_fp)
    b = max(t, calibrate(oof, a.block_fp))
    stats = {"bits": a.bits, "window": a.window, "c": a.c, "threshold": t, "block_threshold": b,
             "calibration": a.calibration, "flag_fp": a.flag_fp, "block_fp": a.block_fp,
             "trained_on": fit_split, "nonzero_weights": int((q.w != 0).sum())}
    stats[fit_split] = report(f"{fit_split} (trained on)", rows, fit_scores, t, b)
    # the held-out split is scored only for a model that is written (or with --swap): a dry
    # run is for choosing settings, which must not see it
    held = [] if a.dry_run and not a.swap else load(other, Path(a.corpus))
    if held:
        hs = q.text_scores(features(a.tollgate, held, a.bits, a.window))
        stats[other] = report(f"{other} (held out)", held, hs, t, b)
    if a.swap or a.dry_run:
        return 0
    write_model(q, a.bits, a.window, t, b)
    Path(a.stats).write_text(json.dumps(stats, indent=2) + "\n")
    print(f"wrote {MODEL.relative_to(REPO)} ({MODEL.stat().st_size} bytes), threshold {t:.3f}, block {b:.3f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
