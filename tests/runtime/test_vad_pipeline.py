"""The voice-activity gate in the pipeline (runtime/pipeline.py with runtime/vad.py): non-speech
gives no words and no compute, speech still transcribes, segments carry their audio span, and
the result does not depend on the piece size."""
from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from corpus.augment import make_noise
from runtime.manifest import read_manifest
from runtime.audio import load_audio
from runtime.pipeline import BundleError, Pipeline

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"
RATE = 16000


def _vad_entry() -> dict:
    entry = json.loads((BUNDLE / "bundle.json").read_text()).get("vad")
    if not entry or not (BUNDLE / entry["file"]).exists():
        pytest.skip("the default bundle has no VAD")
    return entry


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    _vad_entry()
    return Pipeline.from_bundle(BUNDLE, threads=1)


def _noise(kind: str, dbfs: float, seconds: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * RATE)
    if kind == "silence":
        return np.zeros(n, np.float32)
    rng = np.random.default_rng(seed)
    if kind == "room":  # brown noise with mains hum 10 dB below it
        x = make_noise("brown", n, rng, RATE) + 10 ** (-10 / 20) * make_noise("hum", n, rng, RATE)
        x /= np.sqrt(np.mean(x ** 2))
    else:
        x = make_noise(kind, n, rng, RATE)
    return (10 ** (dbfs / 20) * x).astype(np.float32)


def _run(pipe: Pipeline, x: np.ndarray, piece: int = 1600) -> tuple[list[dict], list[dict], dict]:
    """(events before input_finished, events after it, the result)."""
    s = pipe.create_stream()
    before = []
    for i in range(0, len(x), piece):
        s.accept_waveform(x[i: i + piece], RATE)
        before += list(s.events())
    s.input_finished()
    return before, list(s.events()), s.result()


@pytest.mark.parametrize("kind,dbfs", [("silence", 0.0), ("white", -60.0), ("white", -40.0), ("pink", -40.0),
                                       ("room", -50.0)])
def test_silence_and_quiet_noise_give_no_words_and_no_final_events(pipe: Pipeline, kind: str, dbfs: float) -> None:
    x = _noise(kind, dbfs, 20.0)
    s = pipe.create_stream()
    before, after, result = _run(pipe, x)
    assert before == [], "nothing at all while the input goes on"
    assert len(after) == 1 and after[0]["final"] and after[0]["words"] == [], "only the stream's closing event"
    assert result["text"] == "" and result["words"] == [] and result["intent"] is None
    assert result["directed"]["decision"] == "undirected"
    assert after[0]["t"] == pytest.approx(len(x) / RATE, abs=0.001), "the closing event is at the end of the input"
    s.accept_waveform(x, RATE)
    assert s.asr.chunk_ms == [], "the ASR never ran on non-speech"


EXAMPLES = [json.loads(line) for line in (BUNDLE / "examples" / "examples.jsonl").read_text().splitlines() if line.strip()]


def _example(name: str = "01-assistant.wav") -> np.ndarray:
    return load_audio(BUNDLE / "examples" / name, RATE)


def test_speech_between_long_pauses_is_transcribed_at_stream_times(pipe: Pipeline) -> None:
    from runtime.evaluate import word_errors

    ref = next(e for e in EXAMPLES if e["audio"] == "02-atis.wav")
    speech = _example("02-atis.wav")
    gap = _noise("pink", -60.0, 4.0)
    x = np.concatenate([gap, speech, gap, speech, gap])
    before, after, result = _run(pipe, x)
    finals = [e for e in before + after if e["final"] and e["words"]]
    assert len(finals) == 2, [e["text"] for e in finals]
    copy_s = len(speech) / RATE
    for k, ev in enumerate(finals):
        errors, n = word_errors(ref["text"], ev["text"])
        assert errors / n <= 0.25, ev["text"]
        speech_start = 4.0 * (k + 1) + k * copy_s + ref["speech_start"]
        assert speech_start - 1.1 < ev["words"][0]["start"] and ev["words"][-1]["end"] < speech_start + copy_s, \
            "word times are stream times"
        assert ev["intent"]["label"] == ref["intent"]
    assert finals[0]["t"] < 4.0 + copy_s + 1.0, "the end of speech closes the segment inside the pause"
    assert result["directed"]["decision"] == ("directed" if ref["directed"] else "undirected")
    s = pipe.create_stream()
    s.accept_waveform(x, RATE)
    s.input_finished()
    decoded_s = len(s.asr.chunk_ms) * pipe.bundle.manifest["asr"]["chunk_ms"] / 1000
    assert decoded_s < 0.75 * len(x) / RATE, "compute on the pauses drops"


