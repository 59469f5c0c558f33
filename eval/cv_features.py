#!/usr/bin/env python3
"""Which feature types generalise to sources the scorer never saw (ADR 0014, "Next candidate").

Tune split only. Leave one group of sources out (train_scorer.CV_FOLDS), train a logistic
regression on whole texts with scikit-learn hashing vectorisers, and print the share of the
held-out attacks found at 0.5%, 1% and 2% false positives on the held-out ordinary texts:
word uni+bigrams, character 3-5-grams within word boundaries, and both. An experiment, not the
engine's features (those come from `tollgate features`).

  eval/.venv/bin/python eval/cv_features.py      # about 8 minutes on two cores
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scipy import sparse  # noqa: E402
from sklearn.feature_extraction.text import HashingVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from train_scorer import load, source_fold  # noqa: E402


def recall_at_fp(name: str, X, y: np.ndarray, folds: np.ndarray, c: float) -> None:
    att, ords = [], []
    for k in sorted(set(folds)):
        tr, te = folds != k, folds == k
        m = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="liblinear").fit(X[tr], y[tr])
        p = m.decision_function(X[te])
        att += list(p[y[te]])
        ords += list(p[~y[te]])
    ords_sorted = np.sort(np.asarray(ords))[::-1]
    att_arr = np.asarray(att)
    res = [f"{fp:.1%}: {np.mean(att_arr > ords_sorted[int(fp * len(ords_sorted))]):.3f}" for fp in (0.005, 0.01, 0.02)]
    print(name, "C", c, " ".join(res), flush=True)


def main() -> int:
    rows = load("tune")
    texts = [r["text"].lower()[:4000] for r in rows]
    y = np.array([r["label"] == "injection" for r in rows])
    folds = np.array([source_fold(r) for r in rows])
    word = HashingVectorizer(analyzer="word", ngram_range=(1, 2), n_features=2**18, alternate_sign=False, norm="l2")
    char = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=2**18, alternate_sign=False, norm="l2")
    xw, xc = word.transform(texts), char.transform(texts)
    for c in (2.0, 8.0):
        recall_at_fp("word 1-2", xw, y, folds, c)
        recall_at_fp("char_wb 3-5", xc, y, folds, c)
        recall_at_fp("word+char", sparse.hstack([xw, xc]).tocsr(), y, folds, c)
    return 0


if __name__ == "__main__":
    sys.exit(main())
