"""`heed corpus import unlabelled` on fake packages with the real ones' layout (offline)."""
from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from runtime.manifest import audio_path, read_manifest
from corpus.unlabelled import import_unlabelled
from tests.corpus.test_realspeech import deb, fake_klettres, fake_mfa, tone


def fake_codec2(root: Path) -> Path:
    tree = root / "codec2-tree"
    folder = tree / "usr" / "share" / "codec2" / "wav"
    for stem, seconds in (("long", 25.0), ("over", 10.4), ("short", 3.0)):
        tone(folder / f"{stem}.wav", seconds, 8000)
    return deb(tree, root / "codec2-examples_1.0.5-1_all.deb")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build, archives, out = (tmp_path_factory.mktemp(n) for n in ("build", "archives", "out"))
    for make in (fake_codec2, fake_mfa, fake_klettres):
        archive = make(build / make.__name__)
        archive.rename(archives / archive.name)
    summary = import_unlabelled(out, from_dir=archives)
    assert [s["error"] for s in summary] == [None, None, None]
    return out / "train.jsonl"


def test_only_audio_without_an_exact_text(imported: Path) -> None:
    utts = {u.id: u for u in read_manifest(imported)}
    assert all(u.text == "" and u.words == [] for u in utts.values())
    # klettres: the letters and phonics sounds, not the exact words (those are in data/real/train.jsonl)
    assert {i for i in utts if i.startswith("klettres")} == {"klettres-en-alpha-a", "klettres-en-syllab-aw"}
    # MFA: approximate or missing transcripts; never the LibriVox reader, the podcast or other languages
    assert {i for i in utts if i.startswith("mfa")} == {"mfa-mfa_cutoff", "mfa-mfa_unk", "mfa-mfa_a", "mfa-cold_corpus3"}


def test_long_recordings_are_cut_in_pieces(imported: Path) -> None:
    utts = {u.id: u for u in read_manifest(imported) if u.source == "codec2"}
    assert {i: round(u.duration, 2) for i, u in utts.items()} == {
        "codec2-long-000": 10.0, "codec2-long-010": 10.0, "codec2-long-020": 5.0, "codec2-over-000": 10.0,
        "codec2-short-000": 3.0}
    info = sf.info(str(audio_path(imported, utts["codec2-long-020"])))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
