"""Whisper tiny.en -> the second pass's ONNX graphs, derived deterministically from the installed package.

    heed export whisper --bundle models/default        # what scripts/setup runs

Writes into `<bundle>/whisper/`:
- `encoder.int8.onnx`: mel (1, 80, T) -> per decoder layer i cross_k_i (1, 6, 64, T/2) (keys
  transposed) and cross_v_i (1, 6, T/2, 64): the cross-attention keys and values (the encoder
  states themselves are not needed);
- `decoder.int8.onnx`: tokens (B, n), per layer i self_k_i, self_v_i (B, 6, P, 64),
  cross_k_i (1 or B, 6, 64, S), cross_v_i (1 or B, 6, S, 64) and fill_k_i (1, 6, 64, 1500),
  fill_v_i (1, 6, 1500, 64) -> logits (B, n, n_vocab) and next_self_k_i, next_self_v_i (P + n
  positions). Cross-attention reads the segment's S positions, then the fill's positions S to
  1,499, as if they were one sequence (nothing is concatenated: no 18 MB copy per segment). One
  graph serves the prompt (n = 2), greedy steps (n = 1) and scoring B whole texts at once (n =
  the longest; a batch of 1 of the segment's and the fill's keys/values is broadcast);
- `fill.npz`: the cross keys/values the int8 encoder gives a constant log-mel over the whole 30 s
  window (float16, 9 MB): what fills the positions after a segment (runtime/whisper.py);
- `mel_filters.npy` (the Slaney filter bank), `tokens.txt` and `tokenizer.json` (the byte-level
  BPE vocabulary) and `whisper.json` (dimensions, special tokens, suppressed tokens, the source's
  sha256).

int8: the matrix products are quantized dynamically (weights int8 per output channel). The token
embedding and the output projection share one int8 table: the projection's quantized weight
(384, n_vocab) also serves the embedding lookup through a Gather along its vocabulary axis, so
the 20 M-parameter table is stored once (about 20 MB instead of 40).

Each export checks itself (`check_parity`): greedy tokens of torch and onnxruntime on real or
given audio must be identical and the logits within a bound; a failed check raises
`ExportMismatch` and nothing is installed into the bundle.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asr.whisper import (PACKAGE, PACKAGE_VERSION, CrossKV, SelfKV, SpecialTokens, Whisper, load_whisper, mel_filters,
                         package_dir, sha256)

SCHEMA = 3  # 2: fill.npz; 3: the decoder reads the fill itself (fill_k_i, fill_v_i)
OPSET = 17


class ExportMismatch(RuntimeError):
    """onnxruntime and torch disagree beyond the stated bound."""


def state_names(n_layers: int) -> dict[str, list[str]]:
    """The ONNX input/output names, per decoder layer i: self_k_i, self_v_i (the self-attention
    cache), cross_k_i, cross_v_i (the segment's cross-attention keys/values), fill_k_i, fill_v_i
    (those of the constant-input fill over the whole window); next_self_k_i, ..."""
    layers = range(n_layers)
    return {"self": [f"self_{kv}_{i}" for i in layers for kv in "kv"],
            "cross": [f"cross_{kv}_{i}" for i in layers for kv in "kv"],
            "fill": [f"fill_{kv}_{i}" for i in layers for kv in "kv"],
            "next_self": [f"next_self_{kv}_{i}" for i in layers for kv in "kv"]}


class _Encoder(nn.Module):
    def __init__(self, model: Whisper) -> None:
        super().__init__()
        self.model = model

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t for kv in self.model.cross_kv(self.model.encode(mel)) for t in kv)


class _Decoder(nn.Module):
    """The decoder with its own copy of the projection, so that the exporter sees two initializers
    (`_share_embedding` then replaces the embedding's by a lookup into the projection's int8 table)."""

    def __init__(self, model: Whisper) -> None:
        super().__init__()
        self.model = model
        self.projection = nn.Parameter(model.token_embedding.weight.detach().T.contiguous())

    def forward(self, tokens: torch.Tensor, *kv: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.model.dims.n_text_layer
        state = [SelfKV(kv[2 * i], kv[2 * i + 1]) for i in range(n)]
        cross = [CrossKV(kv[2 * n + 2 * i], kv[2 * n + 2 * i + 1]) for i in range(n)]
        fill = [CrossKV(kv[4 * n + 2 * i], kv[4 * n + 2 * i + 1]) for i in range(n)]
        logits, state = self.model.decode(tokens, state, cross, self.projection, fill)
        return (logits, *(t for s in state for t in s))


def _export_fp32(model: Whisper, out: Path) -> None:
    dims = model.dims
    names = state_names(dims.n_text_layer)
    h, dh = dims.n_head, dims.n_state // dims.n_head
    with torch.no_grad():
        torch.onnx.export(_Encoder(model), (torch.zeros(1, dims.n_mels, 200),), str(out / "encoder.onnx"),
                          input_names=["mel"], output_names=names["cross"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"mel": {2: "T"}, **{c: {(3 if c.startswith("cross_k") else 2): "S"}
                                                             for c in names["cross"]}})
        self_kv = [torch.zeros(1, h, 3, dh)] * len(names["self"])
        cross = [torch.zeros(1, h, dh, 100) if c.startswith("cross_k") else torch.zeros(1, h, 100, dh)
                 for c in names["cross"]]
        fill = [torch.zeros(1, h, dh, dims.n_audio_ctx) if c.startswith("fill_k") else
                torch.zeros(1, h, dims.n_audio_ctx, dh) for c in names["fill"]]
        dyn = {"tokens": {0: "B", 1: "n"}, "logits": {0: "B", 1: "n"}}
        dyn.update({c: {0: "B", 2: "P"} for c in names["self"]})
        dyn.update({c: {0: "B", 2: "Pn"} for c in names["next_self"]})
        # the segment's cross keys/values have a batch of 1 that attention broadcasts over B texts
        dyn.update({c: {0: "Bc", (3 if c.startswith("cross_k") else 2): "S"} for c in names["cross"]})
        dyn.update({c: {(3 if c.startswith("fill_k") else 2): "F"} for c in names["fill"]})  # 1,500 but for experiments
        torch.onnx.export(_Decoder(model), (torch.zeros(1, 2, dtype=torch.long), *self_kv, *cross, *fill),
                          str(out / "decoder.onnx"), opset_version=OPSET, dynamo=False,
                          input_names=["tokens", *names["self"], *names["cross"], *names["fill"]],
                          output_names=["logits", *names["next_self"]], dynamic_axes=dyn)


def _quantize(src: Path, dst: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process the model, on the root logger
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)


def _share_embedding(path: Path) -> None:
    """Replace the decoder's fp32 token embedding (a Gather on an (n_vocab, d) initializer) by a
    Gather into the int8 projection (d, n_vocab), scaled by the gathered per-token scales."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    gather = next(n for n in g.node if n.op_type == "Gather" and n.input[0] in inits
                  and numpy_helper.to_array(inits[n.input[0]]).ndim == 2)
    table = numpy_helper.to_array(inits[gather.input[0]])
    n_vocab = table.shape[0]
    mmi = [n for n in g.node if n.op_type == "MatMulInteger" and n.input[1] in inits
           and numpy_helper.to_array(inits[n.input[1]]).shape[-1] == n_vocab]
    if len(mmi) != 1:
        raise ExportMismatch(f"{path}: expected one quantized output projection, found {len(mmi)}")
    q_name = mmi[0].input[1]
    zp = numpy_helper.to_array(inits[mmi[0].input[3]]) if len(mmi[0].input) > 3 and mmi[0].input[3] else None
    if zp is not None and np.any(zp != 0):
        raise ExportMismatch(f"{path}: the projection's quantization is not symmetric")
    scale_name = _weight_scale_name(g, mmi[0], inits, n_vocab)
    tokens, out = gather.input[1], gather.output[0]
    nodes = [
        helper.make_node("Gather", [q_name, tokens], ["emb_q"], axis=1, name="emb_gather_q"),  # (d, B, n)
        helper.make_node("Cast", ["emb_q"], ["emb_f"], to=onnx.TensorProto.FLOAT, name="emb_cast"),
        helper.make_node("Transpose", ["emb_f"], ["emb_t"], perm=[1, 2, 0], name="emb_transpose"),  # (B, n, d)
        helper.make_node("Gather", [scale_name, tokens], ["emb_s"], axis=0, name="emb_gather_scale"),  # (B, n)
        helper.make_node("Unsqueeze", ["emb_s", "emb_axis"], ["emb_s1"], name="emb_unsqueeze"),
        helper.make_node("Mul", ["emb_t", "emb_s1"], [out], name="emb_scale"),
    ]
    idx = list(g.node).index(gather)
    g.node.remove(gather)
    for k, node in enumerate(nodes):
        g.node.insert(idx + k, node)
    g.initializer.remove(inits[gather.input[0]])
    g.initializer.append(numpy_helper.from_array(np.array([-1], np.int64), "emb_axis"))
    onnx.save(model, str(path))


