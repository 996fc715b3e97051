"""The character n-gram LM (runtime/lm.py, trained by asr/lm.py) and its shallow fusion in the
modified beam search (runtime/search.py)."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from asr.lm import char_ids, train_kneser_ney, training_texts
from runtime.lm import LmFusion, NgramLM
from runtime.search import DecoderCache, Hypothesis, modified_beam_search, rank_finished

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"


def _corpus_lm(order: int = 4) -> NgramLM:
    table = {"<blk>": 0, "<unk>": 1, "\u2581": 2, **{c: 3 + i for i, c in enumerate("abcdefgh")}}
    texts = ["bad cab", "a bad egg", "fed a cabbage", "head bead", "deaf dead bee", "ace", "a cafe"]
    return train_kneser_ney([char_ids(t, table) for t in texts], order, len(table))


@pytest.mark.parametrize("order", [1, 2, 4, 6])
def test_probabilities_sum_to_one_over_the_vocabulary(order: int) -> None:
    lm = _corpus_lm(order)
    for h in [(), (2,), (2, 4, 3), (2, 4, 3, 6, 2), (9, 9, 9, 9, 9), (1, 1), (5, 2, 3, 5, 7, 3, 2, 10)]:
        p = np.exp(lm.log_probs(h))
        assert p.shape == (11,)
        assert abs(p.sum() - 1.0) < 1e-9, (order, h, p.sum())
        assert (p > 0).all()


def test_kneser_ney_by_hand_on_a_tiny_corpus() -> None:
    # padded sentences: 0 2 3 0 and 0 2 2 0 (0: start and end); bigrams (0,2):2 (2,3):1 (3,0):1 (2,2):1 (2,0):1
    lm = train_kneser_ney([[2, 3], [2, 2]], order=2, vocab_size=4)
    # unigram continuation counts (distinct left neighbours): 0:2, 2:2, 3:1, total 5; discounts 0.5
    # (the corpus is too small for the count-of-count estimates); gamma = 0.5 * 3 / 5
    uni = {0: 1.5 / 5 + 0.3 / 4, 1: 0.3 / 4, 2: 1.5 / 5 + 0.3 / 4, 3: 0.5 / 5 + 0.3 / 4}
    # after "2": counts 3:1 2:1 0:1, total 3, gamma = 0.5 * 3 / 3
    after2 = {w: (0.5 / 3 if w != 1 else 0.0) + 0.5 * uni[w] for w in range(4)}
    # after the sentence start: 2:2, total 2, gamma = 0.5 * 1 / 2
    after0 = {w: (1.5 / 2 if w == 2 else 0.0) + 0.25 * uni[w] for w in range(4)}
    for h, want in (((2,), after2), ((0,), after0), ((), after0), ((1,), uni), ((3, 1), uni)):
        got = np.exp(lm.log_probs(h))
        np.testing.assert_allclose(got, [want[w] for w in range(4)], rtol=1e-12, err_msg=str(h))
    assert math.isclose(lm.sequence_log_prob([2, 3]), math.log(after0[2] * after2[3] * lm_p(lm, (3,), 0)))


def lm_p(lm: NgramLM, h: tuple[int, ...], w: int) -> float:
    return float(np.exp(lm.log_probs(h)[w]))


def test_unseen_history_backs_off_to_the_shorter_one_and_save_load_round_trips(tmp_path: Path) -> None:
    lm = _corpus_lm(4)
    assert np.array_equal(lm.log_probs((10, 10, 3)), _corpus_lm(4).log_probs((10, 3)))  # "hh" never a context
    lm.save(tmp_path / "lm")
    back = NgramLM.load(tmp_path / "lm")
    for h in [(), (2, 4), (2, 4, 3, 7)]:
        np.testing.assert_allclose(back.log_probs(h), lm.log_probs(h), atol=1e-2)  # float16 on disk


def test_training_texts_exclude_dev_and_test(tmp_path: Path) -> None:
    for split, texts in (("train", ["set a timer", "hello there", "book a flight"]), ("dev", ["hello there"]),
                         ("test", ["book a flight"])):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({
            "id": f"{split}-{i}", "audio": "x.wav", "duration": 1.0, "sample_rate": 16000, "text": t, "words": t.split(),
            "split": split}) + "\n" for i, t in enumerate(texts)))
    assert training_texts(tmp_path, sources=False) == ["set a timer"]
    assert training_texts(tmp_path) == ["set a timer"]  # no build.json: an imported corpus, no text sources


# ---------------------------------------------------------------- fusion in the beam search

V = 11


def _toy_model(seed: int = 0):
    rng = np.random.default_rng(seed)
    emb, w = rng.normal(size=(V, 8)), rng.normal(size=(8, V)) * 2

    def decode(ctx: np.ndarray) -> np.ndarray:
        return emb[ctx].sum(axis=1)

    def join(enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return np.tanh(enc + dec) @ w

    return decode, join, rng.normal(size=(40, 8))


def _search(enc, decode, join, lm=None, beam=4, chunk=8):
    cache, hyps = DecoderCache(decode, 2), [Hypothesis()]
    for i in range(0, len(enc), chunk):
        hyps = modified_beam_search(enc[i : i + chunk], hyps, cache, join, i, beam, lm)
    return hyps


def test_fusion_with_scale_zero_is_exactly_the_plain_search() -> None:
    decode, join, enc = _toy_model()
    plain = _search(enc, decode, join)
    fused = _search(enc, decode, join, LmFusion(_corpus_lm(4), scale=0.0))
    assert [h.tokens for h in fused] == [h.tokens for h in plain]
    assert [h.log_prob for h in fused] == [h.log_prob for h in plain]
    assert [h.probs for h in fused] == [h.probs for h in plain] and all(h.lm_score == 0.0 for h in fused)


def test_fusion_scores_and_merging_stay_consistent() -> None:
    decode, join, enc = _toy_model(1)
    fusion = LmFusion(_corpus_lm(4), scale=0.7, bonus=0.3)
    hyps = _search(enc, decode, join, fusion)
    for h in hyps:  # the LM score is a function of the tokens alone, whatever the merges
        want = sum(0.7 * float(fusion.lm.log_probs(h.tokens[:i])[t]) + 0.3 for i, t in enumerate(h.tokens))
        assert h.lm_score == pytest.approx(want, abs=1e-9)
    assert len({h.tokens for h in hyps}) == len(hyps)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_a_strong_lm_picks_its_preferred_path_and_confidences_stay_acoustic() -> None:
    # frames alternate: blank-certain, then "token 4 or 5" with 4 slightly ahead acoustically
    def decode(ctx: np.ndarray) -> np.ndarray:
        return np.zeros((len(ctx), 1))

    def join(enc: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return np.repeat(enc, len(dec), axis=0) if len(enc) == 1 else enc

    word_frame, blank_frame = np.full(V, -10.0), np.full(V, -10.0)
    word_frame[[4, 5]], word_frame[0] = [2.0, 1.8], -1.0
    blank_frame[0] = 5.0
    enc = np.stack([word_frame, blank_frame] * 4)
    plain = _search(enc, decode, join)
    assert plain[0].tokens == (4, 4, 4, 4)
    lm = train_kneser_ney([[5, 5, 5, 5]] * 20, order=3, vocab_size=V)  # only ever 5s
    fused = _search(enc, decode, join, LmFusion(lm, scale=1.0))
    assert fused[0].tokens == (5, 5, 5, 5)
    p5 = float(np.exp(word_frame[5] - np.log(np.exp(word_frame).sum())))
    assert fused[0].probs == pytest.approx((p5,) * 4)
    assert fused[0].log_prob < plain[0].log_prob  # acoustically worse, ranked first by the LM
    # the end-of-sentence score: "5 5 5 5" then the end is what the LM saw
    ranked = rank_finished(fused, LmFusion(lm, scale=1.0, eos_scale=1.0))
    assert ranked[0].tokens == (5, 5, 5, 5)
    assert rank_finished(fused, None) == fused


# ---------------------------------------------------------------- bundles


def _example() -> Path:
    return BUNDLE / "examples" / "01-assistant.wav"


@pytest.fixture(scope="module")
def lm_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (BUNDLE / "bundle.json").exists():
        pytest.skip("no default bundle")
    out = tmp_path_factory.mktemp("bundle") / "b"
    shutil.copytree(BUNDLE, out)
    from asr.export_cli import add_lm
    from asr.lm import read_tokens_txt

    table = read_tokens_txt(out / "asr" / "tokens.txt")
    lm = train_kneser_ney([char_ids(t, table) for t in ["set an alarm for seven", "what is the weather"]], 4, len(table))
    lm.save(out.parent / "lm.npz")
    entry = add_lm(out, out.parent / "lm.npz", scale=0.0)
    assert entry["order"] == 4 and (out / "asr" / "lm.npz").exists()
    return out


def test_bundle_without_lm_decodes_as_before_and_scale_zero_changes_nothing(lm_bundle: Path) -> None:
    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline
    from runtime.transcribe import stream_file

    # the streaming pass's search (the second pass would write the finals' words)
    plain = Pipeline.from_bundle(BUNDLE, threads=1, second_pass=False)
    if "lm" not in plain.bundle.manifest["asr"]:
        assert plain.lm is None
    zero = Pipeline.from_bundle(lm_bundle, threads=1, second_pass=False)
    assert zero.lm is not None and zero.lm.scale == 0.0
    x = load_audio(_example(), plain.sample_rate)
    plain.lm = None
    a, b = list(stream_file(plain, x))[-1], list(stream_file(zero, x))[-1]
    assert a["text"] == b["text"] and a["words"] == b["words"]
    zero.lm = LmFusion(zero.lm.lm, scale=0.5, bonus=0.5, eos_scale=0.5)
    c = list(stream_file(zero, x))[-1]
    assert c["text"]  # decodes with fusion on; confidences remain probabilities
    assert all(0.0 <= w["confidence"] <= 1.0 for w in c["words"])


def test_add_lm_refuses_an_lm_of_another_vocabulary(lm_bundle: Path, tmp_path: Path) -> None:
    from asr.export_cli import add_lm

    train_kneser_ney([[2, 3]], 2, 5).save(tmp_path / "small.npz")
    with pytest.raises(ValueError, match="5 tokens"):
        add_lm(lm_bundle, tmp_path / "small.npz", 0.5)
