from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from runtime.manifest import read_manifest
from runtime.audio import AudioError, load_audio, to_mono_float
from runtime.pipeline import Bundle, BundleError, Pipeline

ROOT = Path(__file__).resolve().parents[2]


def _utts(four_utts: Path):
    return [(four_utts / u.audio, u.text) for u in read_manifest(four_utts / "dev.jsonl")]


def _decode(model, samples: np.ndarray, beam: int) -> list[dict]:
    from runtime.asr import AsrStream

    s = AsrStream(model, beam=beam)
    for i in range(0, len(samples), 1600):
        s.accept_waveform(samples[i : i + 1600])
    s.input_finished()
    return s.result()["words"]


@pytest.mark.parametrize("beam", [1, 4])
def test_onnx_runtime_reproduces_the_torch_model(tiny_bundle: Path, overfit_asr: Path, four_utts: Path, beam: int) -> None:
    from asr.backend import TorchTransducer

    pipe = Pipeline.from_bundle(tiny_bundle, precision="fp32")
    # the checkpoint behind the bundle, driven by the same streaming, padding and search code
    twin = TorchTransducer.from_checkpoint(overfit_asr / "last.pt")
    assert twin.tokens == pipe.asr.tokens and twin.fbank == pipe.asr.fbank
    for path, _ in _utts(four_utts):
        x = load_audio(path)
        ours, ref = _decode(pipe.asr, x, beam), _decode(twin, x, beam)
        assert [(w["word"], w["start"], w["end"]) for w in ours] == [(w["word"], w["start"], w["end"]) for w in ref]
        assert [w["confidence"] for w in ours] == pytest.approx([w["confidence"] for w in ref], abs=2e-3)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_pipeline_result_has_the_interface_fields(tiny_bundle: Path, four_utts: Path, precision: str) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle, precision=precision)
    for path, text in _utts(four_utts):
        stream = pipe.create_stream()
        samples = load_audio(path)
        for i in range(0, len(samples), 1600):
            stream.accept_waveform(samples[i : i + 1600], 16000)
        stream.input_finished()
        result = stream.result()
        assert result["final"] is True and result["endpoint"] is True and result["t"] > 0
        words = result["words"]
        assert result["text"] == " ".join(w["word"] for w in words) and words
        starts = [w["start"] for w in words]
        assert starts == sorted(starts) and all(w["end"] > w["start"] for w in words)
        assert all(0 < w["confidence"] <= 1 for w in words)
        assert words[-1]["end"] <= len(samples) / 16000 + 0.5


def test_overfit_bundle_mostly_gets_the_words_right(tiny_bundle: Path, four_utts: Path) -> None:
    """The tiny model knows these four by heart; its bundle must too, give or take the last chunk."""
    from runtime.evaluate import pooled_wer

    pipe = Pipeline.from_bundle(tiny_bundle)
    pairs = []
    for path, text in _utts(four_utts):
        s = pipe.create_stream()
        s.accept_waveform(load_audio(path), 16000)
        s.input_finished()
        pairs.append((text, s.result()["text"]))
    assert pooled_wer(pairs) <= 0.25, pairs


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
    assert events[-1]["final"] and events[-1]["text"] == s.result()["text"]
    assert all(e["text"] != f["text"] for e, f in zip(partials, partials[1:])), "a partial only when the text changes"


def _text(pipe, samples, rate, piece=999) -> dict:
    s = pipe.create_stream()
    for i in range(0, len(samples), piece):
        s.accept_waveform(samples[i : i + piece], rate)
    s.input_finished()
    return s.result()


