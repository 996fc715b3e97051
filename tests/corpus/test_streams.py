"""corpus.streams on a tiny fake corpus of tones and noise bursts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from runtime.manifest import Utterance, write_manifest
from corpus.streams import SAMPLE_RATE, build_streams, load_mono_int16

MIN_S, MAX_S = 8.0, 16.0
RESAMPLED_ID = "u11"


def _fake_corpus(root: Path, n: int = 12) -> None:
    """n short utterances, half directed; u11 is at 22050 Hz and u10 is stereo."""
    rng = np.random.default_rng(1)
    (root / "wav").mkdir(parents=True)
    utts = []
    for i in range(n):
        sr = 22050 if f"u{i}" == RESAMPLED_ID else SAMPLE_RATE
        n_samples = int(sr * rng.uniform(0.6, 1.4))
        t = np.arange(n_samples) / sr
        x = 0.3 * np.sin(2 * np.pi * (200 + 50 * i) * t) + 0.05 * rng.standard_normal(n_samples)
        lead = int(0.1 * sr)
        x[:lead] *= 0.01
        x[-lead:] *= 0.01
        if i == 10:
            x = np.stack([x, 0.5 * x], axis=1)
        sf.write(root / "wav" / f"u{i}.wav", x, sr, subtype="PCM_16")
        utts.append(Utterance(
            id=f"u{i}", text=f"word {i}", words=["word", str(i)], split="test", audio=f"wav/u{i}.wav",
            duration=n_samples / sr, sample_rate=sr, tags=["O", "O"], intent=None, directed=i % 2 == 0,
            speech_start=lead / sr, speech_end=(n_samples - lead) / sr, voice=f"fake/v{i % 3}", source="fake",
        ))
    write_manifest(root / "test.jsonl", utts)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    _fake_corpus(root)
    build_streams(root, "test", n_streams=8, seed=3, min_s=MIN_S, max_s=MAX_S)
    return root


def _timelines(root: Path) -> list[dict]:
    index = [json.loads(line) for line in (root / "streams" / "test.jsonl").read_text().splitlines()]
    return [json.loads((root / "streams" / row["timeline"]).read_text()) for row in index]


def test_index_and_timelines_agree(corpus: Path) -> None:
    index = [json.loads(line) for line in (corpus / "streams" / "test.jsonl").read_text().splitlines()]
    assert len(index) == 8
    assert len({row["id"] for row in index}) == 8
    for row in index:
        tl = json.loads((corpus / "streams" / row["timeline"]).read_text())
        wav = corpus / "streams" / row["audio"]
        assert wav == (corpus / "streams" / row["timeline"]).parent / tl["audio"]
        info = sf.info(wav)
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1) == (row["sample_rate"], 1)
        assert tl["id"] == row["id"]
        assert tl["duration"] == row["duration"] == pytest.approx(info.frames / SAMPLE_RATE)
        assert len(tl["segments"]) == row["n_segments"] > 0
    assert not list((corpus / "streams").rglob("*.tmp"))


def test_duration_bounds_and_no_overlap(corpus: Path) -> None:
    for tl in _timelines(corpus):
        assert MIN_S <= tl["duration"] <= MAX_S
        segs = tl["segments"]
        assert segs[0]["start"] >= 0.5 - 1e-9  # a pause comes first
        assert segs[-1]["end"] <= tl["duration"]
        for a, b in zip(segs, segs[1:]):
            assert b["start"] - a["end"] >= 0.5 - 1e-9
        ids = [s["utt_id"] for s in segs]
        assert len(ids) == len(set(ids))


def test_segments_hold_the_source_samples(corpus: Path) -> None:
    n_checked = 0
    for tl in _timelines(corpus):
        stream, sr = sf.read(corpus / "streams" / "test" / tl["audio"], dtype="int16")
        for seg in tl["segments"]:
            src = load_mono_int16(corpus / "wav" / f"{seg['utt_id']}.wav")
            start_n = round(seg["start"] * sr)
            assert round(seg["end"] * sr) - start_n == len(src)
            np.testing.assert_array_equal(stream[start_n:start_n + len(src)], src)
            if seg["utt_id"] not in (RESAMPLED_ID, "u10"):
                raw, raw_sr = sf.read(corpus / "wav" / f"{seg['utt_id']}.wav", dtype="int16")
                assert raw_sr == sr
                np.testing.assert_array_equal(stream[start_n:start_n + len(raw)], raw)
            n_checked += 1
    assert n_checked >= 16


def test_speech_bounds_are_absolute(corpus: Path) -> None:
    manifest = {json.loads(l)["id"]: json.loads(l) for l in (corpus / "test.jsonl").read_text().splitlines()}
    for tl in _timelines(corpus):
        for seg in tl["segments"]:
            u = manifest[seg["utt_id"]]
            assert seg["speech_start"] == pytest.approx(seg["start"] + u["speech_start"])
            assert seg["speech_end"] == pytest.approx(seg["start"] + u["speech_end"])
            assert seg["start"] < seg["speech_start"] < seg["speech_end"] < seg["end"]
            assert (seg["directed"], seg["text"], seg["voice"]) == (u["directed"], u["text"], u["voice"])


def test_both_classes_and_resampled_utterance_used(corpus: Path) -> None:
    segs = [s for tl in _timelines(corpus) for s in tl["segments"]]
    assert {s["directed"] for s in segs} == {True, False}
    resampled = [s for s in segs if s["utt_id"] == RESAMPLED_ID]
    assert resampled, "the 22050 Hz utterance should appear in some stream"
    src, sr = sf.read(corpus / "wav" / f"{RESAMPLED_ID}.wav")
    for s in resampled:
        assert s["end"] - s["start"] == pytest.approx(len(src) / sr, abs=1e-3)


def test_pauses_are_background_noise_not_zero(corpus: Path) -> None:
    tl = _timelines(corpus)[0]
    stream, sr = sf.read(corpus / "streams" / "test" / tl["audio"], dtype="float32")
    pause = stream[: round(tl["segments"][0]["start"] * sr)]
    rms_db = 20 * np.log10(np.sqrt(np.mean(pause.astype(np.float64) ** 2)))
    assert np.count_nonzero(pause) > 0.9 * len(pause)
    assert -75 < rms_db < -40


def test_deterministic_for_a_seed(corpus: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    _fake_corpus(other)
    build_streams(other, "test", n_streams=8, seed=3, min_s=MIN_S, max_s=MAX_S)
    for a, b in zip(sorted((corpus / "streams" / "test").iterdir()), sorted((other / "streams" / "test").iterdir())):
        assert a.name == b.name
        assert a.read_bytes() == b.read_bytes()
    build_streams(other, "test", n_streams=8, seed=4, min_s=MIN_S, max_s=MAX_S)
    assert _timelines(other) != _timelines(corpus)


def test_one_class_only_is_an_error(tmp_path: Path) -> None:
    _fake_corpus(tmp_path)
    path = tmp_path / "test.jsonl"
    lines = [l for l in path.read_text().splitlines() if '"directed": true' in l]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="directed and undirected"):
        build_streams(tmp_path, "test", n_streams=1, seed=0, min_s=MIN_S, max_s=MAX_S)


def test_a_split_too_small_is_used_up_once_and_padded(tmp_path: Path) -> None:
    _fake_corpus(tmp_path)
    (path,) = build_streams(tmp_path, "test", n_streams=1, seed=0, min_s=90.0, max_s=90.0)
    tl = json.loads(path.read_text())
    assert sorted(s["utt_id"] for s in tl["segments"]) == sorted(f"u{i}" for i in range(12))
    assert tl["duration"] == pytest.approx(90.0)
