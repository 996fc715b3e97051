"""Transducer search over joiner outputs: plain functions, the hypotheses passed in and out.

The model is reached through two callables, so the same search runs on onnxruntime sessions
(the runtime) and on torch modules (tests):

- `decode(contexts)`: (n, context_size) int64 token ids -> (n, joiner_dim) decoder outputs;
- `join(enc, dec)`: (n, joiner_dim) encoder frames and decoder outputs -> (n, vocab) logits.

A `Hypothesis` carries everything a partial result needs: the tokens, the encoder frame of each
token, each token's probability (its confidence) and the total log-probability. Frames are
counted from the start of the stream, so a chunk's search continues the previous chunk's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from runtime.lm import LmFusion

BLANK_ID = 0
MAX_SYMBOLS_PER_FRAME = 3  # greedy search's limit of tokens emitted at one encoder frame
DecodeFn = Callable[[np.ndarray], np.ndarray]
JoinFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Hypothesis:
    """An immutable search hypothesis; `tokens` excludes the blank context it starts from."""

    tokens: tuple[int, ...] = ()
    frames: tuple[int, ...] = ()  # encoder frame at which each token was emitted
    probs: tuple[float, ...] = ()  # posterior of each token when emitted
    log_prob: float = 0.0  # acoustic: log-sum over the alignments merged into this hypothesis
    last_emit_frame: int = -1  # frame of the newest token, -1 before any
    lm_score: float = 0.0  # shallow fusion's LM score of the tokens (0 without an LM)

    @property
    def score(self) -> float:
        return self.log_prob + self.lm_score

    def context(self, size: int) -> tuple[int, ...]:
        ctx = (BLANK_ID,) * size + self.tokens
        return ctx[len(ctx) - size :]

    def extend(self, token: int, frame: int, prob: float, log_prob: float, lm_score: float = 0.0) -> "Hypothesis":
        return Hypothesis(self.tokens + (token,), self.frames + (frame,), self.probs + (prob,), log_prob, frame, lm_score)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@dataclass
class DecoderCache:
    """Decoder outputs by context: a stateless decoder's output depends on the context alone."""

    decode: DecodeFn
    context_size: int
    table: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)

    def get(self, contexts: Sequence[tuple[int, ...]]) -> np.ndarray:
        missing = sorted({c for c in contexts if c not in self.table})
        if missing:
            out = self.decode(np.asarray(missing, dtype=np.int64))
            for c, row in zip(missing, out):
                self.table[c] = row
        if len(self.table) > 4096:  # bounded: streams run for hours
            keep = set(contexts)
            self.table = {c: v for c, v in self.table.items() if c in keep}
        return np.stack([self.table[c] for c in contexts])


def greedy_search(
    enc: np.ndarray, hyp: Hypothesis, decoder: DecoderCache, join: JoinFn, first_frame: int,
    max_symbols_per_frame: int = MAX_SYMBOLS_PER_FRAME,
) -> Hypothesis:
    """Greedy search over one chunk.

    Args:
        enc: (n_frames, joiner_dim) projected encoder output of the chunk.
        first_frame: stream index of enc[0].
    """
    ctx = decoder.context_size
    for t in range(len(enc)):
        for _ in range(max_symbols_per_frame):
            logp = _log_softmax(join(enc[t : t + 1], decoder.get([hyp.context(ctx)])))[0]
            best = int(logp.argmax())
            if best == BLANK_ID:
                hyp = Hypothesis(hyp.tokens, hyp.frames, hyp.probs, hyp.log_prob + float(logp[best]), hyp.last_emit_frame)
                break
            hyp = hyp.extend(best, first_frame + t, float(np.exp(logp[best])), hyp.log_prob + float(logp[best]))
    return hyp


def modified_beam_search(
    enc: np.ndarray, hyps: Sequence[Hypothesis], decoder: DecoderCache, join: JoinFn, first_frame: int,
    beam: int = 4, lm: "LmFusion | None" = None,
) -> list[Hypothesis]:
    """Modified beam search (at most one token per frame, as in icefall) over one chunk, with
    shallow fusion of `lm` when given.

    Hypotheses with the same tokens are merged by adding their probabilities.
    Returns the beam, best first.
    """
    ctx = decoder.context_size
    hyps = list(hyps) or [Hypothesis()]
    for t in range(len(enc)):
        dec = decoder.get([h.context(ctx) for h in hyps])  # (n, J)
        logp = _log_softmax(join(np.repeat(enc[t : t + 1], len(hyps), axis=0), dec))  # (n, V)
        acoustic = logp + np.array([h.log_prob for h in hyps])[:, None]
        if lm is None:
            total, fused = acoustic, None
        else:
            fused = lm.token_scores([h.tokens for h in hyps]) + np.array([h.lm_score for h in hyps])[:, None]
            total = acoustic + fused
        flat = np.argsort(total, axis=None)[::-1][:beam]
        merged: dict[tuple[int, ...], Hypothesis] = {}
        for idx in flat:
            i, tok = divmod(int(idx), total.shape[1])
            h = hyps[i]
            score = float(acoustic[i, tok])
            lm_score = h.lm_score if fused is None else float(fused[i, tok])
            if tok == BLANK_ID:
                new = Hypothesis(h.tokens, h.frames, h.probs, score, h.last_emit_frame, lm_score)
            else:
                new = h.extend(tok, first_frame + t, float(np.exp(logp[i, tok])), score, lm_score)
            old = merged.get(new.tokens)
            if old is not None:
                hi, lo = max(old.log_prob, score), min(old.log_prob, score)
                keep = old if old.log_prob >= score else new
                new = Hypothesis(keep.tokens, keep.frames, keep.probs, hi + float(np.log1p(np.exp(lo - hi))),
                                 keep.last_emit_frame, keep.lm_score)
            merged[new.tokens] = new
        hyps = sorted(merged.values(), key=lambda h: h.score, reverse=True)
    return hyps


def rank_finished(hyps: Sequence[Hypothesis], lm: "LmFusion | None") -> list[Hypothesis]:
    """The beam of a finished segment, best first, with the LM's end-of-sentence score added
    to the ranking (as is, without an LM or with its `eos_scale` 0)."""
    if lm is None or not lm.eos_scale:
        return list(hyps)
    return sorted(hyps, key=lambda h: h.score + lm.end_score(h.tokens), reverse=True)
