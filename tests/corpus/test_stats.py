"""Corpus statistics on a hand-made six-utterance corpus with tiny WAVs."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from runtime.manifest import ManifestError, Utterance, write_manifest
from corpus.stats import add_stats_parser, corpus_stats, format_stats, plot_stats

SR = 8000


def utt(id: str, split: str, text: str, seconds: float, voice: str, source: str, directed: bool | None,
        intent: str | None = None, **augment: object) -> Utterance:
    return Utterance(id=id, text=text, words=text.split(" "), split=split, audio=f"wav/{id}.wav",
                     duration=seconds, sample_rate=SR, voice=voice, source=source, directed=directed,
                     intent=intent, augment=dict(augment))


CORPUS = [
    utt("t1", "train", "wake me up at seven", 1.0, "a", "atis", True, "set_alarm", noise="babble", snr_db=10),
    utt("t2", "train", "we went to the park", 0.5, "b", "chatter", False),
    utt("t3", "train", "play some jazz", 1.5, "a", "atis", True, "play_music", noise="music", snr_db=20, rir="room1"),
    utt("d1", "dev", "wake me up at seven", 1.0, "c", "atis", True, "set_alarm", telephone=True),
    utt("s1", "test", "see you tomorrow", 2.0, "b", "chatter", False, noise="babble", snr_db=0),
    utt("s2", "test", "go do you hear", 1.0, "d", "librispeech", None),
]


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    for u in CORPUS:
        (tmp_path / "wav").mkdir(exist_ok=True)
        sf.write(str(tmp_path / u.audio), np.zeros(round(u.duration * SR), np.int16), SR)  # type: ignore[operator]
    for split in ("train", "dev", "test"):
        write_manifest(tmp_path / f"{split}.jsonl", [u for u in CORPUS if u.split == split])
    return tmp_path


def test_counts_hours_and_checks(corpus_dir: Path) -> None:
    s = corpus_stats(corpus_dir)
    assert s["splits"] == {"train": {"utterances": 3, "hours": 3.0 / 3600, "voices": 2},
                           "dev": {"utterances": 1, "hours": 1.0 / 3600, "voices": 1},
                           "test": {"utterances": 2, "hours": 3.0 / 3600, "voices": 2}}
    assert s["by_source"] == {"atis": {"train": 2, "dev": 1}, "chatter": {"train": 1, "test": 1},
                              "librispeech": {"test": 1}}
    assert s["by_voice"] == {"a": {"train": 2}, "b": {"train": 1, "test": 1}, "c": {"dev": 1}, "d": {"test": 1}}
    assert s["by_intent"] == {"(none)": {"train": 1, "test": 2}, "play_music": {"train": 1},
                              "set_alarm": {"train": 1, "dev": 1}}
    assert s["by_class"] == {"directed": {"train": 2, "dev": 1}, "undirected": {"train": 1, "test": 1},
                             "unknown": {"test": 1}}
    assert s["snr"] == {"n": 3, "min": 0.0, "median": 10.0, "max": 20.0, "clean_share": 0.5}
    assert s["conditions"] == {"noise": {"babble": 2, "music": 1}, "rir": 1, "telephone": 1}
    assert s["condition_by_class"] == {
        "dry": {"undirected": 2, "directed": 2, "unknown": 1}, "noise:babble": {"directed": 1, "undirected": 1},
        "noise:music": {"directed": 1}, "noise:none": {"undirected": 1, "directed": 1, "unknown": 1},
        "reverb": {"directed": 1}, "telephone": {"directed": 1}}
    assert s["held_out_voices"] == {"dev": ["c"], "test": ["d"]}
    assert s["overlap"] == {"train-dev": 1, "train-test": 0, "dev-test": 0}
    assert s["samples"]["duration"]["test"] == [2.0, 1.0]
    assert s["samples"]["snr_db"] == {"directed": [10.0, 20.0], "undirected": [0.0], "unknown": []}


def test_report_and_plot(corpus_dir: Path, tmp_path: Path) -> None:
    s = corpus_stats(corpus_dir)
    report = format_stats(s)
    assert "| train | 3 | 0.00 | 2 |" in report
    assert "| atis | 2 | 1 | 0 |" in report
    assert "- SNR dB: min 0.0, median 10.0, max 20.0 over 3 noisy" in report
    assert "- clean share: 50.0%" in report
    assert "- voices only in dev: 1 (c)" in report
    assert "- sentences shared by train-dev: 1  <-- should be 0" in report
    assert "- sentences shared by dev-test: 0\n" in report
    png = tmp_path / "plots" / "stats.png"
    png.parent.mkdir()
    plot_stats(s, png)
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_only_train_only(tmp_path: Path) -> None:
    write_manifest(tmp_path / "train.jsonl", [Utterance(id="x", text="play jazz", words=["play", "jazz"],
                                                          tags=["O", "B-genre"], source="seqio")])
    s = corpus_stats(tmp_path)
    assert s["splits"] == {"train": {"utterances": 1, "hours": 0.0, "voices": 0}}
    assert s["snr"] == {"n": 0, "min": None, "median": None, "max": None, "clean_share": 1.0}
    assert s["held_out_voices"] == {} and s["overlap"] == {}
    plot_stats(s, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
    assert "clean share: 100.0%" in format_stats(s)


def test_cli(corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="heed corpus")
    add_stats_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["stats", str(corpus_dir), "--plot", str(tmp_path / "s.png")])
    assert args.func(args) == 0
    assert "## By source" in capsys.readouterr().out and (tmp_path / "s.png").stat().st_size > 0

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="no train.jsonl"):
        corpus_stats(empty)
    (empty / "dev.jsonl").write_text('{"id": "a"}\n')
    args = parser.parse_args(["stats", str(empty)])
    with pytest.raises(SystemExit) as e:
        args.func(args)
    assert e.value.code == f"heed corpus stats: {empty / 'dev.jsonl'}:1: missing field 'text'"
