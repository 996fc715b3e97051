"""The voice-activity detector (runtime/vad.py): the gate's state machine on synthetic probability
sequences, the model wrapper's refusals, and the per-stream gating of audio for the ASR."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.vad import Audio, End, Start, VadConfig, VadError, VadGate, VadModel

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"
RATE, WINDOW = 16000, 512
CFG = VadConfig(threshold=0.5, neg_threshold=0.35, min_speech_ms=96.0, min_silence_ms=160.0, speech_pad_ms=100.0)


def _events(probs: list[float], cfg: VadConfig = CFG) -> list[tuple[str, int]]:
    """(kind, window index) of every event the gate declares over a probability sequence."""
    gate, out = VadGate(cfg, RATE, WINDOW), []
    for p in probs:
        ev = gate.step(p)
        if ev:
            (kind, sample), = ev.items()
            assert sample % WINDOW == 0
            out.append((kind, sample // WINDOW))
    return out


def test_speech_starts_after_min_speech_ms_at_the_first_window_of_the_run() -> None:
    # 96 ms = 3 windows of 32 ms: the start is declared on the third, dated at the first
    assert _events([0.1] * 5 + [0.9] * 3 + [0.9] * 4) == [("start", 5)]
    assert _events([0.1] * 5 + [0.9] * 2 + [0.1] * 5) == [], "a blip shorter than min_speech_ms"
    # a window between the thresholds continues a run that began at or above threshold ...
    assert _events([0.1, 0.9, 0.4, 0.9, 0.1]) == [("start", 1)]
    # ... but does not begin one, and one below neg_threshold breaks it
    assert _events([0.1, 0.4, 0.4, 0.4, 0.1]) == []
    assert _events([0.1, 0.9, 0.2, 0.9, 0.9, 0.9, 0.1]) == [("start", 3)]


def test_speech_ends_after_min_silence_ms_at_the_first_silent_window() -> None:
    on = [0.9] * 3
    # 160 ms = 5 windows below neg_threshold; the end is dated at the first of them
    assert _events(on + [0.9] * 2 + [0.1] * 5 + [0.1]) == [("start", 0), ("end", 5)]
    assert _events(on + [0.1] * 4 + [0.9] + [0.1] * 4) == [("start", 0)], "speech again restarts the count"
    # between the thresholds: the count goes on, the end waits for a window below neg_threshold
    assert _events(on + [0.1] * 2 + [0.4] * 10) == [("start", 0)]
    assert _events(on + [0.1] * 2 + [0.4] * 10 + [0.1]) == [("start", 0), ("end", 3)]


def test_min_durations_are_rounded_up_to_whole_windows_and_can_be_zero() -> None:
    assert _events([0.9, 0.1], VadConfig(min_speech_ms=0.0, min_silence_ms=0.0)) == [("start", 0), ("end", 1)]
    assert _events([0.9, 0.9, 0.1, 0.1], VadConfig(min_speech_ms=33.0, min_silence_ms=33.0)) == [("start", 0), ("end", 2)]


def test_reset_forgets_everything() -> None:
    gate = VadGate(CFG, RATE, WINDOW)
    for p in [0.9] * 3 + [0.1] * 2:
        gate.step(p)
    assert gate.speech and gate.silent_from is not None and gate.position == 5 * WINDOW
    gate.reset()
    assert (gate.speech, gate.position, gate.candidate, gate.silent_from) == (False, 0, None, None)
    assert gate.step(0.9) is None and gate.candidate == 0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="neg_threshold"):
        VadConfig(threshold=0.3, neg_threshold=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        VadConfig(min_silence_ms=-1.0)
    with pytest.raises(ValueError, match="unknown VAD policy keys"):
        VadConfig.from_dict({"threshold": 0.5, "min_silence_duration_ms": 100})


def _vad_file() -> Path:
    entry = json.loads((BUNDLE / "bundle.json").read_text()).get("vad")
    if not entry or not (BUNDLE / entry["file"]).exists():
        pytest.skip("the default bundle has no VAD")
    return BUNDLE / entry["file"]


@pytest.fixture(scope="module")
def model() -> VadModel:
    entry = json.loads((BUNDLE / "bundle.json").read_text()).get("vad") or {}
    return VadModel.from_entry(_vad_file(), entry)


def test_the_model_refuses_corrupt_or_foreign_graphs_with_the_file_named(tmp_path: Path) -> None:
    real = _vad_file()
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph at all" * 100)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    for bad, why in [(garbage, "not a readable ONNX graph"), (truncated, "not a readable ONNX graph"),
                     (BUNDLE / "iqd" / "iqd.int8.onnx", "not a silero VAD graph"),
                     (tmp_path / "missing.onnx", "missing")]:
        with pytest.raises(VadError, match=why) as e:
            VadModel(bad)
        assert str(bad) in str(e.value)
    copy = tmp_path / "copy.onnx"
    shutil.copyfile(real, copy)
    with pytest.raises(VadError, match="sha256"):
        VadModel(copy, sha256="0" * 64)


def _speech_with_silence(gap_s: float = 2.0) -> np.ndarray:
    from runtime.audio import load_audio

    speech = load_audio(BUNDLE / "examples" / "01-assistant.wav", RATE)
    gap = np.zeros(int(gap_s * RATE), np.float32)
    return np.concatenate([gap, speech, gap, speech, gap])


def test_the_model_hears_speech_and_not_silence(model: VadModel) -> None:
    p = model.probabilities(_speech_with_silence())
    gap = int(2.0 * RATE) // WINDOW
    assert p[: gap - 1].max() < 0.1
    assert np.mean(p[gap + 10: gap + 40] > model.config.threshold) > 0.7


def _gate(model: VadModel, x: np.ndarray, piece: int, align: int = 640) -> list[tuple]:
    s = model.create_stream(align=align)
    out = []
    for i in range(0, len(x), piece):
        out += s.accept_waveform(x[i: i + piece])
    out += s.input_finished()
    return out


def test_the_stream_passes_speech_with_its_pre_roll_and_drops_the_rest(model: VadModel) -> None:
    x = _speech_with_silence()
    out = _gate(model, x, 1000)
    kinds = [type(o).__name__ for o in out]
    assert kinds.count("Start") == 2 and kinds.count("End") == 2 and kinds[0] == "Start"
    pad = round(model.config.speech_pad_ms * RATE / 1000)
    passed_until = 0
    for o in out:
        if isinstance(o, Start):
            assert o.audio_start % 640 == 0, "the ASR restarts on an encoder frame"
            assert o.speech_start - pad - 640 < o.audio_start <= max(o.speech_start - pad, passed_until + 639)
            assert o.audio_start >= passed_until, "never reaches back into audio already passed on"
            begin = o.audio_start
        if isinstance(o, (Start, Audio)):
            assert np.array_equal(o.samples, x[begin: begin + len(o.samples)]), "the samples at their stream positions"
            begin += len(o.samples)
            passed_until = begin
        if isinstance(o, End):
            assert o.speech_end < passed_until, "the audio passed on reaches past the end"
    first_speech = int(2.0 * RATE)
    starts = [o.speech_start for o in out if isinstance(o, Start)]
    assert abs(starts[0] - first_speech) < 0.25 * RATE
    passed = sum(len(o.samples) for o in out if isinstance(o, (Start, Audio)))
    assert passed < 0.8 * len(x), "most of the silence is dropped"


def _regions(out: list) -> list[tuple]:
    """The gate's output as speech regions: (speech_start, audio_start, all samples passed on, end or None)."""
    regions = []
    for o in out:
        if isinstance(o, Start):
            regions.append([o.speech_start, o.audio_start, [o.samples], None])
        elif isinstance(o, Audio):
            assert o.audio_start == regions[-1][1] + sum(map(len, regions[-1][2])), "contiguous"
            regions[-1][2].append(o.samples)
        else:
            regions[-1][3] = o.speech_end
    return [(a, b, np.concatenate(c), d) for a, b, c, d in regions]


def _same(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        a[0] == b[0] and a[1] == b[1] and a[3] == b[3] and np.array_equal(a[2], b[2]) for a, b in zip(got, want))


def test_the_stream_gives_the_same_output_for_any_piece_size(model: VadModel) -> None:
    x = _speech_with_silence(1.0)
    ref = _regions(_gate(model, x, len(x)))
    assert len(ref) == 2
    for piece in (511, 513, 4000):
        assert _same(_regions(_gate(model, x, piece)), ref), piece
    short = x[: 3 * RATE]
    assert _same(_regions(_gate(model, short, 1)), _regions(_gate(model, short, len(short))))


def test_reset_makes_the_stream_as_new(model: VadModel) -> None:
    x = _speech_with_silence(1.0)
    s = model.create_stream(align=640)
    s.accept_waveform(x[: len(x) // 2])
    s.reset()
    again = s.accept_waveform(x) + s.input_finished()
    assert _same(_regions(again), _regions(_gate(model, x, len(x))))
