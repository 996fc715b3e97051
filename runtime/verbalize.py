"""Written text -> spoken form (corpus/sentence.py checks the result): numbers, times, codes and symbols in words.

Entry points:
    spoken_form(text)              free English text (fortunes, chat, dialogue) -> one clean string or None
    spoken_from_written(text)      a recogniser's written output (Whisper) -> spoken form, never None
    verbalize_token(token, context) one written ATIS-style token, read according to its slot tag

One verbaliser for the corpus and the runtime: this module needs only num2words (no torch, no
corpus data); the corpus's generators and the second pass both import it from here.

Number spelling comes from num2words; this module only decides *which* reading a token gets
and cleans num2words' output ("twenty-one" -> ["twenty", "one"]).
"""
from __future__ import annotations

import re
import unicodedata

from num2words import num2words

# a spoken-form word: lower-case letters with inner apostrophes (corpus.sentence checks sentences with it)
WORD_RE = re.compile(r"^[a-z]+(?:'[a-z]+)*$")


# ---------------------------------------------------------------------------------------------
# Numbers


def _words(spelled: str) -> list[str]:
    """num2words output -> plain words: hyphens and commas become word breaks."""
    return re.findall(r"[a-z]+", spelled.lower())


def number_words(n: int) -> list[str]:
    """Cardinal: 105 -> ["one", "hundred", "and", "five"] (num2words' British-style "and" kept)."""
    return _words(num2words(n))


def ordinal_words(n: int) -> list[str]:
    """Ordinal: 21 -> ["twenty", "first"]."""
    return _words(num2words(n, to="ordinal"))


def year_words(n: int) -> list[str]:
    """Year: 1991 -> ["nineteen", "ninety", "one"], 2005 -> ["two", "thousand", "and", "five"]."""
    return _words(num2words(n, to="year"))


def digit_words(digits: str) -> list[str]:
    """Digit by digit: "007" -> ["zero", "zero", "seven"]."""
    return [_words(num2words(int(d)))[0] for d in digits]


def decimal_words(text: str) -> list[str]:
    """ "3.05" -> ["three", "point", "zero", "five"]; digits after the point are read one by one."""
    whole, _, frac = text.partition(".")
    return number_words(int(whole or "0")) + (["point"] + digit_words(frac) if frac else [])


def time_words(hour: int, minute: int, ampm: str | None) -> list[str]:
    """Clock time as people say it.

    Choices: minute 0 reads "nine o'clock" without am/pm and just "nine p m" with it; minutes
    1-9 read "seven oh five"; 12:00 without am/pm is "twelve o'clock" (not "noon": the text
    does not say which). `ampm` is "am"/"pm" (any case or dotting) or None; a 24-hour hour
    (13-23) is read as written ("fourteen thirty"), since ATIS speakers said it that way.
    """
    out = number_words(hour)
    if minute == 0:
        out += [] if ampm else ["o'clock"]
    elif minute < 10:
        out += ["oh"] + number_words(minute)
    else:
        out += number_words(minute)
    if ampm:
        out += list(ampm.lower().replace(".", "").replace(" ", ""))
    return out


def plural_words(words: list[str]) -> list[str]:
    """ "the 1990s": pluralize the last word of a year ("nineties", "hundreds")."""
    last = words[-1]
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return words[:-1] + [last]


# ---------------------------------------------------------------------------------------------
# Free text

