"""Subword tokens: a sentencepiece unigram model trained on the training transcripts.

Id 0 is the transducer's blank (`<blk>`), id 1 is `<unk>`; sentencepiece's own BOS/EOS are
disabled, as icefall does. Besides the `.model` file, `write_tokens_txt` writes the
`tokens.txt` table (piece and id per line) that sherpa-onnx and our runtime read, so the
runtime can turn ids into words with no sentencepiece call at all.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

import sentencepiece as spm

BLANK = "<blk>"
BLANK_ID = 0
UNK_ID = 1
WORD_START = "\u2581"  # sentencepiece's "▁", marks a piece that begins a word


def train_tokenizer(texts: Iterable[str], out_prefix: str | Path, vocab_size: int = 256, model_type: str = "unigram") -> Path:
    """Train a unigram model on `texts` (spoken form, one utterance each); writes PREFIX.model.

    Returns:
        the path of the `.model` file.
    """
    data = "\n".join(t for t in texts if t.strip())
    if not data:
        raise ValueError("no training text for the tokenizer")
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    if model_type not in ("unigram", "bpe", "char"):
        raise ValueError(f"tokenizer model_type must be unigram, bpe or char, got {model_type!r}")
    if model_type == "char":
        vocab_size = len(set(data.replace("\n", "").replace(" ", ""))) + 3  # characters, word boundary, blank, unk
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(data.split("\n")),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,  # "char": one piece per character plus the word boundary; vocab_size is then ignored
        character_coverage=1.0,
        user_defined_symbols=[BLANK],
        unk_id=UNK_ID,
        bos_id=-1,
        eos_id=-1,
        input_sentence_size=10_000_000,
        num_threads=2,
        hard_vocab_limit=False,  # tiny corpora (tests) cannot fill a large vocabulary
        minloglevel=2,
    )
    path = out_prefix.with_suffix(".model")
    path.write_bytes(model.getvalue())
    return path


class Tokenizer:
    """Text <-> ids with the blank at 0. Thin wrapper so the rest of `asr/` never sees spm."""

    def __init__(self, model_path: str | Path) -> None:
        self.path = Path(model_path)
        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        if self.sp.id_to_piece(BLANK_ID) != BLANK:
            raise ValueError(f"{self.path}: id {BLANK_ID} must be {BLANK!r}, got {self.sp.id_to_piece(BLANK_ID)!r}")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text, out_type=int)

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([i for i in ids if i != BLANK_ID])

    def pieces(self) -> list[str]:
        return [self.sp.id_to_piece(i) for i in range(self.vocab_size)]

    def write_tokens_txt(self, path: str | Path) -> None:
        """`piece id` per line, the table sherpa-onnx's `tokens` option takes."""
        Path(path).write_text("".join(f"{p} {i}\n" for i, p in enumerate(self.pieces())), encoding="utf-8")