def test_every_final_carries_its_segment_and_the_stream_holds_its_audio(pipe: Pipeline, monkeypatch) -> None:
    from runtime.pipeline import Stream

    x = np.concatenate([np.zeros(2 * RATE, np.float32), _example("02-atis.wav"), np.zeros(3 * RATE, np.float32),
                        _example("01-assistant.wav"), _noise("pink", -50.0, 1.0)])
    seen = []
    close = Stream._close_segment

    def spy(self, last=False, ended_by="input_end"):
        seen.append((self.segment_audio.start, self.segment_audio.end, self.asr.segment_start * self.frame_samples,
                     self.asr.n_enc_frames * self.frame_samples if self._in_segment else None,
                     self.segment_audio.between(0, len(x))))
        close(self, last, ended_by)

    monkeypatch.setattr(Stream, "_close_segment", spy)
    before, after, _ = _run(pipe, x)
    finals = [e for e in before + after if e["final"]]
    with_words = [e for e in finals if e["words"]]
    assert len(with_words) == 2 and all("segment" in e for e in finals)
    for ev in with_words:
        seg = ev["segment"]
        assert seg["start"] <= ev["words"][0]["start"] and ev["words"][-1]["end"] <= seg["end"] + 1e-9
        assert seg["end"] == pytest.approx(ev["t"], abs=0.001)
    assert with_words[0]["segment"]["end"] < with_words[1]["segment"]["start"], "the silence between is no segment's"
    assert with_words[0]["segment"]["ended_by"] == "speech_end"  # the VAD ended it, in the silence after it
    assert finals[-1]["segment"]["ended_by"] in ("speech_end", "input_end")
    pad_s = pipe.vad.config.speech_pad_ms / 1000
    assert 2.0 - pad_s - 0.2 <= with_words[0]["segment"]["start"] <= 2.0, "the pre-roll reaches back about speech_pad_ms"
    for held_start, held_end, seg_start, seg_end, samples in seen:
        if seg_end is None:
            continue
        assert held_start <= seg_start and seg_end <= held_end, "the segment's audio is still held when it closes"
        assert np.array_equal(samples, x[held_start:held_end]), "the samples the ASR was fed, at their stream positions"


@pytest.mark.parametrize("piece", [160, 1234, 16000])
def test_piece_size_does_not_change_the_gated_result(pipe: Pipeline, piece: int) -> None:
    x = np.concatenate([_noise("white", -45.0, 1.5), _example("03-chatter.wav"), _noise("white", -45.0, 2.0),
                        _example("01-assistant.wav")])
    ref = _run(pipe, x, len(x))
    got = _run(pipe, x, piece)
    assert got[2] == ref[2]
    finals = lambda r: [e for e in r[0] + r[1] if e["final"]]  # noqa: E731
    assert finals(got) == finals(ref)


