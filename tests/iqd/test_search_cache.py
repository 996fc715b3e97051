"""The cache's search option (iqd/replay.py: SearchConfig): the runtime's modified beam search with
LM fusion instead of greedy search, recorded per split, and mixed searches refused."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import FOUR_SENTENCES, cer


@pytest.fixture(scope="module")
def tiny_lm(overfit_asr: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An order-4 character LM over the overfit ASR's token ids, trained on its four sentences."""
    from asr.lm import train_kneser_ney
    from asr.tokenizer import Tokenizer

    tok = Tokenizer(overfit_asr / "tokens.model")
    lm = train_kneser_ney([tok.encode(t) for t in FOUR_SENTENCES], 4, tok.vocab_size)
    path = tmp_path_factory.mktemp("lm") / "lm.npz"
    lm.save(path)
    return path


def _cache(overfit_asr: Path, corpus: Path, root: Path, split: str = "dev", **search) -> "IqdCache":
    from iqd.cache import IqdCache
    from iqd.replay import SearchConfig, cache_split

    cache_split(overfit_asr / "last.pt", corpus, root, split, progress=False, search=SearchConfig(**search))
    return IqdCache(root, split)


def test_beam_with_lm_of_scale_zero_gives_the_beams_tokens(overfit_asr: Path, iqd_corpus: Path, tiny_lm: Path,
                                                           tmp_path: Path) -> None:
    from asr.backend import TorchTransducer
    from runtime.search import DecoderCache, Hypothesis, modified_beam_search

    plain = _cache(overfit_asr, iqd_corpus, tmp_path / "beam", method="beam")
    zero = _cache(overfit_asr, iqd_corpus, tmp_path / "zero", method="beam", lm=str(tiny_lm), lm_scale=0.0,
                  lm_bonus=0.0, lm_eos_scale=0.0)
    greedy = _cache(overfit_asr, iqd_corpus, tmp_path / "greedy")
    final = _cache(overfit_asr, iqd_corpus, tmp_path / "final", method="beam", history="final")
    assert zero.search["lm_scale"] == 0.0 and plain.search == {"method": "beam", "beam": 4, "history": "fed", "lm": None}
    assert greedy.search == {"method": "greedy"}
    # The overfit ASR knows the four sentences: bounds on the errors, not the exact texts, which
    # depend on the float rounding. The beam's is looser: one token per frame, and a context of
    # two tokens that "play some " shares with "wake me " (it may go on with "up at seven").
    refs = [u.text for u in greedy.utts]
    assert cer(refs, [u.hyp for u in greedy.utts]) <= 0.1 and cer(refs, [u.hyp for u in plain.utts]) <= 0.25
    asr = TorchTransducer.from_checkpoint(overfit_asr / "last.pt")
    for i, (a, b, f) in enumerate(zip(plain.utts, zero.utts, final.utts)):
        assert (a.tokens, a.token_frames, a.hyp) == (b.tokens, b.token_frames, b.hyp)
        # the beam over the whole utterance at once (no chunks): the finished best hypothesis
        whole = modified_beam_search(plain.enc(i), [Hypothesis()], DecoderCache(asr.decode, 2), asr.join, 0, 4)[0]
        assert list(whole.tokens) == f.tokens and list(whole.frames) == f.token_frames and f.hyp == a.hyp
        assert all(0 <= t < a.n_enc for t in a.token_frames) and a.token_frames == sorted(a.token_frames)