# Stands for one written piece; group name says how to read it. Order matters: longer forms first.
_PIECE_RE = re.compile(
    r"""
    (?P<money>[$£€]\d[\d,]*(?:\.\d+)?)
  | (?P<cents>\d+)¢
  | (?P<time>\d{1,2}:\d{2})(?::\d{2})?
  | (?P<phone>\d{3}-\d{3}-\d{4}|\d{3}-\d{4})(?![\d-])
  | (?P<range>\d+(?:\.\d+)?-\d+(?:\.\d+)?)(?![\d-])
  | (?P<fraction>\d+/\d+)(?![\d/])
  | (?P<ordinal>\d+(?:st|nd|rd|th))(?![a-z])
  | (?P<decade>\d*0)s(?![a-z])
  | (?P<number>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)
  | (?P<minus>(?<![\w.])-(?=\d))
  | (?P<degrees>°\s?[fc]?)(?![a-z])
  | (?P<word>[a-z]+(?:'[a-z]+)*)
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)

# Punctuation that is silent; anything not here and not read aloud (_SYMBOLS) has no reading.
_SILENT = set(".,;:!?\"'()[]{}-/*~")
_SYMBOLS = {"&": "and", "%": "percent", "+": "plus", "=": "equals", "@": "at"}
_CURRENCY = {"$": ("dollar", "dollars"), "£": ("pound", "pounds"), "€": ("euro", "euros")}
_SCALES = {"thousand", "million", "billion", "trillion"}
# Abbreviations read as their full word when written with a period.
_ABBREVIATIONS = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint", "jr": "junior",
                  "vs": "versus", "etc": "et cetera", "ave": "avenue", "rd": "road", "blvd": "boulevard"}
# ... unless they end a street address ("42 Maple St."): a number among the three words before.
_STREET_ABBREVIATIONS = {"st": "street", "dr": "drive"}
_FRACTION_NAMES = {2: ("half", "halves"), 4: ("quarter", "quarters")}
_JUNK_RE = re.compile(r"https?:|www\.|\S@\S|\.(com|org|net|edu)\b|[<>_\\|^`]")
_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                             "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " "})
_MAX_NUMBER_DIGITS = 12  # longer digit strings (ids, phone numbers) are read digit by digit
# Sound annotations of recognisers ("[BLANK_AUDIO]", "(upbeat music)", "♪ la la ♪"): not speech.
_ANNOTATION_RE = re.compile(r"\[[^\]]*\]|\([^)]*\)|[\u266a\u266b][^\u266a\u266b]*[\u266a\u266b]|[\u266a\u266b]")


def _ascii(text: str) -> str:
    """Curly quotes and dashes -> ASCII, accents stripped ("café" -> "cafe"); other non-ASCII kept."""
    text = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHY))
    return "".join(c for c in text if not unicodedata.combining(c))


def _read_number(text: str) -> list[str]:
    """A plain written number: "1,000" / "3.5" / "1991" (4 digits 1100-2099, no comma, read as a
    year) / "007"."""
    plain = text.replace(",", "")
    if "." in plain:
        return decimal_words(plain)
    if len(plain) > 1 and plain.startswith("0") or len(plain) > _MAX_NUMBER_DIGITS:
        return digit_words(plain)
    n = int(plain)
    # A bare four-digit number in prose is most often a year; "1500 people" read as
    # "fifteen hundred people" is still natural English. "1,500" is written as a quantity.
    return year_words(n) if len(text) == 4 and 1100 <= n <= 2099 else number_words(n)


def _read_money(text: str, next_word: str | None) -> tuple[list[str], bool]:
    """ "$5.50" -> five dollars and fifty cents, "$0.50" -> fifty cents. Returns (words, whether
    `next_word` was a scale word like "million" that was consumed: "$1.5 million" -> one point
    five million dollars)."""
    one, many = _CURRENCY[text[0]]
    amount = text[1:].replace(",", "")
    if next_word in _SCALES:
        return _read_number(amount) + [next_word, many], True
    whole, _, cents = amount.partition(".")
    cents_n = int(cents.ljust(2, "0")[:2]) if cents else 0
    if int(whole) == 0 and cents_n:
        return _cents_words(cents_n), False
    out = number_words(int(whole)) + [one if whole == "1" else many]
    if cents_n:
        out += ["and"] + _cents_words(cents_n)
    return out, False


def _cents_words(n: int) -> list[str]:
    return number_words(n) + ["cent" if n == 1 else "cents"]


def _read_fraction(text: str) -> list[str]:
    """ "3/4" -> three quarters, "1/3" -> one third (numerator below a denominator of 2-10);
    otherwise both numbers, the slash silent ("24/7" -> twenty four seven)."""
    num, den = (int(x) for x in text.split("/"))
    a, b = text.split("/")
    if not 0 < num < den <= 10:
        return _read_number(a) + _read_number(b)
    one, many = _FRACTION_NAMES.get(den, (None, None))
    if one is None:
        name = ordinal_words(den)
        one, many = " ".join(name), " ".join(plural_words(name))
    return number_words(num) + (one if num == 1 else many).split()


def _pieces(text: str) -> list[tuple[str, str]]:
    """(kind, text) pieces of lowercased ASCII text, spaces dropped."""
    return [(m.lastgroup, m.group(m.lastgroup)) for m in _PIECE_RE.finditer(text) if m.lastgroup != "space"]


def spoken_form(text: str, *, min_words: int = 1) -> str | None:
    """Free English text -> spoken form ("Meet me at 7:30pm, ok?" -> "meet me at seven thirty p m ok").

    Lowercases; reads numbers, ordinals, years ("in 1999"), decades ("80s"), times ("7:02",
    "7.30pm", and "at 702" / "alarm for 702" written without the colon), money ("$5.50",
    "50¢"), percentages, ranges ("5-10" -> five to ten), fractions ("3/4"), negative numbers and
    degrees ("-5°C"), flight numbers in pairs ("flight 838"), a day after a month as an ordinal
    ("May 21" -> may twenty first) in words; "&", "%", "+", "=", "@" as words; "Mr."/"Dr."/
    "St." as mister/doctor/saint (street/drive after a house number); "a.m." and "pm" after a
    number as "a m"/"p m"; drops other punctuation (an apostrophe stays only inside a word:
    "don't", "o'clock"). Initialisms stay one word ("FBI" -> "fbi", "DC-9" -> "dc nine"):
    telling them from acronyms needs a lexicon.

    Returns None when the text cannot be made clean: URLs, e-mail addresses, markup or code
    symbols (<>#_\\|^`), letters outside ASCII after stripping accents, or fewer than
    `min_words` words. For recogniser output, which must always give words, use
    spoken_from_written.
    """
    words = _read_text(text, strict=True)
    if words is None or len(words) < max(min_words, 1):
        return None
    return " ".join(words)


def spoken_from_written(text: str) -> str:
    """A recogniser's written form -> spoken form, with the readings of spoken_form.

    Whisper writes "Set an alarm for 7:02." / "It's $5.50, 21st of May, 10%"; the tagger and the
    IQD read "set an alarm for seven oh two" / "it's five dollars and fifty cents twenty first
    of may ten percent". Everything spoken_form reads is read the same way (one verbaliser).

    Never returns None: what has no reading is dropped instead of rejecting the text, namely
    sound annotations in brackets or parentheses ("[BLANK_AUDIO]", "(laughs)") and between
    music notes, URLs and e-mail addresses, words with letters outside ASCII after accents are
    stripped ("日本"), and symbols with no spoken form ("#" not before a number, "<", "_", ...).
    Returns "" when nothing readable is left.
    """
    return " ".join(_read_text(_ANNOTATION_RE.sub(" ", text), strict=False) or [])


def _read_text(text: str, strict: bool) -> list[str] | None:
    """The spoken words of `text`; with `strict`, None as soon as a piece has no reading,
    otherwise such pieces are dropped."""
    text = _ascii(text).lower()
    if not strict:
        text = " ".join(t for t in text.split() if not _JUNK_RE.search(t)
                        and not any(c.isalpha() and not c.isascii() for c in t))
    elif _JUNK_RE.search(text):
        return None
    pieces = _pieces(text)
    out: list[str] = []
    i = 0
    while i < len(pieces):
        words, used = _read_piece(pieces, i, out)
        i += 1 + used
        if words is None and strict:
            return None
        out += words or []
    if strict and not all(WORD_RE.match(w) for w in out):
        return None
    return [w for w in out if WORD_RE.match(w)]


def _read_piece(pieces: list[tuple[str, str]], i: int, out: list[str]) -> tuple[list[str] | None, int]:
    """The words of pieces[i] given the words read so far; returns (words or None if the piece
    has no reading, how many following pieces it also consumed)."""
    kind, piece = pieces[i]
    nxt = pieces[i + 1] if i + 1 < len(pieces) else ("", "")
    before = pieces[i - 1][1] if i else ""  # the piece right before: no punctuation in between
    if kind == "money":
        words, used_next = _read_money(piece, nxt[1] if nxt[0] == "word" else None)
        return words, int(used_next)
    if kind == "cents":
        return _cents_words(int(piece)), 0
    if kind == "time":
        return _read_time(piece, pieces, i + 1)
    if kind == "number":
        return _read_number_in_context(piece, before, nxt, out, pieces, i)
    if kind in ("ordinal", "decade"):
        return _read_numeric(kind, piece), 0
    if kind == "phone":
        return [w for group in piece.split("-") for w in digit_words(group)], 0
    if kind == "range":
        a, b = piece.split("-")
        return _read_number(a) + (["to"] if float(a) < float(b) else []) + _read_number(b), 0
    if kind == "fraction":
        return _read_fraction(piece), 0
    if kind == "minus":
        return ["minus"], 0
    if kind == "degrees":
        unit = {"f": ["fahrenheit"], "c": ["celsius"]}.get(piece[-1], [])
        return ["degrees"] + unit, 0
    if kind == "word":
        return _read_word(piece, nxt, out), 0
    if piece in _SYMBOLS:
        return [_SYMBOLS[piece]], 0
    if piece == "#" and nxt[0] == "number":
        return ["number"], 0
    return ([] if piece in _SILENT else None), 0


def _read_time(piece: str, pieces: list[tuple[str, str]], i: int) -> tuple[list[str], int]:
    """ "7:30" / "7.30" and an am/pm that may follow at pieces[i]."""
    hour, minute = re.split("[:.]", piece)
    ampm, skip = _ampm_after(pieces, i)
    return time_words(int(hour), int(minute), ampm), skip


def _read_number_in_context(piece: str, before: str, nxt: tuple[str, str], out: list[str],
                            pieces: list[tuple[str, str]], i: int) -> tuple[list[str], int]:
    """A number piece, read as its neighbours say: a dotted or colonless clock time, a flight
    number, a day after a month, or plainly (_read_number)."""
    if _dotted_time(piece, out[-1:], pieces, i + 1):
        return _read_time(piece, pieces, i + 1)
    if piece.isdigit() and len(piece) in (3, 4) and before in ("flight", "number"):
        return pair_words(piece), 0  # "flight 838": flight numbers are read in pairs, as in ATIS
    if _clock_digits(piece, before, out, pieces, i + 1):
        ampm, skip = _ampm_after(pieces, i + 1)
        hour, minute = int(piece[:-2]), int(piece[-2:])
        # "at 1200" is "twelve hundred" as ATIS reads it; "at 702" "seven oh two" either way.
        return (pair_words(piece) if minute == 0 and not ampm else time_words(hour, minute, ampm)), skip
    if piece.isdigit() and 1 <= int(piece) <= 31 and before in _MONTHS and nxt[1] != "%":
        return ordinal_words(int(piece)), 0  # "March 14": the fourteenth, as people say it
    return _read_number(piece), 0


_TIME_PREPOSITIONS = {"at", "by", "until", "till", "from", "to", "around", "before", "after"}
# Before digits without a colon ("at 702"), "from"/"to" too often mean a quantity ("from 150 to 250").
_CLOCK_CUES = _TIME_PREPOSITIONS - {"from", "to"}
_ALARM_WORDS = {"alarm", "alarms", "remind", "reminder", "wake"}
_QUANTITY_WORDS = {"dollar", "dollars", "cents", "percent", "degrees", "miles", "kilometers", "feet", "meters",
                   "pounds", "euros", "people", "times"}
_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"}


def _clock_digits(piece: str, before: str, out: list[str], pieces: list[tuple[str, str]], i: int) -> bool:
    """Is "702" / "1130" a clock time written without its colon, as Whisper often writes them?
    H MM (hour 1-23, minute 00-59) followed by am/pm, or after "at"/"by"/"until"/"before"/
    "after"/"around" (not before a unit: "at 329 dollars"), or after "for" in a sentence about an
    alarm ("set an alarm for 702")."""
    if not piece.isdigit() or len(piece) not in (3, 4) or piece[0] == "0":
        return False
    if not (1 <= int(piece[:-2]) <= 23 and int(piece[-2:]) <= 59):
        return False
    if _ampm_after(pieces, i)[0] is not None:
        return True
    if i < len(pieces) and pieces[i][1] in _QUANTITY_WORDS:
        return False  # "a fare at 329 dollars"
    return before in _CLOCK_CUES or before == "for" and bool(_ALARM_WORDS & set(out[-4:-1]))


def _dotted_time(piece: str, before: list[str], pieces: list[tuple[str, str]], i: int) -> bool:
    """Is "7.30" a time? Whisper and British text write times so; "pi is 3.14" is not one.
    Only H.MM after a time preposition or before am/pm counts."""
    hour, dot, minute = piece.partition(".")
    if not dot or len(minute) != 2 or len(hour) > 2 or int(hour) > 23 or int(minute) > 59:
        return False
    return bool(before) and before[0] in _TIME_PREPOSITIONS or _ampm_after(pieces, i)[0] is not None


def _ampm_after(pieces: list[tuple[str, str]], i: int) -> tuple[str | None, int]:
    """Does "am"/"pm" (or "a.m."/"p.m.") follow at pieces[i]? Returns (ampm, pieces it spans)."""
    texts = [p for _, p in pieces[i:i + 4]]
    if texts[:1] in (["am"], ["pm"]):
        return texts[0], 1
    if len(texts) >= 3 and texts[0] in ("a", "p") and texts[1] == "." and texts[2] == "m":
        return texts[0] + "m", 3 + (texts[3:4] == ["."])
    return None, 0


def _read_numeric(kind: str, piece: str) -> list[str]:
    """A number, ordinal ("21st") or decade ("80s", "1990s") piece."""
    if kind == "ordinal":
        return ordinal_words(int(piece[:-2]))
    if kind == "decade":
        return plural_words(_read_number(piece))
    return _read_number(piece)


def _read_word(word: str, nxt: tuple[str, str], out: list[str]) -> list[str]:
    """A letter word; may depend on the next piece (abbreviation period) and the words so far."""
    if nxt[1] == "." and word in _ABBREVIATIONS:
        if word in _STREET_ABBREVIATIONS and any(_is_number_word(w) for w in out[-3:]):
            return [_STREET_ABBREVIATIONS[word]]
        return _ABBREVIATIONS[word].split()
    # "7pm" / "7 am": am/pm right after a number is spelled; "i am" stays a word.
    if word in ("am", "pm") and out and _is_number_word(out[-1]):
        return list(word)
    return [word]


def _is_number_word(word: str) -> bool:
    return word in _NUMBER_WORDS


_NUMBER_WORDS = set(_words(" ".join(num2words(n) for n in range(0, 100)))) | {"hundred", "o'clock"}


# ---------------------------------------------------------------------------------------------
# One written token, read according to its slot


def pair_words(digits: str) -> list[str]:
    """Digits read in pairs, as people read flight and aircraft numbers and 24-hour times.

    "747" -> seven forty seven, "1039" -> ten thirty nine, "1500" -> fifteen hundred,
    "705" -> seven oh five, "21" -> twenty one. Leading zeros are dropped ("0900" -> nine
    hundred); five digits or more are read digit by digit ("137338").
    """
    digits = digits.lstrip("0") or "0"
    if len(digits) <= 2:
        return number_words(int(digits))
    if len(digits) > 4:
        return digit_words(digits)
    head, tail = digits[:-2], int(digits[-2:])
    if tail == 0:
        # "2000" is "two thousand", not "twenty hundred"
        return number_words(int(digits)) if head.endswith("0") else number_words(int(head)) + ["hundred"]
    return number_words(int(head)) + (["oh"] if tail < 10 else []) + number_words(tail)


def _slot(context: str | None) -> str:
    """ "B-depart_time.time" or "depart_time.time" -> "depart_time.time"; None or "O" -> ""."""
    if not context or context == "O":
        return ""
    return context[2:] if context[:2] in ("B-", "I-") else context


def _is_time_slot(slot: str) -> bool:
    """depart_time.time, arrive_time.start_time, time, depart_time.period_of_day ... """
    return "time" in slot.split(".")[-1] or slot.startswith(("depart_time", "arrive_time", "return_time"))


def _read_code(token: str) -> list[str]:
    """A code (airport "bwi", fare "qx", aircraft "d9s", restriction "ap57"): letters spelled,
    digit runs read in pairs. A letters-only token longer than three letters is an ordinary word
    that annotators tagged as part of the code ("meal code", "fare code") and stays whole."""
    if token.isalpha() and len(token) > 3:
        return [token]
    out: list[str] = []
    for run in re.findall(r"[a-z]+|\d+", token):
        out += pair_words(run) if run.isdigit() else list(run)
    return out


def verbalize_token(token: str, *, context: str | None = None) -> list[str]:
    """One written token -> its spoken words, read according to its slot tag.

    Args:
        token: one whitespace-free written token ("838", "bwi", "st.", "$5", "d9s").
        context: the token's slot tag, with or without "B-"/"I-" ("B-depart_time.time",
            "airport_code"), or None / "O" for ordinary text.

    Readings by slot:
        ...code (airport, airline, fare_basis, state, meal, aircraft, restriction, days) and
            booking_class: letters spelled ("dc" -> d c), digit runs in pairs ("747").
        flight_number: pairs ("281" -> two eighty one); 5+ digits digit by digit.
        time slots: 1-2 digits as the hour ("9" -> nine), 3-4 digits as clock time in pairs
            ("838" -> eight thirty eight, "1100" -> eleven hundred); "am"/"pm" -> a m / p m.
        year: "1991" -> nineteen ninety one.
        anything else: cardinal numbers ("1000" -> one thousand) and the free-text rules of
            spoken_form ("st." -> saint, "&" -> and, "$5" -> five dollars, "21st", "p.m.").
        "am" outside a time slot stays the verb ("i am"); "pm" is always spelled.

    Raises:
        ValueError: the token has no clean spoken form.
    """
    slot = _slot(context)
    if slot.endswith("code") or slot == "booking_class":
        words = _read_code(token)
    elif token.isdigit() and (slot == "flight_number" or _is_time_slot(slot)):
        words = pair_words(token)
    elif token.isdigit() and slot.split(".")[-1] == "year":
        words = year_words(int(token))
    elif token.isdigit():
        words = number_words(int(token))
    elif token == "pm" or token == "am" and _is_time_slot(slot):
        words = list(token)
    else:
        text = spoken_form(token)
        words = text.split(" ") if text else []
    if not words or not all(WORD_RE.match(w) for w in words):
        raise ValueError(f"cannot verbalize {token!r} (slot {slot or 'O'!r})")
    return words
