"""The IQD's speech-onset gate (runtime/iqd_policy.py: OnsetGate) on synthetic audio, and the decider it holds back."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runtime.asr import ChunkResult
from runtime.features import fbank
from runtime.iqd import IqdStream
from runtime.iqd_policy import DecisionPolicy, OnsetGate, band_bins, frame_energy_db, gate_onset

RATE, FRAME_S = 16000, 0.04
FBANK_PER_FRAME = 4  # the fbank frames of an encoder frame (a chunk's fbank says so: 4 n frames for n)
POLICY = DecisionPolicy(on_threshold=0.7, off_threshold=0.3, min_on_ms=120.0, min_off_ms=120.0, smoothing_ms=0.0)


def _noise_then_burst(noise_s: float = 2.0, burst_s: float = 1.0, noise_dbfs: float = -60.0,
                      burst_dbfs: float = -20.0, tone: bool = True, seed: int = 0) -> np.ndarray:
    """Low-level noise throughout, a tone (or a noise burst) from noise_s on. Returns (n,) float32."""
    rng = np.random.default_rng(seed)
    n, n0 = int((noise_s + burst_s) * RATE), int(noise_s * RATE)
    x = rng.standard_normal(n) * 10 ** (noise_dbfs / 20)
    t = np.arange(n - n0) / RATE
    burst = np.sin(2 * np.pi * 1000 * t) * np.sqrt(2) if tone else rng.standard_normal(n - n0)
    x[n0:] += burst * 10 ** (burst_dbfs / 20)
    return x.astype(np.float32)


def _frames_of(samples: np.ndarray) -> np.ndarray:
    """fbank frames (T, n_mels) cut to whole encoder frames."""
    fb = fbank(samples)
    return fb[: len(fb) // FBANK_PER_FRAME * FBANK_PER_FRAME]


@pytest.mark.parametrize("tone", [True, False], ids=["tone", "noise-burst"])
def test_gate_opens_at_the_burst_within_onset_min_ms(tone: bool) -> None:
    fb = _frames_of(_noise_then_burst(tone=tone))
    energy = frame_energy_db(fb, FBANK_PER_FRAME)
    assert energy.shape == (len(fb) // FBANK_PER_FRAME,)
    assert energy[60:].mean() - energy[:45].mean() > 20  # -20 vs -60 dBFS (the pre-emphasis weighs the tone down)
    onset = gate_onset(energy, POLICY, FRAME_S)
    burst = int(2.0 / FRAME_S)  # frame 50
    n_min = POLICY.frames(POLICY.onset_min_ms, FRAME_S * 1000)
    assert burst <= onset <= burst + n_min + 1  # not before the burst; within onset_min_ms (+ a frame's overlap)


def test_the_speech_band_finds_a_low_tone_in_loud_white_noise() -> None:
    """Broadband noise dominates the energy of all 80 bands; below onset_band_hz the tone stands out."""
    fb = _frames_of(_noise_then_burst(noise_dbfs=-25.0, burst_dbfs=-25.0))
    n = band_bins(POLICY.onset_band_hz)
    assert 30 < n < 60 and band_bins(0.0) == 80
    burst = int(2.0 / FRAME_S)
    assert gate_onset(frame_energy_db(fb, FBANK_PER_FRAME), POLICY, FRAME_S) == len(fb) // FBANK_PER_FRAME  # all bands: never
    assert burst <= gate_onset(frame_energy_db(fb, FBANK_PER_FRAME, n_bins=n), POLICY, FRAME_S) <= burst + 3


def test_gate_stays_closed_on_stationary_noise_of_any_level() -> None:
    for level in (-70.0, -50.0, -30.0):
        fb = _frames_of(_noise_then_burst(noise_s=3.0, burst_s=0.0, noise_dbfs=level, seed=int(-level)))
        assert gate_onset(frame_energy_db(fb, FBANK_PER_FRAME), POLICY, FRAME_S) == len(fb) // FBANK_PER_FRAME, level


def test_gate_needs_onset_min_ms_above_the_margin() -> None:
    energy = np.array([0.0] * 10 + [20.0] * 2 + [0.0] * 10 + [20.0] * 5)  # a 2-frame click, then 5 frames
    pol = dataclasses.replace(POLICY, onset_margin_db=10.0, onset_min_ms=120.0, noise_floor_rise_db_per_s=0.0)
    assert gate_onset(energy, pol, FRAME_S) == 22 + 2  # the click is too short; the third loud frame opens it
    assert gate_onset(energy, dataclasses.replace(pol, onset_margin_db=25.0), FRAME_S) == len(energy)
    assert gate_onset(energy, dataclasses.replace(pol, onset_min_ms=0.0), FRAME_S) == 0  # no gate


def test_noise_floor_falls_at_once_and_rises_slowly() -> None:
    pol = dataclasses.replace(POLICY, noise_floor_rise_db_per_s=5.0)
    g = OnsetGate(pol, FRAME_S * 1000)
    g.step(-40.0, 0)
    g.step(-60.0, 1)
    assert g.floor_db == -60.0
    g.step(-55.0, 2)  # 5 dB above: below the margin; the floor rises by 5 dB/s * 40 ms only
    assert g.floor_db == pytest.approx(-60.0 + 0.2)


class _StubModel:
    """Stands in for IqdModel: a constant posterior, a frame counter as the state, no text reader."""

    text = None

    def __init__(self, p: float) -> None:
        self.p = p

    def init_state(self) -> dict[str, np.ndarray]:
        return {"n": np.zeros(1)}

    def step(self, enc, tokens, state):
        return self.p, {"n": state["n"] + 1}


def _chunk(by_frame: list[list[int]], first: int, fb: np.ndarray | None = None) -> ChunkResult:
    """An ASR chunk of len(by_frame) encoder frames (zeros) from stream frame `first`."""
    return ChunkResult(np.zeros((len(by_frame), 4), np.float32), first, fb, tuple(map(tuple, by_frame)), False)


def _stream_chunks(stream: IqdStream, fb: np.ndarray, tokens_at: dict[int, list[int]], chunk: int = 8) -> None:
    """Feed the stream as the pipeline does: chunks of `chunk` encoder frames with their fbank frames."""
    n = len(fb) // FBANK_PER_FRAME
    for first in range(0, n, chunk):
        k = min(chunk, n - first)
        by_frame = [tokens_at.get(first + i, []) for i in range(k)]
        stream.accept(_chunk(by_frame, first, fb[FBANK_PER_FRAME * first : FBANK_PER_FRAME * (first + k)]))


def test_decider_does_not_start_before_the_gate() -> None:
    fb = _frames_of(_noise_then_burst())
    stream = IqdStream(_StubModel(0.1), FRAME_S, POLICY, silent_tokens=frozenset({1}))
    # hallucinated characters in the noise at frame 5: spoken, but the gate is closed
    _stream_chunks(stream, fb[: 40 * FBANK_PER_FRAME], {5: [7, 8]})
    assert stream.spoken and not stream.gate.open and not stream.onset
    assert stream.decider.smoothed is None and stream.decider.decision is None
    stream.reset()
    _stream_chunks(stream, fb, {5: [7, 8]})
    opened = gate_onset(frame_energy_db(fb, FBANK_PER_FRAME, n_bins=band_bins(POLICY.onset_band_hz)), POLICY, FRAME_S)
    assert stream.gate.opened_at == opened  # chunked in the runtime = whole in the offline evaluation
    n_off = POLICY.frames(POLICY.min_off_ms, FRAME_S * 1000)
    assert stream.decider.decision == "undirected"
    assert stream.decider.decided_at == pytest.approx((opened + n_off) * FRAME_S)  # counted from the gate, not frame 5


def test_without_a_spoken_token_the_gate_alone_does_not_start_the_decider() -> None:
    fb = _frames_of(_noise_then_burst())
    stream = IqdStream(_StubModel(0.9), FRAME_S, POLICY, silent_tokens=frozenset({1}))
    _stream_chunks(stream, fb, {3: [1], 60: [1]})  # only bare word boundaries
    assert stream.gate.open and not stream.spoken and stream.decider.smoothed is None
    _stream_chunks(stream, fb[-8 * FBANK_PER_FRAME :], {})  # (more of the burst; no token yet)
    stream.accept(_chunk([[9]], 80, fb[:FBANK_PER_FRAME]))
    assert stream.onset and stream.decider.smoothed == pytest.approx(0.9)


def test_a_vads_speech_start_replaces_the_energy_gate() -> None:
    fb = _frames_of(_noise_then_burst())
    stream = IqdStream(_StubModel(0.1), FRAME_S, POLICY, silent_tokens=frozenset({1}))
    stream.speech_from(30)
    # spoken at frame 5, long before the VAD's start: the decider waits; no fbank is needed
    for first in range(0, 40, 8):
        stream.accept(_chunk([[7] if first + i == 5 else [] for i in range(8)], first))
        assert stream.onset == (first + 7 >= 30)
    assert stream.gate.floor_db is None, "the energy gate is not run"
    n_off = POLICY.frames(POLICY.min_off_ms, FRAME_S * 1000)
    stream.accept(_chunk([[]] * 8, 40))
    assert stream.decider.decision == "undirected"
    assert stream.decider.decided_at == pytest.approx((30 + n_off) * FRAME_S)
    stream.reset()
    assert stream.speech_frame is None, "set per segment"
    with pytest.raises(ValueError, match="fbank"):
        stream.accept(_chunk([[9], []], 0))


def test_reset_clears_the_gate_state() -> None:
    fb = _frames_of(_noise_then_burst())
    stream = IqdStream(_StubModel(0.9), FRAME_S, POLICY)
    _stream_chunks(stream, fb, {60: [9]})
    g = stream.gate
    assert g.open and g.opened_at is not None and g.floor_db is not None and stream.onset
    stream.reset()
    assert (g.open, g.opened_at, g.floor_db, g.run) == (False, None, None, 0)
    assert not stream.spoken and not stream.onset and stream.decider.decision is None


def test_gate_needs_fbank_unless_the_policy_has_none() -> None:
    stream = IqdStream(_StubModel(0.9), FRAME_S, POLICY)
    with pytest.raises(ValueError, match="fbank"):
        stream.accept(_chunk([[9], []], 0))
    off = IqdStream(_StubModel(0.9), FRAME_S, dataclasses.replace(POLICY, onset_min_ms=0.0))
    off.accept(_chunk([[9], []], 0))
    assert off.onset and off.decider.smoothed == pytest.approx(0.9)  # the first spoken token alone


def test_a_policy_saved_before_the_gate_gets_its_defaults() -> None:
    old = {"on_threshold": 0.71, "off_threshold": 0.41, "min_on_ms": 800.0, "min_off_ms": 800.0, "smoothing_ms": 0.0}
    pol = DecisionPolicy.from_dict(old)
    assert pol.onset_min_ms > 0 and pol.onset_margin_db > 0
    assert pol.to_dict() == {**old, "onset_margin_db": DecisionPolicy().onset_margin_db,
                             "onset_min_ms": DecisionPolicy().onset_min_ms,
                             "noise_floor_rise_db_per_s": DecisionPolicy().noise_floor_rise_db_per_s,
                             "onset_band_hz": DecisionPolicy().onset_band_hz}
    with pytest.raises(ValueError):
        DecisionPolicy(onset_min_ms=-1.0)


def test_default_bundle_policy_gets_the_gate_and_its_stream_decides_after_it() -> None:
    """models/default was exported before the gate: its iqd.json has no gate fields, so the defaults apply."""
    from pathlib import Path

    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline

    bundle = Path(__file__).resolve().parents[2] / "models" / "default"
    if not (bundle / "iqd").exists():
        pytest.skip("the default bundle has no IQD")
    pipe = Pipeline.from_bundle(bundle, vad=False)  # with its VAD, the VAD's speech start is the gate
    assert pipe.iqd.policy.onset_min_ms == DecisionPolicy().onset_min_ms > 0
    samples = load_audio(bundle / "examples" / "01-assistant.wav", pipe.sample_rate)
    s = pipe.create_stream()
    s.accept_waveform(samples, pipe.sample_rate)
    gate = s._iqd.gate
    assert gate.open and gate.opened_at is not None and s._iqd.onset
    d = s._iqd.decider
    assert d.decision is not None and d.decided_at >= (gate.opened_at + 1) * pipe.asr.frame_s - 1e-9
