from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus.manifest import ManifestError, Utterance, audio_path, parse_line, read_manifest, write_manifest


def utt(**kw) -> Utterance:
    base = dict(id="u1", text="turn the lights off", words=["turn", "the", "lights", "off"], split="dev",
                audio="wav/u1.wav", duration=1.5, sample_rate=16000, tags=["O", "O", "B-device", "O"],
                intent="lights", directed=True, speech_start=0.2, speech_end=1.3, voice="flite/slt",
                source="assistant", augment={"noise": "pink", "snr_db": 12.0})
    return Utterance(**{**base, **kw})


def test_round_trip(tmp_path: Path) -> None:
    utts = [utt(), utt(id="u2", intent=None, directed=False, tags=["O"] * 4)]
    write_manifest(tmp_path / "dev.jsonl", utts)
    assert read_manifest(tmp_path / "dev.jsonl") == utts
    assert not (tmp_path / "dev.jsonl.tmp").exists()
    assert audio_path(tmp_path / "dev.jsonl", utts[0]) == (tmp_path / "wav/u1.wav").resolve()


def test_intent_null_is_written_for_tagged_data_and_unknown_fields_are_absent() -> None:
    d = json.loads(utt(intent=None).to_json())
    assert "intent" in d and d["intent"] is None
    imported = Utterance(id="x", text="hello", words=["hello"], audio="a.flac", duration=1.0, sample_rate=16000)
    assert set(json.loads(imported.to_json())) == {"id", "text", "words", "split", "audio", "duration", "sample_rate", "augment"}


def test_text_only_manifest_has_no_audio() -> None:
    u = parse_line('{"id": "a", "text": "fly to boston", "words": ["fly", "to", "boston"], "tags": ["O", "O", "B-city"]}', "f:1")
    assert u.audio is None and u.tags == ["O", "O", "B-city"]
    with pytest.raises(ManifestError, match="no audio"):
        audio_path("m.jsonl", u)


@pytest.mark.parametrize("line, message", [
    ("{not json", "f.jsonl:3: not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"id": "a", "words": ["a"]}', "missing field 'text'"),
    ('{"id": 5, "text": "a", "words": ["a"]}', "field 'id' has type int"),
    ('{"id": "a", "text": "a b", "words": ["a"]}', "not text.split"),
    ('{"id": "a", "text": "a b", "words": ["a", "b"], "tags": ["O"]}', "1 tags for 2 words"),
    ('{"id": "a", "text": "a", "words": ["a"], "audio": "x.wav"}', "come together"),
    ('{"id": "a", "text": "a", "words": ["a"], "audio": "x.wav", "duration": -1, "sample_rate": 16000}', "negative duration"),
    ('{"id": "a", "text": "a", "words": ["a"], "directed": "yes"}', "field 'directed' has type str"),
    ('{"id": "a", "text": "a", "words": ["a"], "audio": "x.wav", "duration": true, "sample_rate": 16000}', "field 'duration' has type bool"),
])
def test_bad_lines_name_file_line_and_problem(line: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message.replace("(", r"\(")):
        parse_line(line, "f.jsonl:3")


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "nope.jsonl")
