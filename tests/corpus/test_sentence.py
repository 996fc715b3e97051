from __future__ import annotations

import pytest

from corpus.sentence import Sentence, SpokenFormError, check_spoken, spans


def test_valid_sentence() -> None:
    s = Sentence(("wake", "me", "up", "at", "seven", "thirty"), ("O", "O", "O", "O", "B-time", "I-time"), "set_alarm", True, "assistant")
    assert s.text == "wake me up at seven thirty"
    assert spans(s.tags) == [("time", 4, 6)]


@pytest.mark.parametrize("words, tags, message", [
    ((), (), "empty"),
    (("Wake", "up"), ("O", "O"), "not spoken form"),
    (("at", "7"), ("O", "O"), "not spoken form"),
    (("hello,", "there"), ("O", "O"), "not spoken form"),
    (("a", "b"), ("O",), "1 tags for 2 words"),
    (("a", "b"), ("O", "I-time"), "follows"),
    (("a", "b"), ("B-time", "I-date"), "follows"),
    (("a",), ("X-time",), "bad tag"),
])
def test_invalid(words, tags, message) -> None:
    with pytest.raises(SpokenFormError, match=message):
        check_spoken(words, tags)


def test_apostrophes_inside_words_are_spoken_form() -> None:
    check_spoken(("don't", "o'clock"), ("O", "O"))
    with pytest.raises(SpokenFormError):
        check_spoken(("'tis",), ("O",))


def test_spans_split_adjacent_b_tags() -> None:
    assert spans(["B-a", "I-a", "O", "B-b", "B-b", "I-b"]) == [("a", 0, 2), ("b", 3, 4), ("b", 4, 6)]
