"""Tiny tagging fixtures: a toy task a small model learns in seconds."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

from tagging.data import Example

CITIES = ["boston", "denver", "dallas", "new york", "san francisco", "salt lake city"]
DAYS = ["monday", "friday", "sunday"]


def toy_examples(n: int, seed: int) -> list[Example]:
    """Flight and weather requests: cities after "from"/"to" are from/to slots, days are dates;
    whether a city is "from" or "to" depends on the word before it (left context), and a
    trailing "please" or "now" is noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if rng.random() < 0.6:
            a, b = rng.sample(CITIES, 2)
            words, tags = ["flights", "from"], ["O", "O"]
            for slot, city in (("from", a), ("to", b)):
                if slot == "to":
                    words.append("to"), tags.append("O")
                parts = city.split()
                words += parts
                tags += [f"B-{slot}"] + [f"I-{slot}"] * (len(parts) - 1)
            intent = "flight"
        else:
            words, tags, intent = ["weather", "in"], ["O", "O"], "weather"
            parts = rng.choice(CITIES).split()
            words += parts
            tags += ["B-city"] + ["I-city"] * (len(parts) - 1)
        if rng.random() < 0.5:
            day = rng.choice(DAYS)
            words += ["on", day]
            tags += ["O", "B-date"]
        if rng.random() < 0.3:
            words.append(rng.choice(["please", "now"]))
            tags.append("O")
        out.append(Example(tuple(words), tuple(tags), intent, "toy", f"toy-{seed}-{i}"))
    return out


@pytest.fixture(scope="session")
def toy_hybrid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small hybrid tagger (with ARM) trained on the toy task; returns its checkpoint."""
    from tagging.model import TaggerConfig
    from tagging.train import TrainConfig, train

    out = tmp_path_factory.mktemp("toy-hybrid")
    cfg = TrainConfig(corpus=None, out=str(out), kind="hybrid", max_epochs=12, batch_size=16, lr=1e-2, arm_epochs=10,
                      model=TaggerConfig(word_dim=16, char_dim=8, char_channels=16, uni_dim=32, bi_dim=16, arm_hidden=8,
                                         dropout=0.1))  # > 0: export must not switch it back on
    return train(cfg, (toy_examples(300, 0), toy_examples(60, 1)), progress=False)


@pytest.fixture(scope="session")
def toy_export(toy_hybrid: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy hybrid exported (fp32 and int8); returns the folder."""
    from tagging.export import export_tagger
    from tagging.train import load_checkpoint

    model, tables, ckpt = load_checkpoint(toy_hybrid)
    out = tmp_path_factory.mktemp("toy-export")
    export_tagger(model, tables, out, toy_examples(6, 9), ckpt)
    return out
