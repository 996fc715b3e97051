"""The second pass in the pipeline (runtime/whisper.py, runtime/pipeline.py): Whisper's final replaces
the streaming pass's and the tags follow it, non-speech gives no words, and the pieces it is made of."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from runtime.audio import load_audio
from runtime.evaluate import word_errors
from runtime.pipeline import BundleError, Pipeline

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"
PERSON = BUNDLE / "examples" / "04-person-command.wav"  # a real person: "go forward ten meters"


@pytest.fixture(scope="module")
def pipes() -> dict[str, Pipeline]:
    if not (BUNDLE / "whisper" / "whisper.json").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup (heed export whisper --bundle models/default)")
    return {"two": Pipeline.from_bundle(BUNDLE), "stream": Pipeline.from_bundle(BUNDLE, second_pass=False),
            "two_no_vad": Pipeline.from_bundle(BUNDLE, vad=False)}


def _run(pipe: Pipeline, x: np.ndarray, piece: int = 1600) -> tuple[list[dict], dict]:
    s = pipe.create_stream()
    events = []
    for i in range(0, len(x), piece):
        s.accept_waveform(x[i : i + piece], 16000)
        events += list(s.events())
    s.input_finished()
    events += list(s.events())
    return events, s.result()


def test_a_real_persons_final_is_whispers_and_the_tags_follow_it(pipes) -> None:
    x = load_audio(PERSON)
    events, result = _run(pipes["two"], x)
    finals = [e for e in events if e["final"] and e["words"]]  # (the stream's last event may close nothing)
    assert len(finals) == 1 and finals[0]["pass"] == "second"
    final = finals[0]
    assert "forward" in final["written"].lower() and final["written"] != final["text"]
    assert word_errors("go forward ten meters", final["text"])[0] == 0, final["text"]
    assert [w.get("tag") for w in final["words"]] and all("tag" in w for w in final["words"])
    assert len(final["words"]) == len(final["text"].split())
    assert all(w["start"] <= w["end"] for w in final["words"])
    assert all("pass" not in e and "written" not in e for e in events if not e["final"])
    assert result["text"] == final["text"]
    # the streaming pass alone does not hear this person: the second pass replaced its final
    _, alone = _run(pipes["stream"], x)
    assert word_errors("go forward ten meters", alone["text"])[0] >= 2, alone["text"]


@pytest.mark.parametrize("kind", ["silence", "noise_-60dBFS", "room_noise"])
def test_silence_and_noise_give_no_words(pipes, kind: str) -> None:
    rng = np.random.default_rng(0)
    x = {"silence": np.zeros(5 * 16000, np.float32),
         "noise_-60dBFS": (rng.normal(size=5 * 16000) * 1e-3).astype(np.float32),
         "room_noise": (np.convolve(rng.normal(size=30 * 16000), np.ones(16) / 16, "same") * 0.01
                        + 0.003 * np.sin(2 * np.pi * 50 * np.arange(30 * 16000) / 16000)).astype(np.float32)}[kind]
    events, result = _run(pipes["two"], x)
    assert not any(e["words"] for e in events) and result["words"] == []
    # without the VAD the streaming pass writes words on it, and Whisper's no-speech rule removes them from the finals
    events, result = _run(pipes["two_no_vad"], x)
    assert not any(e["words"] for e in events if e["final"]) and result["words"] == []


def test_whisper_hears_no_speech_in_silence() -> None:
    from runtime.whisper import SecondPass

    if not (BUNDLE / "whisper" / "whisper.json").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup")
    second = SecondPass(BUNDLE / "whisper")
    r = second.transcribe(np.zeros(3 * 16000, np.float32))
    assert not r.accepted and r.text == "" and r.reason.startswith("no speech") and r.no_speech_prob > 0.8
    r = second.transcribe(load_audio(PERSON))
    assert r.accepted and r.no_speech_prob < 0.5 and "forward" in r.text.lower()


def test_a_bundle_without_its_derived_second_pass_is_refused_clearly(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("whisper"))
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["second_pass"]["dir"] == "whisper"
    with pytest.raises(BundleError, match="scripts/setup"):
        Pipeline.from_bundle(bundle)
    assert Pipeline.from_bundle(bundle, second_pass=False).second is None
    manifest["second_pass"]["rescore"]["beam"] = 3
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    (bundle / "whisper").mkdir()
    (bundle / "whisper" / "whisper.json").write_text("{}")
    with pytest.raises(BundleError, match="beam"):
        Pipeline.from_bundle(bundle)


def test_align_words_keeps_the_streaming_times_of_shared_words() -> None:
    from runtime.whisper import align_words

    first = [{"word": w, "start": s, "end": e, "confidence": 0.9}
             for w, s, e in (("set", 0.5, 0.7), ("an", 0.7, 0.8), ("alarm", 0.8, 1.2), ("for", 1.2, 1.4), ("sev", 1.5, 1.8))]
    out = align_words(first, "set an alarm for seven oh two".split(), 0.0, 3.0)
    assert [w["word"] for w in out] == "set an alarm for seven oh two".split()
    assert [(w["start"], w["end"]) for w in out[:4]] == [(0.5, 0.7), (0.7, 0.8), (0.8, 1.2), (1.2, 1.4)]
    assert out[4]["confidence"] is None and out[0]["confidence"] == 0.9
    times = [t for w in out for t in (w["start"], w["end"])]
    assert times == sorted(times) and out[-1]["end"] <= 3.0
    alone = align_words([], ["hello", "there"], 1.0, 3.0)
    assert (alone[0]["start"], alone[-1]["end"]) == (1.0, 3.0)


def test_looping_and_segment_policy() -> None:
    from runtime.whisper import SecondPassError, SegmentPolicy, _looping

    assert _looping([7, 1, 1, 1, 1], 4) and _looping([3, 4, 3, 4, 3, 4, 3, 4], 4)
    assert not _looping([1, 1, 1], 4) and not _looping([3, 4, 3, 4, 3, 5], 4)
    words = [{"word": "hi", "start": 2.0, "end": 2.3}]
    assert SegmentPolicy(0.5).span(0.0, 4.0, words) == (1.5, 4.0)
    assert SegmentPolicy(0.5).span(1.8, 4.0, words) == (1.8, 4.0)
    assert SegmentPolicy(0.5).span(1.0, 4.0, []) == (1.0, 4.0)
    with pytest.raises(SecondPassError, match="margin"):
        SegmentPolicy.from_dict({"margin": 1})


def test_a_segment_longer_than_whisper_reads_is_cut_at_its_pauses() -> None:
    from runtime.whisper import SecondPass, cut_at_pauses

    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.1, 40 * 16000).astype(np.float32)
    x[17 * 16000 : 17 * 16000 + 8000] = 0  # a pause at 17 s
    pieces = cut_at_pauses(x, 28 * 16000)
    assert len(pieces) == 2 and abs(len(pieces[0]) - 17.25 * 16000) < 0.3 * 16000
    assert sum(len(p) for p in pieces) == len(x) and np.array_equal(np.concatenate(pieces), x)
    if not (BUNDLE / "whisper" / "whisper.json").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup")
    second = SecondPass(BUNDLE / "whisper")
    person = load_audio(PERSON)
    long = np.concatenate([person, np.zeros(8 * 16000, np.float32)] * 3)  # 32 s: three times the command
    result, cross = second.read(long)
    assert cross is None and result.accepted
    assert result.text.lower().count("forward") == 3, result.text
