from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tagging.data import Example, align_tags
from tagging.train import evaluate, load_checkpoint, restart_labels

from .conftest import toy_examples


def test_tiny_hybrid_learns_the_toy_task(toy_hybrid: Path) -> None:
    model, tables, ckpt = load_checkpoint(toy_hybrid)
    unseen = toy_examples(80, 2)
    scores = evaluate(model, tables, unseen)
    assert scores["slot_f1"] > 0.97 and scores["intent_accuracy"] > 0.97
    assert ckpt["arm"]["n_fit"] > 0 and 0.0 <= ckpt["arm"]["fire_rate"] <= 1.0
    # an untrained model of the same shape does not know the task: the figures above are learned
    untrained = type(model)(model.cfg).eval()
    assert evaluate(untrained, tables, unseen)["slot_f1"] < 0.5


def test_unseen_words_are_read_by_their_letters(toy_hybrid: Path) -> None:
    model, tables, _ = load_checkpoint(toy_hybrid)
    ex = [Example(("weather", "in", "bostonn"), ("O", "O", "B-city"), "weather")]  # a misspelt city
    assert tables.word_ids(ex[0].words)[2] == 1
    assert evaluate(model, tables, ex)["slot_f1"] == 1.0


def test_restart_labels_mark_tokens_where_a_restart_changes_something() -> None:
    class Fixed:  # prefix_relabels of a model whose restart flips token 0 once token 2 arrives
        def prefix_relabels(self, u):
            return torch.tensor([[0, -1, -1], [0, 1, -1], [2, 1, 1]])

    uni = torch.tensor([0, 1, 0])
    # t=0: shown [0] vs [0]; t=1: [0, 1] vs [0, 1]; t=2: [0, 1, 0] vs [2, 1, 1]
    assert restart_labels(Fixed(), torch.zeros(3, 4), uni).tolist() == [0.0, 0.0, 1.0]


@pytest.mark.parametrize("hyp, want", [
    ("fly to new york", ["O", "O", "B-to", "I-to"]),  # exact
    ("fly to new work", ["O", "O", "B-to", "I-to"]),  # substitution keeps the tag
    ("fly to york", ["O", "O", "B-to"]),  # deletion of the span's first word: still valid BIO
    ("fly uh to new york", ["O", "O", "O", "B-to", "I-to"]),  # insertion outside a span
    ("fly to new uh york", ["O", "O", "B-to", "I-to", "I-to"]),  # insertion inside a span
])
def test_align_tags_carries_reference_tags_to_a_hypothesis(hyp: str, want: list[str]) -> None:
    assert align_tags("fly to new york".split(), ["O", "O", "B-to", "I-to"], hyp.split()) == want


def test_training_pool_adds_unsynthesized_training_text_and_nothing_held_out(tmp_path: Path) -> None:
    import json

    from corpus.build import load_sentences
    from tagging.train import training_pool

    (tmp_path / "build.json").write_text(json.dumps({"seed": 0}))
    splits = load_sentences(0)
    atis_train = splits["train"]["atis"]
    synthesized = {atis_train[0].words, atis_train[1].words}
    pool = training_pool(tmp_path, ["atis"], synthesized)
    assert len(pool) == len(atis_train) - 2
    assert all(e.source == "atis" and len(e.words) == len(e.tags) for e in pool)
    held_out = {s.words for split in ("dev", "test") for s in splits[split].get("atis", [])}
    assert held_out and not held_out & {e.words for e in pool}


def test_min_word_count_leaves_rare_words_to_their_letters(tmp_path: Path) -> None:
    from tagging.model import TaggerConfig
    from tagging.train import TrainConfig, train

    rare = Example(("weather", "in", "tucson"), ("O", "O", "B-city"), "weather")  # "tucson" seen once
    data = (toy_examples(40, 0) + [rare], toy_examples(10, 1))
    small = TaggerConfig(word_dim=8, char_dim=4, char_channels=8, n_uni_layers=0, n_bi_layers=1, bi_dim=8)
    tables = {}
    for n in (1, 2):
        cfg = TrainConfig(corpus=None, out=str(tmp_path / f"min{n}"), kind="bi", max_epochs=1, min_word_count=n, model=small)
        _, tables[n], ckpt = load_checkpoint(train(cfg, data, progress=False))
        assert ckpt["train_config"]["min_word_count"] == n
    assert "tucson" in tables[1].words and "tucson" not in tables[2].words
    assert tables[2].word_ids(["tucson"]) == [1] and 1 not in tables[2].char_ids("tucson")  # its letters are kept
    assert "weather" in tables[2].words and len(tables[2].words) < len(tables[1].words)
    with pytest.raises(ValueError, match="min_word_count"):
        TrainConfig(min_word_count=0)
