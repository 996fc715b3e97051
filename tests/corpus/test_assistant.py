from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from corpus.assistant import TEMPLATES, fill, generate_assistant, say, slot_values
from corpus.sentence import Sentence, check_spoken, spans

INTENTS = {"set_alarm", "set_timer", "weather", "play_music", "lights", "thermostat", "call",
           "send_message", "reminder", "calendar", "navigation", "shopping_list", "volume",
           "media_control", "cancel", "question"}


@pytest.fixture(scope="module")
def pool() -> list[Sentence]:
    return generate_assistant(seed=0)


def test_pool_is_large_distinct_and_covers_every_intent(pool: list[Sentence]) -> None:
    texts = [s.text for s in pool]
    assert len(texts) >= 6000
    assert len(set(texts)) == len(texts)
    counts = Counter(s.intent for s in pool)
    assert set(counts) == INTENTS and len(counts) >= 14
    assert min(counts.values()) >= 100


def test_every_sentence_is_valid_directed_assistant(pool: list[Sentence]) -> None:
    for s in pool:
        check_spoken(s.words, s.tags)
        assert s.directed is True and s.source == "assistant" and s.intent in INTENTS
        assert not re.search(r"\d", s.text)


def test_templates_are_many_per_intent_and_use_known_slots() -> None:
    values = slot_values(0)
    for intent, templates in TEMPLATES.items():
        assert len(templates) >= 10, intent
        for t in templates:
            for name in re.findall(r"\{([a-z_:]+)\}", t):
                assert name.split(":")[-1] in values, (intent, t)


def test_slot_values_are_spoken_form() -> None:
    for slot, values in slot_values(3).items():
        assert len(values) >= 7, slot
        for v in values:
            check_spoken(v.split(" "), ["O"] * len(v.split(" ")))


def test_deterministic_for_a_seed_and_seeds_differ() -> None:
    a, b = generate_assistant(seed=0, n=300), generate_assistant(seed=0, n=300)
    assert [s.text for s in a] == [s.text for s in b]
    assert [s.tags for s in a] == [s.tags for s in b]
    assert [s.text for s in a] != [s.text for s in generate_assistant(seed=1, n=300)]


@pytest.mark.parametrize("n", [1, 17, 2000])
def test_n_is_exact_and_distinct(n: int) -> None:
    out = generate_assistant(seed=0, n=n)
    assert len(out) == n and len({s.text for s in out}) == n


def test_n_is_balanced_over_intents() -> None:
    counts = Counter(s.intent for s in generate_assistant(seed=0, n=160))
    assert set(counts) == INTENTS and set(counts.values()) == {10}


def test_too_many_is_an_error() -> None:
    with pytest.raises(ValueError, match="distinct"):
        generate_assistant(seed=0, n=10**7)
    with pytest.raises(ValueError, match="distinct"):
        generate_assistant(seed=0, n=-1)


def test_fill_tags_multiword_values_b_then_i() -> None:
    values = {"time": ("seven thirty",), "date": ("next friday",)}
    words, tags = fill("wake me up at {time} {date}", random.Random(0), values)
    assert words == "wake me up at seven thirty next friday".split()
    assert tags == ["O", "O", "O", "O", "B-time", "I-time", "B-date", "I-date"]


def test_fill_alternatives_and_table_alias() -> None:
    values = {"destination": ("the airport",)}
    texts = {" ".join(fill("(please |)go to {location:destination}", random.Random(i), values)[0])
             for i in range(40)}
    assert texts == {"please go to the airport", "go to the airport"}
    _, tags = fill("go to {location:destination}", random.Random(0), values)
    assert tags == ["O", "O", "B-location", "I-location"]


def test_alarm_and_timer_sentences_tag_their_slots(pool: list[Sentence]) -> None:
    times = set(slot_values(0)["time"])
    alarm = [s for s in pool if s.intent == "set_alarm" and s.text.startswith("set an alarm for ")]
    assert alarm
    for s in alarm:
        slot, a, b = spans(s.tags)[0]
        assert (slot, a) == ("time", 4) and " ".join(s.words[a:b]) in times
        assert s.tags[a:b] == ("B-time",) + ("I-time",) * (b - a - 1)
    timer = [s for s in pool if s.intent == "set_timer" and s.text.startswith("set a timer for ")]
    assert timer and all(spans(s.tags)[0][:2] == ("duration", 4) for s in timer)


def test_slot_spans_hold_values_from_their_tables(pool: list[Sentence]) -> None:
    values = slot_values(0)
    tables = {"location": set(values["location"]) | set(values["destination"])}
    for s in pool[:2000]:
        for slot, a, b in spans(s.tags):
            value = " ".join(s.words[a:b])
            allowed = tables.get(slot, set(values.get(slot, ())))
            if slot == "app":
                allowed = set(values["app"]) | set(values["chat_app"])
            if slot == "device":
                allowed = set(values["device"]) | set(values["speaker"])
            assert value in allowed, (slot, value, s.text)


def test_numbers_come_from_num2words_without_hyphens() -> None:
    assert say(72) == "seventy two"
    assert say(21, "ordinal") == "twenty first"
    assert "seventy two degrees" in slot_values(0)["temperature"]
    assert {"half past six", "seven thirty", "noon", "six a m"} <= set(slot_values(0)["time"])
    assert {"an hour and a half", "twenty minutes"} <= set(slot_values(0)["duration"])
    assert {"tomorrow", "next friday", "march third"} <= set(slot_values(0)["date"])


def test_number_agreement_in_durations() -> None:
    texts = [s.text for s in generate_assistant(0)]
    assert not [t for t in texts if "one hours" in t or "one minutes" in t]
    assert any("one hour and" in t for t in texts)
