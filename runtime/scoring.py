"""Scoring shared by `heed eval` and the corpus tools: word errors, pooled WER, the acoustic
condition labels of an utterance's `augment`, and the per-voice sample that scores a split (numpy
and jiwer only; `corpus check` and `runtime.evaluate` both use it)."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from runtime.manifest import Utterance

CLEAN_SNR_DB = 20.0
# Upper edges of the SNR bins, dB.
SNR_EDGES_DB = (0.0, 5.0, 10.0, 20.0)


def count_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(word errors, reference words) of one pair; an empty reference makes every hypothesis word an insertion."""
    ref_words, hyp_words = ref.split(), hyp.split()
    if not ref_words:
        return len(hyp_words), 0
    import jiwer

    o = jiwer.process_words(" ".join(ref_words), " ".join(hyp_words) if hyp_words else "")
    return o.substitutions + o.deletions + o.insertions, len(ref_words)


def wer(refs: Iterable[str], hyps: Iterable[str]) -> float:
    """Pooled word error rate: total errors / total reference words.

    With no reference words at all it is 0.0 for empty hypotheses and 1.0 otherwise (there is no
    count to divide by; any output where silence was expected is counted as all wrong).
    """
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references for {len(hyps)} hypotheses")
    n_err = n_ref = 0
    for r, h in zip(refs, hyps):
        e, n = count_errors(r, h)
        n_err, n_ref = n_err + e, n_ref + n
    if n_ref == 0:
        return 0.0 if n_err == 0 else 1.0
    return n_err / n_ref


def conditions(augment: dict[str, Any]) -> tuple[str, ...]:
    """Condition labels of an utterance's `augment`: "clean", or "noise:<kind>", "snr:<bin>", "reverb", "telephone"."""
    out: list[str] = []
    noise = augment.get("noise")
    if noise and noise != "none":
        out.append(f"noise:{noise}")
        snr = augment.get("snr_db")
        if snr is not None:
            out.append(f"snr:{snr_bin(float(snr))}")
    if augment.get("rir"):
        out.append("reverb")
    if augment.get("telephone"):
        out.append("telephone")
    return tuple(out) or ("clean",)


def snr_bin(snr_db: float) -> str:
    lo = None
    for hi in SNR_EDGES_DB:
        if snr_db < hi:
            return f"<{hi:g}dB" if lo is None else f"{lo:g}-{hi:g}dB"
        lo = hi
    return f">={lo:g}dB"


def is_clean(augment: dict[str, Any]) -> bool:
    """No reverb, no telephone band, and no noise or noise at >= CLEAN_SNR_DB."""
    if augment.get("rir") or augment.get("telephone"):
        return False
    noise = augment.get("noise")
    if not noise or noise == "none":
        return True
    snr = augment.get("snr_db")
    return snr is not None and float(snr) >= CLEAN_SNR_DB


def sample_per_voice(utts: list[Utterance], per_voice: int, rng: np.random.Generator) -> list[Utterance]:
    """Up to `per_voice` utterances of each voice, drawn without replacement, voices in sorted order.

    Half of each voice's sample is drawn from its clean-ish utterances (where it has enough), so
    the drop rule judges a voice on more than the two or three clean-ish utterances a uniform
    draw would give it; the other half is drawn from the rest, so conditions are scored too.
    """
    by_voice: dict[str, list[Utterance]] = {}
    for u in utts:
        by_voice.setdefault(u.voice or "unknown", []).append(u)
    out = []
    for voice in sorted(by_voice):
        clean = [u for u in by_voice[voice] if is_clean(u.augment)]
        other = [u for u in by_voice[voice] if not is_clean(u.augment)]
        n_clean = min(len(clean), max(per_voice // 2, per_voice - len(other)))
        picked = _draw(clean, n_clean, rng) + _draw(other, per_voice - n_clean, rng)
        out += sorted(picked, key=lambda u: u.id)
    return out


def _draw(pool: list[Utterance], n: int, rng: np.random.Generator) -> list[Utterance]:
    return [pool[i] for i in rng.permutation(len(pool))[:max(n, 0)]]
