"""Importers of LibriSpeech, Kaldi and BIO tagging data; fixtures are tiny and audio is made here."""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus.importers import (CorpusImportError, add_import_parser, import_bio, import_kaldi,
                              import_librispeech, write_import)
from runtime.manifest import ManifestError, audio_path, parse_line, read_manifest

FIXTURES = Path(__file__).parents[1] / "fixtures" / "import"
SR = 16000


def tone(path: Path, seconds: float, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * SR)) / SR
    sf.write(str(path), (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR, format=fmt)
    return path


def librispeech(root: Path) -> Path:
    """2 speakers, 3 utterances."""
    (root / "19" / "198").mkdir(parents=True)
    (root / "19" / "198" / "19-198.trans.txt").write_text(
        "19-198-0000 NORTHANGER ABBEY\n19-198-0001 HE DIDN'T KNOW\n")
    tone(root / "19" / "198" / "19-198-0000.flac", 0.5, "FLAC")
    tone(root / "19" / "198" / "19-198-0001.flac", 0.25, "FLAC")
    (root / "84" / "121123").mkdir(parents=True)
    (root / "84" / "121123" / "84-121123.trans.txt").write_text("84-121123-0000 GO DO YOU HEAR\n")
    tone(root / "84" / "121123" / "84-121123-0000.flac", 0.75, "FLAC")
    return root


def kaldi(d: Path, segments: bool = False) -> Path:
    """A data folder whose wav.scp paths are relative to it (one absolute)."""
    d.mkdir(parents=True)
    tone(d / "wav" / "a.wav", 1.0)
    tone(d / "wav" / "b.wav", 0.5)
    if segments:
        (d / "wav.scp").write_text("recA wav/a.wav\n")
        (d / "segments").write_text("u1 recA 0.0 0.25\nu2 recA 0.25 0.75\n")
    else:
        (d / "wav.scp").write_text(f"u1 wav/a.wav\nu2 {d / 'wav' / 'b.wav'}\n")
    (d / "text").write_text("u1 TURN ON the lights\nu2 good   night\n")
    (d / "utt2spk").write_text("u1 spk1\nu2 spk2\n")
    return d


def error(fn, *args, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(CorpusImportError) as e:
        fn(*args, **kw)
    return str(e.value)


# ---------------------------------------------------------------- LibriSpeech


def test_librispeech_reads_tree(tmp_path: Path) -> None:
    utts = import_librispeech(librispeech(tmp_path / "dev-clean"), "dev")
    assert [u.id for u in utts] == ["19-198-0000", "19-198-0001", "84-121123-0000"]
    assert [u.text for u in utts] == ["northanger abbey", "he didn't know", "go do you hear"]
    assert utts[1].words == ["he", "didn't", "know"]
    assert [u.voice for u in utts] == ["librispeech/19", "librispeech/19", "librispeech/84"]
    assert [u.duration for u in utts] == [0.5, 0.25, 0.75]
    assert {u.sample_rate for u in utts} == {SR}
    assert {u.source for u in utts} == {"librispeech"} and {u.split for u in utts} == {"dev"}
    assert all(u.tags is None and u.directed is None and u.intent is None for u in utts)


def test_librispeech_round_trip_relative_paths(tmp_path: Path) -> None:
    root = librispeech(tmp_path / "LibriSpeech" / "dev-clean")
    out = tmp_path / "corpora" / "libri"
    path = write_import(import_librispeech(root, "dev"), out, "dev")
    assert path == (out / "dev.jsonl").resolve()
    line = json.loads(path.read_text().splitlines()[0])
    assert line["audio"] == "../../LibriSpeech/dev-clean/19/198/19-198-0000.flac"
    for absent in ("tags", "intent", "directed", "speech_start", "speech_end"):
        assert absent not in line
    back = read_manifest(path)
    assert [u.text for u in back] == ["northanger abbey", "he didn't know", "go do you hear"]
    assert audio_path(path, back[2]) == (root / "84" / "121123" / "84-121123-0000.flac").resolve()
    assert audio_path(path, back[2]).is_file()


def test_librispeech_errors_name_file_and_line(tmp_path: Path) -> None:
    root = librispeech(tmp_path / "ls")
    trans = root / "19" / "198" / "19-198.trans.txt"
    (root / "19" / "198" / "19-198-0001.flac").unlink()
    assert error(import_librispeech, root, "train").startswith(f"{trans.resolve()}:2: audio file missing")

    root = librispeech(tmp_path / "ls2")
    trans = (root / "19" / "198" / "19-198.trans.txt").resolve()
    tone(root / "19" / "198" / "19-198-0002.flac", 0.1, "FLAC")
    assert error(import_librispeech, root, "train") == f"{trans}: no transcript for audio 19-198-0002.flac"

    trans.write_text("19-198-0000 NORTHANGER ABBEY\n19-198-0001 CHAPTER 2\n19-198-0002 X\n")
    msg = error(import_librispeech, root, "train")
    assert msg.startswith(f"{trans}:2: not spoken form: ['2']")

    assert "no <speaker>/<chapter>/*.trans.txt" in error(import_librispeech, tmp_path / "empty", "train")


# ---------------------------------------------------------------- Kaldi


def test_kaldi_reads_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative wav.scp paths must not resolve against the cwd here
    d = kaldi(tmp_path / "s5" / "data" / "train")
    utts = import_kaldi(d, "train")
    assert [(u.id, u.text, u.voice, u.duration) for u in utts] == [
        ("u1", "turn on the lights", "kaldi/spk1", 1.0), ("u2", "good night", "kaldi/spk2", 0.5)]
    path = write_import(utts, tmp_path / "out", "train")
    back = read_manifest(path)
    assert back[0].audio == "../s5/data/train/wav/a.wav"
    assert audio_path(path, back[1]) == (d / "wav" / "b.wav").resolve()

    (d / "utt2spk").unlink()
    assert [u.voice for u in import_kaldi(d, "train")] == [None, None]


def test_kaldi_segments_are_cut(tmp_path: Path) -> None:
    d = kaldi(tmp_path / "data", segments=True)
    assert "segments need an output folder" in error(import_kaldi, d, "train")
    out = tmp_path / "out"
    utts = import_kaldi(d, "dev", out_dir=out)
    assert [(u.id, u.duration) for u in utts] == [("u1", 0.25), ("u2", 0.5)]
    path = write_import(utts, out, "dev")
    back = read_manifest(path)
    assert back[1].audio == "audio/dev/u2.wav"
    samples, sr = sf.read(str(audio_path(path, back[1])))
    assert sr == SR and len(samples) == SR // 2


def test_kaldi_segments_of_a_codec_that_cannot_seek(tmp_path: Path) -> None:
    """A GSM 6.10 recording (libsndfile cannot seek in it, nor read it without a frame count before
    issue 20) is cut by reading up to each segment's start."""
    d = kaldi(tmp_path / "data", segments=True)
    x, _ = sf.read(str(d / "wav" / "a.wav"), dtype="float32")
    sf.write(str(d / "wav" / "a.wav"), x, SR, subtype="GSM610")
    utts = import_kaldi(d, "dev", out_dir=tmp_path / "out")
    assert [(u.id, u.duration) for u in utts] == [("u1", 0.25), ("u2", 0.5)]
    cut, sr = sf.read(str(tmp_path / "out" / "audio" / "dev" / "u2.wav"), dtype="float32")
    whole, _ = sf.read(str(d / "wav" / "a.wav"), frames=SR, dtype="float32")  # reading forward works
    assert sr == SR and len(cut) == SR // 2 and np.abs(cut - whole[SR // 4 : 3 * SR // 4]).max() < 1e-4  # PCM_16 rounding


def test_kaldi_errors_name_file_and_line(tmp_path: Path) -> None:
    d = kaldi(tmp_path / "data")
    (d / "wav.scp").write_text("u1 wav/a.wav\nu2 sph2pipe -f wav b.sph |\n")
    assert error(import_kaldi, d, "train").startswith(f"{d / 'wav.scp'}:2: piped command")

    (d / "wav.scp").write_text("u1 wav/a.wav\nu2 wav/missing.wav\n")
    assert error(import_kaldi, d, "train").startswith(f"{d / 'wav.scp'}:2: audio file missing")

    (d / "wav.scp").write_text("u1 wav/a.wav\nu2 wav/b.wav\nu3 wav/b.wav\n")
    assert error(import_kaldi, d, "train") == f"{d / 'wav.scp'}:3: no transcript for 'u3' in {d / 'text'}"

    (d / "wav.scp").write_text("u1 wav/a.wav\n")
    assert error(import_kaldi, d, "train") == f"{d / 'text'}:2: no audio for 'u2' in wav.scp"

    (d / "wav.scp").write_text("u1 wav/a.wav\nu1 wav/b.wav\n")
    assert error(import_kaldi, d, "train").startswith(f"{d / 'wav.scp'}:2: duplicate id 'u1'")

    d = kaldi(tmp_path / "seg", segments=True)
    (d / "segments").write_text("u1 recA 0.0 0.25\nu2 recA 0.9 0.5\n")
    msg = error(import_kaldi, d, "train", out_dir=tmp_path / "o")
    assert msg.startswith(f"{d / 'segments'}:2: empty or out-of-range")
    (d / "segments").write_text("u1 recA 0.0 nan\nu2 recA 0.25 0.75\n")
    msg = error(import_kaldi, d, "train", out_dir=tmp_path / "o")
    assert msg == f"{d / 'segments'}:1: start and end must be seconds, got '0.0 nan'"


# ---------------------------------------------------------------- BIO


def test_seqio_with_labels() -> None:
    utts = import_bio(FIXTURES / "seqio", "train")
    assert [u.text for u in utts] == ["wake me up at 7 am", "play some jazz", "what is the weather in new york"]
    assert utts[0].tags == ["O", "O", "O", "O", "B-time", "I-time"]
    assert [u.intent for u in utts] == ["set_alarm", "play_music", "get_weather"]
    assert all(u.audio is None and u.duration is None and u.directed is None for u in utts)
    assert [u.id for u in utts] == ["seqio-train-000001", "seqio-train-000002", "seqio-train-000003"]


def test_seqio_round_trip_text_only(tmp_path: Path) -> None:
    path = write_import(import_bio(FIXTURES / "seqio", "train", fmt="seqio"), tmp_path, "test")
    line = json.loads(path.read_text().splitlines()[1])
    assert line == {"id": "seqio-train-000002", "text": "play some jazz", "words": ["play", "some", "jazz"],
                    "split": "test", "tags": ["O", "O", "B-genre"], "intent": "play_music",
                    "source": "seqio", "augment": {}}
    assert [u.tags for u in read_manifest(path)] == [u.tags for u in import_bio(FIXTURES / "seqio", "x")]


def test_seqio_errors_name_file_and_line(tmp_path: Path) -> None:
    d = tmp_path / "s"
    shutil.copytree(FIXTURES / "seqio", d)
    (d / "seq.out").write_text("O O O O B-time I-time\nO B-genre\nO O O O O B-city I-city\n")
    assert error(import_bio, d, "train") == f"{d / 'seq.out'}:2: 3 words but 2 tags"
    (d / "seq.out").write_text("O O O O B-time I-time\nO O B-genre\nO O O O O X-city I-city\n")
    assert error(import_bio, d, "train") == f"{d / 'seq.out'}:3: bad BIO tag 'X-city' at word 5"
    (d / "seq.out").write_text("O O O O B-time I-time\nO O I-genre\nO O O O O B-city I-city\n")
    assert error(import_bio, d, "train") == f"{d / 'seq.out'}:2: 'I-genre' follows 'O' at word 2"
    (d / "seq.out").write_text("O O O O B-time I-time\nO O B-genre\n")
    assert error(import_bio, d, "train") == f"{d / 'seq.out'}: 2 lines but seq.in has 3"
    (d / "label").write_text("a\n")
    (d / "seq.out").write_text((FIXTURES / "seqio" / "seq.out").read_text())
    assert error(import_bio, d, "train") == f"{d / 'label'}: 1 lines but seq.in has 3"
    assert error(import_bio, d, "train", fmt="iob").startswith("unknown BIO format 'iob'")


def test_conll_docstart_and_iob1() -> None:
    utts = import_bio(FIXTURES / "conll" / "train.txt", "dev")
    assert [u.text for u in utts] == ["eu rejects german call .", "peter blackburn", "brussels paris 1996-08-22"]
    assert [u.tags for u in utts] == [
        ["B-ORG", "O", "B-MISC", "O", "O"], ["B-PER", "I-PER"], ["B-LOC", "B-LOC", "O"]]
    assert {u.intent for u in utts} == {None} and {u.source for u in utts} == {"conll"}


def test_conll_errors_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "x.conll"
    f.write_text("-DOCSTART- O\n\nhello O\nworld\n")
    assert error(import_bio, f, "train") == f"{f}:4: expected a word and a tag column, got 'world'"
    f.write_text("hello O\n\nworld B-\n")
    assert error(import_bio, f, "train") == f"{f}:3: bad BIO tag 'B-' at word 0"
    f.write_bytes(b"ok O\n\xff O\n")
    assert error(import_bio, f, "train") == f"{f}:2: not UTF-8 text"
    assert error(import_bio, tmp_path / "nope", "train") == f"{tmp_path / 'nope'}: no such file or folder"


# ---------------------------------------------------------------- command line


def cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="heed corpus")
    add_import_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_import_summary_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = librispeech(tmp_path / "ls")
    args = cli(["import", "librispeech", str(root), "--out", str(tmp_path / "out"), "--split", "dev"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported 3 utterances (0.00 h, 2 voices) from librispeech") and out.count("\n") == 1
    assert len(read_manifest(tmp_path / "out" / "dev.jsonl")) == 3

    bad = tmp_path / "bad.conll"
    bad.write_text("a O\nb I-x Q\n\n")
    args = cli(["import", "bio", str(bad), "--out", str(tmp_path / "out2"), "--format", "conll"])
    with pytest.raises(SystemExit) as e:
        args.func(args)
    assert e.value.code == f"heed corpus import: {bad}:1: bad BIO tag 'Q' at word 1"
    assert not (tmp_path / "out2" / "train.jsonl").exists()


# ---------------------------------------------------------------- fuzz

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda v: st.lists(v, max_size=3) | st.dictionaries(st.text(max_size=5), v, max_size=3),
                           max_leaves=8)
manifest_keys = st.sampled_from(["id", "text", "words", "audio", "duration", "sample_rate", "tags", "intent",
                                 "directed", "split", "augment", "voice", "x"])
manifest_lines = st.one_of(
    st.text(max_size=80),
    st.dictionaries(manifest_keys, json_values | st.lists(st.text(max_size=5), max_size=4), max_size=8).map(json.dumps),
    st.builds(lambda t, extra: json.dumps({"id": "a", "text": t, "words": t.split(" "), **extra}),
              st.text(max_size=20), st.dictionaries(manifest_keys, json_values, max_size=3)),
)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(manifest_lines)
def test_fuzz_parse_line(line: str) -> None:
    try:
        utt = parse_line(line, "f:1")
    except ManifestError as e:
        assert str(e).startswith("f:1: ")
        return
    assert parse_line(utt.to_json(), "f:2").words == utt.words


bio_pieces = st.sampled_from(list("ab Z9.\t\n\r-é\x1c") + ["B-x", "I-x", "I-y", "O", "-DOCSTART-"])
bio_text = st.lists(bio_pieces, max_size=30).map("".join) | st.text(max_size=60)


@FUZZ
@given(bio_text, bio_text, bio_text)
def test_fuzz_bio_readers(a: str, b: str, c: str) -> None:
    """Any text either imports, giving lines that read back as a manifest, or raises CorpusImportError."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "seq.in").write_text(a, encoding="utf-8")
        (d / "seq.out").write_text(b, encoding="utf-8")
        (d / "label").write_text(c, encoding="utf-8")
        (d / "x.conll").write_text(a + "\n" + b, encoding="utf-8")
        for path, fmt in ((d, "seqio"), (d / "x.conll", "conll")):
            try:
                utts = import_bio(path, "train", fmt)
            except CorpusImportError:
                continue
            for u in utts:
                assert parse_line(u.to_json(), "f:1") == u
