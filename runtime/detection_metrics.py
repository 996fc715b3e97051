"""Detection metrics, pure functions over numpy arrays (no torch).

Conventions: `labels` True = directed (the positive class); a system accepts (says directed)
when its score is at or above the threshold. A false accept (FA) is an undirected utterance
accepted, a false reject (FR) a directed one rejected; rates are over the utterances of the
class. Latency is decision time minus `speech_start`, in seconds.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def det_curve(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept and false-reject rates at every distinct threshold, from accepting nothing to everything.

    Returns:
        (fa (K,), fr (K,), thresholds (K,)); fa rises and fr falls along the arrays.
    """
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"need both classes, got {n_pos} directed and {n_neg} undirected")
    thr = np.unique(s)[::-1]  # descending
    acc = s[None, :] >= thr[:, None]  # (K, n)
    fa = (acc & ~y).sum(1) / n_neg
    fr = (~acc & y).sum(1) / n_pos
    return (np.concatenate([[0.0], fa]), np.concatenate([[1.0], fr]), np.concatenate([[np.inf], thr]))


def eer_from_curve(fa: Sequence[float], fr: Sequence[float]) -> float:
    """Equal error rate of a curve whose FA rises and FR falls: where they cross, interpolated linearly
    between the two points around the crossing."""
    fa, fr = np.asarray(fa, np.float64), np.asarray(fr, np.float64)
    order = np.lexsort((-fr, fa))
    fa, fr = fa[order], fr[order]
    d = fr - fa
    if d[0] <= 0:
        return float((fa[0] + fr[0]) / 2)
    for i in range(1, len(d)):
        if d[i] <= 0:
            w = d[i - 1] / (d[i - 1] - d[i])  # fraction of the way from point i-1 to point i
            return float(fa[i - 1] + w * (fa[i] - fa[i - 1]))
    return float((fa[-1] + fr[-1]) / 2)


def eer(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Equal error rate of utterance scores (0.0 for perfectly separated classes)."""
    fa, fr, _ = det_curve(scores, labels)
    return eer_from_curve(fa, fr)


def eer_threshold(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """A threshold at the equal-error point: the smallest max(FA, FR), then the smallest |FA - FR|."""
    fa, fr, thr = det_curve(scores, labels)
    i = int(np.lexsort((np.abs(fa - fr)[1:], np.maximum(fa, fr)[1:]))[0]) + 1  # never the accept-nothing point
    return float(thr[i])


def fa_fr(decisions: Sequence[bool], labels: Sequence[bool]) -> dict[str, float | int]:
    """False accepts and false rejects of binary decisions (True = directed)."""
    d, y = np.asarray(decisions, bool), np.asarray(labels, bool)
    n_fa, n_fr = int((d & ~y).sum()), int((~d & y).sum())
    n_neg, n_pos = int((~y).sum()), int(y.sum())
    return {"fa": n_fa, "fr": n_fr, "n_undirected": n_neg, "n_directed": n_pos,
            "fa_rate": n_fa / n_neg if n_neg else float("nan"), "fr_rate": n_fr / n_pos if n_pos else float("nan")}


def latency_stats(decided_at: Sequence[float], speech_start: Sequence[float]) -> dict[str, float]:
    """Median and 90th percentile (linear interpolation) of decision time minus speech start, s."""
    lat = np.asarray(decided_at, np.float64) - np.asarray(speech_start, np.float64)
    if not len(lat):
        return {"median_s": float("nan"), "p90_s": float("nan"), "mean_s": float("nan")}
    return {"median_s": float(np.median(lat)), "p90_s": float(np.percentile(lat, 90)), "mean_s": float(lat.mean())}


def latency_eer_curve(score_at: Callable[[float], Sequence[float]], labels: Sequence[bool],
                      delays_s: Sequence[float]) -> list[dict[str, float]]:
    """EER of the scores available `delay` seconds after speech start, for each delay.

    score_at(delay) gives one score per utterance: its detector's output at speech_start + delay
    (the decision-time output when the utterance has ended before then).
    """
    return [{"delay_s": float(d), "eer": eer(score_at(d), labels)} for d in delays_s]


def decision_curve(decisions: np.ndarray, decided_at: np.ndarray, labels: Sequence[bool],
                   speech_start: Sequence[float]) -> dict[str, np.ndarray | float]:
    """Errors and latencies of a family of decision systems, one row per setting (a threshold sweep).

    Args:
        decisions: (K, n) bool, decided_at: (K, n) s, for K settings and n utterances.
    Returns:
        fa (K,), fr (K,), median_s (K,), p90_s (K,), and eer: where FA and FR cross along the sweep.
    """
    y = np.asarray(labels, bool)
    d = np.asarray(decisions, bool)
    fa = (d & ~y).sum(1) / max(1, int((~y).sum()))
    fr = (~d & y).sum(1) / max(1, int(y.sum()))
    lat = np.asarray(decided_at, np.float64) - np.asarray(speech_start, np.float64)[None, :]
    return {"fa": fa, "fr": fr, "median_s": np.median(lat, axis=1), "p90_s": np.percentile(lat, 90, axis=1),
            "eer": eer_from_curve(fa, fr)}