def _weight_scale_name(g, mmi, inits, n_vocab: int) -> str:
    """The (n_vocab,) per-channel scale of the projection's int8 weight: quantize_dynamic names a
    weight W's parts W_quantized, W_scale and W_zero_point."""
    from onnx import numpy_helper

    name = mmi.input[1].removesuffix("_quantized") + "_scale"
    if name not in inits or numpy_helper.to_array(inits[name]).shape != (n_vocab,):
        raise ExportMismatch(f"no per-channel scale {name!r} of shape ({n_vocab},) for the output projection")
    return name


class TorchSession:
    """onnxruntime's `run(None, feeds)` over the torch graphs, so that the runtime's own search
    (runtime.whisper.SecondPass) can drive torch in the export's self-check."""

    def __init__(self, module: nn.Module, input_names: list[str]) -> None:
        self.module, self.input_names = module, input_names

    def run(self, _outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            out = self.module(*(torch.from_numpy(np.asarray(feeds[n])) for n in self.input_names))
        return [t.numpy() for t in out]


def _metadata(model: Whisper, src: Path, fill_value: float) -> dict[str, Any]:
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    d = model.dims
    return {
        "schema_version": SCHEMA,
        "model": "whisper-tiny.en",
        "source": {"package": PACKAGE, "version": PACKAGE_VERSION, "file": "model.bin",
                   "sha256": sha256(src / "model.bin"), "licence": "MIT (Whisper weights: OpenAI, MIT)"},
        "files": {"encoder": "encoder.int8.onnx", "decoder": "decoder.int8.onnx", "mel_filters": "mel_filters.npy",
                  "tokens": "tokens.txt", "tokenizer": "tokenizer.json"},
        "n_vocab": d.n_vocab, "n_state": d.n_state, "n_head": d.n_head, "n_text_layer": d.n_text_layer,
        "n_audio_ctx": d.n_audio_ctx, "n_text_ctx": d.n_text_ctx,
        "special": {k: v for k, v in vars(SpecialTokens.from_tokenizer_json(src / "tokenizer.json")).items()},
        "suppress_ids": [t for t in cfg["suppress_ids"] if t < d.n_vocab],
        "suppress_ids_begin": cfg["suppress_ids_begin"],
        "fill_value": fill_value,
    }


# The int8 graphs change the numbers on purpose; these bound how far (in nats of the chosen
# tokens' log-probabilities; logits are O(10)): a broken graph is off by whole units, int8 by tenths.
FP32_LOGIT_TOLERANCE = 1e-2
INT8_LOGIT_TOLERANCE = 1.0
INT8_TOKEN_ERROR = 0.1  # int8 may flip a near-tie (a final "." or not); a broken graph flips most tokens


def check_parity(second: Any, reference: Any, clips: list[np.ndarray], logit_tolerance: float,
                 max_token_error: float = 0.0) -> dict[str, Any]:
    """Greedy decoding by `second` (onnxruntime) against `reference` (torch) on each clip: the token
    error rate (edits / reference tokens over all clips) at most `max_token_error` (0: identical);
    teacher-forced along the reference's tokens, the log-probability of each next token within
    `logit_tolerance` of torch's and the centred logits within half of it on average. Raises
    ExportMismatch; returns the figures."""
    import jiwer

    worst, mean_diff, n_tokens, edits, differ = 0.0, 0.0, 0, 0, []
    for i, clip in enumerate(clips):
        ref_cross, _ = reference.encode(clip)
        cross, _ = second.encode(clip)
        ref_tokens, _, _ = reference.greedy(ref_cross, len(clip) / 16000)
        tokens, _, _ = second.greedy(cross, len(clip) / 16000)
        forced = np.concatenate([second.prompt, np.array([ref_tokens], np.int64).reshape(1, -1)], axis=1)
        a, _ = reference._step(forced, reference.init_state(), ref_cross)
        b, _ = second._step(forced, second.init_state(), cross)
        # the log-probability each graph gives the reference's next token, at every step
        nxt = np.array(ref_tokens + [reference.eot])[None, :, None]
        lp_a = np.take_along_axis(_log_softmax(a[:, 1:]), nxt, -1)
        lp_b = np.take_along_axis(_log_softmax(b[:, 1:]), nxt, -1)
        worst = max(worst, float(np.abs(lp_a - lp_b).max()))
        # logits are defined up to a constant per step: compare them centred
        mean_diff = max(mean_diff, float(np.abs((a - a.mean(-1, keepdims=True)) - (b - b.mean(-1, keepdims=True))).mean()))
        n_tokens += len(ref_tokens)
        if tokens != ref_tokens:
            r, h = " ".join(map(str, ref_tokens)) or "-", " ".join(map(str, tokens)) or "-"
            out = jiwer.process_words(r, h)
            edits += out.substitutions + out.deletions + out.insertions
            differ.append(f"clip {i}: {second.decode_text(tokens)!r} instead of {reference.decode_text(ref_tokens)!r}")
    rate = edits / max(1, n_tokens)
    if rate > max_token_error:
        raise ExportMismatch(f"token error rate {rate:.3f} against torch (bound {max_token_error}): " + "; ".join(differ[:3]))
    if worst > logit_tolerance:
        raise ExportMismatch(f"the log-probability of torch's tokens differs by up to {worst:.3f} (bound {logit_tolerance})")
    if mean_diff > logit_tolerance / 2:
        raise ExportMismatch(f"logits differ from torch by {mean_diff:.3f} on average (bound {logit_tolerance / 2})")
    return {"max_token_logprob_diff": round(worst, 4), "mean_logit_diff": round(mean_diff, 4), "token_error_rate": round(rate, 4), "n_tokens": n_tokens,
            "n_clips": len(clips), "clips_differing": len(differ)}


def export_whisper(out_dir: str | Path, clips: list[np.ndarray], fill_value: float = -0.75,
                   model_dir: Path | None = None) -> dict[str, Any]:
    """Write the second pass's files into out_dir (built in a temporary folder, checked, then moved
    in, so a failed export leaves what was there). clips: 16 kHz audio for the self-check."""
    from runtime.whisper import SecondPass

    if not clips:
        raise ValueError("the export's self-check needs at least one clip of speech")
    src = Path(model_dir) if model_dir else package_dir()
    model = load_whisper(src)
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        work = Path(tmp)
        _export_fp32(model, work)
        meta = _metadata(model, src, fill_value)
        np.save(work / "mel_filters.npy", mel_filters().numpy().astype(np.float32))
        shutil.copy(src / "vocabulary.txt", work / "tokens.txt")
        shutil.copy(src / "tokenizer.json", work / "tokenizer.json")
        meta["files"].update(encoder="encoder.onnx", decoder="decoder.onnx")
        _write_meta(work, meta)
        names = state_names(model.dims.n_text_layer)
        torch_ref = SecondPass(work, sessions=(TorchSession(_Encoder(model), ["mel"]),
                                               TorchSession(_Decoder(model), ["tokens", *names["self"], *names["cross"],
                                                                              *names["fill"]])))
        parity = {"fp32": check_parity(SecondPass(work), torch_ref, clips, FP32_LOGIT_TOLERANCE)}
        _quantize(work / "encoder.onnx", work / "encoder.int8.onnx")
        _quantize(work / "decoder.onnx", work / "decoder.int8.onnx")
        _share_embedding(work / "decoder.int8.onnx")
        meta["files"].update(encoder="encoder.int8.onnx", decoder="decoder.int8.onnx")
        _write_meta(work, meta)
        # the fill, computed once here by the int8 encoder the runtime uses: a 30 s encoder run at load
        # time would cost half a second and leave 120 MB in onnxruntime's arena
        fill = SecondPass(work).compute_fill()
        np.savez(work / "fill.npz", **{f"{kv}_{i // 2}": a.astype(np.float16) for i, (kv, a) in
                                       enumerate(zip("kv" * model.dims.n_text_layer, fill))})
        meta["files"]["fill"] = "fill.npz"
        _write_meta(work, meta)
        parity["int8"] = check_parity(SecondPass(work), torch_ref, clips, INT8_LOGIT_TOLERANCE, INT8_TOKEN_ERROR)
        for name in ("encoder.onnx", "decoder.onnx"):
            (work / name).unlink()
        meta["parity"] = parity
        _write_meta(work, meta)
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(work, out)
        out.chmod(0o755)  # the temporary folder was private
    meta["bytes"] = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    return meta


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    (folder / "whisper.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")


def install_second_pass(bundle: Path, check_audio: list[str] | None = None, if_needed: bool = False) -> dict[str, Any] | None:
    """Export into `bundle/whisper` and add the `second_pass` entry to bundle.json (keeping its
    options when it has one). The entry pins the source's sha256: a different installed file is
    refused. With if_needed, an export of the same source already in place is kept (returns None)."""
    from runtime.audio import load_audio

    manifest_path = bundle / "bundle.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{bundle}: not a model bundle (no bundle.json)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    entry = manifest.get("second_pass") or {"dir": "whisper", "enabled": True}
    src_sha = sha256(package_dir() / "model.bin")
    if entry.get("source_sha256") and entry["source_sha256"] != src_sha:
        raise ValueError(f"{manifest_path} pins Whisper's model.bin at sha256 {entry['source_sha256'][:12]}..., the installed "
                         f"{PACKAGE} has {src_sha[:12]}...: install {PACKAGE}=={PACKAGE_VERSION}")
    out = bundle / entry["dir"]
    if if_needed and (out / "whisper.json").is_file():
        have = json.loads((out / "whisper.json").read_text(encoding="utf-8"))
        if have.get("source", {}).get("sha256") == src_sha and have.get("schema_version") == SCHEMA and \
                all((out / f).is_file() for f in have.get("files", {}).values()):
            return None
    paths = check_audio if check_audio else sorted(str(p) for p in (bundle / "examples").glob("*.wav"))
    clips = [load_audio(p) for p in paths]
    summary = export_whisper(out, clips)
    manifest["second_pass"] = {**entry, "source_sha256": src_sha}
    # partials read by the same decoder over Whisper's encoder (runtime/partials.py), unless the bundle says otherwise
    manifest.setdefault("partials", {"reader": "whisper", "enabled": True, "chunk_ms": 160, "update_chunks": 3,
                                     "first_update_chunks": 2, "agreement": 2, "min_prob": 0.3})
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return summary


def _log_softmax(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))
