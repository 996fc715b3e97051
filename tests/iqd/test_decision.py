"""The decision state machine on synthetic posteriors, and its vectorised twin."""
from __future__ import annotations

import numpy as np
import pytest

from iqd.evaluate import Track, sweep
from runtime.iqd_policy import DecisionPolicy, Decider, decide, smooth

FRAME_S = 0.04


def _policy(**kw) -> DecisionPolicy:
    base = dict(on_threshold=0.7, off_threshold=0.3, min_on_ms=120.0, min_off_ms=200.0, smoothing_ms=0.0)
    return DecisionPolicy(**{**base, **kw})


def test_directed_after_min_on_ms_above_on_threshold() -> None:
    p = np.array([0.5, 0.8, 0.9, 0.5, 0.8, 0.8, 0.8, 0.8])  # a run of 3 frames = 120 ms from frame 4
    directed, at, _ = decide(p, _policy(), FRAME_S, onset=0, endpoint_s=10.0)
    assert directed and at == pytest.approx(7 * FRAME_S)  # frame 6 completes the run; its end is 0.28 s


def test_undirected_needs_min_off_ms_below_off_threshold() -> None:
    p = np.array([0.2] * 4 + [0.5] + [0.1] * 5)  # 4 frames (160 ms) are not enough, then 5 (200 ms) are
    directed, at, _ = decide(p, _policy(), FRAME_S, onset=0, endpoint_s=10.0)
    assert not directed and at == pytest.approx(10 * FRAME_S)


def test_frames_before_onset_are_ignored() -> None:
    p = np.array([0.99] * 10 + [0.05] * 10)
    directed, at, _ = decide(p, _policy(), FRAME_S, onset=10, endpoint_s=10.0)
    assert not directed and at == pytest.approx(15 * FRAME_S)


def test_forced_decision_at_the_endpoint() -> None:
    p = np.full(50, 0.55)  # between the thresholds: never fires, forced at the endpoint by the midpoint
    directed, at, _ = decide(p, _policy(), FRAME_S, onset=2, endpoint_s=1.5)
    assert directed and at == 1.5
    directed, _, _ = decide(np.full(50, 0.45), _policy(), FRAME_S, onset=2, endpoint_s=1.5)
    assert not directed


def test_a_late_run_after_the_endpoint_does_not_count() -> None:
    p = np.array([0.45] * 20 + [0.9] * 20)
    directed, at, _ = decide(p, _policy(), FRAME_S, onset=0, endpoint_s=0.6)  # 15 frames
    assert not directed and at == 0.6


def test_smoothing_delays_and_filters_a_spike() -> None:
    p = np.array([0.45] * 5 + [1.0] + [0.45] * 20)  # one-frame spike
    assert decide(p, _policy(min_on_ms=40.0), FRAME_S, 0, 10.0)[1] == pytest.approx(6 * FRAME_S)  # raw: fires on it
    smoothed = _policy(min_on_ms=40.0, smoothing_ms=200.0)
    directed, at, _ = decide(p, smoothed, FRAME_S, 0, 0.9)
    assert at == 0.9 and not directed  # smoothed, the spike never reaches 0.7; forced at the endpoint (0.45 < midpoint)
    s = smooth(np.array([0.0, 1.0, 1.0]), 0.5)
    assert list(s) == [0.0, 0.5, 0.75]


def test_decision_is_final_and_reset_clears_it() -> None:
    d = Decider(_policy(min_on_ms=40.0), 40.0)
    assert d.step(0.9, 0.04) == "directed"
    assert d.step(0.0, 0.08) == "directed" and d.decided_at == 0.04
    d.reset()
    assert d.decision is None and d.smoothed is None
    assert d.force(1.0) == "undirected"  # no onset at all


def test_policy_rejects_off_above_on() -> None:
    with pytest.raises(ValueError):
        DecisionPolicy(on_threshold=0.4, off_threshold=0.6)


