"""The unit every text source produces: one spoken-form sentence with its labels.

Spoken form (shared/INTERFACES.md section 1): lowercase words separated by one space, no
punctuation, numbers written as words. An apostrophe inside a word ("don't", "o'clock") is
part of the word, as in LibriSpeech transcripts.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime.verbalize import WORD_RE



class SpokenFormError(ValueError):
    """A sentence that is not in spoken form, or whose tags do not fit its words."""


@dataclass(frozen=True)
class Sentence:
    """One sentence of a text source.

    Attributes:
        words: spoken-form words.
        tags: one BIO slot tag per word (`O`, `B-<slot>`, `I-<slot>`).
        intent: utterance intent label, or None where the source has none.
        directed: addressed to the device (True) or not (False).
        source: where the text comes from: `atis`, `assistant`, `chatter`, `side`, `radio`, ...
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    intent: str | None
    directed: bool
    source: str

    def __post_init__(self) -> None:
        check_spoken(self.words, self.tags)

    @property
    def text(self) -> str:
        return " ".join(self.words)

    @classmethod
    def untagged(cls, text: str, *, directed: bool, source: str, intent: str | None = None) -> "Sentence":
        words = tuple(text.split(" "))
        return cls(words, ("O",) * len(words), intent, directed, source)


def check_spoken(words: tuple[str, ...] | list[str], tags: tuple[str, ...] | list[str]) -> None:
    """Raise SpokenFormError unless `words` are spoken form and `tags` a valid BIO sequence over them."""
    if not words:
        raise SpokenFormError("empty sentence")
    bad = [w for w in words if not WORD_RE.match(w)]
    if bad:
        raise SpokenFormError(f"not spoken form: {bad!r} in {' '.join(words)!r}")
    if len(tags) != len(words):
        raise SpokenFormError(f"{len(tags)} tags for {len(words)} words in {' '.join(words)!r}")
    prev = "O"
    for i, tag in enumerate(tags):
        if tag != "O" and not (tag.startswith("B-") or tag.startswith("I-")) or tag in ("B-", "I-"):
            raise SpokenFormError(f"bad tag {tag!r} at word {i} of {' '.join(words)!r}")
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            raise SpokenFormError(f"{tag!r} follows {prev!r} at word {i} of {' '.join(words)!r}")
        prev = tag


def spans(tags: list[str] | tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Slot spans of a BIO sequence as (slot, first word, one past the last word)."""
    out: list[tuple[str, int, int]] = []
    for i, tag in enumerate(tags):
        if tag.startswith("B-"):
            out.append((tag[2:], i, i + 1))
        elif tag.startswith("I-") and out and out[-1][0] == tag[2:] and out[-1][2] == i:
            out[-1] = (out[-1][0], out[-1][1], i + 1)
    return out
