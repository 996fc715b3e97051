"""Training, export and the runtime on the tiny ASR: the whole chain on four utterances."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from iqd.cache import IqdCache
from iqd.export import ExportMismatch, check_frames_input, check_parity, export_iqd
from iqd.train import load_detector
from tests.conftest import cer


def test_cache_holds_the_asr_outputs_and_label_history(iqd_runs: dict[str, Path], overfit_asr: Path) -> None:
    cache = IqdCache(iqd_runs["e2e"].parent / "cache", "dev")
    ckpt = torch.load(overfit_asr / "last.pt", weights_only=False)
    assert len(cache) == 4 and cache.enc_dim == ckpt["config"]["joiner_dim"]
    assert cache.vocab_size == ckpt["config"]["vocab_size"]
    for i, u in enumerate(cache.utts):
        assert cache.enc(i).shape == (u.n_enc, cache.enc_dim) and cache.fbank(i).shape == (u.n_fb, 80)
        assert len(u.tokens) == len(u.token_frames) and u.token_frames == sorted(u.token_frames)
        assert all(0 <= f < u.n_enc for f in u.token_frames)
    # the overfit ASR knows these four by heart: the greedy transcripts in the cache are close to the texts
    assert cer([u.text for u in cache.utts], [u.hyp for u in cache.utts]) <= 0.1


def test_every_kind_trains_and_records_its_policy(iqd_runs: dict[str, Path]) -> None:
    for kind, out in iqd_runs.items():
        model, ckpt = load_detector(out / "model.pt")
        assert ckpt["kind"] == kind and model.n_params() > 0
        dev = json.loads((out / "dev.json").read_text())
        assert 0.0 <= dev["dev"]["eer"] <= 1.0 and dev["dev"]["n_directed"] == 2
        assert dev["policy"]["off_threshold"] <= dev["policy"]["on_threshold"]
    e2e = json.loads((iqd_runs["e2e"] / "dev.json").read_text())
    assert e2e["dev"]["median_s"] > 0 and len(e2e["policy_search"]["candidates"]) > 1


def test_export_parity_and_its_failure(iqd_runs: dict[str, Path], tmp_path: Path) -> None:
    model, ckpt = load_detector(iqd_runs["e2e"] / "model.pt")
    m = export_iqd(model, ckpt, tmp_path, check_frames=120)
    assert m["parity"]["fp32"]["probability"] < 1e-4 and m["parity"]["int8"]["probability"] < 0.1
    assert m["files"] == {"fp32": "iqd.onnx", "int8": "iqd.int8.onnx"} and m["policy"] == ckpt["policy"]
    assert m["state"]["frame_state"] == [1, 1, model.cfg.frame_hidden]
    enc, tokens = check_frames_input(model, 60)
    assert (tokens > 0).any() and (tokens == 0).all(axis=1).any()  # frames with and without tokens
    with torch.no_grad():  # the graph no longer is the model: the check must say so
        model.frame_gru.weight_hh_l0.add_(0.5 * torch.randn(model.frame_gru.weight_hh_l0.shape))
    with pytest.raises(ExportMismatch, match="probability|frame_state"):
        check_parity(model, tmp_path / "iqd.onnx", enc, tokens, 1e-4)


@pytest.fixture(scope="module")
def iqd_bundle(iqd_runs: dict[str, Path], tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from asr.export_cli import write_bundle
    from iqd.train import load_detector

    root = tmp_path_factory.mktemp("iqd-bundle")
    model, ckpt = load_detector(iqd_runs["e2e"] / "model.pt")
    export_iqd(model, ckpt, root / "iqd-export", check_frames=60)
    write_bundle(tiny_bundle.parent / "asr-export", root / "bundle", ["int8", "fp32"], beam=4, iqd=root / "iqd-export")
    return root / "bundle"


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_pipeline_fills_directed_on_partials_and_finals(iqd_bundle: Path, four_utts: Path, precision: str) -> None:
    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline

    manifest = json.loads((iqd_bundle / "bundle.json").read_text())
    assert manifest["iqd"]["dir"] == "iqd" and "on_threshold" in manifest["iqd"]["policy"]
    pipe = Pipeline.from_bundle(iqd_bundle, precision=precision)
    assert pipe.iqd is not None
    samples = load_audio(four_utts / "wav" / "u0.wav")
    stream = pipe.create_stream()
    events = []
    for i in range(0, len(samples), 1600):
        stream.accept_waveform(samples[i : i + 1600], 16000)
        events += list(stream.events())
    stream.input_finished()
    events += list(stream.events())
    assert events and all("directed" in ev for ev in events)
    for ev in events:
        d = ev["directed"]
        assert set(d) == {"probability", "decision", "decided_at"} and 0.0 <= d["probability"] <= 1.0
        assert d["decision"] in (None, "directed", "undirected")
        if d["decision"] is not None:
            assert 0 < d["decided_at"] <= ev["t"] + 1e-6
    final = stream.result()
    assert final["directed"]["decision"] in ("directed", "undirected")  # the endpoint forces one
    assert final["directed"] == events[-1]["directed"]


def test_pipeline_directed_is_the_torch_model_step_by_step(iqd_bundle: Path, iqd_runs: dict[str, Path],
                                                           four_utts: Path) -> None:
    """The runtime's fp32 IQD stream gives the torch step's probabilities on the same chunks."""
    from runtime.asr import ChunkResult
    from runtime.iqd import IqdModel, IqdStream

    model, _ = load_detector(iqd_runs["e2e"] / "model.pt")
    iqd = IqdModel.from_dir(iqd_bundle / "iqd", precision="fp32")
    rng = np.random.default_rng(0)
    enc = rng.normal(size=(40, model.cfg.enc_dim)).astype(np.float32)
    by_frame = [[int(rng.integers(1, model.cfg.vocab_size))] if t % 5 == 2 else [] for t in range(40)]
    stream = IqdStream(iqd, 0.04, dataclasses.replace(iqd.policy, onset_min_ms=0.0))  # no fbank here: no gate
    state = model.init_state(1)
    for t in range(40):
        stream.accept(ChunkResult(enc[t : t + 1], t, None, (tuple(by_frame[t]),), False))
        with torch.no_grad():
            p, state = model.step(torch.from_numpy(enc[t : t + 1]), torch.tensor([(by_frame[t] + [0, 0, 0])[:3]]), state)
        assert stream.probability == pytest.approx(float(p), abs=1e-4)
    assert stream.decider.smoothed is not None  # tokens came, so the decider started


def test_a_bundle_without_iqd_has_no_directed(tiny_bundle: Path, four_utts: Path) -> None:
    from runtime.audio import load_audio
    from runtime.pipeline import Pipeline

    pipe = Pipeline.from_bundle(tiny_bundle)
    s = pipe.create_stream()
    s.accept_waveform(load_audio(four_utts / "wav" / "u1.wav"), 16000)
    s.input_finished()
    assert pipe.iqd is None and "directed" not in s.result() and all("directed" not in e for e in s.events())


def test_extra_train_adds_another_caches_rows_and_refuses_a_stranger(iqd_runs: dict[str, Path], tmp_path: Path) -> None:
    """--extra-train: the train split of another cache of the same ASR and search joins the
    training rows (before the recordings); one made by another ASR or search is refused."""
    import shutil

    from iqd.train import TrainConfig, extra_split, prepare

    cache = iqd_runs["e2e"].parent / "cache"
    extra = tmp_path / "extra"
    extra.mkdir()
    for f in cache.glob("train.*"):
        shutil.copy(f, extra / f.name)
    shutil.copy(cache / "meta.json", extra / "meta.json")
    cfg = TrainConfig(kind="e2e", corpus="unused", out=str(tmp_path / "o"), cache=str(cache), extra_train=(str(extra),))
    train, dev = prepare(cfg, progress=False)
    plain, _ = prepare(dataclasses.replace(cfg, extra_train=()), progress=False)
    assert len(train) == 2 * len(plain) and [u.id for u in train.utts] == [u.id for u in plain.utts] * 2
    assert TrainConfig.from_dict(cfg.to_dict()).extra_train == (str(extra),)  # survives the checkpoint's round trip
    # --no-main-train: the extra rows instead of the cache's own (here a copy of them, once, not twice)
    only, _ = prepare(dataclasses.replace(cfg, main_train=False), progress=False)
    assert len(only) == len(plain) and [u.id for u in only.utts] == [u.id for u in plain.utts]
    assert Path(only.parts[0].dir if hasattr(only, "parts") else only.dir) == extra
    with pytest.raises(ValueError, match="extra-train"):
        dataclasses.replace(cfg, main_train=False, extra_train=())
    # ... and with --streams the cache's recordings stay (train-streams faked from the train split's files)
    own = tmp_path / "own"
    shutil.copytree(cache, own)
    for f in cache.glob("train.*"):
        shutil.copy(f, own / f.name.replace("train.", "train-streams.", 1))
        shutil.copy(f, own / f.name.replace("train.", "dev-streams.", 1))
    streamed, _ = prepare(dataclasses.replace(cfg, cache=str(own), main_train=False, streams=True), progress=False)
    assert [p.split for p in streamed.parts] == ["train", "train-streams"] and streamed.parts[0].dir == extra
    meta = json.loads((extra / "meta.json").read_text())
    (extra / "meta.json").write_text(json.dumps({**meta, "asr": "another.pt"}))
    with pytest.raises(ValueError, match="ASR"):
        extra_split(extra, cache)
    (extra / "meta.json").write_text(json.dumps(meta))
    (extra / "train.search.json").write_text(json.dumps({"method": "beam", "beam": 4, "history": "fed", "lm": None}))
    with pytest.raises(ValueError, match="search"):
        extra_split(extra, cache)
    with pytest.raises(FileNotFoundError, match="train.index.jsonl"):
        extra_split(tmp_path / "nothing", cache)
