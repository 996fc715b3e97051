"""A character n-gram language model over the ASR's own token ids, for shallow fusion.

The model is the backoff form of an interpolated Kneser-Ney n-gram (as an ARPA file stores it,
trained by `asr/lm.py`): for a history h of at most `order - 1` tokens and a token w,

    log P(w | h) = logp[h, w]                        if (h, w) was seen in training,
                 = bow[h] + log P(w | h[1:])         if h was seen as a context but (h, w) not,
                 = log P(w | h[1:])                  if h was never a context.

Token id 0 (the transducer's blank, never an output token) plays both sentence boundaries: in a
history it is the sentence start (histories are left-padded with it), as the predicted token it
is the end of the sentence. So `log_probs(h)` is a distribution over all `vocab_size` ids.

File (`.npz`): `order`, `vocab_size`, and per order k = 1..order the contexts of k - 1 tokens
seen in training as sorted integer keys (`ctx{k}`: the tokens as digits in base `vocab_size`),
their log backoff weights (`bow{k}`), how many tokens were seen after each (`nxt{k}`), and those
tokens (`tok{k}`, context by context) with their log probabilities (`logp{k}`). Log values are
stored as float16 (at most 0.008 off for probabilities above e^-16): half the size, and shallow
fusion cannot tell.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

BOUNDARY_ID = 0  # sentence start in a history, sentence end as the predicted token


class FusionWeights(NamedTuple):
    scale: float  # weight of the LM's log-probability of a token
    bonus: float  # added per emitted token (offsets the LM's length penalty)
    eos_scale: float  # weight of the LM's end-of-sentence log-probability of a finished segment


# Tuned on the dev split for the order-8 character LM (docs/asr.md, "Shallow fusion"): what
# `heed export lm|bundle --lm` write into bundle.json unless told otherwise, and what the IQD's
# caches fuse with (iqd/replay.py). A bundle entry without a weight means LmFusion's own default.
FUSION_DEFAULTS = FusionWeights(scale=0.65, bonus=0.75, eos_scale=0.8)


def context_key(tokens: Sequence[int], base: int) -> int:
    """Tokens as the digits of one integer (the first token most significant)."""
    key = 0
    for t in tokens:
        key = key * base + int(t)
    return key


class NgramLM:
    """Immutable model plus a cache of whole next-token distributions by history."""

    def __init__(self, order: int, vocab_size: int, tables: dict[str, np.ndarray]) -> None:
        """tables: per order k, ctx{k} bow{k} tok{k} logp{k} and either ptr{k} (offsets into tok{k},
        one more than contexts) or nxt{k} (tokens per context), as described above."""
        self.order, self.vocab_size = int(order), int(vocab_size)
        self.ctx = [tables[f"ctx{k}"].astype(np.int64) for k in range(1, self.order + 1)]
        self.bow = [tables[f"bow{k}"].astype(np.float64) for k in range(1, self.order + 1)]
        self.ptr = [tables[f"ptr{k}"].astype(np.int64) if f"ptr{k}" in tables
                    else np.concatenate([[0], np.cumsum(tables[f"nxt{k}"], dtype=np.int64)])
                    for k in range(1, self.order + 1)]
        self.tok = [tables[f"tok{k}"].astype(np.int64) for k in range(1, self.order + 1)]
        self.logp = [tables[f"logp{k}"].astype(np.float64) for k in range(1, self.order + 1)]
        if len(self.ctx[0]) != 1 or self.ptr[0][1] != self.vocab_size:
            raise ValueError("an n-gram LM's unigram table must give every token a probability")
        self._cache: dict[tuple[int, ...], np.ndarray] = {}

    @classmethod
    def load(cls, path: str | Path) -> "NgramLM":
        from runtime.bundle import load_npz

        tables = load_npz(path, ("order", "vocab_size"))
        return cls(int(tables.pop("order")), int(tables.pop("vocab_size")), tables)

    def save(self, path: str | Path) -> None:
        tables = {"order": np.int64(self.order), "vocab_size": np.int64(self.vocab_size)}
        small = np.uint8 if self.vocab_size <= 255 else np.int32
        for k in range(1, self.order + 1):
            tables.update({f"ctx{k}": self.ctx[k - 1], f"bow{k}": _half(self.bow[k - 1]),
                           f"nxt{k}": np.diff(self.ptr[k - 1]).astype(small), f"tok{k}": self.tok[k - 1].astype(small),
                           f"logp{k}": _half(self.logp[k - 1])})
        with open(path, "wb") as f:  # np.savez_compressed would append .npz to a name without it
            np.savez_compressed(f, **tables)

    def history(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """The last order - 1 tokens, left-padded with the sentence start."""
        n = self.order - 1
        h = (BOUNDARY_ID,) * n + tuple(tokens[-n:] if n else ())
        return h[len(h) - n :]

    def log_probs(self, history: Sequence[int]) -> np.ndarray:
        """(vocab_size,) natural-log P(w | history) over every id; only the last order - 1 tokens count.
        The array is cached and shared: do not modify it."""
        h = self.history(history)
        out = self._cache.get(h)
        if out is None:
            if len(self._cache) > 50_000:  # bounded (12 MB): one entry per distinct history seen
                self._cache.clear()
            out = self._compute(h)
        return out

    def _compute(self, h: tuple[int, ...]) -> np.ndarray:
        if not h:
            out = np.full(self.vocab_size, -np.inf)
            out[self.tok[0]] = self.logp[0]
        else:
            lower = self._cache.get(h[1:])
            out = (lower if lower is not None else self._compute(h[1:])).copy()
            k = len(h)  # the table of order k + 1 has contexts of k tokens
            keys = self.ctx[k]
            key = context_key(h, self.vocab_size)
            i = int(np.searchsorted(keys, key))
            if i < len(keys) and keys[i] == key:
                out += self.bow[k][i]
                a, b = self.ptr[k][i], self.ptr[k][i + 1]
                out[self.tok[k][a:b]] = self.logp[k][a:b]
        out.flags.writeable = False
        self._cache[h] = out
        return out

    def sequence_log_prob(self, tokens: Sequence[int], end: bool = True) -> float:
        """log P of a whole token sequence from the sentence start (and its end, with `end`)."""
        total, seq = 0.0, list(tokens)
        for i, t in enumerate(seq + ([BOUNDARY_ID] if end else [])):
            total += float(self.log_probs(seq[:i])[t])
        return total


def _half(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, -60000.0).astype(np.float16)  # a log value below float16's range stays finite


@dataclass(frozen=True)
class LmFusion:
    """Shallow fusion: a non-blank token adds `scale * log P_lm(token | history) + bonus` to a
    hypothesis's ranking score; `eos_scale * log P_lm(end | history)` ranks a finished segment."""

    lm: NgramLM
    scale: float = 0.3
    bonus: float = 0.0
    eos_scale: float = 0.0
    _rows: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_bundle_entry(cls, path: Path, entry: dict) -> "LmFusion":
        lm = NgramLM.load(path)
        if "order" in entry and int(entry["order"]) != lm.order:
            raise ValueError(f"{path}: an order-{lm.order} LM, bundle.json says {entry['order']}")
        return cls(lm, float(entry.get("scale", 0.3)), float(entry.get("bonus", 0.0)), float(entry.get("eos_scale", 0.0)))

    def token_scores(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """(n, vocab_size) fusion scores of each next token after each history; 0 for the blank."""
        rows = []
        for tokens in histories:
            h = self.lm.history(tokens)
            row = self._rows.get(h)
            if row is None:
                if len(self._rows) > 50_000:
                    self._rows.clear()
                row = self.scale * self.lm.log_probs(h) + self.bonus
                row[0] = 0.0  # the blank emits nothing; the LM's id 0 is the sentence end
                row.flags.writeable = False
                self._rows[h] = row
            rows.append(row)
        return np.stack(rows)

    def end_score(self, tokens: Sequence[int]) -> float:
        return self.eos_scale * float(self.lm.log_probs(tokens)[BOUNDARY_ID]) if self.eos_scale else 0.0
