from __future__ import annotations

from pathlib import Path

import pytest

from runtime.manifest import Utterance, write_manifest
from tagging.data import Example, Tables, encode, load_corpus

from .conftest import toy_examples


def test_load_corpus_keeps_tagged_utterances_of_the_sources_once(tmp_path: Path) -> None:
    def utt(i: int, text: str, source: str, tags: list[str] | None) -> Utterance:
        return Utterance(id=f"u{i}", text=text, words=text.split(), tags=tags, intent="x" if tags else None, source=source)

    write_manifest(tmp_path / "train.jsonl", [
        utt(0, "play jazz", "assistant", ["O", "B-genre"]),
        utt(1, "play jazz", "assistant", ["O", "B-genre"]),  # the same sentence spoken again
        utt(2, "hello there", "chatter", ["O", "O"]),
        utt(3, "no tags here", "assistant", None),
    ])
    got = load_corpus(tmp_path, "train", ["assistant"])
    assert [(e.words, e.tags, e.id) for e in got] == [(("play", "jazz"), ("O", "B-genre"), "u0")]
    assert len(load_corpus(tmp_path, "train")) == 2
    with pytest.raises(FileNotFoundError, match="dev.jsonl"):
        load_corpus(tmp_path, "dev")


def test_tables_round_trip_and_unknown_symbols() -> None:
    tables = Tables.build(toy_examples(30, 0), max_word_chars=5)
    assert tables.words[:2] == ("<pad>", "<unk>") and tables.slots[0] == "O"
    assert Tables.from_dict(tables.to_dict()) == tables
    assert tables.word_ids(["flights", "zebra"])[1] == 1
    assert tables.char_ids("zq") == [1, 1] and len(tables.char_ids("francisco")) == 5
    with pytest.raises(ValueError, match="B-nowhere"):
        tables.slot_ids(["B-nowhere"])
    with pytest.raises(ValueError, match="2 words but 1 tags"):
        Example(("a", "b"), ("O",))


def test_encode_pads_and_marks_unscored_positions() -> None:
    tables = Tables.build(toy_examples(30, 0))
    ex = [Example(("weather", "in", "boston"), ("O", "O", "B-city"), "weather"),
          Example(("weather",), ("B-unseen",), "unseen-intent")]
    b = encode(tables, ex)
    assert b.word_ids.shape == (2, 3) and b.char_ids.shape == (2, 3, 7) and b.lengths.tolist() == [3, 1]
    assert b.slot_ids[1].tolist() == [-100, -100, -100]  # unseen tag and padding are not scored
    assert b.intent_ids.tolist()[1] == -100 and b.word_ids[1, 1:].tolist() == [0, 0]


def test_conll2003_reader_keeps_case_and_reads_iob1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tagging.data as data

    with pytest.raises(ValueError, match="part must be one of"):
        data.conll2003_path("dev")
    (tmp_path / "test.txt").write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\n"
                                       "German JJ B-NP I-MISC\nPeter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n\n"
                                       "Paris NNP B-NP I-LOC\n")
    monkeypatch.setattr(data, "conll2003_path", lambda part: tmp_path / f"{part}.txt")
    got = data.load_conll2003("test")
    assert [e.words for e in got] == [("EU", "rejects", "German", "Peter", "Blackburn"), ("Paris",)]
    assert got[0].tags == ("B-ORG", "O", "B-MISC", "B-PER", "I-PER") and got[1].tags == ("B-LOC",)
