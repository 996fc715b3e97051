"""The IQD's unseen-text sentences (corpus/data/unseen_text.tsv, scripts/unseen_text_set.py): both
classes, spoken form, and none of them in the text pool of the corpus the detectors train on."""
from __future__ import annotations

from runtime.verbalize import WORD_RE
from tests.conftest import load_script


def test_the_sentences_are_balanced_spoken_form_and_unseen() -> None:
    mod = load_script("unseen_text_set")
    texts = mod.read_texts()
    assert sum(d for d, _ in texts) == 40 and sum(not d for d, _ in texts) == 40
    assert len({t for _, t in texts}) == len(texts)
    for _, t in texts:
        assert t == t.lower() and all(WORD_RE.fullmatch(w) for w in t.split()), t
    pool = mod.corpus_texts(0)
    assert len(pool) > 10_000
    assert not [t for _, t in texts if t in pool]