def test_vectorised_sweep_equals_the_state_machine() -> None:
    rng = np.random.default_rng(0)
    tracks = []
    for i in range(40):
        t = int(rng.integers(5, 80))
        walk = np.clip(0.5 + np.cumsum(rng.normal(0, 0.08, t)), 0, 1)
        tracks.append(Track(walk, int(rng.integers(0, 5)), float(rng.uniform(0.2, 4.0)), 0.1, bool(i % 2), FRAME_S))
    thetas = np.array([0.3, 0.5, 0.62])
    for policy in (_policy(), _policy(smoothing_ms=160.0, min_on_ms=0.0), _policy(on_threshold=0.5, off_threshold=0.5)):
        margin = (policy.on_threshold - policy.off_threshold) / 2
        dec, at, _ = sweep(tracks, policy, thetas, margin)
        for k, th in enumerate(thetas):
            pol = DecisionPolicy(min(1.0, th + margin), max(0.0, th - margin), policy.min_on_ms, policy.min_off_ms,
                                 policy.smoothing_ms)
            for j, tr in enumerate(tracks):
                d, a, _ = decide(tr.p, pol, FRAME_S, tr.onset, tr.endpoint_s)
                assert (bool(dec[k, j]), at[k, j]) == (d, pytest.approx(a)), (k, j)


def test_policy_chosen_on_synthetic_dev_separates_and_respects_the_latency_budget() -> None:
    from iqd.evaluate import choose_policy, evaluate_policy

    rng = np.random.default_rng(1)
    tracks = []
    for i in range(60):
        directed = i % 2 == 0
        # 0.5 until the onset, then drifting to 0.85 or 0.15 with noise: separable after about half a second
        p = np.concatenate([np.full(10, 0.5), 0.5 + (0.35 if directed else -0.35) * (1 - np.exp(-np.arange(60) / 8))])
        p = np.clip(p + rng.normal(0, 0.1, len(p)), 0, 1)
        tracks.append(Track(p, 10, 3.0, 0.3, directed, FRAME_S))
    policy, theta, table = choose_policy(tracks, max_median_latency_s=1.4)
    assert policy.off_threshold <= theta <= policy.on_threshold
    assert table["chosen"]["eer"] <= 0.05 and table["chosen"]["median_s"] <= 1.4
    r = evaluate_policy(tracks, policy, theta)
    assert r["fa"] + r["fr"] <= 3 and r["median_s"] <= 1.4 and r["eer"] == pytest.approx(table["chosen"]["eer"])


def test_onset_skips_bare_word_boundaries() -> None:
    from iqd.evaluate import onset_and_endpoint
    from runtime.asr import silent_token_ids

    assert silent_token_ids(["<blk>", "<unk>", "\u2581", "a", "\u2581b"]) == [2]
    # a character model emits the word boundary (id 2) in the leading silence: that is not the onset
    onset, endpoint = onset_and_endpoint([0, 20, 21, 30], 0.7, 1.5, 0.04, [2, 7, 8, 2], {2})
    assert onset == 20 and endpoint == pytest.approx(31 * 0.04 + 0.8)
    assert onset_and_endpoint([0], 0.7, 1.5, 0.04, [2], {2}) == (17, pytest.approx(2.3))  # nothing spoken


def test_configs_refuse_unknown_keys_and_give_missing_ones_their_defaults() -> None:
    """A stale or mistyped key in a checkpoint, iqd.json or SPLIT.search.json is an error naming it;
    a key saved before its field existed is absent and takes the field's default."""
    from iqd.model import IqdConfig
    from iqd.replay import SearchConfig
    from iqd.train import TrainConfig

    for cls, good in ((DecisionPolicy, DecisionPolicy().to_dict()), (IqdConfig, IqdConfig().to_dict()),
                      (TrainConfig, TrainConfig().to_dict())):
        assert cls.from_dict(good) == cls()
        with pytest.raises(ValueError, match="smothing_ms"):
            cls.from_dict({**good, "smothing_ms": 1.0})
    # a policy saved before the speech-onset gate: tests/runtime/test_iqd_gate.py
    beam = SearchConfig("beam", lm="lm.npz")
    assert SearchConfig.from_describe(beam.describe()) == beam
    with pytest.raises(ValueError, match="width"):
        SearchConfig.from_describe({**beam.describe(), "width": 4})
