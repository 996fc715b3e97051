"""Partials that hear people: Whisper's decoder over the streaming student's states (issue 25).

The student (`asr/student.py`, exported by `heed export student`) is Whisper tiny.en's encoder
made streaming: every 320 ms chunk of a segment gives its frames' cross-attention keys/values,
computed once and kept. Every `update_chunks` chunks the second pass's own decoder
(`runtime.whisper.SecondPass`: same graph, vocabulary, suppression and guards) reads the
segment so far, and a commit policy decides which leading words will not change:

    partials = Partials(SecondPass.from_dir("models/default/whisper"), "models/default/student")
    stream = partials.stream()
    for block in blocks:                      # float32 at 16 kHz, any block size
        for event in stream.accept_waveform(block):
            event.text, event.committed       # PartialEvent: spoken form; leading words that will not change
                                              # SegmentResult: a segment's last hypothesis
    stream.input_finished()                   # ends the open segment

With a VAD (`Partials(..., vad=VadModel)`) only speech is decoded and segments end where the
gate ends speech; without one the caller ends them (`end_segment`), and every segment ends by
28 s (the student has 1,500 positions; each segment restarts at 0).

One update costs one batched decoder call plus a few steps (`PartialDecoder.update`): the
previous hypothesis is fed back in one call, kept up to its first token the decoder no longer
predicts, and greedy search continues from there. Committed words (`LocalAgreement`: the
longest common prefix of the last two hypotheses, cut back to whole words) are forced into
every later update, so they never change within the segment; the second pass may still revise
them in the final.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.config import reject_unknown
from runtime.whisper import HOP, N_FFT, SAMPLE_RATE, SecondPass, hann_window, to_spoken

STATE_NAMES = ("mel_max", "mel_cache", "conv_cache", "key_cache", "value_cache", "offset")
LOG_FLOOR = -10.0  # log10 of the power clamp, Whisper's 1e-10
SCHEMA_VERSION = 1  # student.json (asr/export_student.py)


class PartialsError(ValueError):
    """A student folder that is missing or inconsistent, or a segment the student cannot take."""


@dataclass(frozen=True)
class PartialsConfig:
    """How often the decoder reads the segment and what it reads after it."""

    update_chunks: int = 2  # decoder updates every this many chunks
    # ... and every this many until the segment's first word is committed (0: update_chunks)
    first_update_chunks: int = 0
    # the chunk: 320 ms, the streaming student's; Whisper's own encoder may read at any multiple of 10 ms
    chunk_ms: float = 320.0
    # seconds of silence the encoder reads after the segment so far before the fill takes over
    # (the second pass reads 2 s; docs/partials.md measures 1 and 2)
    pad_s: float = 2.0
    agreement: int = 2  # LocalAgreement-n: words common to the last n hypotheses are committed
    # ... and only while each of their tokens has at least this probability in the newest reading
    min_prob: float = 0.0
    max_segment_s: float = 28.0  # a segment is ended (and the next started) when it reaches this

    def __post_init__(self) -> None:
        if self.update_chunks < 1 or self.first_update_chunks < 0 or self.agreement < 1 or self.pad_s < 0 or \
                not 0 < self.max_segment_s <= 28.0 or not 0 <= self.min_prob < 1 or self.chunk_ms < 10 or \
                abs(self.chunk_ms / 10 - round(self.chunk_ms / 10)) > 1e-9:
            raise PartialsError(f"invalid partials config {self}: update_chunks and agreement >= 1, pad_s >= 0, "
                                "0 < max_segment_s <= 28, 0 <= min_prob < 1, chunk_ms a multiple of 10 ms")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PartialsConfig":
        reject_unknown(cls, d, "partials keys", PartialsError)
        return cls(**d)


# ---------------------------------------------------------------- front end


class MelStream:
    """Whisper's log10 mel power, frame by frame as audio arrives (the student normalises it inside).

    Frame i is centred on sample 160 i (400-point periodic Hann window, the segment's start
    reflect-padded as torch.stft(center=True) pads it), so it needs 200 samples after its centre:
    a 320 ms chunk's 32 frames are ready 12.5 ms after the chunk's end. `flush` pads the end with
    zeros, as the student was trained on segments followed by silence."""

    def __init__(self, filters: np.ndarray) -> None:
        self.filters = np.asarray(filters, np.float64)  # (n_mels, 201)
        self.window = hann_window()
        self.reset()

    def reset(self) -> None:
        self.buf = np.zeros(0)  # samples from 200 before the next frame's centre (reflect-padded at the start)
        self.started = False
        self.head = np.zeros(0)  # the first samples, kept until the reflect padding can be made

    def _frames(self, x: np.ndarray) -> np.ndarray:
        n = (len(x) - N_FFT) // HOP + 1 if len(x) >= N_FFT else 0
        if n <= 0:
            return np.zeros((self.filters.shape[0], 0), np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[: n * HOP : HOP]
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2
        mel = power @ self.filters.T
        return np.log10(np.maximum(mel, 1e-10)).T.astype(np.float32)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """New samples -> the mel frames (n_mels, k) that became complete."""
        x = np.asarray(samples, np.float64)
        if not self.started:
            self.head = np.concatenate([self.head, x])
            if len(self.head) <= N_FFT // 2:
                return np.zeros((self.filters.shape[0], 0), np.float32)
            x = np.concatenate([self.head[1 : N_FFT // 2 + 1][::-1], self.head])
            self.started, self.head = True, np.zeros(0)
        self.buf = np.concatenate([self.buf, x])
        out = self._frames(self.buf)
        self.buf = self.buf[out.shape[1] * HOP :]
        return out

    def flush(self, pad_samples: int = N_FFT // 2) -> np.ndarray:
        """The frames left once the segment ends (its end padded with zeros)."""
        if not self.started:
            if not len(self.head):
                return np.zeros((self.filters.shape[0], 0), np.float32)
            self.head = np.concatenate([self.head, np.zeros(N_FFT)])
        return self.accept(np.zeros(pad_samples))


# ---------------------------------------------------------------- the student encoder


class StudentEncoder:
    """The student's step graph (`student.onnx` / `student.int8.onnx`) with its metadata."""

    def __init__(self, folder: str | Path, threads: int = 1, precision: str = "int8", session: Any = None) -> None:
        folder = Path(folder)
        self.folder = folder
        meta_path = folder / "student.json"
        if not meta_path.is_file():
            raise PartialsError(f"{folder}: no student.json; make it with `heed export student`")
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise PartialsError(f"{meta_path}: unreadable ({e})") from None
        try:
            self.chunk_frames = int(self.meta["chunk_frames"])
            self.n_audio_ctx = int(self.meta["n_audio_ctx"])
            self.mel_max_init = float(self.meta["mel_max_init"])
            self.n_mels = int(self.meta["n_mels"])
            self.n_layers = int(self.meta["n_audio_layer"])  # the student's own caches
            self.n_text_layer = int(self.meta["n_text_layer"])  # the decoder's cross keys/values
            self.n_state = int(self.meta["n_state"])
            schema = int(self.meta["schema_version"])
            graph = self.meta["files"][precision]
        except (KeyError, TypeError, ValueError) as e:
            raise PartialsError(f"{meta_path}: missing or bad field {e}") from None
        if schema != SCHEMA_VERSION:
            raise PartialsError(f"{meta_path}: schema version {schema}, this runtime reads {SCHEMA_VERSION}")
        if not (folder / graph).is_file():
            raise PartialsError(f"{folder / graph}: missing (student.json names it for {precision})")
        if session is None:
            from runtime.bundle import onnx_session

            session = onnx_session(folder / graph, threads)
        self.session = session
        self.cross_names = [f"cross_{kv}_{i}" for i in range(self.n_text_layer) for kv in "kv"]
        self.outputs = [*self.cross_names, "states", *(f"next_{n}" for n in STATE_NAMES)]

    def init_state(self) -> dict[str, np.ndarray]:
        empty = np.zeros((self.n_layers, 1, 0, self.n_state), np.float32)
        return {"mel_max": np.full((1,), self.mel_max_init, np.float32),
                "mel_cache": np.zeros((1, self.n_mels, 2), np.float32),
                "conv_cache": np.zeros((1, self.n_state, 2), np.float32),
                "key_cache": empty, "value_cache": empty, "offset": np.zeros((1,), np.int64)}

    def step(self, mel: np.ndarray, state: dict[str, np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, dict[str, np.ndarray]]:
        """(n_mels, n) log10 mel power, n even <= 2 chunk_frames -> the new frames' cross keys/values
        (per layer k, v), their states (1, n/2, D) and the next state."""
        out = self.session.run(self.outputs, {"mel": mel[None].astype(np.float32), **state})
        n = len(self.cross_names)
        return out[:n], out[n], dict(zip(STATE_NAMES, out[n + 1 :]))


# ---------------------------------------------------------------- commit policy


class LocalAgreement:
    """Which leading tokens of a hypothesis are committed: those the last `n` hypotheses agree on,
    cut back to whole words (a word is whole once the next token starts another, in all of them,
    or the hypotheses end there), and with `min_prob` only up to the first token whose probability
    in the newest reading (`update`'s `logprobs`) is below it. Committed tokens only grow; `update`
    returns how many there are."""

    def __init__(self, starts_word: Sequence[bool], n: int = 2, min_prob: float = 0.0) -> None:
        self.starts_word, self.n = starts_word, n
        self.min_logprob = float(np.log(min_prob)) if min_prob > 0 else -np.inf
        self.history: list[list[int]] = []
        self.committed: list[int] = []

    def _boundary(self, hyp: list[int], m: int) -> bool:
        return m == len(hyp) or self.starts_word[hyp[m]]

    def update(self, hyp: list[int], logprobs: Sequence[float] | None = None) -> int:
        """logprobs: each token's log-probability in the reading that gave `hyp` (for `min_prob`)."""
        if hyp[: len(self.committed)] != self.committed:
            raise PartialsError("a hypothesis that does not start with the committed tokens")
        self.history = (self.history + [list(hyp)])[-self.n :]
        if len(self.history) < self.n:
            return len(self.committed)
        m = min(len(h) for h in self.history)
        for h in self.history[1:]:
            m = next((i for i in range(m) if h[i] != self.history[0][i]), m)
        if logprobs is not None and self.min_logprob > -np.inf:
            m = next((i for i in range(len(self.committed), m) if logprobs[i] < self.min_logprob), m)
        # the m agreed tokens end a word only where every hypothesis starts another word (or ends) there
        while m > len(self.committed) and not all(self._boundary(h, m) for h in self.history):
            m -= 1
        if m > len(self.committed):
            self.committed = list(self.history[-1][:m])
        return len(self.committed)

    def reset(self) -> None:
        self.history, self.committed = [], []


# ---------------------------------------------------------------- the decoder, reusing the last hypothesis


@dataclass
class Hypothesis:
    tokens: list[int]
    no_speech_prob: float
    decoder_calls: int  # decoder graph runs this update took (1 = the previous hypothesis held)
    logprobs: list[float] = field(default_factory=list)  # each token's, in this reading


class PartialDecoder:
    """The second pass's decoder over a growing segment, reusing its previous hypothesis."""

    def __init__(self, second: SecondPass) -> None:
        self.second = second
        # right after committed words, a token may not continue the last of them ("thy" + "self"):
        # only a new word, punctuation or the end of text may follow
        continues = [i < second.eot and not t.startswith("Ġ") and any(c.isalnum() for c in t)
                     for i, t in enumerate(second.vocab)]
        self.after_committed = second.suppress | np.array(continues + [False] * (len(second.suppress) - len(continues)))

    def update(self, cross: list[np.ndarray], duration_s: float, previous: list[int], committed: int) -> Hypothesis:
        """The hypothesis for the segment so far: `previous` is fed in one call (after the prompt),
        kept up to the first token (after the `committed` first) that greedy search would no
        longer choose, and continued greedily from there (`SecondPass.continue_greedy`)."""
        tokens, no_speech, _, calls, logprobs = self.second.continue_greedy(cross, duration_s, previous, committed,
                                                                            self.after_committed)
        return Hypothesis(tokens, no_speech, calls, logprobs)


# ---------------------------------------------------------------- one stream


@dataclass
class PartialEvent:
    """One update of a segment's partial hypothesis."""

    text: str  # spoken form (the committed words first)
    committed: int  # leading words of `text` that will not change within the segment
    time_s: float  # audio time of the stream when it was made
    written: str = ""  # Whisper's written form of the whole hypothesis
    decoder_calls: int = 0
    segment_samples: int = 0  # the segment's audio it read


@dataclass
class SegmentResult:
    """A segment's end: its last hypothesis over all of its audio."""

    text: str
    written: str
    committed: int  # words committed before the segment ended
    end_s: float  # stream time of the segment's end
    events: list[PartialEvent] = field(default_factory=list)


class StudentReader:
    """A segment read by the streaming student: each 320 ms chunk's cross keys/values computed once
    and kept; a read adds `pad_s` of silence from a copy of the state."""

    def __init__(self, encoder: StudentEncoder, filters: np.ndarray, pad_s: float) -> None:
        self.encoder, self.pad_s = encoder, pad_s
        self.chunk_mel = 2 * encoder.chunk_frames
        self.mel = MelStream(filters)
        self.reset()

    def reset(self) -> None:
        self.mel.reset()
        self.state = self.encoder.init_state()
        self.pending = np.zeros((self.encoder.n_mels, 0), np.float32)
        self.cross: list[list[np.ndarray]] = []  # per chunk, per layer k, v
        self.frames = 0  # encoder frames of the segment

    def accept(self, samples: np.ndarray) -> int:
        """More of the segment -> how many chunks it completed."""
        self.pending = np.concatenate([self.pending, self.mel.accept(samples)], axis=1)
        n = 0
        while self.pending.shape[1] >= self.chunk_mel:
            self._encode(self.pending[:, : self.chunk_mel])
            self.pending = self.pending[:, self.chunk_mel :]
            n += 1
        return n

    def _encode(self, mel: np.ndarray) -> None:
        kv, _, self.state = self.encoder.step(mel, self.state)
        self.cross.append(kv)
        self.frames += mel.shape[1] // 2

    def until_chunk(self) -> None:
        """A read holds completed chunks only, whatever the pieces: no need to cut them."""
        return None

    def finish(self) -> None:
        """The segment's end: its last frames (the audio's end padded with zeros)."""
        rest = np.concatenate([self.pending, self.mel.flush()], axis=1)
        rest = rest[:, : min(rest.shape[1] // 2 * 2, 2 * (self.encoder.n_audio_ctx - self.frames))]
        for i in range(0, rest.shape[1], self.chunk_mel):
            self._encode(rest[:, i : i + self.chunk_mel])
        self.pending = rest[:, :0]

    def read(self) -> list[np.ndarray]:
        """The segment's cross keys/values so far, then `pad_s` of silence as the student reads it."""
        parts = list(self.cross)
        enc = self.encoder
        pad = min(int(round(self.pad_s * 100)) // 2 * 2, 2 * (enc.n_audio_ctx - self.frames))
        state = self.state
        while pad > 0:
            n = min(pad, self.chunk_mel)
            kv, _, state = enc.step(np.full((enc.n_mels, n), LOG_FLOOR, np.float32), state)
            parts.append(kv)
            pad -= n
        if not parts:
            return []
        return [np.concatenate([p[i] for p in parts], axis=3 if i % 2 == 0 else 2) for i in range(len(parts[0]))]


class WhisperReader:
    """A segment read by Whisper's own encoder (the second pass's graph), the whole segment so far
    at every read: full context, no new model; its cost grows with the segment."""

    def __init__(self, second: SecondPass, pad_s: float, chunk_samples: int = 5120) -> None:
        self.second, self.pad_s, self.chunk_samples = second, pad_s, chunk_samples
        self.reset()

    def reset(self) -> None:
        self.samples: list[np.ndarray] = []
        self.n = 0

    def until_chunk(self) -> int:
        """Samples to the end of the current chunk: a read covers the audio fed so far, so the stream
        cuts its pieces there (a reading then holds whole chunks, whatever the pieces)."""
        return self.chunk_samples - self.n % self.chunk_samples

    def accept(self, samples: np.ndarray) -> int:
        before = self.n // self.chunk_samples
        self.samples.append(samples)
        self.n += len(samples)
        return self.n // self.chunk_samples - before

    def finish(self) -> None:
        pass

    def read(self) -> list[np.ndarray]:
        if not self.n:
            return []
        self.samples = [np.concatenate(self.samples)]
        return self.second.encode(self.samples[0], self.pad_s)[0]


class Partials:
    """The shared part: the encoder that reads segments (the streaming student, or Whisper's own
    encoder when no student is given), the second pass's decoder, the config and the VAD."""

    def __init__(self, second: SecondPass, student: str | Path | StudentEncoder | None = None,
                 config: PartialsConfig | None = None, threads: int = 1, precision: str = "int8",
                 vad: Any = None) -> None:
        """vad: a `runtime.vad.VadModel`; with it a stream decodes only what the gate passes on and
        its segments end where the gate ends speech (without it the caller ends them)."""
        self.second, self.vad = second, vad
        self.encoder = None
        if student is not None:
            self.encoder = student if isinstance(student, StudentEncoder) else StudentEncoder(student, threads, precision)
            if self.encoder.n_mels != second.filters.shape[0]:
                raise PartialsError(f"the student reads {self.encoder.n_mels} mel bins, the second pass's filters "
                                    f"{second.filters.shape[0]}")
        self.config = config or PartialsConfig()
        if self.encoder is not None and self.config.chunk_ms != 320.0:
            raise PartialsError(f"the streaming student reads 320 ms chunks; chunk_ms is {self.config.chunk_ms:g}")
        self.decoder = PartialDecoder(second)
        self.starts_word = [t.startswith("Ġ") for t in second.vocab]

    @property
    def encoder_name(self) -> str:
        return "student" if self.encoder is not None else "whisper"

    def reader(self) -> StudentReader | WhisperReader:
        if self.encoder is None:
            return WhisperReader(self.second, self.config.pad_s, round(self.config.chunk_ms * SAMPLE_RATE / 1000))
        return StudentReader(self.encoder, self.second.filters, self.config.pad_s)

    def stream(self) -> "PartialStream":
        return PartialStream(self)


class PartialStream:
    """One audio stream cut in segments: the segment's reader, the hypothesis and the commit policy
    (the module docstring shows the use)."""

    def __init__(self, owner: Partials) -> None:
        self.owner, self.cfg = owner, owner.config
        self.reader = owner.reader()
        self.policy = LocalAgreement(owner.starts_word, self.cfg.agreement, self.cfg.min_prob)
        self.vad = owner.vad.create_stream() if owner.vad is not None else None
        self.time_s = 0.0  # audio received by the stream, over all segments
        self._new_segment()

    def _new_segment(self) -> None:
        self.reader.reset()
        self.policy.reset()
        self.chunks_since_update = 0
        self.tokens: list[int] = []
        self.events: list[PartialEvent] = []
        self.segment_samples = 0

    # ------------------------------------------------------------ audio in

    def accept_waveform(self, samples: np.ndarray) -> list[PartialEvent | SegmentResult]:
        """Float samples at 16 kHz -> what they caused, in order: a `PartialEvent` per decoder update,
        a `SegmentResult` per segment that ended (the VAD's end of speech, or the position limit)."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        if self.vad is None:
            return self._accept(samples)
        out: list[PartialEvent | SegmentResult] = []
        for ev in self.vad.accept_waveform(samples):
            out += self._gate_event(ev)
        return out

    def input_finished(self) -> list[PartialEvent | SegmentResult]:
        """The end of the stream: the open segment ends."""
        out: list[PartialEvent | SegmentResult] = []
        if self.vad is not None:
            for ev in self.vad.input_finished():
                out += self._gate_event(ev)
        if self.segment_samples:
            out.append(self.end_segment())
        return out

    def feed_segment(self, samples: np.ndarray) -> list[PartialEvent | SegmentResult]:
        """More audio of the segment the caller keeps (the pipeline: its VAD and endpointer say where
        segments end, `discard_segment` starts the next), past any VAD of this stream's own."""
        return self._accept(np.asarray(samples, np.float32).reshape(-1))

    def discard_segment(self) -> None:
        """The caller ended the segment and reads its final itself (the second pass): start the next."""
        self._new_segment()

    def _gate_event(self, ev: Any) -> list[PartialEvent | SegmentResult]:
        from runtime.vad import End, Start

        if isinstance(ev, End):
            return [self.end_segment()] if self.segment_samples else []
        out: list[PartialEvent | SegmentResult] = []
        if isinstance(ev, Start) and self.segment_samples:
            out.append(self.end_segment())
        self.time_s = ev.audio_start / SAMPLE_RATE  # stream time: the gate skipped what was not speech
        return out + self._accept(ev.samples)

    def _accept(self, samples: np.ndarray) -> list[PartialEvent | SegmentResult]:
        out: list[PartialEvent | SegmentResult] = []
        max_samples = int(self.cfg.max_segment_s * SAMPLE_RATE)
        while len(samples):
            room = max_samples - self.segment_samples
            step = self.reader.until_chunk()  # an update reads whole chunks, whatever the pieces
            room = room if step is None else min(room, step)
            part, samples = samples[:room], samples[room:]
            self.segment_samples += len(part)
            self.time_s += len(part) / SAMPLE_RATE
            self.chunks_since_update += self.reader.accept(part)
            every = self.cfg.first_update_chunks if self.cfg.first_update_chunks and not self.policy.committed \
                else self.cfg.update_chunks
            if self.chunks_since_update >= every:
                out.append(self._update())
            if self.segment_samples >= max_samples:
                out.append(self.end_segment())  # positions run out: the segment ends, the next starts at 0
        return out

    def _decode(self) -> Hypothesis:
        sp = self.owner.second
        committed = len(self.policy.committed)
        hyp = self.owner.decoder.update(self.reader.read(), self.segment_samples / SAMPLE_RATE, self.tokens, committed)
        if hyp.no_speech_prob > sp.options.no_speech_threshold and not committed:
            return Hypothesis([], hyp.no_speech_prob, hyp.decoder_calls)  # nothing heard yet
        return hyp

    def _update(self) -> PartialEvent:
        self.chunks_since_update = 0
        hyp = self._decode()
        self.tokens, calls = hyp.tokens, hyp.decoder_calls
        self.policy.update(self.tokens, hyp.logprobs)
        event = self._event(self.tokens, calls)
        self.events.append(event)
        return event

    def _event(self, tokens: list[int], calls: int) -> PartialEvent:
        sp = self.owner.second
        written = sp.decode_text(tokens)
        fixed = to_spoken(sp.decode_text(self.policy.committed)).split() if self.policy.committed else []
        words = to_spoken(written).split() if written else []
        words = fixed + words[len(fixed) :]
        return PartialEvent(" ".join(words), len(fixed), round(self.time_s, 3), written, calls, self.segment_samples)

    # ------------------------------------------------------------ segment end

    def end_segment(self) -> SegmentResult:
        """The segment ends (an endpoint): its last hypothesis over all of its audio; the stream
        starts a new segment at position 0."""
        fixed_words = self._event(self.tokens, 0).committed
        result = SegmentResult("", "", fixed_words, round(self.time_s, 3), self.events)
        if self.segment_samples:
            self.reader.finish()
            hyp = self._decode()
            last = self._event(hyp.tokens, hyp.decoder_calls)
            result = SegmentResult(last.text, last.written, fixed_words, round(self.time_s, 3), self.events)
        self._new_segment()
        return result
