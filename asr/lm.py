"""Training the character n-gram LM of shallow fusion (`runtime/lm.py`): interpolated modified
Kneser-Ney (Chen & Goodman 1998) in plain Python and numpy, no torch.

Sentences are token-id sequences of the ASR's own vocabulary (the word boundary is a token). Each
is padded with `order - 1` sentence starts and one sentence end, both id 0 (`BOUNDARY_ID`).
The highest order counts n-grams; a lower order counts, for each n-gram, the distinct tokens
seen before it (its continuation count), except for n-grams that begin at the sentence start,
which have no left context and keep their plain counts (as KenLM does). At every order

    P(w | h) = max(a(h w) - D(a), 0) / a(h .) + gamma(h) P(w | h[1:]),
    gamma(h) = (D1 N1(h .) + D2 N2(h .) + D3 N3+(h .)) / a(h .),

with three discounts per order from the counts of counts, and the unigram interpolated with
the uniform distribution over all ids. Stored in backoff form: the interpolated probability of
every seen n-gram and gamma of every seen context.

Text for it (`training_texts`): the corpus's training transcripts plus the training split of
the corpus's text sources (`corpus.build.load_sentences`), minus every dev and test text.
"""
from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from runtime.lm import BOUNDARY_ID, NgramLM, context_key

WORD_START = "\u2581"


def read_tokens_txt(path: str | Path) -> dict[str, int]:
    table = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            piece, idx = line.rsplit(" ", 1)
            table[piece] = int(idx)
    return table


def char_ids(text: str, table: dict[str, int]) -> list[int]:
    """A spoken-form text as a character vocabulary's ids: the boundary before every word, then
    its characters (what the sentencepiece char model gives); unknown characters become <unk>."""
    unk = table.get("<unk>", 1)
    out: list[int] = []
    for word in text.split():
        out.append(table[WORD_START])
        out += [table.get(c, unk) for c in word]
    return out


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    n = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = (n.get(i, 0) for i in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:  # tiny corpora: plain absolute discounting
        return 0.5, 0.5, 0.5
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    return tuple(min(max(x, 0.05), i + 1.0 - 0.05) for i, x in enumerate(d))  # type: ignore[return-value]


def train_kneser_ney(sentences: Iterable[Sequence[int]], order: int, vocab_size: int) -> NgramLM:
    """Interpolated modified Kneser-Ney over token-id sentences (ids in 1..vocab_size-1)."""
    if order < 1 or vocab_size ** max(order - 1, 1) >= 2 ** 62:
        raise ValueError(f"order {order} with {vocab_size} tokens does not fit the context keys")
    top: Counter = Counter()
    for s in sentences:
        padded = [BOUNDARY_ID] * (order - 1) + list(s) + [BOUNDARY_ID]
        for i in range(order - 1, len(padded)):
            top[tuple(padded[i - order + 1 : i + 1])] += 1
    counts: list[dict[tuple[int, ...], int]] = [dict() for _ in range(order + 1)]
    counts[order] = dict(top)
    for k in range(order - 1, 0, -1):
        plain: Counter = Counter()
        left: Counter = Counter()
        for g, c in counts[k + 1].items():
            g1 = g[1:]
            if k >= 2 and g1[0] == BOUNDARY_ID:  # begins at the sentence start: no left context,
                plain[g1] += c  # and g, which starts there too, holds a plain count
            else:
                left[g1] += 1
        counts[k] = {**left, **plain}
    return _interpolate(counts, order, vocab_size)


def _interpolate(counts: list[dict[tuple[int, ...], int]], order: int, vocab_size: int) -> NgramLM:
    tables: dict[str, np.ndarray] = {}
    prob: dict[tuple[int, ...], float] = {}  # P(w | h) of the order below, by h + (w,)
    for k in range(1, order + 1):
        d = _discounts(counts[k].values())
        by_ctx: dict[tuple[int, ...], list[tuple[int, int]]] = defaultdict(list)
        for g, c in counts[k].items():
            by_ctx[g[:-1]].append((g[-1], c))
        ctxs = sorted(by_ctx, key=lambda h: context_key(h, vocab_size))
        keys, bows, ptr, toks, logps = [], [], [0], [], []
        new_prob: dict[tuple[int, ...], float] = {}
        for h in ctxs:
            items = sorted(by_ctx[h])
            total = sum(c for _, c in items)
            n = Counter(min(c, 3) for _, c in items)
            gamma = (d[0] * n[1] + d[1] * n[2] + d[2] * n[3]) / total
            if k == 1:  # every id, seen or not, interpolated with the uniform distribution
                seen = dict(items)
                items = [(w, seen.get(w, 0)) for w in range(vocab_size)]
            for w, c in items:
                lower = 1.0 / vocab_size if k == 1 else prob[h[1:] + (w,)]
                p = max(c - d[min(c, 3) - 1], 0.0) / total if c else 0.0
                p += gamma * lower
                new_prob[h + (w,)] = p
                toks.append(w)
                logps.append(math.log(p))
            keys.append(context_key(h, vocab_size))
            bows.append(math.log(gamma) if gamma > 0 else -1e9)
            ptr.append(len(toks))
        tables.update({f"ctx{k}": np.asarray(keys, np.int64), f"bow{k}": np.asarray(bows), f"ptr{k}": np.asarray(ptr),
                       f"tok{k}": np.asarray(toks, np.int64), f"logp{k}": np.asarray(logps)})
        prob = new_prob
    return NgramLM(order, vocab_size, tables)


def training_texts(corpus: Path, sources: bool = True) -> list[str]:
    """The corpus's training transcripts, and for a corpus built by `heed corpus build` (it has a
    build.json) the training split of its text sources, without any text that is a dev or test
    transcript or in the sources' dev or test split."""
    from runtime.manifest import read_manifest

    texts = [u.text for u in read_manifest(corpus / "train.jsonl")]
    held = {u.text for split in ("dev", "test") if (corpus / f"{split}.jsonl").exists()
            for u in read_manifest(corpus / f"{split}.jsonl")}
    build = corpus / "build.json"
    if sources and build.exists():  # an imported corpus has no text sources of ours
        from corpus.build import load_sentences

        pools = load_sentences(json.loads(build.read_text()).get("seed", 0))
        held |= {s.text for split in ("dev", "test") for sents in pools[split].values() for s in sents}
        texts += [s.text for sents in pools["train"].values() for s in sents]
    return [t for t in texts if t not in held]
