from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from asr.export import BOUNDS, ExportMismatch, check_parity, export_asr, load_checkpoint
from asr.model import Transducer
from asr.tokenizer import Tokenizer
from asr.train import PRESETS
from tests.conftest import scramble_largest_weight

NUMBERS = ("encoder_out", "attn_cache", "conv_cache", "decoder_out", "logit")


def _four_feats(four_utts: Path) -> np.ndarray:
    """fbank of the four recordings end to end: real speech for the parity check's greedy search."""
    from asr.features import fbank
    from runtime.audio import load_audio

    x = np.concatenate([load_audio(four_utts / "wav" / f"u{i}.wav") for i in range(4)])
    return fbank(torch.from_numpy(x)).numpy()


def test_export_writes_checked_graphs_with_metadata(overfit_asr: Path, tmp_path: Path) -> None:
    model, _ = load_checkpoint(overfit_asr / "last.pt")
    summary = export_asr(model, Tokenizer(overfit_asr / "tokens.model"), tmp_path, check_chunks=12)
    assert max(summary["parity"]["fp32"][k] for k in NUMBERS) < 1e-3
    int8 = summary["parity"]["int8"]
    assert int8["logit"] < 1.0 and int8["logit_rel"] <= BOUNDS["int8"].max_logit_rel  # int8 moves the numbers,
    assert int8["token_edits"] <= max(1, int8["tokens"] // 10)  # not the decisions
    for name in ("encoder", "decoder", "joiner", "encoder.int8", "decoder.int8", "joiner.int8"):
        assert (tmp_path / f"{name}.onnx").exists()
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "encoder.int8.onnx")).metadata_props}
    cfg = model.cfg
    assert meta["model_type"] == "conformer" and int(meta["T"]) == cfg.step_input_frames
    assert int(meta["decode_chunk_len"]) == cfg.chunk_input_frames and int(meta["left_context"]) == cfg.left_frames
    assert json.loads(meta["feature_config"])["n_mels"] == 80 and meta["schema_version"] == "1"
    dmeta = {p.key: p.value for p in onnx.load(str(tmp_path / "decoder.onnx")).metadata_props}
    assert int(dmeta["context_size"]) == 2 and int(dmeta["vocab_size"]) == cfg.vocab_size
    tokens = (tmp_path / "tokens.txt").read_text().splitlines()
    assert tokens[0] == "<blk> 0" and len(tokens) == cfg.vocab_size
    assert (tmp_path / "encoder.int8.onnx").stat().st_size < (tmp_path / "encoder.onnx").stat().st_size


def test_parity_check_fails_when_the_graph_is_not_the_model(overfit_asr: Path, tmp_path: Path) -> None:
    model, _ = load_checkpoint(overfit_asr / "last.pt")
    export_asr(model, Tokenizer(overfit_asr / "tokens.model"), tmp_path, int8=False, check_chunks=10)
    with torch.no_grad():  # random, not constant: a constant shift after LayerNorm cancels out
        w = model.encoder.layers[0].ff1.net[1].weight
        w.add_(0.5 * torch.randn(w.shape, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ExportMismatch, match="encoder_out"):
        check_parity(model, tmp_path, "", n_chunks=10)


@pytest.fixture(scope="module")
def int8_export(overfit_asr: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, _ = load_checkpoint(overfit_asr / "last.pt")
    out = tmp_path_factory.mktemp("int8-export")
    export_asr(model, Tokenizer(overfit_asr / "tokens.model"), out, check_chunks=12)
    return out


def test_int8_parity_is_bounded_on_real_speech(int8_export: Path, overfit_asr: Path, four_utts: Path) -> None:
    """The int8 check bounds the logits and the greedy search's tokens (it used to bound nothing)."""
    model, _ = load_checkpoint(overfit_asr / "last.pt")
    feats = _four_feats(four_utts)
    p = check_parity(model, int8_export, ".int8", n_chunks=len(feats) // model.cfg.chunk_input_frames - 1, feats=feats)
    assert p["tokens"] >= 10, "real speech: the greedy search has tokens to compare"
    assert p["logit_rel"] <= BOUNDS["int8"].max_logit_rel / 2 and p["token_edits"] <= max(1, p["tokens"] // 10)


@pytest.mark.parametrize("graph", ["encoder", "decoder", "joiner"])
def test_int8_parity_check_fails_on_a_corrupted_graph(int8_export: Path, overfit_asr: Path, four_utts: Path,
                                                      tmp_path: Path, graph: str) -> None:
    import shutil

    model, _ = load_checkpoint(overfit_asr / "last.pt")
    bad = tmp_path / "bad"
    shutil.copytree(int8_export, bad)
    scramble_largest_weight(bad / f"{graph}.int8.onnx")
    feats = _four_feats(four_utts)
    n_chunks = len(feats) // model.cfg.chunk_input_frames - 1
    with pytest.raises(ExportMismatch, match=r"onnxruntime\.int8 differs.*logits by .* of their spread") as err:
        check_parity(model, bad, ".int8", n_chunks=n_chunks, feats=feats)
    if graph != "encoder":  # the overfit model reads its sentences from the decoder's context: a
        # scrambled encoder leaves its greedy tokens as they were, a scrambled decoder or joiner does not
        assert "greedy search by" in str(err.value)


def test_export_of_an_untrained_model_with_default_chunking(tmp_path: Path) -> None:
    """The default (small) geometry: 35-frame steps, 32-frame shift, 4 chunks of left context."""
    cfg = PRESETS["small"].model
    torch.manual_seed(0)
    model = Transducer(cfg)
    tok_dir = tmp_path / "tok"
    from asr.tokenizer import train_tokenizer

    tok = Tokenizer(train_tokenizer(["one two three four five six seven eight nine ten"] * 50, tok_dir / "t", 256))
    model = Transducer(type(cfg)(**{**cfg.to_dict(), "vocab_size": tok.vocab_size}))
    s = export_asr(model, tok, tmp_path / "out", int8=False, check_chunks=10)
    assert max(s["parity"]["fp32"][k] for k in NUMBERS) < 1e-3
    # sherpa-onnx's beam search starts from the context (-1, blank): the graph reads -1 as blank
    dec = ort.InferenceSession(str(tmp_path / "out" / "decoder.onnx"), providers=["CPUExecutionProvider"])
    last = tok.vocab_size - 1
    out = dec.run(None, {"y": np.array([[-1, 0], [0, 0], [last, 0]], np.int64)})[0]
    np.testing.assert_array_equal(out[0], out[1])
    assert np.abs(out[0] - out[2]).max() > 1e-3