def test_the_iqd_onset_is_the_vads_speech_start(pipe: Pipeline) -> None:
    speech = _example()
    x = np.concatenate([np.zeros(3 * RATE, np.float32), speech[: len(speech) // 2]])  # the segment still open
    s = pipe.create_stream()
    s.accept_waveform(x, RATE)
    iqd = s._iqd
    assert iqd.speech_frame is not None and not iqd.gate.open, "the VAD's start, not the energy gate"
    # the VAD's start: the example's babble lead-in sounds like speech to it, so near its start, not the label's
    assert abs(iqd.speech_frame * pipe.asr.frame_s - 3.0) < 0.3
    assert iqd.decider.decided_at is None or iqd.decider.decided_at > (iqd.speech_frame + 1) * pipe.asr.frame_s - 1e-9


def test_without_the_vad_everything_is_decoded(pipe: Pipeline) -> None:
    off = Pipeline.from_bundle(BUNDLE, threads=1, vad=False, second_pass=False)  # the streaming pass's finals
    assert off.vad is None
    x = np.concatenate([np.zeros(2 * RATE, np.float32), _example()])
    before, after, result = _run(off, x)
    finals = [e for e in before + after if e["final"]]
    assert finals[0]["segment"]["start"] == 0.0
    s = off.create_stream()
    s.accept_waveform(x, RATE)
    assert len(s.asr.chunk_ms) >= int(len(x) / RATE / 0.32) - 1


def _bundle_with_vad(src: Path, dest: Path) -> Path:
    """A copy of bundle `src` with the default bundle's VAD (as heed export vad writes it)."""
    from asr.export_cli import add_vad

    _vad_entry()
    shutil.copytree(src, dest)
    wheel = dest.parent / "silero_vad-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.write(BUNDLE / _vad_entry()["file"], "silero_vad/data/silero_vad_16k_op15.onnx")
        z.writestr("silero_vad-0.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: silero-vad\nVersion: 0.0\n")
        z.write(BUNDLE / "vad" / "LICENSE", "silero_vad-0.0.dist-info/licenses/LICENSE")
    entry = add_vad(dest, wheel)
    assert entry["sha256"] == _vad_entry()["sha256"] and "0.0" in entry["source"]
    assert (dest / "vad" / "LICENSE").read_text().startswith("MIT License")
    return dest


def test_speech_still_transcribes_with_the_gate(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    """The tiny bundle with the default bundle's VAD: the same words as without it on the recordings
    (the overfit model knows them by heart); with 3 s of silence around each (which this model,
    trained on four clips with no lead-in, cannot take) no word lies outside the speech and its pre-roll."""
    from runtime.evaluate import pooled_wer

    gated = Pipeline.from_bundle(_bundle_with_vad(tiny_bundle, tmp_path / "b"))
    plain = Pipeline.from_bundle(tiny_bundle)
    assert gated.vad is not None and plain.vad is None
    pad_s = gated.vad.config.speech_pad_ms / 1000
    gap = np.zeros(3 * RATE, np.float32)
    pairs = []
    for u in read_manifest(four_utts / "dev.jsonl"):
        x = load_audio(four_utts / u.audio)
        result = _run(gated, x)[2]
        assert result["text"] == _run(plain, x)[2]["text"]
        pairs.append((u.text, result["text"]))
        words = _run(gated, np.concatenate([gap, x, gap]))[2]["words"]
        assert words and all(3.0 - pad_s - 0.05 <= w["start"] and w["end"] <= 3.0 + len(x) / RATE + 0.5 for w in words)
    assert pooled_wer(pairs) <= 0.25, pairs


def test_a_corrupt_vad_in_a_bundle_is_a_bundle_error(tiny_bundle: Path, tmp_path: Path) -> None:
    b = _bundle_with_vad(tiny_bundle, tmp_path / "b")
    f = b / _vad_entry()["file"]
    f.write_bytes(f.read_bytes()[:1000])
    with pytest.raises(BundleError, match="voice-activity detector") as e:
        Pipeline.from_bundle(b)
    assert str(f) in str(e.value)
    assert Pipeline.from_bundle(b, vad=False).vad is None, "--no-vad still runs the rest of the bundle"
    f.unlink()
    with pytest.raises(BundleError, match="missing"):
        Pipeline.from_bundle(b)


@pytest.mark.parametrize("command", ["transcribe", "eval", "demo", "mic"])
def test_no_vad_flag_reaches_the_pipeline(command: str, four_utts: Path, monkeypatch) -> None:
    import runtime.mic
    from runtime import cli
    from runtime.pipeline import Pipeline as P

    asked = []

    def from_bundle(path=None, threads=1, precision="int8", vad=True, second_pass=True, heard_partials=True):
        asked.append((vad, second_pass, heard_partials))
        raise BundleError("stop here")

    monkeypatch.setattr(P, "from_bundle", staticmethod(from_bundle))
    monkeypatch.setattr(runtime.mic, "pick_device", lambda device: {"name": "x", "default_samplerate": 16000})
    target = {"transcribe": [str(BUNDLE / "examples" / "01-assistant.wav")], "eval": [str(four_utts / "dev.jsonl")]}
    for flag in ([], ["--no-vad"], ["--no-second-pass"], ["--stream-partials"]):
        monkeypatch.setattr(sys, "argv", ["heed", command, *target.get(command, []), *flag])
        args = cli.build_parser().parse_args(sys.argv[1:])
        assert args.func(args) == 1
    assert asked == [(True, True, True), (False, True, True), (True, False, True), (True, True, False)]
