"""`heed export asr`: the transducer as three ONNX graphs, fp32 and int8, each checked against torch.

The contract is sherpa-onnx's streaming conformer transducer:

- encoder: `x` (N, T, n_mels) with T = chunk + look-ahead fbank frames, `attn_cache`
  (layers, left_context, N, d_model), `conv_cache` (layers, kernel - 1, N, d_model),
  `processed_frames` (N,) int64 fbank frames consumed so far -> `encoder_out` (N, chunk, joiner_dim), `next_attn_cache`,
  `next_conv_cache`. The encoder's projection for the joiner is inside the graph.
- decoder: `y` (N, context_size) int64 -> `decoder_out` (N, joiner_dim).
- joiner: `encoder_out` (N, joiner_dim), `decoder_out` (N, joiner_dim) -> `logit` (N, vocab).

Metadata (read by our runtime and by sherpa-onnx): model_type, num_encoder_layers, T,
decode_chunk_len, left_context, encoder_dim, pad_length, cnn_module_kernel, vocab_size,
context_size, joiner_dim, plus heed's own: schema_version, feature config (JSON), model config
(JSON). The export feeds `check_chunks` chunks of real or random features through torch and
onnxruntime and raises `ExportMismatch` when they differ beyond the precision's `ParityBounds`:
every output within 1e-3 for fp32; for int8, which changes the numbers on purpose, the logits
within a share of their spread and greedy search over the check chunks giving the same tokens
(at most one edit in ten).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asr.model import SUBSAMPLING_PAD, ConformerConfig, Transducer
from asr.tokenizer import Tokenizer
from runtime.asr import (DECODER_INPUTS, DECODER_OUTPUTS, ENCODER_INPUTS, ENCODER_OUTPUTS, JOINER_INPUTS, JOINER_OUTPUTS,
                         EncoderState)
from runtime.features import FbankConfig

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ParityBounds:
    """How far onnxruntime may be from torch over the check chunks.

    max_abs: every output (encoder_out, caches, decoder_out, logit); None leaves them unbounded.
    max_logit_rel: the largest logit difference over the standard deviation of torch's logits.
    max_token_edit_rate: greedy search over the check chunks, each side on its own outputs: edits
        (substitutions, deletions, insertions) per token of torch's; one edit is always allowed.
    """

    max_abs: float | None
    max_logit_rel: float
    max_token_edit_rate: float


# int8: the tiny test model's logits move by 2-3% of their spread (the shipped tagger's int8 graphs
# by 10-14%, tagging/export.py), a broken graph's by their whole spread or more
# (tests/asr/test_export.py corrupts each graph).
BOUNDS = {"fp32": ParityBounds(1e-3, 1e-3, 0.1), "int8": ParityBounds(None, 0.3, 0.1)}
FP32_TOLERANCE = BOUNDS["fp32"].max_abs


class ExportMismatch(RuntimeError):
    """onnxruntime disagrees with torch on the exported graph."""


class _EncoderStep(nn.Module):
    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.encoder, self.proj = model.encoder, model.encoder_proj

    def forward(self, x, attn_cache, conv_cache, processed_frames):
        y, state = self.encoder.step(x, EncoderState(attn_cache, conv_cache, processed_frames))
        return self.proj(y), state.attn_cache, state.conv_cache


class _DecoderStep(nn.Module):
    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.decoder = model.decoder

    def forward(self, y):
        # sherpa-onnx starts modified beam search from the context (-1, blank); ONNX's Gather would
        # read -1 as the last token, so any id below 0 is read as blank, our search's start context.
        y = torch.where(y < 0, torch.zeros_like(y), y)
        return self.decoder(y)[:, -1]


class _JoinerStep(nn.Module):
    def __init__(self, model: Transducer) -> None:
        super().__init__()
        self.joiner = model.joiner

    def forward(self, encoder_out, decoder_out):
        return self.joiner(encoder_out, decoder_out)


def load_checkpoint(path: str | Path) -> tuple[Transducer, dict[str, Any]]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = Transducer(ConformerConfig.from_dict(ckpt["config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def _metadata(cfg: ConformerConfig, fbank_cfg: FbankConfig) -> dict[str, dict[str, str]]:
    common = {"schema_version": str(SCHEMA_VERSION), "model_config": json.dumps(cfg.to_dict())}
    encoder = {
        "model_type": "conformer",
        "num_encoder_layers": str(cfg.n_layers),
        "T": str(cfg.step_input_frames),
        "decode_chunk_len": str(cfg.chunk_input_frames),
        "left_context": str(cfg.left_frames),
        "encoder_dim": str(cfg.d_model),
        "pad_length": str(SUBSAMPLING_PAD),
        "cnn_module_kernel": str(cfg.conv_kernel),
        "chunk_frames": str(cfg.chunk_frames),
        "lookahead_ms": str(SUBSAMPLING_PAD * fbank_cfg.frame_shift_ms),
        "feature_config": json.dumps(fbank_cfg.to_dict()),
        **common,
    }
    decoder = {"vocab_size": str(cfg.vocab_size), "context_size": str(cfg.context_size), **common}
    joiner = {"joiner_dim": str(cfg.joiner_dim), "vocab_size": str(cfg.vocab_size), **common}
    return {"encoder": encoder, "decoder": decoder, "joiner": joiner}


def add_metadata(path: Path, meta: dict[str, str]) -> None:
    """Replace an ONNX file's metadata_props with `meta`."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict) -> None:
    torch.onnx.export(
        module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
        opset_version=17, dynamo=False,
    )


