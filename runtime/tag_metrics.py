"""Tagging metrics: offline slot F1 and intent accuracy, and streaming metrics over prefixes.

Pure functions over lists of labels; no torch, so the runtime's `heed eval` can use them too.

Offline
- `spans(tags)`: the slot spans of one BIO sequence, read as conlleval and seqeval read them
  (an `I-x` that does not continue an `x` chunk starts one), so `slot_f1` equals seqeval's
  micro F1 (tests/runtime/test_tag_metrics.py checks that).
- `slot_f1(refs, hyps)`: micro precision / recall / F1 over exact (slot, start, end) spans.
- `slot_value_f1`: micro F1 over (slot, value) pairs, for recognised text whose words differ
  from the reference's (slot F1 through the ASR).
- `intent_accuracy(refs, hyps)`.

Streaming, after Madureira and Schlangen (2020), "Incremental Processing in the Age of
Non-Incremental Encoders". A run is `outputs`: the label sequence shown after each step
(`outputs[s]` after step s; for gold prefixes step s shows s + 1 labels). The reference of the
stability metrics is the run's own final output, not the gold labels:

- edit overhead (EO): unnecessary edits / all edits. An edit adds, substitutes or deletes one
  label between consecutive outputs; the necessary edits are the len(final) additions. 0 is best.
- correction time (CT): for each final position i, FO_i is the first step that shows a label
  at i and FD_i the step from which position i shows its final label for good; the score is
  sum(FD_i - FO_i) / sum(last_step - FO_i), the share of the possible time labels spent being
  corrected (0 when the denominator is 0). 0 is best.
- relative correctness (RC): share of steps whose output is a prefix of the final output. 1 is best.
- streaming exact match (EM, Kaushal et al. 2023): share of steps whose output equals the
  gold labels of the same prefix. Needs gold; pooled over all steps of all runs.

Delay d (`delayed`): the output of step s withholds its last d labels (the final step shows
everything), the "delayed output" strategy of Madureira and Schlangen; steps left with no label
are dropped. `streaming_scores` reports every metric for each delay asked for.

The outputs may shrink or change earlier words' labels arbitrarily (ASR partials revise
words); all definitions above hold for any sequence of outputs.
"""
from __future__ import annotations

from typing import Iterable, Sequence

Labels = Sequence[str]


def _check_tag(tag: str) -> tuple[str, str]:
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    raise ValueError(f"not a BIO tag: {tag!r} (want O, B-<slot> or I-<slot>)")


def spans(tags: Labels) -> list[tuple[str, int, int]]:
    """The slot chunks of one BIO sequence as (slot, start, end) with `end` exclusive, in order."""
    out: list[tuple[str, int, int]] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, slot = _check_tag(tag)
        continues = prefix == "I" and start >= 0 and slot == kind
        if start >= 0 and not continues:
            out.append((kind, start, i))
            start, kind = -1, ""
        if prefix != "O" and not continues:
            start, kind = i, slot
    if start >= 0:
        out.append((kind, start, len(tags)))
    return out


