"""Voice-activity detection: silero-vad's ONNX model and a per-stream speech gate.

    from runtime.vad import VadModel
    vad = VadModel.from_entry(bundle_dir / entry["file"], entry, threads=1)   # shared, immutable
    stream = vad.create_stream(align=640)                              # one per audio stream
    for out in stream.accept_waveform(samples): ...                    # Start / Audio / End, in order
    stream.input_finished()

The model is silero-vad's (MIT, https://github.com/snakers4/silero-vad), the ONNX graph as its
PyPI wheel ships it. One call reads one window of `window_samples` (512 at 16 kHz, 32 ms)
preceded by the last `context_samples` (64) of the previous window, and a recurrent `state`
(2, 1, 128); it returns P(speech) for the window and the next state. `VadModel` holds the
session (shared by all streams, never mutated); the per-stream state (`state`, the context
samples, the samples of an incomplete window) lives in `VadStream`.

`VadGate` turns the probabilities into speech regions, a small state machine in the style of
silero's `VADIterator` (all durations converted to samples once, one `reset()`):

1. speech starts when windows have stayed at or above `threshold` (none below `neg_threshold`)
   for `min_speech_ms`; the start is the first of those windows;
2. speech ends at a window below `neg_threshold` once `min_silence_ms` have passed since the
   first window below `neg_threshold` that no window at or above `threshold` has followed (one
   in between does not restart the count); the end is that first window.

`VadStream` gates the audio of one stream for the ASR: non-speech is held back (at most what a
start can reach back for) and dropped. At a start it passes on the audio from `speech_pad_ms`
before the speech start (the pre-roll), rounded down to a multiple of `align` samples (the ASR's
encoder frame, so that its frame times stay stream times) and never reaching back into audio
already passed on; then every window until the end of speech, which therefore includes the
`min_silence_ms` of non-speech that ended it (the ASR's look-ahead and last tokens need it).
The pre-roll keeps the first phoneme and gives the ASR some lead-in, as in training (its
training utterances start with 0.2-1 s of silence); a longer one lets it make words of the
silence (300 ms is better than 1 s on dev: docs/vad.md).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort

from runtime.config import reject_unknown


class VadError(ValueError):
    """A VAD model file that is missing, corrupt or not a silero VAD graph."""


@dataclass(frozen=True)
class VadConfig:
    """The gate's thresholds and durations (bundle.json's `vad.policy`)."""

    # silero's thresholds; the durations chosen on dev (docs/vad.md)
    threshold: float = 0.5  # P(speech) at or above which a window is speech
    neg_threshold: float = 0.35  # ... below which it is non-speech (in between: no change)
    min_speech_ms: float = 96.0  # speech this long before a start is declared
    min_silence_ms: float = 480.0  # non-speech this long before an end is declared
    speech_pad_ms: float = 300.0  # the pre-roll: audio before the speech start that the ASR decodes too

    def __post_init__(self) -> None:
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            raise ValueError(f"need 0 < neg_threshold <= threshold < 1, got {self.neg_threshold}, {self.threshold}")
        if min(self.min_speech_ms, self.min_silence_ms, self.speech_pad_ms) < 0:
            raise ValueError("min_speech_ms, min_silence_ms and speech_pad_ms must be >= 0")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VadConfig":
        reject_unknown(cls, d, "VAD policy keys")
        return cls(**{k: float(v) for k, v in d.items()})


class VadModel:
    """silero-vad's ONNX session and its window geometry; shared by all streams, never mutated."""

    def __init__(self, path: str | Path, sample_rate: int = 16000, window_samples: int = 512,
                 context_samples: int = 64, config: VadConfig = VadConfig(), threads: int = 1,
                 sha256: str | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise VadError(f"{path}: VAD model missing")
        if sha256 is not None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != sha256:
                raise VadError(f"{path}: sha256 {digest[:12]}..., bundle.json says {sha256[:12]}... (corrupt or replaced)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # the wheel's graphs carry unused initializers ort warns about
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for unreadable graphs
            raise VadError(f"{path}: not a readable ONNX graph ({str(e).splitlines()[0][:200]})") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = [o.name for o in self.session.get_outputs()]
        if not {"input", "state"} <= set(inputs) or outputs[:2] != ["output", "stateN"]:
            raise VadError(f"{path}: not a silero VAD graph (inputs {sorted(inputs)}, outputs {outputs})")
        n_layers, _, hidden = inputs["state"].shape
        if not (isinstance(n_layers, int) and isinstance(hidden, int)):
            raise VadError(f"{path}: the state input has no fixed size: {inputs['state'].shape}")
        self.state_shape = (n_layers, 1, hidden)
        self._sr = np.array(sample_rate, np.int64) if "sr" in inputs else None
        self.path, self.sample_rate = path, int(sample_rate)
        self.window, self.context = int(window_samples), int(context_samples)
        self.config = config

    @classmethod
    def from_entry(cls, path: Path, entry: dict[str, Any], threads: int = 1,
                   config: VadConfig | None = None) -> "VadModel":
        """From bundle.json's `vad` entry; path: the graph its `file` names."""
        return cls(path, int(entry["sample_rate"]), int(entry["window_samples"]),
                   int(entry["context_samples"]), config or VadConfig.from_dict(entry.get("policy", {})),
                   threads, entry.get("sha256"))

    def init_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(recurrent state (2, 1, 128), context samples (context_samples,)) of a new stream."""
        return np.zeros(self.state_shape, np.float32), np.zeros(self.context, np.float32)

    def step(self, window: np.ndarray, state: tuple[np.ndarray, np.ndarray]) -> tuple[float, tuple[np.ndarray, np.ndarray]]:
        """One window (window_samples,) float32 -> (P(speech), the next state)."""
        h, context = state
        x = np.concatenate([context, window])[None]  # (1, context + window)
        feed = {"input": x, "state": h}
        if self._sr is not None:
            feed["sr"] = self._sr
        p, h = self.session.run(["output", "stateN"], feed)
        return float(p[0, 0]), (h, x[0, -self.context:])

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """P(speech) of each whole window of a signal (n,) from a fresh state: (n // window_samples,)."""
        state = self.init_state()
        x = np.asarray(samples, np.float32)
        out = np.empty(len(x) // self.window, np.float64)
        for i in range(len(out)):
            out[i], state = self.step(x[i * self.window:(i + 1) * self.window], state)
        return out

    def create_stream(self, align: int = 1, config: VadConfig | None = None) -> "VadStream":
        return VadStream(self, config or self.config, align)


class VadGate:
    """Speech on/off over the window probabilities (module docstring); positions in samples."""

    def __init__(self, config: VadConfig, sample_rate: int, window: int) -> None:
        self.cfg, self.window = config, window
        self.min_speech = math.ceil(config.min_speech_ms * sample_rate / 1000)
        self.min_silence = math.ceil(config.min_silence_ms * sample_rate / 1000)
        self.reset()

    def reset(self) -> None:
        self.speech = False
        self.position = 0  # samples seen: the next window starts here
        self.candidate: int | None = None  # outside speech: where the speech-like run began
        self.silent_from: int | None = None  # in speech: where the non-speech run began

    def step(self, p: float) -> dict[str, int] | None:
        """One window's P(speech); returns {"start": sample} or {"end": sample} when one is declared."""
        t, self.position = self.position, self.position + self.window
        c = self.cfg
        if not self.speech:
            if p < c.neg_threshold or (self.candidate is None and p < c.threshold):
                self.candidate = None
                return None
            if self.candidate is None:
                self.candidate = t
            if self.position - self.candidate < self.min_speech:
                return None
            self.speech, start, self.candidate = True, self.candidate, None
            return {"start": start}
        if p >= c.threshold:
            self.silent_from = None
        elif p < c.neg_threshold:
            if self.silent_from is None:
                self.silent_from = t
            if self.position - self.silent_from >= self.min_silence:
                self.speech, end, self.silent_from = False, self.silent_from, None
                return {"end": end}
        return None


class Start(NamedTuple):
    """Speech began at stream sample `speech_start`; `samples` is the audio from `audio_start` on
    (the pre-roll, then the windows up to the one that declared the start)."""

    speech_start: int
    audio_start: int
    samples: np.ndarray


class Audio(NamedTuple):
    """More audio of the current speech region, from stream sample `audio_start` on."""

    audio_start: int
    samples: np.ndarray


class End(NamedTuple):
    """Speech ended at stream sample `speech_end` (the audio passed on reaches past it by
    min_silence_ms: what it took to be sure)."""

    speech_end: int


class VadStream:
    """One stream through the gate: silero's state, the incomplete window, the held-back audio."""

    def __init__(self, model: VadModel, config: VadConfig, align: int = 1) -> None:
        self.model, self.align = model, max(1, int(align))
        self.gate = VadGate(config, model.sample_rate, model.window)
        self.pad = math.ceil(config.speech_pad_ms * model.sample_rate / 1000)
        # what a start can reach back for: its speech-like run, the pre-roll, the rounding (and a window of slack)
        self.max_held = self.gate.min_speech + 2 * model.window + self.pad + self.align
        self.reset()

    def reset(self) -> None:
        self.state = self.model.init_state()
        self.gate.reset()
        self._pending = np.zeros(0, np.float32)  # samples of the incomplete window
        self._held: list[np.ndarray] = []  # recent non-speech windows, oldest first
        self._held_start = 0  # stream sample of the first held sample
        self.passed_until = 0  # stream sample after the last one passed on

    @property
    def speech(self) -> bool:
        return self.gate.speech

    def accept_waveform(self, samples: np.ndarray) -> list[Start | Audio | End]:
        """Add (n,) float32 samples at the model's rate; returns what the gate passes on, in order."""
        x = np.concatenate([self._pending, np.asarray(samples, np.float32)])
        w, out = self.model.window, []
        n = len(x) // w * w
        for i in range(0, n, w):
            out += self._window(x[i:i + w])
        self._pending = x[n:]
        return _merge_audio(out)

    def input_finished(self) -> list[Start | Audio | End]:
        """The incomplete last window: passed on inside speech, dropped outside."""
        rest, self._pending = self._pending, np.zeros(0, np.float32)
        if self.gate.speech and len(rest):
            self.passed_until += len(rest)
            return [Audio(self.passed_until - len(rest), rest)]
        return []

    def _window(self, w: np.ndarray) -> list[Start | Audio | End]:
        t = self.gate.position
        was_speech = self.gate.speech
        p, self.state = self.model.step(w, self.state)
        event = self.gate.step(p)
        if event is not None and "start" in event:
            self._hold(w, t)
            return [self._start(event["start"])]
        if not was_speech:
            self._hold(w, t)
            return []
        self.passed_until = t + len(w)
        out: list[Start | Audio | End] = [Audio(t, w)]
        if event is not None:
            out.append(End(event["end"]))
        return out

    def _hold(self, w: np.ndarray, t: int) -> None:
        if not self._held:
            self._held_start = t
        self._held.append(w)
        while len(self._held) > 1 and self.gate.position - (self._held_start + len(self._held[0])) >= self.max_held:
            self._held_start += len(self._held.pop(0))

    def _start(self, speech_start: int) -> Start:
        """The pre-roll's first sample, aligned and never before what was passed on, and the audio from it."""
        a = self.align
        begin = max((speech_start - self.pad) // a * a, -(-self.passed_until // a) * a, -(-self._held_start // a) * a)
        held = np.concatenate(self._held)[begin - self._held_start:]
        self._held = []
        self.passed_until = self.gate.position
        return Start(speech_start, begin, held)


def _merge_audio(out: list[Start | Audio | End]) -> list[Start | Audio | End]:
    """Consecutive windows of speech as one Audio (fewer, larger pieces for the ASR; the same samples)."""
    merged: list[Start | Audio | End] = []
    for o in out:
        if isinstance(o, Audio) and merged and isinstance(merged[-1], Audio):
            merged[-1] = Audio(merged[-1].audio_start, np.concatenate([merged[-1].samples, o.samples]))
        else:
            merged.append(o)
    return merged
