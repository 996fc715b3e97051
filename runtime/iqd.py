"""Intended-query detection in the runtime: the exported IQ joint network and the decision policy.

    from runtime.iqd import IqdModel
    iqd = IqdModel.from_dir("exp/iqd-e2e-export")        # shared, immutable
    stream = iqd.create_stream(asr_model)                # one per ASR segment (runtime.asr.TransducerModel)
    stream.accept(chunk)                                 # each decoded chunk (runtime.asr.ChunkResult)
    stream.force(t_s)                                    # at the endpoint
    stream.result()  # {"probability": 0.94, "decision": "directed", "decided_at": 0.96}

The graph (`iqd.onnx`, see `iqd/export.py`) is one encoder frame per call with explicit state:
`encoder_out` (N, J) the ASR's projected encoder frame, `tokens` (N, K) int64 the tokens the
search emitted at that frame (0 = none), `token_state` and `frame_state` (1, N, H) the GRU
states -> `probability` (N,) P(directed) and the next states. Sizes come from iqd.json.

The decision policy (`DecisionPolicy`, `Decider`) is a small state machine over the posterior:

1. it starts at the speech onset: the first frame at which the ASR has emitted a spoken token in
   the segment (bare word boundaries not counted) *and* the speech-onset gate (`OnsetGate`) is
   open. The gate exists because a character ASR emits characters in the background noise of a
   pause, which alone would start the decider seconds before anyone speaks. When a voice-activity
   detector gates the stream (`runtime/vad.py`), its speech start is the gate instead
   (`IqdStream.speech_from`): open from that frame on;
2. the posterior is smoothed by an exponential moving average with time constant `smoothing_ms`,
   starting from the onset frame's posterior;
3. "directed" once the smoothed posterior has stayed above `on_threshold` for `min_on_ms`;
   "undirected" once it has stayed below `off_threshold` for `min_off_ms`; the first rule to
   fire decides and the decision is final for the segment;
4. at the endpoint an undecided segment is forced: directed iff the smoothed posterior is at
   least the midpoint of the two thresholds.

`decided_at` is the audio time (s) of the end of the frame that decided. numpy only: no torch.

The label history read as text (`HistoryText`, optional, iqd.json's `text` entry): the pieces
the search emitted from the decider's onset on, joined into words, scored by a logistic
regression on hashed word, word-bigram and character-trigram counts (`text_features`, the
cascade's classifier, trained on many more sentences than the joint network sees). Its logit is
fused with the joint network's, `p = sigmoid((1 - w) logit(p_joint) + w text_logit)`, w chosen on
dev (`iqd/fusion.py`); before any text the text logit is 0. Tokens before the onset are left out:
in a conversation they are the characters the ASR made of the pause's noise.

The speech-onset gate (`OnsetGate`, settings in the same `DecisionPolicy`) is an energy detector
over the fbank frames the ASR already computed: per encoder frame, the log energy of its four
fbank frames in the mel bands centred below `onset_band_hz` (`frame_energy_db`; most of voiced
speech's energy, little of broadband noise's, which would otherwise hide quiet speech); a noise floor that starts at the segment's first frame, falls
at once to any lower energy and rises by at most `noise_floor_rise_db_per_s`; the gate opens
(once per segment) when the energy has stayed more than `onset_margin_db` above the floor for
`onset_min_ms`. `onset_min_ms` = 0 turns the gate off (the decider then starts at the first
spoken token). Offline evaluation (`iqd.evaluate`, `iqd.streams`) runs this same class.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from runtime.features import FbankConfig, band_centres_hz

if TYPE_CHECKING:
    from runtime.asr import ChunkResult, TransducerModel

SCHEMA_VERSION = 1
DIRECTED, UNDIRECTED = "directed", "undirected"
ONSET_MARGIN_DB, ONSET_MIN_MS, NOISE_FLOOR_RISE_DB_PER_S = 6.0, 80.0, 3.0  # chosen on dev, docs/iqd.md
ONSET_BAND_HZ = 2000.0


@dataclass(frozen=True)
class DecisionPolicy:
    """Thresholds and minimum durations of the decision state machine (chosen on dev, stored in iqd.json)."""

    on_threshold: float = 0.5
    off_threshold: float = 0.5
    min_on_ms: float = 200.0
    min_off_ms: float = 200.0
    smoothing_ms: float = 160.0  # time constant of the moving average; 0 = no smoothing
    # The speech-onset gate (`OnsetGate`); defaults chosen on dev (docs/iqd.md), applied to
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
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown decision policy keys: {sorted(unknown)}")
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


def text_features(text: str, n_hash: int) -> list[int]:
    """Hashed feature ids of a transcript: words, word bigrams (with sentence edges), character
    trigrams (with word edges). The cascade's classifier and `HistoryText` share them."""
    words = text.split()
    feats = [f"w:{w}" for w in words] + [f"b:{a}_{b}" for a, b in zip(["<s>"] + words, words + ["</s>"])]
    padded = f" {text} "
    feats += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
    return [zlib.crc32(f.encode()) % n_hash for f in feats]


