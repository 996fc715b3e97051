"""The streaming transducer on onnxruntime: one shared model, one small state object per stream.

`TransducerModel` holds the three sessions and what their metadata says (chunk sizes, cache
shapes, feature configuration); it is immutable and shared by every stream. `AsrStream` holds
one utterance's state: fbank frames not yet consumed, the encoder caches, the search
hypotheses and the endpointing clock. Nothing about a model is hard-coded here.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bundle import BundleError, onnx_session, read_lines
from runtime.features import FbankConfig, StreamingFbank
from runtime.lm import LmFusion
from runtime.search import DecoderCache, Hypothesis, greedy_search, modified_beam_search, rank_finished

WORD_START = "\u2581"


@dataclass(frozen=True)
class EndpointConfig:
    """When an utterance is over. Silence is time since the last emitted token (or since the start)."""

    trailing_silence_ms: float = 800.0  # after some speech was decoded
    silence_without_speech_ms: float = 5000.0  # nothing decoded at all
    max_utterance_ms: float = 20000.0

    def reached(self, now_ms: float, last_token_ms: float | None) -> bool:
        if now_ms >= self.max_utterance_ms:
            return True
        if last_token_ms is None:
            return now_ms >= self.silence_without_speech_ms
        return now_ms - last_token_ms >= self.trailing_silence_ms


def _meta_int(meta: dict[str, str], key: str, path: Path) -> int:
    """A positive integer from a graph's ONNX metadata; BundleError naming the file otherwise."""
    try:
        value = int(meta[key])
    except KeyError:
        raise BundleError(f"{path}: its ONNX metadata has no {key!r} (not a heed transducer export?)") from None
    except ValueError:
        raise BundleError(f"{path}: ONNX metadata {key}={meta[key]!r} is not an integer") from None
    if value <= 0:
        raise BundleError(f"{path}: ONNX metadata {key}={value} must be positive")
    return value


