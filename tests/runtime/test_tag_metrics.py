from __future__ import annotations

import random

import pytest

from runtime.tag_metrics import (
    correction_time, delayed, edit_overhead, exact_matches, hindsight_exact_matches, intent_accuracy,
    relative_correctness, slot_f1, slot_value_f1, spans, streaming_scores,
)

# A run worked by hand: the first label is corrected once, the second once, then all is stable.
#   step 0: B-a              (1 addition)
#   step 1: B-b  O           (1 substitution, 1 addition)
#   step 2: B-b  B-c  I-c    (1 substitution, 1 addition)
#   step 3: B-b  B-c  I-c  O (1 addition)
RUN = [["B-a"], ["B-b", "O"], ["B-b", "B-c", "I-c"], ["B-b", "B-c", "I-c", "O"]]
GOLD = ["B-b", "B-c", "I-c", "B-d"]


def test_spans_read_bio_as_conlleval_does() -> None:
    tags = ["I-a", "I-a", "B-a", "I-b", "O", "B-c", "I-c", "I-a"]
    assert spans(tags) == [("a", 0, 2), ("a", 2, 3), ("b", 3, 4), ("c", 5, 7), ("a", 7, 8)]
    assert spans(["O", "O"]) == []
    assert spans(["B-from.city", "I-from.city"]) == [("from.city", 0, 2)]


def test_bad_tag_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a BIO tag: 'X-a'"):
        spans(["O", "X-a"])
    with pytest.raises(ValueError, match="sequence 0: 2 reference tags but 1"):
        slot_f1([["O", "O"]], [["O"]])


def test_slot_f1_by_hand() -> None:
    refs = [["B-a", "I-a", "O", "B-b"], ["O", "B-c"]]
    hyps = [["B-a", "I-a", "O", "B-c"], ["O", "B-c"]]
    # 3 reference spans, 3 hypothesis spans, 2 correct (a and the second sentence's c)
    s = slot_f1(refs, hyps)
    assert (s["n_ref"], s["n_hyp"], s["n_correct"]) == (3, 3, 2)
    assert s["precision"] == pytest.approx(2 / 3) and s["f1"] == pytest.approx(2 / 3)
    # a boundary error is a miss, not half a hit
    assert slot_f1([["B-a", "I-a"]], [["B-a", "O"]])["f1"] == 0.0
    assert slot_f1([["O"]], [["O"]])["f1"] == 0.0  # no spans anywhere: nothing found, nothing to find


def test_slot_f1_agrees_with_seqeval() -> None:
    seqeval = pytest.importorskip("seqeval.metrics", reason="seqeval is a dev dependency (pip install -e .[dev])")
    rng = random.Random(0)
    vocab = ["O", "O", "O", "B-a", "I-a", "B-b", "I-b", "B-c", "I-c"]
    for trial in range(30):
        refs = [[rng.choice(vocab) for _ in range(rng.randint(1, 12))] for _ in range(20)]
        hyps = [[t if rng.random() < 0.7 else rng.choice(vocab) for t in r] for r in refs]
        ours = slot_f1(refs, hyps)
        assert ours["f1"] == pytest.approx(seqeval.f1_score(refs, hyps), abs=1e-12), trial
        assert ours["precision"] == pytest.approx(seqeval.precision_score(refs, hyps), abs=1e-12), trial
        assert ours["recall"] == pytest.approx(seqeval.recall_score(refs, hyps), abs=1e-12), trial


def test_slot_value_f1_compares_values_not_positions() -> None:
    ref = ("fly to new york on monday".split(), ["O", "O", "B-to", "I-to", "O", "B-day"])
    # the ASR inserted a word and misheard the day: "to" is still found, "day" is not
    hyp = ("uh fly to new york on sunday".split(), ["O", "O", "O", "B-to", "I-to", "O", "B-day"])
    s = slot_value_f1([ref], [hyp])
    assert (s["n_ref"], s["n_hyp"], s["n_correct"]) == (2, 2, 1) and s["f1"] == 0.5
    assert slot_value_f1([ref], [ref])["f1"] == 1.0


def test_intent_accuracy() -> None:
    assert intent_accuracy(["a", "b", "c", None], ["a", "x", "c", None]) == 0.75
    with pytest.raises(ValueError):
        intent_accuracy(["a"], [])


def test_streaming_metrics_by_hand() -> None:
    # 6 edits, 4 necessary
    assert edit_overhead(RUN) == pytest.approx(2 / 6)
    # position 0 settles at step 1 (1 of 3 possible steps), position 1 at step 2 (1 of 2),
    # position 2 at once (0 of 1), position 3 appears last (0 of 0): 2 / 6
    assert correction_time(RUN) == pytest.approx(2 / 6)
    # steps 2 and 3 are prefixes of the final output
    assert relative_correctness(RUN) == 0.5
    # only step 2 matches the gold labels of its prefix (the final output mislabels "B-d")
    assert exact_matches(RUN, GOLD) == 1
    # shown with hindsight (the final labels on every prefix), the first three prefixes are right
    assert hindsight_exact_matches(RUN[-1], GOLD) == 3 == exact_matches([RUN[-1][:k] for k in range(1, 5)], GOLD)
    assert hindsight_exact_matches(["O", "B-c"], GOLD) == 0 and hindsight_exact_matches(GOLD, GOLD) == 4


def test_delay_withholds_the_newest_labels() -> None:
    shown = delayed(RUN, 1)
    assert shown == [["B-b"], ["B-b", "B-c"], ["B-b", "B-c", "I-c", "O"]]
    assert edit_overhead(shown) == 0.0 and correction_time(shown) == 0.0 and relative_correctness(shown) == 1.0
    assert delayed(RUN, 2) == [["B-b"], ["B-b", "B-c", "I-c", "O"]]
    with pytest.raises(ValueError):
        delayed(RUN, -1)


def test_a_stable_run_scores_perfectly_and_a_flipping_one_does_not() -> None:
    final = ["O", "B-a", "I-a"]
    stable = [final[: i + 1] for i in range(3)]
    assert (edit_overhead(stable), correction_time(stable), relative_correctness(stable)) == (0.0, 0.0, 1.0)
    flipping = [["B-a"], ["O", "O"], ["B-a", "B-a", "O"], final]
    # edits 1 + 2 + 3 + 2 = 8, 3 necessary; position 0 settles only at the end (3 of 3 steps),
    # position 1 at step 2 (1 of 2), position 2 at step 3 (1 of 1)
    assert edit_overhead(flipping) == pytest.approx(5 / 8)
    assert correction_time(flipping) == pytest.approx(5 / 6)
    assert relative_correctness(flipping) == 0.25


def test_revisions_that_shrink_the_output_count_as_edits() -> None:
    run = [["O"], ["O", "B-a"], ["O"], ["O", "O"]]  # an ASR partial dropped a word, then another came
    assert edit_overhead(run) == pytest.approx(2 / 4)  # 4 edits: add, add, delete, add; 2 necessary


def test_streaming_scores_pools_em_and_averages_the_rest() -> None:
    final = ["O", "B-a"]
    perfect = ([final[:1], final], final)
    s = streaming_scores([(RUN, GOLD), perfect], delays=(0, 1))
    assert s["edit_overhead"] == pytest.approx((2 / 6 + 0) / 2)
    assert s["relative_correctness"] == pytest.approx((0.5 + 1) / 2)
    assert s["exact_match"] == pytest.approx((1 + 2) / (4 + 2))
    assert s["edit_overhead@d1"] == 0.0 and "exact_match@d1" in s
    assert "exact_match" not in streaming_scores([(RUN, None)])
