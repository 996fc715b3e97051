"""The intended-query detector's decision policy: when the runtime says "directed" or "undirected".

`DecisionPolicy` holds the settings (chosen on dev, stored in iqd.json); `Decider` is the state
machine over one segment's posterior, frame by frame:

1. it starts at the speech onset: the first frame at which the ASR has emitted a spoken token in
   the segment (bare word boundaries not counted) *and* the speech-onset gate (`OnsetGate`) is
   open. The gate exists because a character ASR emits characters in the background noise of a
   pause, which alone would start the decider seconds before anyone speaks. When a voice-activity
   detector gates the stream (`runtime/vad.py`), its speech start is the gate instead
   (`runtime.iqd.IqdStream.speech_from`): open from that frame on;
2. the posterior is smoothed by an exponential moving average with time constant `smoothing_ms`,
   starting from the onset frame's posterior;
3. "directed" once the smoothed posterior has stayed above `on_threshold` for `min_on_ms`;
   "undirected" once it has stayed below `off_threshold` for `min_off_ms`; the first rule to
   fire decides and the decision is final for the segment;
4. at the endpoint an undecided segment is forced: directed iff the smoothed posterior is at
   least the midpoint of the two thresholds.

`decided_at` is the audio time (s) of the end of the frame that decided.

The speech-onset gate (`OnsetGate`, settings in the same `DecisionPolicy`) is an energy detector
over the fbank frames the ASR already computed: per encoder frame, the log energy of its fbank
frames (the ASR's subsampling: 4) in the mel bands centred below `onset_band_hz`
(`frame_energy_db`; most of voiced speech's energy, little of broadband noise's, which would
otherwise hide quiet speech); a noise floor that starts at the segment's first frame, falls at once
to any lower energy and rises by at most `noise_floor_rise_db_per_s`; the gate opens (once per
segment) when the energy has stayed more than `onset_margin_db` above the floor for
`onset_min_ms`. `onset_min_ms` = 0 turns the gate off (the decider then starts at the first
spoken token). The offline evaluation (`iqd/evaluate.py`, `iqd/streams.py`) runs these same
classes; `decide` is the whole state machine over a track (`iqd.evaluate.sweep` its vectorised
twin). numpy only: no torch.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from runtime.features import FbankConfig, band_centres_hz
from runtime.config import reject_unknown

DIRECTED, UNDIRECTED = "directed", "undirected"
ONSET_MARGIN_DB, ONSET_MIN_MS, NOISE_FLOOR_RISE_DB_PER_S = 6.0, 80.0, 3.0  # chosen on dev, docs/history/iqd.md
ONSET_BAND_HZ = 2000.0


@dataclass(frozen=True)
class DecisionPolicy:
    """Thresholds and minimum durations of the decision state machine (chosen on dev, stored in iqd.json)."""

    on_threshold: float = 0.5
    off_threshold: float = 0.5
    min_on_ms: float = 200.0
    min_off_ms: float = 200.0
    smoothing_ms: float = 160.0  # time constant of the moving average; 0 = no smoothing
    # The speech-onset gate (`OnsetGate`); defaults chosen on dev (docs/history/iqd.md), applied to
    # policies saved before the gate existed. onset_min_ms = 0: no gate.
    onset_margin_db: float = ONSET_MARGIN_DB  # speech: log energy this far above the noise floor
    onset_min_ms: float = ONSET_MIN_MS  # ... for this long
    noise_floor_rise_db_per_s: float = NOISE_FLOOR_RISE_DB_PER_S  # how fast the floor follows rising energy
    onset_band_hz: float = ONSET_BAND_HZ  # the energy of the mel bands centred below this (0: all bands)

    def __post_init__(self) -> None:
        if self.off_threshold > self.on_threshold:
            raise ValueError(f"off_threshold {self.off_threshold} above on_threshold {self.on_threshold}")
        if min(self.min_on_ms, self.min_off_ms, self.smoothing_ms, self.onset_min_ms) < 0:
            raise ValueError("durations must be >= 0 ms")
        if min(self.onset_margin_db, self.noise_floor_rise_db_per_s, self.onset_band_hz) < 0:
            raise ValueError("onset_margin_db, noise_floor_rise_db_per_s and onset_band_hz must be >= 0")

    @property
    def forced_threshold(self) -> float:
        return (self.on_threshold + self.off_threshold) / 2

    def alpha(self, frame_ms: float) -> float:
        """Weight of the previous smoothed value per frame."""
        return math.exp(-frame_ms / self.smoothing_ms) if self.smoothing_ms > 0 else 0.0

    def frames(self, ms: float, frame_ms: float) -> int:
        """A minimum duration in frames (at least one frame)."""
        return max(1, math.ceil(ms / frame_ms - 1e-9))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecisionPolicy":
        """Rebuild from `to_dict()`; an unknown key is an error. A policy saved before the speech-onset
        gate existed (checkpoints, iqd.json) has no onset_* keys and gets the gate's defaults."""
        reject_unknown(cls, d, "decision policy keys")
        return cls(**{k: float(v) for k, v in d.items()})


