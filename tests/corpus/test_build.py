from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from corpus import build
from corpus.build import BuildConfig, BuildError, build_corpus, load_sentences, make_plan, parse_size, render_item
from runtime.manifest import SPLITS, audio_path, read_manifest
from corpus.sentence import check_spoken
from corpus.tts import VOICES

FIELDS = {"id", "audio", "duration", "sample_rate", "text", "words", "tags", "intent", "directed",
          "speech_start", "speech_end", "voice", "source", "split", "augment"}


@pytest.fixture(scope="module")
def manifests(tiny_corpus: Path) -> dict[str, list]:
    return {s: read_manifest(tiny_corpus / f"{s}.jsonl") for s in SPLITS}


def test_manifest_lines_carry_every_field(tiny_corpus: Path) -> None:
    for split in SPLITS:
        for line in (tiny_corpus / f"{split}.jsonl").read_text().splitlines():
            d = json.loads(line)
            assert set(d) == FIELDS
            assert {"noise", "snr_db", "rir", "telephone", "gain_db", "speed", "tts_rate", "tts_pitch"} <= set(d["augment"])


def test_counts_and_classes(manifests: dict) -> None:
    assert sum(len(u) for u in manifests.values()) == 60
    for split, utts in manifests.items():
        assert {u.directed for u in utts} == {True, False}, split
        assert all(u.split == split for u in utts)
    sources = {u.source for utts in manifests.values() for u in utts}
    assert {"atis", "assistant"} <= sources and sources & {"side", "chatter", "radio"}


def test_audio_matches_manifest(tiny_corpus: Path, manifests: dict) -> None:
    for utts in manifests.values():
        for u in utts:
            info = sf.info(audio_path(tiny_corpus / "train.jsonl", u))
            assert info.samplerate == u.sample_rate == 16000 and info.channels == 1
            assert abs(info.frames / info.samplerate - u.duration) < 1e-3
            assert 0 < u.speech_start < u.speech_end <= u.duration


def test_speech_lies_between_start_and_end(tiny_corpus: Path, manifests: dict) -> None:
    clean = [u for utts in manifests.values() for u in utts if u.augment.get("noise") in (None, "none")]
    assert clean, "the tiny corpus should hold some utterances without added noise"
    for u in clean:
        x, sr = sf.read(audio_path(tiny_corpus / "train.jsonl", u))
        inside = x[int(u.speech_start * sr):int(u.speech_end * sr)]
        before = x[:max(1, int(u.speech_start * sr) - int(0.02 * sr))]
        assert np.sqrt(np.mean(inside**2)) > 4 * np.sqrt(np.mean(before**2)), u.id


def test_text_is_spoken_form_with_aligned_tags(manifests: dict) -> None:
    for utts in manifests.values():
        for u in utts:
            assert u.words == u.text.split(" ")
            check_spoken(u.words, u.tags)
            if not u.directed:
                assert set(u.tags) == {"O"} and u.intent is None
            else:
                assert u.intent


def test_splits_disjoint_in_sentences(manifests: dict) -> None:
    texts = {s: {u.text for u in utts} for s, utts in manifests.items()}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"] and not texts["dev"] & texts["test"]


def test_sentence_pools_disjoint_across_splits() -> None:
    pools = load_sentences(seed=0)
    texts = {s: {x.text for src in pools[s].values() for x in src} for s in SPLITS}
    assert not texts["train"] & texts["test"] and not texts["train"] & texts["dev"] and not texts["dev"] & texts["test"]
    assert len(texts["test"]) > 1000 and len(texts["train"]) > 10000


def test_heldout_voices_only_in_dev_and_test(manifests: dict) -> None:
    heldout = {v for v, voice in VOICES.items() if voice.heldout}
    assert not {u.voice for u in manifests["train"]} & heldout
    assert {u.voice for u in manifests["dev"] + manifests["test"]} & heldout


def test_plan_is_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    sentences = load_sentences(seed=3)
    voices = {v.id: v.heldout for v in VOICES.values()}
    a = make_plan(BuildConfig(tmp_path, 200, seed=3), sentences, voices)
    b = make_plan(BuildConfig(tmp_path, 200, seed=3), sentences, voices)
    c = make_plan(BuildConfig(tmp_path, 200, seed=4), sentences, voices)
    assert a == b and a != c


def test_rendering_is_deterministic(tmp_path: Path, manifests: dict) -> None:
    sentences = load_sentences(seed=7)
    voices = {v.id: v.heldout for v in VOICES.values()}
    plan = make_plan(BuildConfig(tmp_path, 60, seed=7), sentences, voices)
    by_voice = {}
    for item in plan:  # one item per engine
        by_voice.setdefault(item.voice.split("/")[0], item)
    for item in by_voice.values():
        u1 = render_item(item, tmp_path / "a")
        u2 = render_item(item, tmp_path / "b")
        assert u1 == u2
        assert np.array_equal(sf.read(tmp_path / "a" / u1.audio)[0], sf.read(tmp_path / "b" / u2.audio)[0])


def test_rebuild_resumes_and_gives_the_same_manifests(tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {s: (tiny_corpus / f"{s}.jsonl").read_text() for s in SPLITS}
    victim = read_manifest(tiny_corpus / "dev.jsonl")[0]
    (tiny_corpus / victim.audio).unlink()  # as if the build had stopped before this one
    rendered = []
    real = build.render_item
    monkeypatch.setattr(build, "render_item", lambda item, out: rendered.append(item.id) or real(item, out))
    build_corpus(BuildConfig(out=tiny_corpus, n_utterances=60, seed=7, workers=1), progress=False)
    assert rendered == [victim.id]
    assert {s: (tiny_corpus / f"{s}.jsonl").read_text() for s in SPLITS} == before


def test_foreign_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BuildError, match="not a heed corpus"):
        build_corpus(BuildConfig(out=tmp_path, n_utterances=20), progress=False)


def test_parse_size() -> None:
    assert parse_size("small") == 500 and parse_size("base") >= 30000 and parse_size("60") == 60
    with pytest.raises(BuildError, match="--size"):
        parse_size("huge")
    with pytest.raises(BuildError, match="at least"):
        parse_size("3")


def test_a_test_only_build_holds_the_full_builds_test_utterances(tiny_corpus: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = []
    real = build.render_item
    monkeypatch.setattr(build, "render_item", lambda item, out: rendered.append(item.split) or real(item, out))
    by_split = build_corpus(BuildConfig(out=tmp_path, n_utterances=60, seed=7, workers=1, splits=("test",)),
                            progress=False)
    assert set(rendered) == {"test"} and list(by_split) == ["test"]
    assert (tmp_path / "test.jsonl").read_text() == (tiny_corpus / "test.jsonl").read_text()
    assert not (tmp_path / "train.jsonl").exists()
    with pytest.raises(BuildError, match="splits must be"):
        build_corpus(BuildConfig(out=tmp_path, n_utterances=60, seed=7, splits=("tset",)), progress=False)
