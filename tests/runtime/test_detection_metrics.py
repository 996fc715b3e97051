"""EER, DET points, FA/FR and latency on hand-made score lists."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.detection_metrics import decision_curve, det_curve, eer, eer_from_curve, eer_threshold, fa_fr, latency_stats


def test_perfectly_separated_scores_have_zero_eer() -> None:
    assert eer([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 0.0


def test_reversed_scores_have_eer_one() -> None:
    assert eer([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 1.0


def test_one_swap_in_four_gives_half() -> None:
    # directed 0.9, 0.4; undirected 0.6, 0.1: at 0.6 one of each class is wrong
    assert eer([0.9, 0.4, 0.6, 0.1], [True, True, False, False]) == pytest.approx(0.5)


def test_eer_interpolates_between_points() -> None:
    # 4 directed, 4 undirected, one undirected above one directed: FA and FR cross at 0.25
    scores = [0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.05]
    labels = [True] * 4 + [False] * 4
    assert eer(scores, labels) == pytest.approx(0.25)
    fa, fr, thr = det_curve(scores, labels)
    assert fa[0] == 0.0 and fr[0] == 1.0 and fa[-1] == 1.0 and fr[-1] == 0.0
    assert np.all(np.diff(fa) >= 0) and np.all(np.diff(fr) <= 0)
    assert eer_threshold(scores, labels) == 0.6  # FA = FR = 0.25 there


def test_eer_of_crossing_curve_is_interpolated() -> None:
    # FA rises 0 -> 0.4, FR falls 0.2 -> 0: the lines cross at 0.4 * 1/3 = 0.1333
    assert eer_from_curve([0.0, 0.4], [0.2, 0.0]) == pytest.approx(0.2 * 0.4 / 0.6)


def test_eer_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        eer([0.1, 0.2], [True, True])


def test_fa_fr_counts() -> None:
    r = fa_fr([True, False, True, True, False], [True, True, False, False, False])
    assert (r["fa"], r["fr"], r["n_directed"], r["n_undirected"]) == (2, 1, 2, 3)
    assert r["fa_rate"] == pytest.approx(2 / 3) and r["fr_rate"] == pytest.approx(0.5)


def test_latency_median_and_p90() -> None:
    starts = [1.0] * 10
    decided = [1.0 + x for x in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)]
    s = latency_stats(decided, starts)
    assert s["median_s"] == pytest.approx(0.55) and s["p90_s"] == pytest.approx(0.91)


def test_decision_curve_eer_and_latency() -> None:
    labels = [True, True, False, False]
    # three settings: accept all, the right answer, reject all
    decisions = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
    at = np.array([[1.0] * 4, [2.0] * 4, [3.0] * 4])
    c = decision_curve(decisions, at, labels, [0.5] * 4)
    assert c["eer"] == 0.0
    assert list(c["fa"]) == [1.0, 0.0, 0.0] and list(c["fr"]) == [0.0, 0.0, 1.0]
    assert list(c["median_s"]) == [0.5, 1.5, 2.5]


def test_heed_eval_reports_iqd_figures_from_the_results() -> None:
    from runtime.evaluate import UttResult, iqd_metrics, to_markdown, EvalReport

    def r(directed, p, decision, at):
        return UttResult("u", "a", "a", 2.0, 0.1, directed=directed, speech_start=0.5,
                         directed_hyp={"probability": p, "decision": decision, "decided_at": at})

    results = [r(True, 0.9, "directed", 1.0), r(True, 0.15, "undirected", 1.5), r(False, 0.2, "undirected", 2.0),
               r(False, 0.1, "directed", 2.5)]
    q = iqd_metrics(results)
    assert q["eer"] == pytest.approx(0.5) and (q["fa"], q["fr"]) == (1, 1)
    assert q["median_s"] == pytest.approx(1.25)
    assert iqd_metrics([UttResult("u", "a", "a", 1.0, 0.1, directed=True)]) is None  # no IQD in the bundle
    md = to_markdown(EvalReport("m", "b", 4, 0.0, 0.1, 1, results=results, iqd=q))
    assert "intended-query detection (4 utterances): EER 50.0%" in md
