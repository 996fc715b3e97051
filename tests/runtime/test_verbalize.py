"""Hand-checked readings of written tokens and free text (runtime/verbalize.py)."""
import pytest

from runtime.verbalize import (number_words, ordinal_words, pair_words, spoken_form, time_words,
                              verbalize_token, year_words)


def test_numbers():
    assert number_words(1000) == ["one", "thousand"]
    assert number_words(21) == ["twenty", "one"]
    assert number_words(105) == ["one", "hundred", "and", "five"]
    assert ordinal_words(21) == ["twenty", "first"]
    assert year_words(1991) == ["nineteen", "ninety", "one"]


def test_pairs():
    assert pair_words("747") == ["seven", "forty", "seven"]
    assert pair_words("1039") == ["ten", "thirty", "nine"]
    assert pair_words("1500") == ["fifteen", "hundred"]
    assert pair_words("705") == ["seven", "oh", "five"]
    assert pair_words("2000") == ["two", "thousand"]
    assert pair_words("137338") == "one three seven three three eight".split()


def test_time_words():
    assert time_words(7, 30, None) == ["seven", "thirty"]
    assert time_words(9, 0, None) == ["nine", "o'clock"]
    assert time_words(9, 0, "pm") == ["nine", "p", "m"]
    assert time_words(7, 5, "a.m.") == ["seven", "oh", "five", "a", "m"]


@pytest.mark.parametrize("token, context, spoken", [
    ("1000", "B-fare_amount", "one thousand"),
    ("1000", None, "one thousand"),
    ("838", "B-depart_time.time", "eight thirty eight"),
    ("1100", "I-arrive_time.time", "eleven hundred"),
    ("0900", "depart_time.time", "nine hundred"),
    ("9", "B-arrive_time.time", "nine"),
    ("pm", "I-arrive_time.time", "p m"),
    ("am", "B-depart_time.period_of_day", "a m"),
    ("am", "O", "am"),  # the verb
    ("a.m.", None, "a m"),
    ("bwi", "B-toloc.airport_code", "b w i"),
    ("bwi", None, "bwi"),
    ("dc", "B-toloc.state_code", "d c"),
    ("qx", "B-fare_basis_code", "q x"),
    ("us", "B-airline_code", "u s"),
    ("code", "I-meal_code", "code"),  # a word inside a code span is not spelled
    ("d9s", "B-aircraft_code", "d nine s"),
    ("747", "B-aircraft_code", "seven forty seven"),
    ("m80", "B-aircraft_code", "m eighty"),
    ("l1011", "B-aircraft_code", "l ten eleven"),
    ("ap57", "B-restriction_code", "a p fifty seven"),
    ("281", "B-flight_number", "two eighty one"),
    ("1991", "B-depart_date.year", "nineteen ninety one"),
    ("st.", "B-toloc.city_name", "saint"),
    ("21st", None, "twenty first"),
    ("$5", None, "five dollars"),
    ("&", None, "and"),
    ("i'm", None, "i'm"),
    ("delta's", "B-airline_name", "delta's"),
])
def test_verbalize_token(token, context, spoken):
    assert " ".join(verbalize_token(token, context=context)) == spoken


def test_verbalize_token_rejects_junk():
    with pytest.raises(ValueError, match="cannot verbalize"):
        verbalize_token("<br>")


@pytest.mark.parametrize("text, spoken", [
    ("Meet me at 7:30pm, ok?", "meet me at seven thirty p m ok"),
    (" Wake me up at 7.30.", "wake me up at seven thirty"),  # how Whisper writes times
    ("pi is 3.14", "pi is three point one four"),
    ("It costs $5.50 & that's 50% off!", "it costs five dollars and fifty cents and that's fifty percent off"),
    ("In the 1990s, Mr. Smith won 1,000 prizes.", "in the nineteen nineties mister smith won one thousand prizes"),
    ("The 21st century began in 2001.", "the twenty first century began in two thousand and one"),
    ("Don\u2019t \u201cquote\u201d me \u2014 it's 3.14\u2026", "don't quote me it's three point one four"),
    ("'Hello,' she said.", "hello she said"),
    ("$1.5 million by 9 a.m.", "one point five million dollars by nine a m"),
    ("I am at 10:05 P.M. on the 'well-known' road", "i am at ten oh five p m on the well known road"),
    ("caf\u00e9 na\u00efve", "cafe naive"),
    ("we're #1", "we're number one"),
])
def test_spoken_form(text, spoken):
    assert spoken_form(text) == spoken


@pytest.mark.parametrize("junk", [
    "see http://example.com", "mail me at a@b.org", "\u65e5\u672c\u8a9e", "x_y = 3", "<b>hi</b>",
    "", "...", "#hashtag",
])
def test_spoken_form_rejects_junk(junk):
    assert spoken_form(junk) is None


def test_spoken_form_min_words():
    assert spoken_form("Yes!") == "yes"
    assert spoken_form("Yes!", min_words=3) is None
