"""From per-frame posteriors to decisions, errors and latencies; choosing the policy on dev.

A `Track` is one utterance (or one segment of a continuous recording) as a detector saw it: the
posterior of every encoder frame, the onset frame (where the runtime's decider starts: the later
of the ASR's first spoken token, bare word boundaries not counted, and the frame at which the
speech-onset gate `runtime.iqd_policy.OnsetGate` opens on the fbank frames; `onset_frame`), the endpoint (the ASR's last token + the endpointer's trailing silence, `runtime.endpoint.EndpointConfig`:
where the runtime forces a decision and where the cascade decides), `speech_start` and the label.

`sweep` runs the decision state machine (`runtime/iqd_policy.py`) for a family of policies at once:
on = theta + margin, off = theta - margin for every theta, with the policy's minimum durations
and smoothing. It is the vectorised twin of `runtime.iqd_policy.decide` (a test holds them equal).
The EER of a detector is where false accepts and false rejects cross along theta; its latency
is that of the decisions at the dev-chosen theta.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from runtime.detection_metrics import decision_curve, eer, fa_fr, latency_stats
from asr.model import SUBSAMPLING
from runtime.endpoint import EndpointConfig
from runtime.iqd_policy import DecisionPolicy, band_bins, frame_energy_db, gate_onset, smooth

TRAILING_SILENCE_S = EndpointConfig().trailing_silence_ms / 1000  # the runtime endpointer's
THETAS = np.round(np.arange(0.02, 0.99, 0.02), 2)


@dataclass
class Track:
    p: np.ndarray  # (T,) P(directed) per encoder frame
    onset: int  # first frame the decider sees
    endpoint_s: float  # forced decision time (s)
    speech_start: float  # s
    directed: bool
    frame_s: float  # seconds per encoder frame


def onset_and_endpoint(token_frames: Sequence[int], speech_start: float, speech_end: float,
                       frame_s: float, tokens: Sequence[int] = (), silent: set[int] = frozenset()) -> tuple[int, float]:
    """The ASR's onset (its first token that is not silent, e.g. not a bare word boundary; the speech
    start's frame when it heard nothing) and endpoint (last token + trailing silence)."""
    spoken = [f for f, t in zip(token_frames, tokens or [None] * len(token_frames)) if t not in silent]
    if spoken:
        return int(spoken[0]), (int(token_frames[-1]) + 1) * frame_s + TRAILING_SILENCE_S
    return int(speech_start / frame_s), speech_end + TRAILING_SILENCE_S


def onset_frame(token_onset: int, fbank: np.ndarray | None, n_frames: int, policy: DecisionPolicy,
                frame_s: float) -> int:
    """Where the runtime's decider starts: the later of the ASR's onset (`onset_and_endpoint`) and
    the frame at which the policy's speech-onset gate opens over fbank (T, n_mels), the frames of
    the utterance or segment from its first encoder frame on (n_frames of them; n_frames when the
    gate never opens, so that the decision is forced at the endpoint)."""
    if fbank is None or policy.onset_min_ms <= 0:
        return token_onset
    energy = frame_energy_db(fbank, SUBSAMPLING, n_frames, band_bins(policy.onset_band_hz))  # the ASR's FbankConfig()
    return max(token_onset, gate_onset(energy, policy, frame_s))


def _smoothed(track: Track, alpha: float) -> np.ndarray:
    """The smoothed posterior from the onset up to the endpoint (at least one value)."""
    n = min(len(track.p), int(np.floor(track.endpoint_s / track.frame_s + 1e-9)))
    return smooth(track.p[track.onset : n], alpha)  # empty when no frame lies between onset and endpoint


