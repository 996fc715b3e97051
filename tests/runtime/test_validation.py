"""Arguments and API calls that used to give silent wrong results or tracebacks (issue 20, items 7,
8 and 10): each is refused with a message that names the problem, or now does the right thing."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from runtime.audio import AudioError, check_rate, to_mono_float
from runtime.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"
EXAMPLE = BUNDLE / "examples" / "01-assistant.wav"


def _heed(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.from_bundle(BUNDLE)


def test_integer_samples_are_scaled_by_a_type_that_says_the_range() -> None:
    pcm = (np.sin(np.arange(1600) / 5) * 20000).astype(np.int16)
    assert np.allclose(to_mono_float(pcm), pcm / 32768, atol=1e-6)
    assert np.allclose(to_mono_float(pcm.astype(np.int32) << 16), pcm / 32768, atol=1e-6)
    for dtype in (np.int64, np.uint8, np.uint16):  # int64 of int16 values used to become silence
        with pytest.raises(AudioError, match=f"type {np.dtype(dtype).name} have no audio scale"):
            to_mono_float(pcm.astype(dtype))


def test_floats_far_outside_unit_range_are_refused() -> None:
    x = np.sin(np.arange(1600) / 5)
    assert np.allclose(to_mono_float(1.5 * x), 1.5 * x, atol=1e-6)  # overs are audio
    with pytest.raises(AudioError, match=r"reach 2\d+.*divide by 32768"):
        to_mono_float(20000.0 * x)
    with pytest.raises(AudioError, match="reach 3"):
        to_mono_float(3.0 * x)


@pytest.mark.parametrize("rate, words", [(None, "must be a number"), (16000.7, "whole number"), (1, "outside"),
                                         (-16000, "outside"), ("16000", "must be a number"), (10**7, "outside")])
def test_sample_rates_are_whole_hertz_in_range(pipe: Pipeline, rate, words: str) -> None:
    with pytest.raises(AudioError, match=words):
        pipe.create_stream().accept_waveform(np.zeros(1600, np.float32), rate)


def test_good_sample_rates_of_any_number_type(pipe: Pipeline) -> None:
    for rate in (16000, 16000.0, np.int64(16000), np.float32(8000), 44100):
        assert check_rate(rate) == int(rate)
        pipe.create_stream().accept_waveform(np.zeros(1600, np.float32), rate)


def test_beam_and_threads_are_checked_by_the_api(pipe: Pipeline) -> None:
    for beam in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="beam must be a whole number of at least 1"):
            pipe.create_stream(beam=beam)
    assert pipe.create_stream(beam=1).asr.beam == 1
    for threads in (0, -2, 1.5):
        with pytest.raises(ValueError, match="threads must be a whole number of at least 1"):
            Pipeline.from_bundle(BUNDLE, threads=threads)


@pytest.mark.parametrize("args, words", [
    (["transcribe", "--beam", "0", str(EXAMPLE)], "--beam: must be at least 1, got 0"),
    (["transcribe", "--beam", "-3", str(EXAMPLE)], "--beam: must be at least 1, got -3"),
    (["transcribe", "--piece-ms", "0", str(EXAMPLE)], "--piece-ms: must be above 0, got 0"),
    (["transcribe", "--threads", "-2", str(EXAMPLE)], "--threads: must be at least 1, got -2"),
    (["eval", "m.jsonl", "--limit", "-1"], "--limit: must be at least 1, got -1"),
    (["eval", "m.jsonl", "--per-voice", "0"], "--per-voice: must be at least 1, got 0"),
    (["mic", "--seconds", "0"], "--seconds: must be above 0, got 0"),
    (["bench", "--seconds", "0"], "--seconds: must be above 0, got 0"),
    (["bench", "--seconds", "nan"], "--seconds: must be above 0, got nan"),
    (["demo", "--threads", "0"], "--threads: must be at least 1, got 0"),
])
def test_bad_numbers_on_the_command_line_are_refused(args: list[str], words: str) -> None:
    r = _heed(*args)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_threads_help_says_more_threads_can_be_slower() -> None:
    r = _heed("transcribe", "--help")
    assert "3 to 6 times slower than 1" in " ".join(r.stdout.split())


def _manifest(path: Path, audios: list[str]) -> Path:
    line = json.loads((BUNDLE / "examples" / "examples.jsonl").read_text().splitlines()[0])
    path.write_text("".join(json.dumps({**line, "id": f"u{i}", "audio": a}) + "\n" for i, a in enumerate(audios)))
    return path


def test_eval_exits_1_when_an_utterance_fails_and_says_which(tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_text("not audio")
    m = _manifest(tmp_path / "m.jsonl", [str(EXAMPLE), "bad.wav"])
    r = _heed("eval", str(m))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "1 of 2 utterances failed, e.g. u1:" in r.stderr and "bad.wav" in r.stderr
    assert _heed("eval", str(_manifest(tmp_path / "ok.jsonl", [str(EXAMPLE)]))).returncode == 0


def test_eval_of_an_empty_manifest_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    r = _heed("eval", str(tmp_path / "empty.jsonl"))
    assert r.returncode == 1 and "no utterances to evaluate" in r.stderr and "Traceback" not in r.stderr


def test_eval_plots_without_matplotlib_are_skipped_with_a_message(tmp_path: Path) -> None:
    stub = tmp_path / "stub" / "matplotlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "stub")}
    r = _heed("eval", str(_manifest(tmp_path / "m.jsonl", [str(EXAMPLE)])), "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "no plots" in r.stderr and "need matplotlib" in r.stderr
    assert (tmp_path / "out" / "eval.json").exists() and not list((tmp_path / "out").glob("*.png"))


def test_bench_writes_nothing_unasked_and_silence_has_no_negative_latency(tmp_path: Path) -> None:
    sf.write(tmp_path / "silence.wav", np.zeros(16000 * 3, np.float32), 16000)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's code, run from another folder
    r = _heed("bench", "--audio", str(tmp_path / "silence.wav"), "--seconds", "3", "--streams", "1", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["silence.wav"]  # no bench.json in the current folder
    assert "# heed bench" in r.stdout and " -0." not in r.stdout and "| -" not in r.stdout


def test_latencies_of_speech_free_events_are_not_measured(pipe: Pipeline) -> None:
    """Words made up in noise before the speech starts (or ends) do not make a negative latency."""
    from runtime import bench

    noise = (0.01 * np.random.default_rng(0).normal(size=16000 * 4)).astype(np.float32)
    clip = np.concatenate([noise, bench._clips(pipe, BUNDLE, [str(EXAMPLE)])[0][0]])
    lat = bench.latencies(pipe, [(clip, 4.0 + 0.89, 4.0 + 2.23)])
    for v in (lat["first_partial_after_speech_start_s"], lat["final_after_speech_end_s"]):
        assert v is None or v >= 0


def test_mic_list_devices_with_none_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from runtime import mic

    monkeypatch.setattr(mic, "input_devices", lambda: [])
    args = argparse.Namespace(list_devices=True, save=None, device=None, bundle=None, threads=1, json=False,
                              plain=True, seconds=None)
    assert mic.run(args) == 1
    assert "no audio input device found" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["x.wav", "x.flac", "x.ogg", "x.mp3"])
def test_mic_save_writes_any_format_its_extension_names(tmp_path: Path, name: str) -> None:
    from runtime.mic import check_save_path

    fmt, subtype = check_save_path(str(tmp_path / name))
    with sf.SoundFile(tmp_path / name, "w", samplerate=16000, channels=1, format=fmt, subtype=subtype) as f:
        f.write(np.zeros(1600, np.float32))
    assert sf.info(str(tmp_path / name)).samplerate == 16000


def test_mic_save_refuses_what_it_cannot_write_before_listening(tmp_path: Path) -> None:
    from runtime.mic import MicError, check_save_path

    with pytest.raises(MicError, match=r"writes no \.xyz files"):
        check_save_path(str(tmp_path / "x.xyz"))
    with pytest.raises(MicError, match="does not exist"):
        check_save_path(str(tmp_path / "no" / "x.wav"))


def test_bench_figures_of_no_decoded_chunk_are_not_available() -> None:
    """A voice-activity gate decodes no chunk of a silent recording: the percentiles are n/a, not
    an IndexError."""
    from runtime import bench

    t = bench._timing(0.1, 0.1, 3.0, [])
    assert t["chunk_ms_p50"] is None and t["n_chunks"] == 0 and bench._ms(t["chunk_ms_p95"]) == "n/a"