def test_int16_stereo_is_mixed_down_and_scaled(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    x = load_audio(_utts(four_utts)[1][0])
    stereo_int16 = np.round(np.stack([x, x], axis=1) * 32768).clip(-32768, 32767).astype(np.int16)
    # All the pipeline does differently is this conversion; it is exact up to int16 rounding.
    assert np.abs(to_mono_float(stereo_int16) - x).max() <= 0.5 / 32768 + 1e-7
    a, b = _text(pipe, stereo_int16, 16000), _text(pipe, x, 16000)
    assert a["t"] == b["t"] and len(a["words"]) > 0


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_rates_are_resampled_while_streaming(tiny_bundle: Path, four_utts: Path, rate: int) -> None:
    """Streaming resampling in pieces equals resampling the whole signal first."""
    import soxr

    pipe = Pipeline.from_bundle(tiny_bundle)
    x = load_audio(_utts(four_utts)[1][0])
    y = soxr.resample(x, 16000, rate).astype(np.float32)
    streamed = _text(pipe, y, rate)
    whole = _text(pipe, soxr.resample(y, rate, 16000).astype(np.float32), 16000)
    assert streamed["text"] == whole["text"]
    assert streamed["t"] == pytest.approx(len(x) / 16000, abs=0.2)


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
    good, _ = _utts(four_utts)[3]
    text = _heed("transcribe", "--bundle", str(tiny_bundle), str(good)).stdout.split("\t")[1].strip()
    assert text, "the good file alone gives a transcript"
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


def test_transcribe_reads_codecs_that_cannot_seek(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    """A GSM 6.10 WAV (libsndfile cannot seek in it) used to crash the batch: every later file got
    no result (issue 20). Now it is read from disk in blocks like any other file."""
    good, _ = _utts(four_utts)[0]
    gsm = tmp_path / "g.wav"
    sf.write(gsm, load_audio(good), 16000, subtype="GSM610")
    r = _heed("transcribe", "--bundle", str(tiny_bundle), "--json", str(gsm), str(good))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [d["file"] for d in lines] == [str(gsm), str(good)] and all(d["final"] for d in lines)


def test_transcribe_partials_print_every_event(tiny_bundle: Path, four_utts: Path) -> None:
    good, text = _utts(four_utts)[0]
    r = _heed("transcribe", "--bundle", str(tiny_bundle), "--partials", str(good))
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(events) >= 2 and events[-1]["final"] and events[-1]["text"].startswith(events[-2]["text"].split(" ")[0])
    assert all(e["file"] == str(good) for e in events)


def test_eval_reports_wer_and_rtf(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    r = _heed("eval", str(four_utts / "dev.jsonl"), "--bundle", str(tiny_bundle), "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["n_utts"] == 4 and report["wer"] <= 0.25 and 0 < report["rtf"] < 1
    assert {row["name"] for row in report["groups"]["voice"]} == {"espeak-ng/en-us+m3"}
    assert f"WER: {100 * report['wer']:.1f}%" in (tmp_path / "eval.md").read_text()


def test_endpoint_after_trailing_silence_splits_segments(tiny_bundle: Path, four_utts: Path) -> None:
    pipe = Pipeline.from_bundle(tiny_bundle)
    a, b = _utts(four_utts)[0][0], _utts(four_utts)[1][0]
    gap = np.zeros(int(16000 * (pipe.endpoint.trailing_silence_ms / 1000 + 1.0)), np.float32)
    samples = np.concatenate([load_audio(a), gap, load_audio(b)])
    s = pipe.create_stream()
    events = []
    for i in range(0, len(samples), 1600):
        s.accept_waveform(samples[i : i + 1600], 16000)
        events += list(s.events())
    s.input_finished()
    events += list(s.events())
    endpoints = [e for e in events if e["endpoint"]]
    alone = pipe.create_stream()
    alone.accept_waveform(load_audio(a), 16000)
    alone.input_finished()
    # The first segment closes inside the gap, with what the first recording gives on its own.
    assert len(endpoints) >= 2 and endpoints[0]["text"] == alone.result()["text"]
    assert endpoints[0]["t"] < (len(load_audio(a)) + len(gap)) / 16000
    assert s.result()["text"] == " ".join(e["text"] for e in endpoints)


def test_endpoint_rules_in_milliseconds() -> None:
    from runtime.endpoint import EndpointConfig

    cfg = EndpointConfig(trailing_silence_ms=800, silence_without_speech_ms=5000, max_utterance_ms=20000)
    assert not cfg.reached(now_ms=1000, last_token_ms=500)
    assert cfg.reached(now_ms=1400, last_token_ms=600)
    assert not cfg.reached(now_ms=4000, last_token_ms=None)
    assert cfg.reached(now_ms=5000, last_token_ms=None)
    assert cfg.reached(now_ms=20000, last_token_ms=19990)


def test_public_api_is_importable_from_runtime_without_torch() -> None:
    code = "import sys; from runtime import Pipeline, Stream; print(Pipeline.__name__, 'torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["Pipeline", "False"], r.stderr