def sweep(tracks: Sequence[Track], policy: DecisionPolicy, thetas: np.ndarray = THETAS,
          margin: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decisions (K, n) bool, decision times (K, n) s and the smoothed score at the decision (K, n)
    for on = theta + margin, off = theta - margin (margin default: the policy's half gap)."""
    if margin is None:
        margin = (policy.on_threshold - policy.off_threshold) / 2
    on = np.clip(thetas + margin, 0.0, 1.0)[:, None]
    off = np.clip(thetas - margin, 0.0, 1.0)[:, None]
    k, n = len(thetas), len(tracks)
    dec, at, score = np.zeros((k, n), bool), np.zeros((k, n)), np.zeros((k, n))
    for j, tr in enumerate(tracks):
        frame_ms = tr.frame_s * 1000
        s = _smoothed(tr, policy.alpha(frame_ms))  # (T',)
        t_len = len(s)
        if not t_len:  # as the runtime's decider without an onset: undirected at the endpoint, score 0
            at[:, j] = tr.endpoint_s
            continue
        n_on, n_off = policy.frames(policy.min_on_ms, frame_ms), policy.frames(policy.min_off_ms, frame_ms)
        first_on = _first_run(s[None, :] > on, n_on)  # (K,) index of the frame completing the run, or t_len
        first_off = _first_run(s[None, :] < off, n_off)
        fired = np.minimum(first_on, first_off)
        forced = fired >= t_len
        directed = np.where(forced, s[-1] >= (on[:, 0] + off[:, 0]) / 2, first_on <= first_off)
        dec[:, j] = directed
        at[:, j] = np.where(forced, tr.endpoint_s, np.round((tr.onset + fired + 1) * tr.frame_s, 6))
        score[:, j] = s[np.minimum(fired, t_len - 1)]
    return dec, at, score


def _first_run(cond: np.ndarray, n: int) -> np.ndarray:
    """(K, T) bool -> (K,) the first t where cond held for the n frames ending at t; T where never."""
    k, t = cond.shape
    c = np.concatenate([np.zeros((k, 1), int), np.cumsum(cond, axis=1)], axis=1)  # (K, T+1)
    if n > t:
        return np.full(k, t)
    window = c[:, n:] - c[:, :-n]  # (K, T-n+1): frames n-1 .. T-1
    hit = window == n
    return np.where(hit.any(1), hit.argmax(1) + n - 1, t)


def final_scores(tracks: Sequence[Track], policy: DecisionPolicy) -> np.ndarray:
    """The smoothed posterior at the endpoint: an offline score per utterance."""
    return np.array([(list(_smoothed(tr, policy.alpha(tr.frame_s * 1000))) or [0.0])[-1] for tr in tracks])


def score_at_delay(tracks: Sequence[Track], policy: DecisionPolicy, delay_s: float) -> np.ndarray:
    """The smoothed posterior delay_s after speech start (0.5 before the onset; the endpoint's after it)."""
    out = []
    for tr in tracks:
        s = _smoothed(tr, policy.alpha(tr.frame_s * 1000))
        t = int(np.floor((tr.speech_start + delay_s) / tr.frame_s + 1e-9)) - 1 - tr.onset
        out.append(0.5 if t < 0 else s[min(t, len(s) - 1)] if len(s) else 0.0)
    return np.array(out)


def evaluate_policy(tracks: Sequence[Track], policy: DecisionPolicy, theta: float) -> dict:
    """EER along the theta sweep, and FA/FR and latency at the policy's own theta."""
    labels = [t.directed for t in tracks]
    starts = [t.speech_start for t in tracks]
    margin = (policy.on_threshold - policy.off_threshold) / 2
    dec, at, _ = sweep(tracks, policy, THETAS, margin)
    curve = decision_curve(dec, at, labels, starts)
    d1, at1, _ = sweep(tracks, policy, np.array([theta]), margin)
    return {"eer": curve["eer"], **fa_fr(d1[0], labels), **latency_stats(at1[0], starts),
            "offline_eer": eer(final_scores(tracks, policy), labels),
            "curve": {"theta": THETAS.tolist(), "fa": curve["fa"].tolist(), "fr": curve["fr"].tolist(),
                      "median_s": curve["median_s"].tolist()}}


POLICY_GRID = {"margin": (0.0, 0.15, 0.3), "min_ms": (40.0, 200.0, 400.0, 800.0), "smoothing_ms": (0.0, 200.0)}


def choose_policy(tracks: Sequence[Track], max_median_latency_s: float = 1.4,
                  base: DecisionPolicy = DecisionPolicy()) -> tuple[DecisionPolicy, float, dict]:
    """The policy and theta for dev: over POLICY_GRID, theta at the equal-error point of each; the
    lowest EER among those with median latency within the budget (the lowest EER overall if none is).
    The speech-onset gate's settings are those of `base` (the tracks' onsets were found with them).

    Returns (policy with on/off at the chosen theta, theta, a table of every candidate)."""
    labels = [t.directed for t in tracks]
    starts = [t.speech_start for t in tracks]
    rows = []
    for m in POLICY_GRID["margin"]:
        for ms in POLICY_GRID["min_ms"]:
            for sm in POLICY_GRID["smoothing_ms"]:
                pol = dataclasses.replace(base, on_threshold=0.5 + m, off_threshold=0.5 - m, min_on_ms=ms,
                                          min_off_ms=ms, smoothing_ms=sm)
                dec, at, _ = sweep(tracks, pol, THETAS, m)
                c = decision_curve(dec, at, labels, starts)
                i = int(np.argmin(np.maximum(c["fa"], c["fr"])))
                rows.append({"margin": m, "min_ms": ms, "smoothing_ms": sm, "theta": float(THETAS[i]),
                             "eer": c["eer"], "fa": float(c["fa"][i]), "fr": float(c["fr"][i]),
                             "median_s": float(c["median_s"][i])})
    ok = [r for r in rows if r["median_s"] <= max_median_latency_s] or rows
    best = min(ok, key=lambda r: (r["eer"], r["median_s"]))
    th, m = best["theta"], best["margin"]
    policy = dataclasses.replace(base, on_threshold=min(1.0, th + m), off_threshold=max(0.0, th - m),
                                 min_on_ms=best["min_ms"], min_off_ms=best["min_ms"], smoothing_ms=best["smoothing_ms"])
    return policy, th, {"chosen": best, "candidates": rows, "max_median_latency_s": max_median_latency_s}


def with_theta(policy: DecisionPolicy, theta: float) -> DecisionPolicy:
    m = (policy.on_threshold - policy.off_threshold) / 2
    return dataclasses.replace(policy, on_threshold=min(1.0, theta + m), off_threshold=max(0.0, theta - m))
