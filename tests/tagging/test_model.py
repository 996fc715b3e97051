from __future__ import annotations

import dataclasses

import pytest
import torch

from tagging.data import Tables, encode
from tagging.model import KINDS, Tagger, TaggerConfig

from .conftest import toy_examples


def _model(kind: str = "hybrid", seed: int = 0) -> tuple[Tagger, Tables]:
    tables = Tables.build(toy_examples(50, 0))
    cfg = dataclasses.replace(KINDS[kind], n_words=len(tables.words), n_chars=len(tables.chars), n_slots=len(tables.slots),
                              n_intents=len(tables.intents), uni_dim=24, bi_dim=12, word_dim=8, char_channels=8)
    torch.manual_seed(seed)
    return Tagger(cfg).eval(), tables


def _batch(tables: Tables, examples):
    b = encode(tables, examples)
    return torch.from_numpy(b.word_ids), torch.from_numpy(b.char_ids), torch.from_numpy(b.lengths)


def test_streaming_step_equals_the_full_unidirectional_pass() -> None:
    model, tables = _model()
    words, chars, lengths = _batch(tables, toy_examples(4, 3))
    with torch.no_grad():
        x = model.tokens(words, chars)
        full = model.uni_forward(x)
        state = model.init_state(4)
        for t in range(x.shape[1]):
            u, state = model.step(x[:, t], state)
            torch.testing.assert_close(u, full[:, t], atol=1e-6, rtol=0)


def test_a_word_vector_does_not_depend_on_padding() -> None:
    model, tables = _model()
    ex = toy_examples(8, 4)
    alone = encode(tables, ex[:1])
    padded = encode(tables, ex)  # longer words and sentences elsewhere in the batch
    with torch.no_grad():
        a = model.tokens(torch.from_numpy(alone.word_ids), torch.from_numpy(alone.char_ids))[0]
        b = model.tokens(torch.from_numpy(padded.word_ids), torch.from_numpy(padded.char_ids))[0, : a.shape[0]]
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_packed_bidirectional_pass_equals_one_sequence_at_a_time() -> None:
    model, tables = _model("bi")
    ex = toy_examples(6, 5)
    words, chars, lengths = _batch(tables, ex)
    with torch.no_grad():
        batch_slots, batch_intents = model.bi_forward(model.tokens(words, chars), lengths)
        for k in range(len(ex)):
            n = int(lengths[k])
            slots, intent = model.bi_forward(model.tokens(words[k : k + 1, :n], chars[k : k + 1, :n]))
            torch.testing.assert_close(slots[0], batch_slots[k, :n], atol=1e-5, rtol=0)
            torch.testing.assert_close(intent[0], batch_intents[k], atol=1e-5, rtol=0)


def test_prefix_relabels_are_the_bidirectional_labels_of_each_prefix() -> None:
    model, tables = _model()
    words, chars, lengths = _batch(tables, toy_examples(1, 6))
    with torch.no_grad():
        u = model.uni_forward(model.tokens(words, chars))[0]
        rows = model.prefix_relabels(u)
        for t in range(u.shape[0]):
            alone = model.bi_forward(u[None, : t + 1])[0][0].argmax(-1)
            assert rows[t, : t + 1].tolist() == alone.tolist()
            assert (rows[t, t + 1 :] == -1).all()


def test_kinds_have_the_parts_they_need() -> None:
    assert {k: v.kind for k, v in KINDS.items()} == {"hybrid": "hybrid", "bi": "bi", "uni": "uni"}
    assert hasattr(_model("hybrid")[0], "arm") and not hasattr(_model("bi")[0], "arm")
    with pytest.raises(ValueError, match="at least one layer"):
        TaggerConfig(n_uni_layers=0, n_bi_layers=0)