def pieces_text(pieces: Sequence[str]) -> str:
    """Token pieces ("\u2581" the word boundary) as the words they spell, single-spaced."""
    return " ".join("".join(pieces).replace("\u2581", " ").split())


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


class HistoryText:
    """The label history's text, scored and fused with the joint network's posterior (module docstring)."""

    def __init__(self, weights: np.ndarray, bias: float, weight: float) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"text fusion weight {weight} outside [0, 1]")
        self.weights = np.asarray(weights, np.float32)
        self.bias, self.weight = float(bias), float(weight)
        self.n_hash = len(self.weights)

    @classmethod
    def from_file(cls, path: str | Path, weight: float) -> "HistoryText":
        from runtime.bundle import load_npz

        z = load_npz(path, ("weights", "bias"))
        return cls(z["weights"], float(z["bias"]), weight)

    def save(self, path: str | Path) -> None:
        np.savez(path, weights=self.weights, bias=np.float32(self.bias))

    def logit(self, text: str) -> float:
        """The classifier's logit of P(directed | text); 0 (no evidence) for no text."""
        if not text:
            return 0.0
        return float(self.weights[text_features(text, self.n_hash)].sum(dtype=np.float64) + self.bias)

    def fuse(self, p: float, text_logit: float) -> float:
        z = (1 - self.weight) * _logit(p) + self.weight * text_logit
        return 1.0 / (1.0 + math.exp(-z))

    def frame_logits(self, tokens: Sequence[int], frames: Sequence[int], onset: int, n_frames: int,
                     pieces: Sequence[str]) -> np.ndarray:
        """Offline: the text logit at each of n_frames frames, reading the tokens emitted at frames
        >= onset (frame f's value includes its own tokens), as `IqdStream` computes it live."""
        out = np.zeros(n_frames, np.float64)
        text: list[str] = []
        last, t0 = 0.0, onset
        for tok, f in sorted(((t, f) for t, f in zip(tokens, frames) if f >= onset), key=lambda x: x[1]):
            if f >= n_frames:
                break
            out[t0:f] = last
            text.append(pieces[tok])
            last, t0 = self.logit(pieces_text(text)), f
        out[t0:] = last
        return out

    def fuse_track(self, p: np.ndarray, text_logits: np.ndarray) -> np.ndarray:
        """fuse() over a whole track (T,) of posteriors and text logits."""
        q = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
        z = (1 - self.weight) * np.log(q / (1 - q)) + self.weight * text_logits[: len(q)]
        return 1.0 / (1.0 + np.exp(-z))


class IqdState(NamedTuple):
    """The joint network's step state, an array per field (numpy here, torch in iqd/model.py); the
    names are the graph's input names, its outputs `next_<name>` (`IQD_OUTPUTS`).

    token_state: (1, N, token_hidden) the GRU over emitted tokens; frame_state: (1, N, frame_hidden).
    """

    token_state: Any
    frame_state: Any


IQD_INPUTS = ("encoder_out", "tokens", *IqdState._fields)
IQD_OUTPUTS = ("probability", *(f"next_{f}" for f in IqdState._fields))


class IqdModel:
    """The exported IQ joint network (one ONNX session) and its policy; shared by all streams."""

    def __init__(self, folder: str | Path, precision: str = "int8", threads: int = 1) -> None:
        """A missing or corrupt file is a `runtime.bundle.BundleError` naming it."""
        from runtime.bundle import onnx_session, read_json

        self.folder = Path(folder)
        f = self.folder / "iqd.json"
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: export a detector with `heed export iqd`")
        m = read_json(f)
        if m.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{f}: schema_version {m.get('schema_version')}, this runtime reads {SCHEMA_VERSION}")
        if precision not in m["files"]:
            precision = "fp32"
        self.manifest = m
        self.policy = DecisionPolicy.from_dict(m["policy"])
        self.n_token_slots: int = m["n_token_slots"]
        if set(m["state"]) != set(IqdState._fields):
            raise ValueError(f"{f}: state {sorted(m['state'])}, this runtime steps {list(IqdState._fields)}")
        self.state_shapes: dict[str, list[int]] = m["state"]
        self.enc_dim: int = m["enc_dim"]
        self.text: HistoryText | None = None
        if m.get("text"):
            self.text = HistoryText.from_file(self.folder / m["text"]["file"], m["text"]["weight"])
        self.session = onnx_session(self.folder / m["files"][precision], threads)

    @classmethod
    def from_dir(cls, folder: str | Path, precision: str = "int8", threads: int = 1) -> "IqdModel":
        return cls(folder, precision, threads)

    def init_state(self) -> IqdState:
        return IqdState(*(np.zeros(self.state_shapes[name], np.float32) for name in IqdState._fields))

    def step(self, enc: np.ndarray, tokens: Sequence[int], state: IqdState) -> tuple[float, IqdState]:
        """One encoder frame enc (J,) and the tokens emitted at it -> (P(directed), next state)."""
        tok = np.zeros((1, self.n_token_slots), np.int64)
        kept = list(tokens)[-self.n_token_slots :]  # more than K tokens on one frame: the last K
        tok[0, : len(kept)] = kept
        p, *next_state = self.session.run(list(IQD_OUTPUTS), {"encoder_out": enc[None].astype(np.float32, copy=False),
                                                              "tokens": tok, **state._asdict()})
        return float(p[0]), IqdState(*next_state)

    def create_stream(self, asr: "TransducerModel", policy: DecisionPolicy | None = None) -> "IqdStream":
        """A stream over the chunks of `asr`: its frame duration, its silent tokens (a bare word
        boundary, which a character model may emit in silence, does not mark the speech onset),
        its features (the gate's bands) and its token pieces (the history read as text)."""
        return IqdStream(self, asr.frame_s, policy or self.policy, asr.silent_tokens, asr.fbank, asr.tokens)


