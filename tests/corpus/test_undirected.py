from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from corpus import undirected
from corpus.assistant import generate_assistant
from corpus.sentence import Sentence, check_spoken
from corpus.undirected import load_undirected, side_texts

SOURCES = {"chatter", "side", "radio"}


def _need_sources() -> None:
    try:
        import chatterbot_corpus  # noqa: F401
    except ImportError:
        pytest.skip("chatterbot-corpus is not installed: pip install chatterbot-corpus")
    for folder, package in ((undirected.FORTUNES_DIR, "fortunes"), (undirected.WORDNET_DIR, "wordnet-base")):
        if not folder.is_dir():
            pytest.skip(f"{folder} is missing: apt-get install {package}")


@pytest.fixture(scope="module")
def sentences() -> list[Sentence]:
    _need_sources()
    return load_undirected(seed=0)


@pytest.fixture(scope="module")
def directed() -> list[Sentence]:
    return generate_assistant(seed=0)


def test_all_three_sources_and_enough_sentences(sentences: list[Sentence]) -> None:
    counts = Counter(s.source for s in sentences)
    assert set(counts) == SOURCES
    assert len(sentences) >= 8000
    assert counts["side"] >= 3000 and counts["radio"] >= 2000 and counts["chatter"] >= 1000


def test_sentences_are_valid_distinct_undirected(sentences: list[Sentence]) -> None:
    texts = [s.text for s in sentences]
    assert len(set(texts)) == len(texts)
    for s in sentences:
        check_spoken(s.words, s.tags)
        assert s.directed is False and s.intent is None
        assert set(s.tags) == {"O"}
        assert not re.search(r"\d", s.text)


def test_radio_sentences_are_short(sentences: list[Sentence]) -> None:
    lo, hi = undirected.RADIO_WORDS
    assert all(lo <= len(s.words) <= hi for s in sentences if s.source == "radio")


def test_no_text_is_also_a_directed_sentence(sentences: list[Sentence], directed: list[Sentence]) -> None:
    assert not {s.text for s in directed} & {s.text for s in sentences}


def test_side_has_command_like_lines_addressed_to_a_person(sentences: list[Sentence]) -> None:
    side = {s.text for s in sentences if s.source == "side"}
    names = ("hey ", "mum ", "dad ")
    commands = [t for t in side if re.search(r"\b(turn|set|play|call|remind|put)\b", t)]
    assert len(commands) >= 1000
    assert any(t.startswith(names) and "lights" in t for t in side)
    assert any("did you set" in t and "alarm" in t for t in side)
    assert any(t.startswith("hey ") and "play that song again" in t for t in side)


def test_vocabulary_overlaps_the_directed_class(sentences: list[Sentence], directed: list[Sentence]) -> None:
    directed_words = {w for s in directed for w in s.words}
    undirected_words = {w for s in sentences for w in s.words}
    assert {"lights", "alarm", "timer", "play", "weather", "call"} <= directed_words & undirected_words
    assert len(directed_words & undirected_words) >= 0.8 * len(directed_words)


def test_load_is_deterministic_for_a_seed(sentences: list[Sentence]) -> None:
    again = load_undirected(seed=0)  # file readers are cached, so this costs only the templates
    assert [s.text for s in again] == [s.text for s in sentences]


def test_seeds_give_different_side_lines(sentences: list[Sentence]) -> None:
    side = [s.text for s in sentences if s.source == "side"]
    assert sorted(side_texts(1)) != sorted(side)


def test_one_sentence_filter() -> None:
    one = undirected._one_sentence
    assert one("The sun was hot and the sky was blue.") == "the sun was hot and the sky was blue"
    assert one("Meet me at 7:30pm, ok?") == "meet me at seven thirty p m ok"
    assert one("Too short.") is None
    assert one("First sentence. Second sentence here now.") is None
    assert one("A quip that ends with its author.\n\t\t-- Mark Twain") is None
    assert one("see http://example.com for more details today") is None


def test_missing_sources_name_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install fortunes"):
        undirected.fortune_texts(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="apt-get install wordnet-base"):
        undirected.wordnet_examples(tmp_path)


def test_fortune_and_wordnet_readers_on_tiny_files(tmp_path: Path) -> None:
    (tmp_path / "jokes").write_text("The cat sat on the warm mat.\n%\nshort\n%\nRoses are red,\n"
                                    "  violets are blue,\n%\nI have 2 dogs and 3 cats at home!\n%\n")
    (tmp_path / "jokes.dat").write_bytes(b"\x00\x01")
    assert set(undirected.fortune_texts(tmp_path)) == {"the cat sat on the warm mat",
                                                      "i have two dogs and three cats at home"}
    (tmp_path / "data.noun").write_text(
        '00001 03 n 01 sun 0 000 | a star; "the sun was hot today"; "a very bright yellow sun"\n')
    (tmp_path / "data.verb").write_text('00002 29 v 01 run 0 000 | move fast; "she ran all the way home"\n')
    assert set(undirected.wordnet_examples(tmp_path)) == {"the sun was hot today", "she ran all the way home"}