class TransducerModel:
    """Encoder, decoder and joiner sessions plus the token table; shared, never mutated.
    A file that is missing, corrupt or lacks the metadata is a `BundleError` naming it."""

    def __init__(self, encoder: Path, decoder: Path, joiner: Path, tokens: Path, threads: int = 1) -> None:
        self.encoder, self.decoder, self.joiner = (onnx_session(p, threads) for p in (encoder, decoder, joiner))
        meta = self.encoder.get_modelmeta().custom_metadata_map
        dmeta = self.decoder.get_modelmeta().custom_metadata_map
        self.n_layers = _meta_int(meta, "num_encoder_layers", encoder)
        self.step_frames = _meta_int(meta, "T", encoder)  # fbank frames per encoder call
        self.shift_frames = _meta_int(meta, "decode_chunk_len", encoder)  # fbank frames a call advances
        self.chunk_frames = _meta_int(meta, "chunk_frames", encoder)  # encoder frames per call
        self.left_context = _meta_int(meta, "left_context", encoder)
        self.d_model = _meta_int(meta, "encoder_dim", encoder)
        self.conv_kernel = _meta_int(meta, "cnn_module_kernel", encoder)
        self.context_size = _meta_int(dmeta, "context_size", decoder)
        self.vocab_size = _meta_int(dmeta, "vocab_size", decoder)
        try:
            self.fbank = FbankConfig.from_dict(json.loads(meta["feature_config"]))
        except (KeyError, ValueError, TypeError) as e:
            raise BundleError(f"{encoder}: ONNX metadata feature_config is missing or wrong ({e})") from None
        self.frame_s = self.shift_frames / self.chunk_frames * self.fbank.frame_shift_ms / 1000  # seconds per encoder frame
        self.frame_samples = self.shift_frames // self.chunk_frames * self.fbank.frame_shift  # samples per encoder frame
        self.tokens = _read_tokens(tokens)
        if len(self.tokens) != self.vocab_size:
            raise BundleError(f"{tokens}: {len(self.tokens)} tokens, the decoder ({decoder.name}) expects {self.vocab_size}")
        self.metadata = dict(meta)

    def init_state(self) -> list[np.ndarray]:
        return [
            np.zeros((self.n_layers, self.left_context, 1, self.d_model), np.float32),
            np.zeros((self.n_layers, self.conv_kernel - 1, 1, self.d_model), np.float32),
            np.zeros((1,), np.int64),
        ]

    def run_encoder(self, x: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """x: (step_frames, n_mels) -> (chunk_frames, joiner_dim) and the next state."""
        out, attn, conv = self.encoder.run(None, {
            "x": x[None].astype(np.float32, copy=False), "attn_cache": state[0], "conv_cache": state[1],
            "processed_frames": state[2]})
        return out[0], [attn, conv, state[2] + self.shift_frames]  # processed_frames counts fbank frames

    def decode(self, contexts: np.ndarray) -> np.ndarray:
        return self.decoder.run(None, {"y": contexts})[0]

    def join(self, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return self.joiner.run(None, {"encoder_out": enc, "decoder_out": dec})[0]

    def words(self, hyp: Hypothesis) -> list[dict[str, Any]]:
        """Words of a hypothesis with start/end times (s) and confidence (the lowest token probability)."""
        words: list[dict[str, Any]] = []
        for tok, frame, prob in zip(hyp.tokens, hyp.frames, hyp.probs):
            piece = self.tokens[tok]
            t = frame * self.frame_s
            if piece.startswith(WORD_START) or not words:
                words.append({"word": piece.lstrip(WORD_START), "start": round(t, 3), "end": round(t + self.frame_s, 3), "confidence": prob})
            else:
                w = words[-1]
                w["word"] += piece
                w["end"] = round(t + self.frame_s, 3)
                w["confidence"] = min(w["confidence"], prob)
        for w in words:
            w["confidence"] = round(float(w["confidence"]), 3)
        return [w for w in words if w["word"]]


def _read_tokens(path: Path) -> list[str]:
    """tokens.txt: one `piece id` a line, ids 0..n-1 each once; BundleError naming the line otherwise."""
    table: dict[int, str] = {}
    for n, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        piece, _, idx = line.rpartition(" ")
        if not idx.isdigit() or not piece:
            raise BundleError(f"{path}:{n}: expected a token and its id, got {line[:60]!r}")
        if int(idx) in table:
            raise BundleError(f"{path}:{n}: id {idx} appears twice")
        table[int(idx)] = piece
    missing = [i for i in range(len(table)) if i not in table]
    if missing:
        raise BundleError(f"{path}: ids are not 0..{len(table) - 1}: {missing[0]} is missing")
    return [table[i] for i in range(len(table))]


class AsrStream:
    """One utterance (or one endless stream) through a shared `TransducerModel`."""

    def __init__(self, model: TransducerModel, beam: int = 4, endpoint: EndpointConfig = EndpointConfig(),
                 max_symbols_per_frame: int = 3, lm: LmFusion | None = None) -> None:
        if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
            raise ValueError(f"beam must be a whole number of at least 1 (1 = greedy search), got {beam!r}")
        self.model, self.beam, self.endpoint_cfg = model, int(beam), endpoint
        self.lm = lm  # shallow fusion in the beam search (none in greedy search)
        self.max_symbols_per_frame = max_symbols_per_frame  # greedy only; sherpa-onnx's greedy uses 1
        self.reset()

    def reset(self) -> None:
        self.restart(0)
        self.chunk_ms: list[float] = []  # compute time of each chunk: encoder + search (benchmarks read it)

    def restart(self, first_frame: int) -> None:
        """A new utterance whose first sample is the stream's encoder frame `first_frame` (a stream
        that skips non-speech restarts the ASR at each speech region; word times stay stream
        times). Everything but the timing record `chunk_ms` starts afresh."""
        # A fresh decoder cache too: int8 outputs depend slightly on the batch they were computed
        # in, so a reused cache would make a reset stream differ from a new one in the last digit.
        self.decoder = DecoderCache(self.model.decode, self.model.context_size)
        self.fbank = StreamingFbank(self.model.fbank)
        self.frames = np.zeros((0, self.model.fbank.n_mels), np.float32)  # fbank frames not yet consumed
        self.state = self.model.init_state()
        self.hyps: list[Hypothesis] = [Hypothesis()]
        self.n_enc_frames = first_frame  # the stream's encoder frames so far (frames produced, from first_frame)
        self.segment_start = first_frame  # encoder frame where the current segment (utterance) began
        self.finished = False
        self._n_valid: int | None = None  # encoder frames of real audio left to search, once input is finished
        self.last_chunk: tuple[np.ndarray, int] | None = None  # (encoder frames, stream index of the first)
        self.last_chunk_fbank: np.ndarray | None = None  # (4 n, n_mels): the fbank frames its n encoder frames start at

    def new_segment(self) -> None:
        """After an endpoint: forget the hypothesis, keep the encoder's acoustic context."""
        self.hyps = [Hypothesis()]
        self.segment_start = self.n_enc_frames

    @property
    def best(self) -> Hypothesis:
        return self.hyps[0]

    @property
    def time_s(self) -> float:
        """Audio time covered by the decoded chunks."""
        return self.n_enc_frames * self.model.frame_s

    def accept_waveform(self, samples: np.ndarray) -> int:
        """Add (n,) float32 samples at the model's rate; decode every complete chunk. Returns chunks decoded."""
        self.feed(samples)
        return self._decode_ready()

    def feed(self, samples: np.ndarray) -> None:
        """Add samples without decoding; `decode(max_chunks=1)` then decodes chunk by chunk."""
        self.fbank.accept_waveform(samples)
        self.frames = np.concatenate([self.frames, self.fbank.pop_frames()])

    def decode(self, max_chunks: int | None = None) -> int:
        """Decode up to max_chunks of the complete chunks waiting (all by default). Returns chunks decoded."""
        return self._decode_ready(max_chunks=max_chunks)

    def input_finished(self, decode: bool = True) -> int:
        """Flush the frames left over: the encoder frames that a whole-utterance forward would
        still produce from them (4 fbank frames each, 7 for the first) are decoded. The step's
        fixed size is filled with copies of the last frame; the search never sees encoder frames
        made only of that filler, so padding cannot put words in the transcript."""
        self.fbank.input_finished()
        self.frames = np.concatenate([self.frames, self.fbank.pop_frames()])
        self.finished = True
        m = self.model
        look = m.step_frames - m.shift_frames  # fbank frames of look-ahead a step reads past its chunk
        sub = m.shift_frames // m.chunk_frames  # fbank frames per encoder frame
        # encoder frame t of the buffer reads fbank frames sub*t .. sub*t + sub - 1 + look
        n_valid = (len(self.frames) - look - sub) // sub + 1 if len(self.frames) >= look + sub else 0
        self._n_valid = max(0, n_valid)
        if n_valid <= 0:
            return 0
        n_steps = -(-n_valid // m.chunk_frames)
        missing = n_steps * m.shift_frames + look - len(self.frames)
        if missing > 0:
            self.frames = np.concatenate([self.frames, np.repeat(self.frames[-1:], missing, axis=0)])
        return self._decode_ready() if decode else 0

    def _decode_ready(self, max_chunks: int | None = None) -> int:
        """Run complete steps (at most max_chunks); after input_finished, search only the encoder
        frames that real audio produced (`_n_valid` of them are left)."""
        m, n = self.model, 0
        while (len(self.frames) >= m.step_frames and (self._n_valid is None or self._n_valid > 0)
               and (max_chunks is None or n < max_chunks)):
            t0 = time.perf_counter()
            enc, self.state = m.run_encoder(self.frames[: m.step_frames], self.state)
            fbank = self.frames[: m.shift_frames]
            self.frames = self.frames[m.shift_frames :]
            if self._n_valid is not None:
                enc, self._n_valid = enc[: self._n_valid], self._n_valid - len(enc)
            if self.beam <= 1:
                self.hyps = [greedy_search(enc, self.best, self.decoder, m.join, self.n_enc_frames,
                                           self.max_symbols_per_frame)]
            else:
                self.hyps = modified_beam_search(enc, self.hyps, self.decoder, m.join, self.n_enc_frames, self.beam,
                                                 self.lm)
            self.last_chunk = (enc, self.n_enc_frames)  # a chunk's encoder frames, for the IQD
            self.last_chunk_fbank = fbank[: len(enc) * (m.shift_frames // m.chunk_frames)]  # the IQD's onset gate
            self.n_enc_frames += len(enc)
            self.chunk_ms.append(1000 * (time.perf_counter() - t0))
            n += 1
        return n

    def is_endpoint(self) -> bool:
        """Whether the endpoint rules fire for the current segment."""
        ms = self.model.frame_s * 1000
        last = self.best.last_emit_frame
        last_ms = None if last < self.segment_start else (last + 1 - self.segment_start) * ms
        return self.endpoint_cfg.reached((self.n_enc_frames - self.segment_start) * ms, last_ms)

    def result(self, final: bool = False) -> dict[str, Any]:
        """The current segment's text and words; `final` (the segment is over) lets the LM's
        end-of-sentence score rank the beam."""
        words = self.model.words(rank_finished(self.hyps, self.lm)[0] if final else self.best)
        return {"text": " ".join(w["word"] for w in words), "words": words}
