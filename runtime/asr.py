"""The streaming transducer: one model interface with two backends, and one stream that every caller drives.

`TransducerModel` is what a stream needs from a model: its geometry (chunk sizes, cache shapes,
feature configuration), the token table and three pure functions: the encoder over one chunk with
an explicit `EncoderState`, the stateless decoder and the joiner. `OnnxTransducer` runs the
exported graphs on onnxruntime, its geometry read from their metadata (the runtime);
`asr.backend.TorchTransducer` runs a checkpoint in torch, its geometry from the checkpoint's config
(training, the IQD's caches and evaluation, tests). Both are immutable and shared by every stream.

`AsrStream` holds one stream's state: the fbank frames not yet consumed, the encoder state, the
search hypotheses and the endpointing clock. The caller drives it chunk by chunk
(`decode_chunk`), and each decoded chunk returns a `ChunkResult`: the chunk's encoder frames,
its fbank frames, the tokens the best hypothesis emitted at each of its frames and whether the
endpoint rules fire, which is all the stages after the ASR read (`runtime/pipeline.py` hands it to
the IQD). The runtime, the IQD's caches (`iqd/replay.py`), its evaluation on continuous recordings
(`iqd/streams.py`), the benchmarks and the tests all drive this one class.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np

from runtime.bundle import BundleError, onnx_session, read_lines
from runtime.endpoint import EndpointConfig
from runtime.features import FbankConfig, StreamingFbank
from runtime.lm import LmFusion
from runtime.search import (MAX_SYMBOLS_PER_FRAME, DecoderCache, Hypothesis, greedy_search, modified_beam_search,
                            rank_finished)

WORD_START = "\u2581"


class EncoderState(NamedTuple):
    """The streaming encoder's state, an array per field of either backend (numpy or torch); the
    field names are the encoder graph's input names, and it returns the next caches as
    `next_<name>` (`ENCODER_OUTPUTS`).

    attn_cache: (n_layers, left_context, N, d_model) the last attention inputs of each layer.
    conv_cache: (n_layers, conv_kernel - 1, N, d_model) the last depthwise-convolution inputs.
    processed_frames: (N,) int64 fbank frames consumed so far (sherpa-onnx's unit; the encoder
        divides by its subsampling): masks the attention cache's unfilled slots.
    """

    attn_cache: Any
    conv_cache: Any
    processed_frames: Any


# The three graphs' input and output names (asr/export.py writes them, the runtime reads them).
ENCODER_INPUTS = ("x", *EncoderState._fields)
ENCODER_OUTPUTS = ("encoder_out", "next_attn_cache", "next_conv_cache")
DECODER_INPUTS, DECODER_OUTPUTS = ("y",), ("decoder_out",)
JOINER_INPUTS, JOINER_OUTPUTS = ("encoder_out", "decoder_out"), ("logit",)


def silent_token_ids(pieces: Sequence[str]) -> list[int]:
    """Ids of pieces that are nothing but the word boundary: a character model emits a bare "\u2581"
    in silence, so these do not mark the speech onset for the IQD. Id 0 (the blank) is never one."""
    return [i for i, p in enumerate(pieces) if i > 0 and not p.replace(WORD_START, "")]


class TransducerModel:
    """What a stream needs of a streaming transducer; the backends set the geometry and implement
    `init_state`, `run_encoder`, `decode` and `join`.

    Geometry: `step_frames` fbank frames per encoder call (a chunk and its look-ahead),
    `shift_frames` fbank frames a call advances, `chunk_frames` encoder frames it returns,
    `context_size` tokens the decoder reads, `vocab_size`, `fbank` (the features), `tokens` (the
    piece of each id). Derived: `subsampling` (fbank frames per encoder frame), `frame_s`,
    `frame_samples`.
    """

    step_frames: int
    shift_frames: int
    chunk_frames: int
    context_size: int
    vocab_size: int
    fbank: FbankConfig
    tokens: list[str]

    @property
    def subsampling(self) -> int:
        """Fbank frames per encoder frame (4)."""
        return self.shift_frames // self.chunk_frames

    @property
    def frame_s(self) -> float:
        """Seconds per encoder frame."""
        return self.shift_frames / self.chunk_frames * self.fbank.frame_shift_ms / 1000

    @property
    def frame_samples(self) -> int:
        """Samples per encoder frame."""
        return self.subsampling * self.fbank.frame_shift

    @property
    def silent_tokens(self) -> frozenset[int]:
        return frozenset(silent_token_ids(self.tokens))

    def init_state(self) -> EncoderState:
        raise NotImplementedError

    def run_encoder(self, x: np.ndarray, state: EncoderState) -> tuple[np.ndarray, EncoderState]:
        """x: (step_frames, n_mels) -> (chunk_frames, joiner_dim) projected encoder frames and the next state."""
        raise NotImplementedError

    def decode(self, contexts: np.ndarray) -> np.ndarray:
        """(n, context_size) int64 token ids -> (n, joiner_dim) decoder outputs."""
        raise NotImplementedError

    def join(self, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
        """(n, joiner_dim) encoder frames and decoder outputs -> (n, vocab_size) logits."""
        raise NotImplementedError

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


class OnnxTransducer(TransducerModel):
    """Encoder, decoder and joiner sessions plus the token table; shared, never mutated.
    A file that is missing, corrupt or lacks the metadata is a `BundleError` naming it."""

    def __init__(self, encoder: Path, decoder: Path, joiner: Path, tokens: Path, threads: int = 1) -> None:
        self.encoder, self.decoder, self.joiner = (onnx_session(p, threads) for p in (encoder, decoder, joiner))
        meta = self.encoder.get_modelmeta().custom_metadata_map
        dmeta = self.decoder.get_modelmeta().custom_metadata_map
        self.n_layers = _meta_int(meta, "num_encoder_layers", encoder)
        self.step_frames = _meta_int(meta, "T", encoder)
        self.shift_frames = _meta_int(meta, "decode_chunk_len", encoder)
        self.chunk_frames = _meta_int(meta, "chunk_frames", encoder)
        self.left_context = _meta_int(meta, "left_context", encoder)
        self.d_model = _meta_int(meta, "encoder_dim", encoder)
        self.conv_kernel = _meta_int(meta, "cnn_module_kernel", encoder)
        self.context_size = _meta_int(dmeta, "context_size", decoder)
        self.vocab_size = _meta_int(dmeta, "vocab_size", decoder)
        try:
            self.fbank = FbankConfig.from_dict(json.loads(meta["feature_config"]))
        except (KeyError, ValueError, TypeError) as e:
            raise BundleError(f"{encoder}: ONNX metadata feature_config is missing or wrong ({e})") from None
        self.tokens = _read_tokens(tokens)
        if len(self.tokens) != self.vocab_size:
            raise BundleError(f"{tokens}: {len(self.tokens)} tokens, the decoder ({decoder.name}) expects {self.vocab_size}")
        self.metadata = dict(meta)

    def init_state(self) -> EncoderState:
        return EncoderState(np.zeros((self.n_layers, self.left_context, 1, self.d_model), np.float32),
                            np.zeros((self.n_layers, self.conv_kernel - 1, 1, self.d_model), np.float32),
                            np.zeros((1,), np.int64))

    def run_encoder(self, x: np.ndarray, state: EncoderState) -> tuple[np.ndarray, EncoderState]:
        out, attn, conv = self.encoder.run(list(ENCODER_OUTPUTS), {
            "x": x[None].astype(np.float32, copy=False), **state._asdict()})
        return out[0], EncoderState(attn, conv, state.processed_frames + self.shift_frames)

    def decode(self, contexts: np.ndarray) -> np.ndarray:
        return self.decoder.run(list(DECODER_OUTPUTS), {"y": contexts})[0]

    def join(self, enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return self.joiner.run(list(JOINER_OUTPUTS), {"encoder_out": enc, "decoder_out": dec})[0]


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


@dataclass(frozen=True)
class ChunkResult:
    """What one decoded chunk gives the stages after the ASR.

    encoder_out: (n, joiner_dim) the chunk's projected encoder frames (n = chunk_frames, fewer at
        the end of the input).
    first_frame: the stream encoder frame of encoder_out[0].
    fbank: (n * subsampling, n_mels) the fbank frames the n encoder frames start at (the IQD's
        speech-onset gate); None when the encoder output came precomputed (`search_encoder_out`).
    tokens_by_frame: per encoder frame of the chunk, the tokens the best hypothesis (after this
        chunk) emitted at it; a later chunk may re-rank the beam, this chunk's value stays.
    endpoint: the endpoint rules fire after this chunk (the caller closes the segment: `new_segment`).
    """

    encoder_out: np.ndarray
    first_frame: int
    fbank: np.ndarray | None
    tokens_by_frame: tuple[tuple[int, ...], ...]
    endpoint: bool

    @property
    def n_frames(self) -> int:
        return len(self.encoder_out)

    def emitted(self) -> tuple[list[int], list[int]]:
        """The tokens of `tokens_by_frame` in order and the stream frame of each."""
        pairs = [(t, self.first_frame + i) for i, toks in enumerate(self.tokens_by_frame) for t in toks]
        return [t for t, _ in pairs], [f for _, f in pairs]


class AsrStream:
    """One utterance (or one endless stream) through a shared `TransducerModel`."""

    def __init__(self, model: TransducerModel, beam: int = 4, endpoint: EndpointConfig = EndpointConfig(),
                 max_symbols_per_frame: int = MAX_SYMBOLS_PER_FRAME, lm: LmFusion | None = None) -> None:
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

    def accept_waveform(self, samples: np.ndarray) -> list[ChunkResult]:
        """Add (n,) float32 samples at the model's rate and decode every complete chunk."""
        self.feed(samples)
        return self.decode()

    def feed(self, samples: np.ndarray) -> None:
        """Add samples without decoding; `decode_chunk` then decodes chunk by chunk."""
        self.fbank.accept_waveform(samples)
        self.feed_fbank(self.fbank.pop_frames())

    def feed_fbank(self, frames: np.ndarray) -> None:
        """Add fbank frames (k, n_mels) computed elsewhere (training's torchaudio twin of the
        features, `asr.features.fbank`), in place of samples."""
        self.frames = np.concatenate([self.frames, np.asarray(frames, np.float32)])

    def decode(self) -> list[ChunkResult]:
        """Decode all complete chunks waiting."""
        out = []
        while (chunk := self.decode_chunk()) is not None:
            out.append(chunk)
        return out

    def input_finished(self, decode: bool = True) -> list[ChunkResult]:
        """Flush the frames left over: the encoder frames that a whole-utterance forward would
        still produce from them (4 fbank frames each, 7 for the first) are decoded (with `decode`;
        else by the caller's `decode_chunk`). The step's fixed size is filled with copies of the
        last frame; the search never sees encoder frames made only of that filler, so padding
        cannot put words in the transcript."""
        self.fbank.input_finished()
        self.frames = np.concatenate([self.frames, self.fbank.pop_frames()])
        self.finished = True
        m = self.model
        look = m.step_frames - m.shift_frames  # fbank frames of look-ahead a step reads past its chunk
        sub = m.subsampling
        # encoder frame t of the buffer reads fbank frames sub*t .. sub*t + sub - 1 + look
        n_valid = (len(self.frames) - look - sub) // sub + 1 if len(self.frames) >= look + sub else 0
        self._n_valid = max(0, n_valid)
        if n_valid <= 0:
            return []
        n_steps = -(-n_valid // m.chunk_frames)
        missing = n_steps * m.shift_frames + look - len(self.frames)
        if missing > 0:
            self.frames = np.concatenate([self.frames, np.repeat(self.frames[-1:], missing, axis=0)])
        return self.decode() if decode else []

    def decode_chunk(self) -> ChunkResult | None:
        """Run the encoder over the next complete chunk and search it; None when no chunk is ready
        (after input_finished: when the real audio's encoder frames are all searched)."""
        m = self.model
        if len(self.frames) < m.step_frames or (self._n_valid is not None and self._n_valid <= 0):
            return None
        t0 = time.perf_counter()
        enc, self.state = m.run_encoder(self.frames[: m.step_frames], self.state)
        fbank = self.frames[: m.shift_frames]
        self.frames = self.frames[m.shift_frames :]
        if self._n_valid is not None:
            enc, self._n_valid = enc[: self._n_valid], self._n_valid - len(enc)
        chunk = self._search(enc, fbank[: len(enc) * m.subsampling])
        self.chunk_ms.append(1000 * (time.perf_counter() - t0))
        return chunk

    def search_encoder_out(self, enc: np.ndarray) -> list[ChunkResult]:
        """Search encoder output computed elsewhere (a whole-utterance forward under the chunk
        mask computes what the chunked encoder computes: `iqd/replay.py` batches it), chunk by
        chunk as `decode_chunk` searches it. enc: (T, joiner_dim) -> one result per chunk."""
        enc = np.ascontiguousarray(enc, np.float32)
        c = self.model.chunk_frames
        return [self._search(enc[s : s + c], None) for s in range(0, len(enc), c)]

    def _search(self, enc: np.ndarray, fbank: np.ndarray | None) -> ChunkResult:
        """One chunk's search from the current hypotheses; the stream's clock moves on by len(enc)."""
        m, first = self.model, self.n_enc_frames
        if self.beam <= 1:
            self.hyps = [greedy_search(enc, self.best, self.decoder, m.join, first, self.max_symbols_per_frame)]
        else:
            self.hyps = modified_beam_search(enc, self.hyps, self.decoder, m.join, first, self.beam, self.lm)
        self.n_enc_frames += len(enc)
        by_frame: list[list[int]] = [[] for _ in range(len(enc))]
        for tok, frame in zip(self.best.tokens, self.best.frames):
            if first <= frame < first + len(enc):
                by_frame[frame - first].append(tok)
        return ChunkResult(enc, first, fbank, tuple(tuple(t) for t in by_frame), self.is_endpoint())

    def is_endpoint(self) -> bool:
        """Whether the endpoint rules fire for the current segment."""
        ms = self.model.frame_s * 1000
        last = self.best.last_emit_frame
        last_ms = None if last < self.segment_start else (last + 1 - self.segment_start) * ms
        return self.endpoint_cfg.reached((self.n_enc_frames - self.segment_start) * ms, last_ms)

    def final_hypothesis(self) -> Hypothesis:
        """The finished segment's best: the beam ranked with the LM's end-of-sentence score."""
        return rank_finished(self.hyps, self.lm)[0]

    def result(self, final: bool = False) -> dict[str, Any]:
        """The current segment's text and words; `final` (the segment is over) lets the LM's
        end-of-sentence score rank the beam."""
        words = self.model.words(self.final_hypothesis() if final else self.best)
        return {"text": " ".join(w["word"] for w in words), "words": words}
