"""The second pass: Whisper tiny.en reads each endpointed segment again, with onnxruntime and numpy.

    second = SecondPass.from_dir("models/default/whisper", threads=1)
    result = second.transcribe(samples)          # (n,) float32 at 16 kHz, one segment
    result.text, result.no_speech_prob, result.accepted

How a segment is read (docs/second_pass.md has the measurements behind each choice):
1. Whisper's log-mel of the segment plus `pad_s` of zeros (`log_mel`, the numpy twin of
   `asr.whisper.log_mel`).
2. The encoder runs on those frames only. Whisper was trained on 30 s windows and its decoder
   repeats itself when the audio simply ends, so the decoder reads, after the segment's S
   positions, positions S to 1,499 of the cross-attention keys/values that the encoder gives a
   constant log-mel (`fill_value`; computed once by the export, `fill.npz`): it sees what 30 s of
   padding would show it, for the cost of encoding the segment.
3. Greedy decoding with Whisper's usual guards: no timestamps; special, timestamp and
   non-speech tokens suppressed (the model's `suppress_ids`); a blank or end of text as the first
   token suppressed; at most `max_tokens_per_s` tokens per second of audio; nothing carried over
   from the previous segment; a stop when the text starts repeating (compression ratio).
4. Whether to trust it: no words when the no-speech probability is high, the streaming pass's
   when the text is a runaway repetition.

Everything about the model comes from `whisper.json` (written by `asr/export_whisper.py`).
"""
from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runtime.config import reject_unknown

SAMPLE_RATE = 16000
N_FFT, HOP = 400, 160


class SecondPassError(ValueError):
    """A second-pass folder that is missing or inconsistent."""


@dataclass(frozen=True)
class DecodeOptions:
    """Guards of the greedy search and the no-speech rule (Whisper's defaults where it has them)."""

    pad_s: float = 2.0  # zeros encoded after the segment before the fill takes over
    max_tokens_per_s: float = 8.0  # a cap on text length: speech runs at about 3-4 tokens a second
    min_tokens: int = 8
    # no words when p(no speech) exceeds this. Measured (docs/second_pass.md): 0.88-0.94 on silence,
    # hum and noise; at most 0.39 on the real dev set's speech and 0.78 on 150 synthetic dev
    # utterances. (Whisper's own rule, p > 0.6 with an average log-probability below -1, let
    # "you" through on silence and dropped 4 of those synthetic utterances.)
    no_speech_threshold: float = 0.8
    compression_ratio_threshold: float = 2.4  # Whisper: a text that compresses more is a repetition loop
    max_repeats: int = 4  # decoding stops once the last 1-4 tokens have come this many times in a row

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecodeOptions":
        reject_unknown(cls, d, "second-pass options", SecondPassError)
        return cls(**d)


@dataclass(frozen=True)
class SecondPassResult:
    """What Whisper made of one segment."""

    text: str  # Whisper's written form, e.g. "Set an alarm for 7:02."; "" when not accepted
    tokens: tuple[int, ...]
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float
    accepted: bool  # False: judged non-speech or a runaway; the caller keeps its own text
    reason: str = ""  # why not accepted
    timings_ms: dict[str, float] = field(default_factory=dict)


