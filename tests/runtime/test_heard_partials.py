"""Partials read by Whisper's decoder in the pipeline (bundle.json `partials`): events carry
`committed`, committed words never change within a segment, the final is the second pass's, and
--stream-partials gives the streaming pass's partials back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.audio import load_audio
from runtime.evaluate import word_errors
from runtime.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    if not (BUNDLE / "whisper" / "whisper.json").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup")
    return Pipeline.from_bundle(BUNDLE)


def _events(pipe: Pipeline, x: np.ndarray, piece: int = 1600) -> list[dict]:
    s = pipe.create_stream()
    out = []
    for i in range(0, len(x), piece):
        s.accept_waveform(x[i : i + piece], 16000)
        out += list(s.events())
    s.input_finished()
    return out + list(s.events())


@pytest.mark.parametrize("name", ["04-person-command.wav", "05-person-reading.wav", "01-assistant.wav"])
def test_committed_words_never_change_and_the_final_is_the_second_pass(pipe: Pipeline, name: str) -> None:
    events = _events(pipe, load_audio(BUNDLE / "examples" / name))
    partials = [e for e in events if not e["final"]]
    assert partials and all("committed" in e for e in partials)
    fixed: list[str] = []
    for e in partials:
        words = e["text"].split()
        assert words[: len(fixed)] == fixed, (fixed, words)  # never retracted
        assert 0 <= e["committed"] <= len(words)
        assert [w["word"] for w in e["words"]] == words and all(w["start"] <= w["end"] for w in e["words"])
        fixed = words[: e["committed"]]
    assert fixed, "nothing committed before the endpoint"
    finals = [e for e in events if e["final"] and e["words"]]
    assert len(finals) == 1 and finals[0]["pass"] in ("second", "stream")


def test_a_real_persons_partials_are_heard(pipe: Pipeline) -> None:
    events = _events(pipe, load_audio(BUNDLE / "examples" / "04-person-command.wav"))
    last = [e for e in events if not e["final"]][-1]
    # (the streaming transducer's last partial here: "does read ten me aris", 3 errors)
    assert word_errors("go forward ten meters", last["text"])[0] <= 1, last["text"]


def test_stream_partials_option_gives_the_streaming_pass_back() -> None:
    if not (BUNDLE / "whisper" / "whisper.json").is_file():
        pytest.skip("models/default/whisper is made by scripts/setup")
    stream_only = Pipeline.from_bundle(BUNDLE, heard_partials=False)
    assert stream_only.partials is None and stream_only.second is not None
    events = _events(stream_only, load_audio(BUNDLE / "examples" / "04-person-command.wav"))
    assert all("committed" not in e for e in events)


@pytest.mark.parametrize("seconds", [5])
def test_silence_gives_no_partial_and_no_final_words(pipe: Pipeline, seconds: int) -> None:
    events = _events(pipe, np.zeros(16000 * seconds, np.float32))
    assert all(not e["words"] for e in events)
