from __future__ import annotations

from pathlib import Path

import pytest

from asr.tokenizer import BLANK, BLANK_ID, Tokenizer, train_tokenizer

TEXTS = ["wake me up at seven thirty", "set a timer for ten minutes", "what is the weather in boston",
         "play some jazz music", "show me flights from denver to atlanta"] * 40


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> Tokenizer:
    return Tokenizer(train_tokenizer(TEXTS, tmp_path_factory.mktemp("tok") / "t", vocab_size=80))


def test_round_trip_including_unseen_words(tok: Tokenizer) -> None:
    for text in ["wake me up at seven thirty", "show me flights to tomorrow", "zebra quokka"]:
        ids = tok.encode(text)
        assert BLANK_ID not in ids
        if all(c in "".join(TEXTS) + " " for c in text):
            assert tok.decode(ids) == text


def test_blank_is_id_zero_and_tokens_txt_lists_every_piece(tok: Tokenizer, tmp_path: Path) -> None:
    assert tok.pieces()[BLANK_ID] == BLANK and tok.vocab_size <= 80
    tok.write_tokens_txt(tmp_path / "tokens.txt")
    lines = (tmp_path / "tokens.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == tok.vocab_size and lines[0] == f"{BLANK} 0"
    assert all(line.rsplit(" ", 1)[1] == str(i) for i, line in enumerate(lines))


def test_decode_drops_blanks(tok: Tokenizer) -> None:
    ids = tok.encode("play some jazz")
    assert tok.decode([BLANK_ID, *ids, BLANK_ID]) == "play some jazz"


def test_empty_training_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training text"):
        train_tokenizer(["", "  "], tmp_path / "t")