def hann_window(n: int = N_FFT) -> np.ndarray:
    """The periodic Hann window (torch.hann_window's default)."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float64)


def log_mel(audio: np.ndarray, filters: np.ndarray, n_pad_samples: int = 0) -> np.ndarray:
    """Whisper's log-mel spectrogram in numpy: (n,) float samples at 16 kHz -> (n_mels, n_frames) float32.

    The twin of `asr.whisper.log_mel` (tests/asr/test_whisper.py asserts they agree): a centred
    (reflect-padded) 400-point STFT every 160 samples with a periodic Hann window, the last frame
    dropped, power through the Slaney mel `filters` (n_mels, 201), log10 clamped at 1e-10,
    floored at 8 below the maximum, then (x + 4) / 4. Computed in float64.
    """
    x = np.asarray(audio, dtype=np.float64)
    x = np.concatenate([x, np.zeros(n_pad_samples)])
    if len(x) <= N_FFT // 2:
        x = np.concatenate([x, np.zeros(N_FFT // 2 + 1 - len(x))])
    x = np.pad(x, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]  # (n_frames, n_fft)
    power = np.abs(np.fft.rfft(frames * hann_window(), axis=1)) ** 2
    mel = power[:-1] @ filters.T.astype(np.float64)  # (T, n_mels)
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).T.astype(np.float32)


def _bytes_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: the printable character that stands for each byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def cut_at_pauses(samples: np.ndarray, max_samples: int, min_samples: int = 5 * SAMPLE_RATE) -> list[np.ndarray]:
    """Pieces of at most max_samples, each cut in the quietest 100 ms (lowest energy) between
    min_samples and max_samples after the previous cut."""
    pieces, rest = [], samples
    win = SAMPLE_RATE // 10
    while len(rest) > max_samples:
        search = rest[min_samples:max_samples]
        energy = np.convolve(search.astype(np.float64) ** 2, np.ones(win), "valid")
        cut = min_samples + int(np.argmin(energy)) + win // 2
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return pieces + [rest]


def _looping(tokens: list[int], max_repeats: int) -> bool:
    """Whether the text ends in a group of 1-4 tokens repeated `max_repeats` times in a row."""
    for k in range(1, 5):
        n = k * max_repeats
        if len(tokens) >= n and all(tokens[-n + i] == tokens[-k + i % k] for i in range(n)):
            return True
    return False


def compression_ratio(text: str) -> float:
    raw = text.encode("utf-8")
    return len(raw) / max(1, len(zlib.compress(raw)))


class SecondPass:
    """Whisper's encoder and decoder sessions, the mel filters and the vocabulary; shared by all
    streams and thread-safe (the fill is computed once, under a lock)."""

    def __init__(self, folder: str | Path, threads: int = 1, options: DecodeOptions | None = None,
                 sessions: tuple[Any, Any] | None = None) -> None:
        """sessions: (encoder, decoder) objects with onnxruntime's `run(None, feeds)` to use instead of
        the folder's graphs (the export's self-check runs torch through this class that way)."""
        folder = Path(folder)
        from runtime.bundle import read_json

        meta_path = folder / "whisper.json"
        if not meta_path.is_file():
            raise SecondPassError(f"{folder}: no whisper.json; make the second pass with `heed export whisper`")
        self.meta = read_json(meta_path)
        files = self.meta["files"]
        if sessions is None:
            from runtime.bundle import onnx_session

            # the encoder reads segments of 1 to 28 s: no arena, so a long one's memory goes back after it
            sessions = (onnx_session(folder / files["encoder"], threads, arena=False),
                        onnx_session(folder / files["decoder"], threads))
        self.encoder, self.decoder = sessions
        self.filters = np.load(folder / files["mel_filters"])
        self.vocab = [line.rstrip("\n") for line in (folder / files["tokens"]).read_text(encoding="utf-8").split("\n")][
            : self.meta["n_vocab"]]
        if len(self.vocab) != self.meta["n_vocab"]:
            raise SecondPassError(f"{folder / files['tokens']}: {len(self.vocab)} tokens, whisper.json says "
                                  f"{self.meta['n_vocab']}")
        self.options = options or DecodeOptions.from_dict(self.meta.get("decode", {}))
        sp = self.meta["special"]
        self.eot, self.sot, self.no_speech = sp["eot"], sp["sot"], sp["no_speech"]
        self.prompt = np.array([[self.sot, sp["no_timestamps"]]], np.int64)
        self.n_layers, self.n_head = self.meta["n_text_layer"], self.meta["n_head"]
        self.d_head = self.meta["n_state"] // self.n_head
        self.n_audio_ctx = self.meta["n_audio_ctx"]
        # suppressed at every step: every special token but end of text (timestamps included),
        # and the model's non-speech symbols; at the first step also a blank and end of text
        self.suppress = np.zeros(self.meta["n_vocab"], bool)
        self.suppress[self.eot + 1 :] = True
        self.suppress[self.meta["suppress_ids"]] = True
        self.suppress_first = self.suppress.copy()
        self.suppress_first[self.meta["suppress_ids_begin"]] = True
        self._byte_of = _bytes_decoder()
        self._fill: list[np.ndarray] | None = None
        self._tokenizer = None
        self.folder = folder
        self._lock = threading.Lock()

    @classmethod
    def from_dir(cls, folder: str | Path, threads: int = 1, options: DecodeOptions | None = None) -> "SecondPass":
        return cls(folder, threads, options)

    # ------------------------------------------------------------ encoder

    def fill(self) -> list[np.ndarray]:
        """The cross-attention keys/values of a constant log-mel over the whole 30 s window, per
        layer (k, v, k, v, ...): what fills the positions after a segment. Read from the export's
        `fill.npz` (float16; the export computes it with this encoder), or computed here once."""
        with self._lock:
            if self._fill is None:
                name = self.meta["files"].get("fill")
                if name:
                    with np.load(self.folder / name) as z:
                        self._fill = [z[f"{kv}_{i}"].astype(np.float32) for i in range(self.n_layers) for kv in "kv"]
                else:
                    self._fill = self.compute_fill()
            return self._fill

    def compute_fill(self) -> list[np.ndarray]:
        mel = np.full((1, self.filters.shape[0], 2 * self.n_audio_ctx), self.meta["fill_value"], np.float32)
        return self.encoder.run(None, {"mel": mel})

    def encode(self, samples: np.ndarray, pad_s: float | None = None) -> tuple[list[np.ndarray], int]:
        """A segment -> its cross keys/values (per layer k, v, ...: (1, h, d, S), (1, h, S, d)) and S;
        the decoder reads the fill's positions after them. pad_s: zeros encoded after the segment
        (the options' pad_s by default)."""
        n_pad = int(round((self.options.pad_s if pad_s is None else pad_s) * SAMPLE_RATE))
        max_samples = 2 * self.n_audio_ctx * HOP - n_pad
        if len(samples) > max_samples:
            raise SecondPassError(f"a segment of {len(samples) / SAMPLE_RATE:.1f} s is longer than the "
                                  f"{max_samples / SAMPLE_RATE:.1f} s the encoder reads; cut it first")
        mel = log_mel(samples, self.filters, n_pad)
        mel = mel[:, : mel.shape[1] // 2 * 2]
        own = self.encoder.run(None, {"mel": mel[None]})
        return own, own[0].shape[-1]

    # ------------------------------------------------------------ decoder

    def _step(self, tokens: np.ndarray, state: list[np.ndarray], cross: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        feeds = {"tokens": tokens}
        fill = self.fill()
        for i in range(self.n_layers):
            feeds[f"self_k_{i}"], feeds[f"self_v_{i}"] = state[2 * i], state[2 * i + 1]
            feeds[f"cross_k_{i}"], feeds[f"cross_v_{i}"] = cross[2 * i], cross[2 * i + 1]
            feeds[f"fill_k_{i}"], feeds[f"fill_v_{i}"] = fill[2 * i], fill[2 * i + 1]
        out = self.decoder.run(None, feeds)
        return out[0], out[1:]

    def init_state(self, batch: int = 1) -> list[np.ndarray]:
        return [np.zeros((batch, self.n_head, 0, self.d_head), np.float32) for _ in range(2 * self.n_layers)]

    def decode_text(self, tokens: list[int] | tuple[int, ...]) -> str:
        """Token ids (text tokens only) -> the text they spell."""
        data = bytearray()
        for t in tokens:
            if t < self.eot:
                data += bytes(self._byte_of[c] for c in self.vocab[t])
        return data.decode("utf-8", errors="replace").strip()

    def greedy(self, cross: list[np.ndarray], duration_s: float) -> tuple[list[int], float, float]:
        """Greedy decoding -> (text tokens, no-speech probability, average log-probability)."""
        return self.continue_greedy(cross, duration_s)[:3]

    def continue_greedy(self, cross: list[np.ndarray], duration_s: float, previous: list[int] | tuple[int, ...] = (),
                        committed: int = 0, after_committed: np.ndarray | None = None
                        ) -> tuple[list[int], float, float, int, list[float]]:
        """Greedy decoding that starts from a previous hypothesis (the partials' reuse of their last
        reading; with none, plain greedy decoding). `previous` is fed after the prompt in one call and
        kept up to the first token, after its first `committed` (always kept), that greedy search would
        no longer choose; the search goes on from there. `after_committed`: the tokens suppressed right
        after the committed ones. -> (text tokens, no-speech probability, average log-probability,
        decoder calls, each text token's log-probability)."""
        opts = self.options
        max_tokens = max(opts.min_tokens, int(np.ceil(duration_s * opts.max_tokens_per_s)), committed)
        previous = list(previous)[:max_tokens]
        logits, state = self._step(np.array([[*self.prompt[0], *previous]], np.int64), self.init_state(), cross)
        no_speech = float(_softmax(logits[0, 0])[self.no_speech])  # at the start of transcript

        def suppressed(position: int) -> np.ndarray:
            if position == 0:
                return self.suppress_first
            return after_committed if position == committed and after_committed is not None else self.suppress

        total, keep, token_lps = 0.0, 0, []
        for j, tok in enumerate(previous):
            lp = _log_softmax(np.where(suppressed(j), -np.inf, logits[0, 1 + j]))
            if j >= committed and int(np.argmax(lp)) != tok:
                break
            total, keep = total + float(lp[tok]), j + 1
            token_lps.append(float(lp[tok]))
        tokens = previous[:keep]
        state = [s[:, :, : 2 + keep] for s in state]  # the cache of the prompt and the kept tokens
        last, calls = logits[0, 1 + keep], 1
        while len(tokens) < max_tokens:
            lp = _log_softmax(np.where(suppressed(len(tokens)), -np.inf, last))
            tok = int(np.argmax(lp))
            total += float(lp[tok])
            if tok == self.eot:
                break
            tokens.append(tok)
            token_lps.append(float(lp[tok]))
            if _looping(tokens, opts.max_repeats):
                break
            logits, state = self._step(np.array([[tok]], np.int64), state, cross)
            last, calls = logits[0, -1], calls + 1
        return tokens, no_speech, total / (len(tokens) + 1), calls, token_lps

    def score(self, cross: list[np.ndarray], texts: list[str]) -> list[float]:
        """Whisper's log-probability of each text as the segment's transcript (teacher-forced after
        the prompt, end of text included), all texts in one decoder call (the segment's cross
        keys/values broadcast over them)."""
        ids = [self.encode_text(t) + [self.eot] for t in texts]
        batch = np.full((len(ids), 2 + max(len(t) for t in ids)), self.eot, np.int64)
        batch[:, :2] = self.prompt
        for row, t in zip(batch, ids):
            row[2 : 2 + len(t)] = t  # padding after the end of text cannot change earlier positions
        logits, _ = self._step(batch, self.init_state(len(ids)), cross)
        out = []
        for row, t in zip(logits, ids):
            lp = _log_softmax_rows(row[1 : 1 + len(t)])
            out.append(float(lp[np.arange(len(t)), t].sum()))
        return out

    def encode_text(self, text: str) -> list[int]:
        """Text -> Whisper's token ids, as the decoder would write it after the prompt (a leading space)."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            self._tokenizer = Tokenizer.from_file(str(self.folder / self.meta["files"]["tokenizer"]))
        return self._tokenizer.encode(" " + text.strip(), add_special_tokens=False).ids

    def transcribe(self, samples: np.ndarray) -> SecondPassResult:
        """One segment, (n,) float32 at 16 kHz."""
        return self.read(samples)[0]

    @property
    def max_samples(self) -> int:
        """The longest segment the encoder reads at once (30 s less the padding)."""
        return 2 * self.n_audio_ctx * HOP - int(round(self.options.pad_s * SAMPLE_RATE))

    def read(self, samples: np.ndarray) -> tuple[SecondPassResult, list[np.ndarray] | None]:
        """One segment -> the result and the segment's cross keys/values (to score other texts with).

        A segment longer than the encoder reads is cut at its quietest moments (`cut_at_pauses`)
        and its pieces read one after the other; their texts are joined and there are no cross
        keys/values to score with (None)."""
        samples = np.asarray(samples, np.float32)
        if len(samples) > self.max_samples:
            parts = [self.read(p)[0] for p in cut_at_pauses(samples, self.max_samples)]
            kept = [p for p in parts if p.accepted]
            text = " ".join(p.text for p in kept)
            reason = "" if kept else parts[0].reason
            timings = {k: sum(p.timings_ms.get(k, 0.0) for p in parts) for k in ("encoder", "decoder")}
            return SecondPassResult(text, tuple(t for p in kept for t in p.tokens),
                                    min(p.no_speech_prob for p in parts), float(np.mean([p.avg_logprob for p in parts])),
                                    compression_ratio(text), bool(kept), reason, timings), None
        import time

        t0 = time.perf_counter()
        cross, _ = self.encode(np.asarray(samples, np.float32))
        t1 = time.perf_counter()
        tokens, no_speech, avg_lp = self.greedy(cross, len(samples) / SAMPLE_RATE)
        t2 = time.perf_counter()
        text = self.decode_text(tokens)
        ratio = compression_ratio(text)
        opts = self.options
        reason = ""
        if no_speech > opts.no_speech_threshold:
            reason = f"no speech (p={no_speech:.2f})"
        elif _looping(tokens, opts.max_repeats):
            reason = "a repetition (the same tokens again and again)"
        elif ratio > opts.compression_ratio_threshold:
            reason = f"a repetition (compression ratio {ratio:.1f})"
        elif not text:
            reason = "no text"
        return SecondPassResult(text if not reason else "", tuple(tokens), no_speech, avg_lp, ratio, not reason,
                                reason, {"encoder": 1000 * (t1 - t0), "decoder": 1000 * (t2 - t1)}), cross


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _log_softmax_rows(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x[np.isfinite(x)].max()
    return x - m - np.log(np.exp(x - m).sum())


# ---------------------------------------------------------------- the hand-off from the stream


@dataclass(frozen=True)
class SegmentPolicy:
    """Which audio of a segment the second pass reads (bundle.json `second_pass.segment`).

    A segment runs from the previous endpoint to this one; its speech starts somewhere inside.
    Whisper reads from `margin_before_s` before the streaming pass's first word (or from the
    segment's start when it has none) to the endpoint, which already follows the last word by
    the endpointer's trailing silence.
    """

    margin_before_s: float = 0.5

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SegmentPolicy":
        reject_unknown(cls, d, "second_pass.segment keys", SecondPassError)
        return cls(**d)

    def span(self, segment_start_s: float, end_s: float, words: list[dict[str, Any]]) -> tuple[float, float]:
        start = segment_start_s
        if words:
            start = max(start, words[0]["start"] - self.margin_before_s)
        return start, end_s


@dataclass(frozen=True)
class RescoreConfig:
    """Two-pass combination (bundle.json `second_pass.rescore`): the final is the best of Whisper's
    own reading and the streaming pass's `n_best` hypotheses (all in spoken form) by

        Whisper's log-probability of the text + lm_weight * the domain LM's + word_bonus * words

    so the domain LM (the streaming pass's character n-gram) can prefer an in-domain hypothesis
    Whisper finds nearly as likely. lm_weight 0 and n_best 0 keep Whisper's reading."""

    n_best: int = 0
    lm_weight: float = 0.0
    word_bonus: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RescoreConfig":
        reject_unknown(cls, d, "second_pass.rescore keys", SecondPassError)
        return cls(**d)

    @property
    def enabled(self) -> bool:
        return self.n_best > 0


def to_spoken(written: str) -> str:
    """Whisper's written form -> heed's spoken form ("Set an alarm for 7:02." -> "set an alarm for seven oh two")."""
    from runtime.verbalize import spoken_from_written

    return spoken_from_written(written)


def align_words(first: list[dict[str, Any]], spoken: list[str], start_s: float, end_s: float) -> list[dict[str, Any]]:
    """Time the second pass's words by the streaming pass's: a word both passes wrote keeps the
    streaming pass's times and confidence; the others share the time between their neighbours
    (confidence None). Without any streaming word, the words share [start_s, end_s]."""
    import difflib

    out: list[dict[str, Any]] = [{"word": w, "start": None, "end": None, "confidence": None} for w in spoken]
    matcher = difflib.SequenceMatcher(a=[w["word"] for w in first], b=spoken, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            src, dst = first[block.a + k], out[block.b + k]
            dst.update(start=src["start"], end=src["end"], confidence=src.get("confidence"))
    i = 0
    while i < len(out):
        if out[i]["start"] is not None:
            i += 1
            continue
        j = i
        while j < len(out) and out[j]["start"] is None:
            j += 1
        # the run i..j-1 lies between its timed neighbours, or the streaming pass's speech, or the segment
        lo = out[i - 1]["end"] if i > 0 else (first[0]["start"] if first else start_s)
        hi = out[j]["start"] if j < len(out) else (first[-1]["end"] if first else end_s)
        if hi <= lo:
            hi = min(end_s, lo + 0.3 * (j - i)) if j == len(out) else lo
        step = max(0.0, hi - lo) / (j - i)
        for k in range(i, j):
            out[k]["start"] = round(lo + step * (k - i), 3)
            out[k]["end"] = round(lo + step * (k - i + 1), 3)
        i = j
    return out
