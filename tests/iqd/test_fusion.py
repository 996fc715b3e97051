"""The E2E detector reading its label history as text too (iqd/fusion.py, runtime.iqd_text.HistoryText):
the numpy scorer against torch, the text read from the onset on, the fusion, the dev choice of its
weight, the export and the runtime stream against the offline tracks."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from iqd.cache import IqdCache
from iqd.export import export_iqd
from iqd.train import load_detector
from runtime.iqd_text import HistoryText, pieces_text, text_features


def test_numpy_scorer_equals_the_cascade_classifier(iqd_runs: dict[str, Path]) -> None:
    from iqd.fusion import from_cascade

    cascade, _ = load_detector(iqd_runs["cascade"] / "model.pt")
    text = from_cascade(cascade, 0.5)
    texts = ["set an alarm", "hey tom play that", "the", "zzz qqq"]
    ref = cascade(*cascade.encode(texts)).detach().numpy()
    assert [text.logit(t) for t in texts] == pytest.approx(ref.tolist(), abs=1e-4)
    assert text.logit("") == 0.0  # no text: no evidence either way


def test_pieces_spell_single_spaced_words() -> None:
    assert pieces_text(["\u2581", "\u2581h", "i", "\u2581", "\u2581", "t", "o"]) == "hi to"
    assert pieces_text([]) == ""


def toy_text(weight: float) -> HistoryText:
    """A scorer whose only evidence is the word "alarm" (+4) and the word "tom" (-4)."""
    n = 1 << 10
    w = np.zeros(n, np.float32)
    w[text_features("alarm", n)[0]] += 4.0  # the word feature "w:alarm" is the first of its features
    w[text_features("tom", n)[0]] -= 4.0
    return HistoryText(w, 0.0, weight)


PIECES = ["<blk>", "<unk>", "\u2581", "\u2581tom", "\u2581alarm", "\u2581set"]


def test_frame_logits_read_the_tokens_from_the_onset_on() -> None:
    text = toy_text(0.5)
    tokens, frames = [3, 5, 4], [1, 4, 6]  # "tom" (before the onset), "set", "alarm"
    logits = text.frame_logits(tokens, frames, onset=3, n_frames=9, pieces=PIECES)
    set_only, set_alarm = text.logit("set"), text.logit("set alarm")
    assert logits[:4].tolist() == [0.0] * 4  # nothing read yet ("tom" came before the onset)
    assert logits[4:6].tolist() == pytest.approx([set_only] * 2)  # a frame includes its own token
    assert logits[6:].tolist() == pytest.approx([set_alarm] * 3)
    assert set_alarm > set_only + 3.9  # "alarm" is the evidence
    # read from frame 0, the "tom" counts against
    assert text.frame_logits(tokens, frames, onset=0, n_frames=9, pieces=PIECES)[8] < set_alarm - 3.9


def test_fusion_weight_blends_the_two_logits() -> None:
    p, z = 0.8, 2.0
    assert toy_text(0.0).fuse(p, z) == pytest.approx(p)
    assert toy_text(1.0).fuse(p, z) == pytest.approx(1 / (1 + math.exp(-z)))
    half = toy_text(0.5).fuse(p, z)
    assert half == pytest.approx(1 / (1 + math.exp(-(0.5 * math.log(4) + 1.0))))
    track = toy_text(0.5).fuse_track(np.array([0.8, 0.2]), np.array([2.0, 0.0]))
    assert track[0] == pytest.approx(half) and track[1] == pytest.approx(0.2 ** 0.5 / (0.2 ** 0.5 + 0.8 ** 0.5))
    with pytest.raises(ValueError, match="weight"):
        HistoryText(np.zeros(4), 0.0, 1.5)


@pytest.fixture(scope="module")
def fusion_run(iqd_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iqd.fusion import fit_fusion

    out = tmp_path_factory.mktemp("fusion")
    fit_fusion(iqd_runs["e2e"] / "model.pt", iqd_runs["cascade"] / "model.pt", out, progress=False)
    return out


def test_fit_fusion_chooses_a_weight_and_a_policy_on_dev(fusion_run: Path, iqd_runs: dict[str, Path]) -> None:
    from iqd.fusion import WEIGHTS

    _, ckpt = load_detector(fusion_run / "model.pt")
    _, plain = load_detector(iqd_runs["e2e"] / "model.pt")
    assert ckpt["kind"] == "e2e" and ckpt["text"]["weight"] in WEIGHTS
    assert len(ckpt["text"]["weights"]) == plain["config"]["n_hash"]
    dev = json.loads((fusion_run / "dev.json").read_text())
    assert [r["weight"] for r in dev["search"]] == list(WEIGHTS)
    best = min((r for r in dev["search"] if r["median_s"] <= 1.4), key=lambda r: r["eer"])
    assert dev["dev"]["eer"] == pytest.approx(best["eer"]) and dev["weight"] == best["weight"]
    assert dev["policy"]["off_threshold"] <= dev["policy"]["on_threshold"]
    assert ckpt["plain_policy"] == plain["policy"]  # the joint network alone stays on record
    for k in plain["model"]:
        assert torch.equal(ckpt["model"][k], plain["model"][k])  # nothing was trained


def test_fit_fusion_refuses_two_of_a_kind(iqd_runs: dict[str, Path], tmp_path: Path) -> None:
    from iqd.fusion import fit_fusion

    with pytest.raises(ValueError, match="e2e and a cascade"):
        fit_fusion(iqd_runs["e2e"] / "model.pt", iqd_runs["e2e"] / "model.pt", tmp_path, progress=False)


def test_runtime_stream_equals_the_offline_fused_tracks(fusion_run: Path, iqd_runs: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """The exported detector stepped by the runtime's IqdStream, chunk by chunk with the fbank
    and the pieces, gives the offline fused posteriors (`cache_tracks`) from the onset on."""
    model, ckpt = load_detector(fusion_run / "model.pt")
    ckpt["text"]["weight"] = 0.5  # whatever dev chose on four utterances: both parts count here
    m = export_iqd(model, ckpt, tmp_path / "export", check_frames=60)
    assert m["text"]["file"] == "text.npz" and m["text"]["weight"] == ckpt["text"]["weight"]
    assert m["parity"]["text_logit"] < 1e-3
    _stream_equals_offline(model, ckpt, tmp_path / "export", iqd_runs["e2e"].parent / "cache")


def test_fusion_of_two_seeds_is_one_graph_the_runtime_steps(iqd_runs: dict[str, Path], tmp_path: Path) -> None:
    """Two joint networks (here the trained one and a perturbed copy standing in for another seed)
    fused as their mean logit: one checkpoint, one exported graph with the states side by side,
    stepped by the runtime as the offline fused tracks."""
    from iqd.fusion import fit_fusion
    from iqd.model import IqEnsemble
    from iqd.train import posteriors

    plain, pck = load_detector(iqd_runs["e2e"] / "model.pt")
    other = {k: v + 0.3 * torch.randn_like(v) if v.dtype.is_floating_point else v for k, v in pck["model"].items()}
    (tmp_path / "seed1").mkdir()
    torch.save({**pck, "model": other}, tmp_path / "seed1" / "model.pt")
    fit_fusion([iqd_runs["e2e"] / "model.pt", tmp_path / "seed1" / "model.pt"], iqd_runs["cascade"] / "model.pt",
               tmp_path / "fusion", cache=iqd_runs["e2e"].parent / "cache", progress=False)
    model, ckpt = load_detector(tmp_path / "fusion" / "model.pt")
    assert isinstance(model, IqEnsemble) and len(ckpt["ensemble"]) == 2 and len(ckpt["members"]) == 2
    assert ckpt["n_params"] == 2 * plain.n_params()
    cache = IqdCache(iqd_runs["e2e"].parent / "cache", "dev")
    second, _ = load_detector(tmp_path / "seed1" / "model.pt")
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    for e, a, b in zip(posteriors(model, cache), posteriors(plain, cache), posteriors(second, cache)):
        assert np.allclose(logit(e), (logit(a) + logit(b)) / 2, atol=1e-4)
    ckpt["text"]["weight"] = 0.5
    m = export_iqd(model, ckpt, tmp_path / "export", check_frames=60)
    assert m["ensemble"] == 2 and m["state"]["token_state"] == [1, 1, 2 * plain.cfg.token_hidden]
    _stream_equals_offline(model, ckpt, tmp_path / "export", iqd_runs["e2e"].parent / "cache")
    with pytest.raises(ValueError, match="plain e2e"):
        fit_fusion([tmp_path / "fusion" / "model.pt", iqd_runs["e2e"] / "model.pt"], iqd_runs["cascade"] / "model.pt",
                   tmp_path / "again", cache=iqd_runs["e2e"].parent / "cache", progress=False)


def _stream_equals_offline(model, ckpt: dict, export: Path, cache_dir: Path) -> None:
    from iqd.fusion import cache_pieces, cache_tracks
    from runtime.asr import ChunkResult
    from runtime.iqd import IqdModel, IqdStream

    iqd = IqdModel.from_dir(export, precision="fp32")
    assert iqd.text is not None and iqd.text.weight == ckpt["text"]["weight"]
    cache = IqdCache(cache_dir, "dev")
    pieces = cache_pieces(cache)
    tracks = cache_tracks(model, ckpt, cache)
    with pytest.raises(ValueError, match="pieces"):
        IqdStream(iqd, 0.04, iqd.policy)
    sub = 4  # fbank frames per encoder frame of the cache's ASR
    compared = 0
    for i, (u, tr) in enumerate(zip(cache.utts, tracks)):
        enc, fb = cache.enc(i), cache.fbank(i)
        stream = IqdStream(iqd, 0.04, iqd.policy, pieces=pieces)
        for t in range(u.n_enc):
            tokens = tuple(tok for tok, f in zip(u.tokens, u.token_frames) if f == t)
            stream.accept(ChunkResult(enc[t : t + 1], t, fb[sub * t : sub * (t + 1)], (tokens,), False))
            if t >= tr.onset:
                assert stream.onset
                assert stream.probability == pytest.approx(float(tr.p[t]), abs=1e-3)
                compared += 1
            else:
                assert not stream.onset
    assert compared > 20 and any(len(u.tokens) for u in cache.utts)


def test_pipeline_runs_a_fused_detector(fusion_run: Path, tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    """The pipeline hands the IQD its ASR's pieces: a bundle whose detector reads text works."""
    from asr.export_cli import write_bundle
    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline

    model, ckpt = load_detector(fusion_run / "model.pt")
    export_iqd(model, ckpt, tmp_path / "iqd-export", check_frames=40)
    write_bundle(tiny_bundle.parent / "asr-export", tmp_path / "bundle", ["int8"], beam=4, iqd=tmp_path / "iqd-export")
    pipe = Pipeline.from_bundle(tmp_path / "bundle")
    assert pipe.iqd.text is not None
    s = pipe.create_stream()
    s.accept_waveform(load_audio(four_utts / "wav" / "u0.wav"), 16000)
    s.input_finished()
    assert s.result()["directed"]["decision"] in ("directed", "undirected")
    assert s._iqd.text  # it read the transcript's pieces