def test_a_strong_lm_changes_the_transcript_and_fed_tokens_are_per_chunk(overfit_asr: Path, iqd_corpus: Path,
                                                                         tiny_lm: Path) -> None:
    """The label history is what the pipeline feeds after each chunk: the best hypothesis's tokens at
    that chunk's frames (so it may differ from the finished best, `history="final"`)."""
    from asr.backend import TorchTransducer
    from iqd.replay import replay_utterance
    from runtime.asr import AsrStream
    from runtime.lm import LmFusion, NgramLM
    from runtime.search import rank_finished

    asr = TorchTransducer.from_checkpoint(overfit_asr / "last.pt")
    lm = LmFusion(NgramLM.load(tiny_lm), scale=3.0, bonus=2.0, eos_scale=0.0)
    enc = torch.randn(40, asr.model.cfg.joiner_dim, generator=torch.Generator().manual_seed(0)).numpy()  # noise: re-ranks
    stream = AsrStream(asr, 4, lm=lm)
    toks, frs, text = replay_utterance(stream, enc)
    stream.restart(0)
    fed, c = [], asr.chunk_frames
    for s in range(0, 40, c):
        stream.search_encoder_out(enc[s : s + c])
        best = stream.best
        fed += [(t, f) for t, f in zip(best.tokens, best.frames) if s <= f < s + c]
    assert fed == list(zip(toks, frs))
    assert text == list(rank_finished(stream.hyps, lm)[0].tokens)
    f_toks, f_frs, f_text = replay_utterance(stream, enc, history="final")
    assert f_text == text and (f_toks, f_frs) == (text, list(rank_finished(stream.hyps, lm)[0].frames))


def test_mixed_searches_are_refused_and_reuse_checks_the_search(overfit_asr: Path, iqd_corpus: Path,
                                                                tmp_path: Path, monkeypatch, capsys) -> None:
    from iqd.cache import MixedSearchError, check_searches, open_splits
    from iqd.replay import SearchConfig, cache_split

    _cache(overfit_asr, iqd_corpus, tmp_path, "train")
    _cache(overfit_asr, iqd_corpus, tmp_path, "dev", method="beam")
    monkeypatch.delenv("HEED_IQD_MIXED_SEARCH", raising=False)
    with pytest.raises(MixedSearchError, match="different searches"):
        open_splits(tmp_path, "train", False)
    monkeypatch.setenv("HEED_IQD_MIXED_SEARCH", "1")
    assert len(open_splits(tmp_path, "train", False)) == 4
    assert "WARNING" in capsys.readouterr().err
    assert check_searches(tmp_path, ["dev"]) == {"dev": SearchConfig("beam").describe()}
    with pytest.raises(ValueError, match="cached with search"):  # a finished split of another search is not reused
        cache_split(overfit_asr / "last.pt", iqd_corpus, tmp_path, "dev", progress=False)
    (tmp_path / "train.search.json").unlink()  # a split from before the option: greedy
    assert check_searches(tmp_path, ["train"]) == {"train": {"method": "greedy"}}


def test_streamed_beam_search_segments_and_transcripts(overfit_asr: Path, four_utts: Path) -> None:
    from asr.backend import TorchTransducer
    from asr.features import fbank
    from asr.tokenizer import Tokenizer
    from iqd.replay import SearchConfig
    from iqd.streams import run_asr
    from runtime.audio import load_audio

    asr = TorchTransducer.from_checkpoint(overfit_asr / "last.pt")
    tok = Tokenizer(overfit_asr / "tokens.model")
    a, b = load_audio(four_utts / "wav" / "u0.wav"), load_audio(four_utts / "wav" / "u1.wav")
    gap = np.random.default_rng(0).normal(0, 1e-4, 24000).astype(np.float32)
    feats = fbank(torch.from_numpy(np.concatenate([a, gap, b, gap]))).numpy()
    enc_g, greedy = run_asr(SearchConfig().stream(asr), feats)
    enc_b, beam = run_asr(SearchConfig("beam").stream(asr), feats)
    assert np.allclose(enc_g, enc_b)
    # the first segment is the first sentence; the tokens fed chunk by chunk follow the beam's best
    # hypothesis of the moment, which may change its mind (a word fed twice), so they only stay close
    transcript = tok.decode(beam[0].transcript)
    assert cer([FOUR_SENTENCES[0]], [transcript]) <= 0.1, transcript
    assert cer([transcript], [tok.decode(beam[0].tokens)]) <= 0.25, tok.decode(beam[0].tokens)
    assert len(beam) >= 2 and beam[0].start == 0 and beam[-1].end == len(enc_b)
    assert all(s.end == t.start for s, t in zip(beam, beam[1:]))
    assert all(s.start <= f < s.end for s in beam for f in s.frames)