def slot_f1(refs: Sequence[Labels], hyps: Sequence[Labels]) -> dict[str, float]:
    """Micro-averaged span precision, recall and F1 (fractions, not percent) and the counts."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} reference sequences but {len(hyps)} hypotheses")
    n_ref = n_hyp = n_correct = 0
    for k, (r, h) in enumerate(zip(refs, hyps)):
        if len(r) != len(h):
            raise ValueError(f"sequence {k}: {len(r)} reference tags but {len(h)} hypothesis tags")
        rs, hs = set(spans(r)), set(spans(h))
        n_ref, n_hyp, n_correct = n_ref + len(rs), n_hyp + len(hs), n_correct + len(rs & hs)
    p = n_correct / n_hyp if n_hyp else 0.0
    r = n_correct / n_ref if n_ref else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "n_ref": n_ref, "n_hyp": n_hyp, "n_correct": n_correct}


def slot_value_f1(refs: Sequence[tuple[Sequence[str], Labels]], hyps: Sequence[tuple[Sequence[str], Labels]]) -> dict[str, float]:
    """Micro F1 over (slot, value) pairs, for output whose words differ from the reference's (ASR):
    a slot counts as found when the hypothesis has the same slot with the same words, wherever.

    refs, hyps: (words, tags) per utterance; pairs are counted as multisets per utterance.
    """
    from collections import Counter

    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} reference utterances but {len(hyps)} hypotheses")
    n_ref = n_hyp = n_correct = 0
    for (rw, rt), (hw, ht) in zip(refs, hyps):
        r = Counter((slot, " ".join(rw[i:j])) for slot, i, j in spans(rt))
        h = Counter((slot, " ".join(hw[i:j])) for slot, i, j in spans(ht))
        n_ref, n_hyp, n_correct = n_ref + sum(r.values()), n_hyp + sum(h.values()), n_correct + sum((r & h).values())
    p = n_correct / n_hyp if n_hyp else 0.0
    r_ = n_correct / n_ref if n_ref else 0.0
    return {"precision": p, "recall": r_, "f1": 2 * p * r_ / (p + r_) if p + r_ else 0.0,
            "n_ref": n_ref, "n_hyp": n_hyp, "n_correct": n_correct}


def intent_accuracy(refs: Sequence[str | None], hyps: Sequence[str | None]) -> float:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} reference intents but {len(hyps)} hypotheses")
    if not refs:
        raise ValueError("no intents to score")
    return sum(r == h for r, h in zip(refs, hyps)) / len(refs)


# ---------------------------------------------------------------- streaming


def _check_run(outputs: Sequence[Labels]) -> None:
    if not outputs:
        raise ValueError("a streaming run needs at least one output")


def delayed(outputs: Sequence[Labels], delay: int) -> list[list[str]]:
    """The run as seen with `delay` labels withheld at every step but the last; empty steps dropped."""
    if delay < 0:
        raise ValueError(f"delay must be >= 0, not {delay}")
    _check_run(outputs)
    shown = [list(o[: max(len(o) - delay, 0)]) for o in outputs[:-1]] + [list(outputs[-1])]
    return [o for o in shown if o]


def n_edits(prev: Labels, cur: Labels) -> int:
    """Label additions, substitutions and deletions from one output to the next (position-wise)."""
    common = min(len(prev), len(cur))
    return sum(a != b for a, b in zip(prev[:common], cur[:common])) + abs(len(cur) - len(prev))


def edit_overhead(outputs: Sequence[Labels]) -> float:
    _check_run(outputs)
    total = sum(n_edits(a, b) for a, b in zip([[]] + list(outputs[:-1]), outputs))
    necessary = len(outputs[-1])
    return (total - necessary) / total if total else 0.0


def correction_time(outputs: Sequence[Labels]) -> float:
    _check_run(outputs)
    final, last = outputs[-1], len(outputs) - 1
    spent = possible = 0
    for i, label in enumerate(final):
        first = next(s for s, o in enumerate(outputs) if len(o) > i)
        settled = last
        while settled > first and len(outputs[settled - 1]) > i and outputs[settled - 1][i] == label:
            settled -= 1
        spent += settled - first
        possible += last - first
    return spent / possible if possible else 0.0


def relative_correctness(outputs: Sequence[Labels]) -> float:
    _check_run(outputs)
    final = list(outputs[-1])
    return sum(list(o) == final[: len(o)] for o in outputs) / len(outputs)


def exact_matches(outputs: Sequence[Labels], gold: Labels) -> int:
    """How many outputs equal the gold labels of their prefix (gold of the full sequence, truncated)."""
    return sum(len(o) <= len(gold) and list(o) == list(gold[: len(o)]) for o in outputs)


def hindsight_exact_matches(final: Labels, gold: Labels) -> int:
    """How many prefixes of the final output equal the gold labels of that prefix: the streaming
    exact match (as `exact_matches` counts it) of a tagger that showed at every step the labels it
    gives the whole utterance, i.e. knew the words to come. A reference for streaming EM: a causal
    tagger with these offline labels reaches it only where its labels never depend on the future."""
    n = 0
    for a, b in zip(final, gold):
        if a != b:
            break
        n += 1
    return n


def streaming_scores(
    runs: Iterable[tuple[Sequence[Labels], Labels | None]], delays: Sequence[int] = (0, 1, 2)
) -> dict[str, float]:
    """Means over runs of EO, CT and RC, and pooled streaming EM, for each delay.

    runs: (outputs, gold) pairs; gold may be None (ASR partials without aligned labels), and EM
    is then left out. Keys: "edit_overhead", "correction_time", "relative_correctness",
    "exact_match" for delay 0, and the same with "@d1", "@d2" appended for the delays.
    """
    runs = list(runs)
    if not runs:
        raise ValueError("no streaming runs to score")
    out: dict[str, float] = {}
    for d in delays:
        key = "" if d == 0 else f"@d{d}"
        eo = ct = rc = 0.0
        matched = steps = 0
        with_gold = all(g is not None for _, g in runs)
        for outputs, gold in runs:
            shown = delayed(outputs, d)
            eo += edit_overhead(shown)
            ct += correction_time(shown)
            rc += relative_correctness(shown)
            if with_gold:
                matched += exact_matches(shown, gold)
                steps += len(shown)
        out["edit_overhead" + key] = eo / len(runs)
        out["correction_time" + key] = ct / len(runs)
        out["relative_correctness" + key] = rc / len(runs)
        if with_gold:
            out["exact_match" + key] = matched / steps
    return out
