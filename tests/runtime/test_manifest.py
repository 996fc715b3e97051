from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.manifest import ManifestError, Utterance, audio_path, parse_line, read_manifest, write_manifest


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


FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                         st.text(max_size=8), st.lists(st.text(max_size=4), max_size=3),
                         st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _read_or_refuse(data: bytes) -> None:
    """read_manifest returns valid utterances or raises ManifestError naming the file; nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(data)
        try:
            utts = read_manifest(path)
        except ManifestError as e:
            assert str(e).startswith(str(path)), str(e)
            return
        for u in utts:
            assert u.words == u.text.split() and (u.tags is None or len(u.tags) == len(u.words))


@FUZZ
@given(st.sampled_from(sorted(json.loads(utt().to_json()))), FIELD_VALUES)
def test_fuzz_one_field_of_any_type(field: str, value) -> None:
    d = json.loads(utt().to_json())
    d[field] = value
    _read_or_refuse((json.dumps(d) + "\n").encode())


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_flipped_bytes(flips: list[tuple[int, int]]) -> None:
    data = bytearray((utt().to_json() + "\n" + utt(id="u2").to_json() + "\n").encode())
    for pos, value in flips:
        data[pos % len(data)] = value
    _read_or_refuse(bytes(data))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _read_or_refuse(data)
