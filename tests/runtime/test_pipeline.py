from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.manifest import read_manifest
from runtime.audio import AudioError, load_audio, to_mono_float
from runtime.pipeline import Bundle, BundleError, Pipeline

ROOT = Path(__file__).resolve().parents[2]


def _utts(four_utts: Path):
    return [(four_utts / u.audio, u.text) for u in read_manifest(four_utts / "dev.jsonl")]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("beam", [1, 4])
def test_pipeline_transcribes_the_overfit_utterances(tiny_bundle: Path, four_utts: Path, precision: str, beam: int) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle, precision=precision)
    for path, text in _utts(four_utts):
        stream = pipe.create_stream(beam=beam)
        samples = load_audio(path)
        for i in range(0, len(samples), 1600):
            stream.accept_waveform(samples[i : i + 1600], 16000)
        stream.input_finished()
        result = stream.result()
        assert result["text"] == text
        assert result["final"] is True
        words = result["words"]
        assert [w["word"] for w in words] == text.split()
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and all(w["end"] > w["start"] for w in words)
        assert all(0 < w["confidence"] <= 1 for w in words)
        assert words[-1]["end"] <= len(samples) / 16000 + 0.5


def test_piece_size_does_not_change_the_result(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    path, _ = _utts(four_utts)[2]
    samples = load_audio(path)
    results = []
    for piece in (160, 1234, 16000, len(samples)):
        s = pipe.create_stream()
        for i in range(0, len(samples), piece):
            s.accept_waveform(samples[i : i + piece], 16000)
        s.input_finished()
        results.append(s.result())
    assert all(r == results[0] for r in results)


def test_partials_grow_into_the_final_text(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    path, text = _utts(four_utts)[0]
    s = pipe.create_stream()
    samples = load_audio(path)
    events = []
    for i in range(0, len(samples), 800):
        s.accept_waveform(samples[i : i + 800], 16000)
        events += list(s.events())
    s.input_finished()
    events += list(s.events())
    partials = [e for e in events if not e["final"]]
    assert partials, "a partial after the first chunks with words"
    assert all(not e["final"] and e["t"] > 0 for e in partials)
    assert [e["t"] for e in events] == sorted(e["t"] for e in events)
    assert events[-1]["final"] and events[-1]["text"] == text


def test_any_rate_int16_and_stereo_give_the_same_words(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    path, text = _utts(four_utts)[1]
    x = load_audio(path)
    import soxr

    for rate in (8000, 22050, 44100):
        y = soxr.resample(x, 16000, rate)
        stereo_int16 = (np.stack([y, y], axis=1) * 32767).astype(np.int16)
        s = pipe.create_stream()
        for i in range(0, len(y), 999):
            s.accept_waveform(stereo_int16[i : i + 999], rate)
        s.input_finished()
        assert s.result()["text"] == text, rate


def test_to_mono_float_refuses_nan_and_non_audio() -> None:
    with pytest.raises(AudioError, match="NaN"):
        to_mono_float(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="shape"):
        to_mono_float(np.zeros((2, 2, 2)))
    assert to_mono_float(np.array([[32767, -32768]], np.int16).T).dtype == np.float32


def test_bundle_errors_name_the_problem(tmp_path: Path, tiny_bundle: Path) -> None:
    with pytest.raises(BundleError, match="no bundle.json"):
        Pipeline.from_bundle(tmp_path)
    bad = json.loads((tiny_bundle / "bundle.json").read_text())
    bad["schema_version"] = 99
    (tmp_path / "bundle.json").write_text(json.dumps(bad))
    with pytest.raises(BundleError, match="schema_version"):
        Bundle.load(tmp_path)


def _heed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_transcribe_reports_bad_files_and_still_decodes_the_good_ones(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    good, text = _utts(four_utts)[3]
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    text_file = tmp_path / "notes.wav"
    text_file.write_text("this is not audio\n" * 20)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(Path(good).read_bytes()[: 44 + 3000])
    r = _heed("transcribe", "--bundle", str(tiny_bundle), "--json", str(empty), str(nan), str(text_file),
              str(tmp_path / "missing.wav"), str(truncated), str(good))
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    for name, problem in ((empty, "no audio"), (nan, "NaN"), (text_file, "not a readable audio file"),
                          (tmp_path / "missing.wav", "no such file"), (truncated, "truncated")):
        assert f"{name}: " in r.stderr and problem in r.stderr, (name, r.stderr)
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(d["file"], d["text"]) for d in lines] == [(str(good), text)]
    assert lines[0]["final"] is True and lines[0]["words"][0]["word"] == text.split()[0]


def test_transcribe_partials_print_every_event(tiny_bundle: Path, four_utts: Path) -> None:
    good, text = _utts(four_utts)[0]
    r = _heed("transcribe", "--bundle", str(tiny_bundle), "--partials", str(good))
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(events) >= 2 and events[-1]["final"] and events[-1]["text"] == text
    assert all(e["file"] == str(good) for e in events)


def test_eval_reports_wer_and_rtf(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    r = _heed("eval", str(four_utts / "dev.jsonl"), "--bundle", str(tiny_bundle), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["n_utts"] == 4 and report["wer"] == 0.0 and 0 < report["rtf"] < 1
    assert {row["name"] for row in report["groups"]["voice"]} == {"espeak-ng/en-us+m3"}
    assert "WER: 0.0%" in (tmp_path / "eval.md").read_text()