class IqdStream:
    """One segment: the network's state, the onset (spoken token and gate) and the decider."""

    def __init__(self, model: IqdModel, frame_s: float, policy: DecisionPolicy,
                 silent_tokens: frozenset[int] = frozenset(), fbank_cfg: FbankConfig = FbankConfig(),
                 pieces: Sequence[str] | None = None) -> None:
        if model.text is not None and pieces is None:
            raise ValueError(f"{model.folder}: this detector reads the label history as text; "
                             "its stream needs the ASR's token pieces (pieces=)")
        self.model, self.frame_s, self.silent = model, frame_s, frozenset(silent_tokens)
        self.pieces = list(pieces) if pieces is not None else None
        self.decider = Decider(policy, frame_s * 1000)
        self.gate = OnsetGate(policy, frame_s * 1000)
        self.n_band_bins = band_bins(policy.onset_band_hz, fbank_cfg)
        self.reset()

    def reset(self) -> None:
        """A new segment: the network's state, the text read, the gate (noise floor included) and the decider."""
        self.state = self.model.init_state()
        self.decider.reset()
        self.gate.reset()
        self.probability: float | None = None  # the latest posterior (fused with the text's when read)
        self.text: list[str] = []  # pieces emitted from the onset on (HistoryText)
        self.text_logit = 0.0
        self.spoken = False  # a spoken token has been emitted in the segment
        self.onset = False  # spoken and the gate open: the decider runs
        self.speech_frame: int | None = None  # the VAD's speech start, when a VAD gates the stream

    def speech_from(self, frame: int) -> None:
        """The voice-activity detector's speech start (stream encoder frame): the onset's gate is
        then open from that frame on, in place of the energy gate (`OnsetGate`). Set per segment."""
        self.speech_frame = int(frame)

    def accept(self, chunk: "ChunkResult") -> None:
        """One decoded chunk of the ASR: its encoder frames (frame i at stream frame
        chunk.first_frame + i), the tokens the search emitted at each and its fbank frames (the
        gate's; required unless the policy has no gate, onset_min_ms = 0, or `speech_from` set the
        VAD's start)."""
        enc, first_frame, fbank = chunk.encoder_out, chunk.first_frame, chunk.fbank
        energy_gate = self.gate.enabled and self.speech_frame is None
        if energy_gate and fbank is None:
            raise ValueError("the policy's speech-onset gate needs the chunk's fbank frames")
        energy = (frame_energy_db(fbank, len(fbank) // max(1, len(enc)), len(enc), self.n_band_bins)
                  if energy_gate else None)
        for i in range(len(enc)):
            tokens = chunk.tokens_by_frame[i]
            self.probability, self.state = self.model.step(enc[i], tokens, self.state)
            self.spoken = self.spoken or any(t not in self.silent for t in tokens)
            if energy is not None:
                self.gate.step(energy[i], first_frame + i)
            gate_open = self.gate.open if self.speech_frame is None else first_frame + i >= self.speech_frame
            self.onset = self.spoken and gate_open
            if self.onset and self.model.text is not None:
                if tokens:
                    self.text += [self.pieces[t] for t in tokens]
                    self.text_logit = self.model.text.logit(pieces_text(self.text))
                self.probability = self.model.text.fuse(self.probability, self.text_logit)
            if self.onset:
                self.decider.step(self.probability, round((first_frame + i + 1) * self.frame_s, 3))

    def force(self, t_s: float) -> None:
        self.decider.force(round(t_s, 3))

    def result(self) -> dict[str, Any]:
        d = self.decider
        p = d.smoothed if d.smoothed is not None else (self.probability if self.probability is not None else 0.0)
        return {"probability": round(float(p), 3), "decision": d.decision, "decided_at": d.decided_at}