def smooth(p: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average of a posterior track, starting at p[0]. p: (T,) -> (T,)."""
    out = np.empty(len(p), np.float64)
    s = float(p[0]) if len(p) else 0.0
    for t, x in enumerate(p):
        s = alpha * s + (1 - alpha) * float(x)
        out[t] = s
    return out


def band_bins(band_hz: float, fbank_cfg: FbankConfig = FbankConfig()) -> int:
    """How many of the fbank's mel bands are centred below band_hz (all of them for band_hz = 0)."""
    if band_hz <= 0:
        return fbank_cfg.n_mels
    return max(1, int((band_centres_hz(fbank_cfg) < band_hz).sum()))


def frame_energy_db(fbank: np.ndarray, sub: int, n_frames: int | None = None, n_bins: int | None = None) -> np.ndarray:
    """Log energy (dB) of each encoder frame: the mean over its `sub` fbank frames of
    10 log10(sum of the energies of the first n_bins mel bands, default all). fbank: (T, n_mels)
    log-mel (natural log) -> (n_frames,), default T // sub; frames past the end of fbank repeat
    its last frame (as the ASR pads)."""
    if n_frames is None:
        n_frames = len(fbank) // sub
    if not len(fbank):
        return np.zeros(n_frames)
    x = np.asarray(fbank, np.float64)[:, :n_bins]
    m = x.max(axis=1, keepdims=True)
    e = (10 / math.log(10)) * (m[:, 0] + np.log(np.exp(x - m).sum(axis=1)))  # (T,) dB, a stable logsumexp
    idx = np.minimum(np.arange(n_frames * sub), len(e) - 1)
    return e[idx].reshape(n_frames, sub).mean(axis=1)


class OnsetGate:
    """The speech-onset gate of one segment (module docstring), one encoder frame at a time.

    State: `floor_db` (None before the first frame), `run` (frames in a row above floor + margin),
    `open` and `opened_at` (the stream frame index at which it opened)."""

    def __init__(self, policy: DecisionPolicy, frame_ms: float) -> None:
        self.margin_db = policy.onset_margin_db
        self.rise_db = policy.noise_floor_rise_db_per_s * frame_ms / 1000  # per frame
        self.n_min = policy.frames(policy.onset_min_ms, frame_ms) if policy.onset_min_ms > 0 else 0
        self.reset()

    @property
    def enabled(self) -> bool:
        return self.n_min > 0

    def reset(self) -> None:
        self.floor_db: float | None = None
        self.run = 0
        self.open = not self.enabled
        self.opened_at: int | None = None

    def step(self, energy_db: float, frame: int) -> bool:
        """One frame's energy; frame: its index (recorded when the gate opens). Returns `open`."""
        if self.open:
            return True
        e = float(energy_db)
        self.floor_db = e if self.floor_db is None else min(e, self.floor_db + self.rise_db)
        self.run = self.run + 1 if e > self.floor_db + self.margin_db else 0
        if self.run >= self.n_min:
            self.open, self.opened_at = True, frame
        return self.open


def gate_onset(energy_db: np.ndarray, policy: DecisionPolicy, frame_s: float) -> int:
    """The frame at which the gate opens over a segment's energies (n,); 0 without a gate, n if never."""
    g = OnsetGate(policy, frame_s * 1000)
    if not g.enabled:
        return 0
    for t, e in enumerate(energy_db):
        if g.step(e, t):
            return t
    return len(energy_db)


class Decider:
    """The decision state machine of one segment (see the module docstring); frame by frame."""

    def __init__(self, policy: DecisionPolicy, frame_ms: float) -> None:
        self.policy, self.frame_ms = policy, frame_ms
        self.alpha = policy.alpha(frame_ms)
        self.n_on, self.n_off = policy.frames(policy.min_on_ms, frame_ms), policy.frames(policy.min_off_ms, frame_ms)
        self.reset()

    def reset(self) -> None:
        self.smoothed: float | None = None
        self.decision: str | None = None
        self.decided_at: float | None = None
        self._above = self._below = 0

    def step(self, p: float, t_end_s: float) -> str | None:
        """One frame's posterior (frames from the onset on); t_end_s: audio time of the frame's end."""
        self.smoothed = float(p) if self.smoothed is None else self.alpha * self.smoothed + (1 - self.alpha) * float(p)
        if self.decision is not None:
            return self.decision
        pol = self.policy
        self._above = self._above + 1 if self.smoothed > pol.on_threshold else 0
        self._below = self._below + 1 if self.smoothed < pol.off_threshold else 0
        if self._above >= self.n_on:
            self.decision, self.decided_at = DIRECTED, t_end_s
        elif self._below >= self.n_off:
            self.decision, self.decided_at = UNDIRECTED, t_end_s
        return self.decision

    def force(self, t_s: float) -> str:
        """The endpoint: decide now if undecided (no onset at all: undirected)."""
        if self.decision is None:
            directed = self.smoothed is not None and self.smoothed >= self.policy.forced_threshold
            self.decision, self.decided_at = (DIRECTED if directed else UNDIRECTED), t_s
        return self.decision


def decide(p: np.ndarray, policy: DecisionPolicy, frame_s: float, onset: int, endpoint_s: float) -> tuple[bool, float, float]:
    """The state machine over one segment's posterior track p (T,) from frame `onset` on, forced at
    `endpoint_s`. Returns (directed, decided_at in s, the smoothed posterior when it decided)."""
    d = Decider(policy, frame_s * 1000)
    for t in range(onset, len(p)):
        if (t + 1) * frame_s > endpoint_s + 1e-9:
            break
        if d.step(float(p[t]), round((t + 1) * frame_s, 6)):
            return d.decision == DIRECTED, d.decided_at, d.smoothed
    d.force(endpoint_s)
    return d.decision == DIRECTED, d.decided_at, d.smoothed if d.smoothed is not None else 0.0
