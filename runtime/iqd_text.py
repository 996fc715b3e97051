"""The IQD's label history read as text: a logistic regression over what the ASR has said so far.

`HistoryText` (optional, iqd.json's `text` entry): the pieces the search emitted from the
decider's onset on, joined into words (`pieces_text`), or, where the entry says `"reads":
"heard"`, the segment's heard partial (Whisper's decoder reading the segment, `runtime/partials.py`)
as it stands, scored by a logistic regression on hashed
word, word-bigram and character-trigram counts (`text_features`, the cascade's classifier,
trained on many more sentences than the joint network sees). Its logit is fused with the joint
network's, `p = sigmoid((1 - w) logit(p_joint) + w text_logit)`, w chosen on dev (`iqd/fusion.py`);
before any text the text logit is 0. Tokens before the onset are left out: in a conversation they
are the characters the ASR made of the pause's noise. numpy only: no torch.
"""
from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np


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

    def heard_logits(self, heard: Sequence[Sequence], onset: int, n_frames: int) -> np.ndarray:
        """Offline, for a detector that reads the heard partials (Whisper's decoder) as its text: the
        text logit at each of n_frames frames, from the onset on, of the partial's text as it stood
        at that frame. heard: [frame, text] where the partial changed (`iqd.cache.CachedUtt.heard`),
        in frame order; the live stream (`runtime.iqd.IqdStream.accept`'s `heard_text`) gives the same."""
        out = np.zeros(n_frames, np.float64)
        for (f, text), nxt in zip(heard, [*heard[1:], [n_frames, None]]):
            a, b = max(int(f), onset), min(int(nxt[0]), n_frames)
            if b > a:
                out[a:b] = self.logit(text)
        return out

    def fuse_track(self, p: np.ndarray, text_logits: np.ndarray) -> np.ndarray:
        """fuse() over a whole track (T,) of posteriors and text logits."""
        q = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
        z = (1 - self.weight) * np.log(q / (1 - q)) + self.weight * text_logits[: len(q)]
        return 1.0 / (1.0 + np.exp(-z))