def quantize_int8(src: Path, dst: Path, op_types: tuple[str, ...] = ("MatMul", "Gemm")) -> None:
    """Dynamic int8 quantization of the matrix products (weights int8, activations quantized per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), op_types_to_quantize=list(op_types), weight_type=QuantType.QInt8)


def check_parity(
    model: Transducer, out_dir: Path, suffix: str = "", n_chunks: int = 12, feats: np.ndarray | None = None,
    bounds: ParityBounds | None = None,
) -> dict[str, float]:
    """Run n_chunks chunks through torch and onnxruntime; raise ExportMismatch beyond `bounds`
    (the precision's: `BOUNDS["int8"]` for suffix ".int8", else `BOUNDS["fp32"]`).

    feats: (T, n_mels) real features to use; random ones (seeded) otherwise.
    Returns the largest absolute differences seen (encoder_out, caches, decoder_out, logit),
    `logit_rel` (the logit difference over the spread of torch's logits), and the greedy
    searches' `tokens` (torch's count) and `token_edits`.
    """
    import onnxruntime as ort

    from runtime.scoring import count_errors
    from runtime.search import DecoderCache, Hypothesis, greedy_search

    bounds = bounds or BOUNDS["int8" if suffix == ".int8" else "fp32"]
    cfg = model.cfg
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = {n: ort.InferenceSession(str(out_dir / f"{n}{suffix}.onnx"), opts, providers=["CPUExecutionProvider"])
            for n in ("encoder", "decoder", "joiner")}
    need = n_chunks * cfg.chunk_input_frames + SUBSAMPLING_PAD
    if feats is None or len(feats) < need:
        feats = np.random.default_rng(0).normal(size=(need, cfg.n_mels)).astype(np.float32) * 2 - 8
    x_all = torch.from_numpy(np.ascontiguousarray(feats[:need], dtype=np.float32))[None]
    enc_step, dec_step, join_step = _EncoderStep(model), _DecoderStep(model), _JoinerStep(model)
    # greedy search on each side's own graphs: the runtime's search, fed torch's or onnxruntime's numbers
    t_search = (DecoderCache(lambda y: dec_step(torch.from_numpy(y)).numpy(), cfg.context_size),
                lambda e, d: join_step(torch.from_numpy(e), torch.from_numpy(d)).numpy())
    o_search = (DecoderCache(lambda y: sess["decoder"].run(list(DECODER_OUTPUTS), {"y": y})[0], cfg.context_size),
                lambda e, d: sess["joiner"].run(list(JOINER_OUTPUTS), {"encoder_out": e, "decoder_out": d})[0])
    t_hyp = o_hyp = Hypothesis()
    state = model.encoder.init_state(1)
    ort_state = EncoderState(*(s.numpy() for s in state))
    worst = {"encoder_out": 0.0, "attn_cache": 0.0, "conv_cache": 0.0, "decoder_out": 0.0, "logit": 0.0}
    t_logits = []
    with torch.no_grad():
        for k in range(n_chunks):
            x = x_all[:, k * cfg.chunk_input_frames : k * cfg.chunk_input_frames + cfg.step_input_frames]
            t_out, t_attn, t_conv = enc_step(x, *state)
            o_out, o_attn, o_conv = sess["encoder"].run(list(ENCODER_OUTPUTS), {"x": x.numpy(), **ort_state._asdict()})
            for name, a, b in (("encoder_out", t_out, o_out), ("attn_cache", t_attn, o_attn), ("conv_cache", t_conv, o_conv)):
                worst[name] = max(worst[name], float(np.abs(a.numpy() - b).max()))
            state = EncoderState(t_attn, t_conv, state.processed_frames + cfg.chunk_input_frames)
            # Feed onnxruntime its own state, as the runtime will: errors must not grow chunk over chunk.
            ort_state = EncoderState(o_attn, o_conv, ort_state.processed_frames + cfg.chunk_input_frames)
            y = torch.randint(0, cfg.vocab_size, (cfg.chunk_frames, cfg.context_size), generator=torch.Generator().manual_seed(k))
            t_dec = dec_step(y)
            (o_dec,) = sess["decoder"].run(list(DECODER_OUTPUTS), {"y": y.numpy()})
            worst["decoder_out"] = max(worst["decoder_out"], float(np.abs(t_dec.numpy() - o_dec).max()))
            t_logit = join_step(t_out[0], t_dec)
            (o_logit,) = sess["joiner"].run(list(JOINER_OUTPUTS), {"encoder_out": o_out[0], "decoder_out": o_dec})
            worst["logit"] = max(worst["logit"], float(np.abs(t_logit.numpy() - o_logit).max()))
            t_logits.append(t_logit.numpy())
            first = k * cfg.chunk_frames
            t_hyp = greedy_search(t_out[0].numpy(), t_hyp, *t_search, first)
            o_hyp = greedy_search(o_out[0], o_hyp, *o_search, first)
    edits, n_tokens = count_errors(" ".join(map(str, t_hyp.tokens)), " ".join(map(str, o_hyp.tokens)))
    figures = worst | {"logit_rel": worst["logit"] / max(float(np.std(np.concatenate(t_logits))), 1e-6),
                       "tokens": n_tokens, "token_edits": edits}
    bad = [f"{k} by {v:.2e}" for k, v in worst.items() if bounds.max_abs is not None and v > bounds.max_abs]
    if figures["logit_rel"] > bounds.max_logit_rel:
        bad.append(f"logits by {figures['logit_rel']:.2f} of their spread (bound {bounds.max_logit_rel})")
    if edits > max(1, int(bounds.max_token_edit_rate * n_tokens)):
        bad.append(f"greedy search by {edits} edits on {n_tokens} tokens "
                   f"({' '.join(map(str, t_hyp.tokens))} vs {' '.join(map(str, o_hyp.tokens))})")
    if bad:
        bound = "" if bounds.max_abs is None else f" (tolerance {bounds.max_abs:.0e})"
        raise ExportMismatch(f"onnxruntime{suffix or ' fp32'} differs from torch over {n_chunks} chunks: "
                             + ", ".join(bad) + bound)
    return figures


def export_asr(
    model: Transducer, tokenizer: Tokenizer, out_dir: str | Path, fbank_cfg: FbankConfig = FbankConfig(),
    int8: bool = True, check_chunks: int = 12, check_feats: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write encoder/decoder/joiner (.onnx and .int8.onnx), tokens.txt and tokens.model to out_dir.

    Returns a summary: file names, parity figures, sizes. Raises ExportMismatch on a failed check.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cfg = model.cfg
    st = model.encoder.init_state(1)
    x = torch.zeros(1, cfg.step_input_frames, cfg.n_mels)
    batch = {0: "N"}
    with torch.no_grad():
        _export(_EncoderStep(model), (x, *st), out / "encoder.onnx", list(ENCODER_INPUTS), list(ENCODER_OUTPUTS),
                {"x": batch, "attn_cache": {2: "N"}, "conv_cache": {2: "N"}, "processed_frames": batch,
                 "encoder_out": batch, "next_attn_cache": {2: "N"}, "next_conv_cache": {2: "N"}})
        _export(_DecoderStep(model), (torch.zeros(1, cfg.context_size, dtype=torch.long),), out / "decoder.onnx",
                list(DECODER_INPUTS), list(DECODER_OUTPUTS), {"y": batch, "decoder_out": batch})
        j = torch.zeros(1, cfg.joiner_dim)
        _export(_JoinerStep(model), (j, j), out / "joiner.onnx", list(JOINER_INPUTS), list(JOINER_OUTPUTS),
                {"encoder_out": batch, "decoder_out": batch, "logit": batch})
    meta = _metadata(cfg, fbank_cfg)
    for name in ("encoder", "decoder", "joiner"):
        add_metadata(out / f"{name}.onnx", meta[name])
    summary: dict[str, Any] = {"parity": {"fp32": check_parity(model, out, "", check_chunks, check_feats)}}
    if int8:
        for name in ("encoder", "decoder", "joiner"):
            quantize_int8(out / f"{name}.onnx", out / f"{name}.int8.onnx")
            add_metadata(out / f"{name}.int8.onnx", meta[name])
        summary["parity"]["int8"] = check_parity(model, out, ".int8", check_chunks, check_feats)
    tokenizer.write_tokens_txt(out / "tokens.txt")
    (out / "tokens.model").write_bytes(tokenizer.path.read_bytes())
    summary["files"] = sorted(p.name for p in out.iterdir() if p.suffix in (".onnx", ".txt", ".model"))
    summary["bytes"] = {p.name: p.stat().st_size for p in out.iterdir() if p.suffix == ".onnx"}
    summary["n_params"] = model.n_params()
    return summary


def copy_component(src: Path, dest: Path, meta_name: str, precisions: list[str], what: str) -> dict:
    """Copy an export folder (`heed export tagger|iqd`) to `dest` with only the ONNX graphs of the
    bundle's precisions (an int8 bundle carries no fp32 graphs), rewriting its metadata file
    `meta_name` to list just those; returns that metadata."""
    if not (src / meta_name).exists():
        raise FileNotFoundError(f"{src / meta_name} missing; run heed export {what} first")
    meta = json.loads((src / meta_name).read_text())
    missing = [p for p in precisions if p not in meta["files"]]
    if missing:
        raise FileNotFoundError(f"{src} has no {', '.join(missing)} graphs; export the {what} with them")
    meta["files"] = {p: meta["files"][p] for p in precisions}
    keep = {name for files_ in meta["files"].values() for name in (files_.values() if isinstance(files_, dict) else [files_])}
    meta["bytes"] = {name: n for name, n in meta.get("bytes", {}).items() if name in keep}
    if dest.exists():
        shutil.rmtree(dest)
    # the graphs of other precisions are left out; a subfolder (the IQD's student) is copied whole
    shutil.copytree(src, dest, ignore=lambda d, names: [n for n in names if n.endswith(".onnx") and n not in keep
                                                        and Path(d) == src])
    (dest / meta_name).write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def install_iqd(iqd: Path, out: Path, precisions: list[str]) -> dict:
    """Copy an IQD export (`heed export iqd`) into bundle folder OUT/iqd (its student too, when it
    hears one); returns bundle.json's `iqd` entry."""
    ij = copy_component(iqd, out / "iqd", "iqd.json", precisions, "iqd")
    from runtime.iqd_policy import DecisionPolicy

    policy = DecisionPolicy.from_dict(ij["policy"]).to_dict()  # an export older than the onset gate: its defaults
    if policy != ij["policy"]:
        ij["policy"] = policy
        (out / "iqd" / "iqd.json").write_text(json.dumps(ij, indent=1) + "\n")
    return {"dir": "iqd", "precisions": sorted(ij["files"]), "kind": ij["kind"], "policy": ij["policy"],
            "theta": ij.get("theta"), "n_params": ij.get("n_params")}
