"""`heed export iqd`: the E2E detector as a one-frame ONNX step with explicit state, fp32 and int8.

Graph `iqd.onnx` (N is the batch, 1 in the runtime):
  `encoder_out` (N, enc_dim) float, `tokens` (N, K) int64 (emitted at this frame, 0 = none),
  `token_state` (1, N, token_hidden), `frame_state` (1, N, frame_hidden)
  -> `probability` (N,), `next_token_state`, `next_frame_state`.
`iqd.int8.onnx`: the same with int8 weights in its matrix products (onnxruntime dynamic
quantization of MatMul/Gemm; the GRUs stay fp32, onnxruntime has no int8 GRU).

`text.npz` (when the checkpoint reads its label history as text too, `iqd/fusion.py`): the text
classifier's weights and bias; iqd.json's `text` entry names it with the fusion weight, and the
export checks the runtime's numpy scorer against torch's EmbeddingBag on the check texts.

An `IqEnsemble` (several joint networks of other seeds, `iqd/fusion.py`) exports as one graph with
the same inputs and outputs, its states the members' concatenated; iqd.json's `ensemble` says how
many members.

iqd.json: schema_version, kind, files per precision, sizes (enc_dim, vocab_size, n_token_slots),
state names and shapes, the decision policy and theta chosen on dev, frame_s, the dev figures,
the parity figures. The export feeds `check_frames` frames (real encoder frames from a cache
when given, else random ones, with tokens on about a third of them) through torch and
onnxruntime, each fed its own state, and raises `ExportMismatch` beyond tolerance.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asr.export import add_metadata, quantize_int8
from iqd.cache import frame_seconds
from iqd.model import N_TOKEN_SLOTS, IqEnsemble, IqJoint
from runtime.iqd import IQD_INPUTS, IQD_OUTPUTS, IqdState
from runtime.iqd_policy import DecisionPolicy

SCHEMA_VERSION = 1
FP32_TOLERANCE = 1e-4
INT8_TOLERANCE = 0.1  # on the probability: int8 moves the numbers, it must not move the decision much


class ExportMismatch(RuntimeError):
    """onnxruntime disagrees with torch on the exported graph."""


class _Step(nn.Module):
    def __init__(self, model: IqJoint | IqEnsemble) -> None:
        super().__init__()
        self.model = model

    def forward(self, encoder_out, tokens, token_state, frame_state):
        p, state = self.model.step(encoder_out, tokens, IqdState(token_state, frame_state))
        return p, state.token_state, state.frame_state


def check_frames_input(model: IqJoint | IqEnsemble, n_frames: int, enc: np.ndarray | None = None,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n_frames, enc_dim) encoder frames and (n_frames, K) tokens for the parity check."""
    cfg = model.cfg
    rng = np.random.default_rng(seed)
    if enc is None or len(enc) < n_frames:
        enc = rng.normal(size=(n_frames, cfg.enc_dim)).astype(np.float32)
    k = N_TOKEN_SLOTS
    tokens = np.zeros((n_frames, k), np.int64)
    for t in range(n_frames):
        n = rng.choice([0, 0, 1, 1, 2, 3]) if rng.random() < 0.4 else 0
        tokens[t, :n] = rng.integers(1, cfg.vocab_size, n)
    return np.ascontiguousarray(enc[:n_frames], np.float32), tokens


def check_parity(model: IqJoint | IqEnsemble, onnx_path: Path, enc: np.ndarray, tokens: np.ndarray, tolerance: float) -> dict[str, float]:
    """Step torch and onnxruntime over the frames, each on its own state; raise beyond tolerance."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    state = model.init_state(1)
    o_state = IqdState(*(s.numpy() for s in state))
    worst = {"probability": 0.0, "token_state": 0.0, "frame_state": 0.0}
    with torch.no_grad():
        for t in range(len(enc)):
            p, state = model.step(torch.from_numpy(enc[t : t + 1]), torch.from_numpy(tokens[t : t + 1]), state)
            o_p, o_tok, o_frame = sess.run(list(IQD_OUTPUTS), {"encoder_out": enc[t : t + 1], "tokens": tokens[t : t + 1],
                                                               **o_state._asdict()})
            o_state = IqdState(o_tok, o_frame)
            for name, a, b in (("probability", p, o_p), ("token_state", state.token_state, o_tok),
                               ("frame_state", state.frame_state, o_frame)):
                worst[name] = max(worst[name], float(np.abs(a.numpy() - b).max()))
    if worst["probability"] > tolerance or (tolerance < 1e-2 and max(worst.values()) > tolerance):
        raise ExportMismatch(f"{onnx_path.name}: onnxruntime differs from torch over {len(enc)} frames: "
                             + ", ".join(f"{k} by {v:.2e}" for k, v in worst.items()) + f" (tolerance {tolerance:.0e})")
    return worst


def export_iqd(model: IqJoint | IqEnsemble, ckpt: dict[str, Any], out_dir: str | Path, int8: bool = True, check_frames: int = 200,
               check_enc: np.ndarray | None = None, student: str | Path | None = None,
               mel_filters: str | Path | None = None, transducer_dim: int = 0) -> dict[str, Any]:
    """Write iqd.onnx (and iqd.int8.onnx) and iqd.json to out_dir; returns iqd.json's content.

    student: for a detector trained on the student's states (its cache's meta.json names the
    `heed export student` folder), that folder's int8 step graph and student.json are copied to
    OUT/student with Whisper's mel filters (`mel_filters`), iqd.json gets `encoder: {"kind":
    "student", "dir": "student"}`, and the folder is loaded back by the runtime's IqdModel.
    transducer_dim > 0: the detector reads the transducer's frames and the student's side by side
    (a cache made by `iqd.cache.join_caches`), the transducer's first."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cfg = model.cfg
    st = model.init_state(1)
    args = (torch.zeros(1, cfg.enc_dim), torch.zeros(1, N_TOKEN_SLOTS, dtype=torch.long), st.token_state, st.frame_state)
    with torch.no_grad():
        torch.onnx.export(_Step(model), args, str(out / "iqd.onnx"),
                          input_names=list(IQD_INPUTS), output_names=list(IQD_OUTPUTS),
                          dynamic_axes={"encoder_out": {0: "N"}, "tokens": {0: "N"}, "token_state": {1: "N"},
                                        "frame_state": {1: "N"}, "probability": {0: "N"},
                                        "next_token_state": {1: "N"}, "next_frame_state": {1: "N"}},
                          opset_version=17, dynamo=False)
    meta = {"schema_version": str(SCHEMA_VERSION), "model_config": json.dumps(cfg.to_dict()), "kind": "e2e"}
    if isinstance(model, IqEnsemble):
        meta["ensemble"] = json.dumps([m.cfg.to_dict() for m in model.members])
    add_metadata(out / "iqd.onnx", meta)
    enc, tokens = check_frames_input(model, check_frames, check_enc)
    parity = {"fp32": check_parity(model, out / "iqd.onnx", enc, tokens, FP32_TOLERANCE), "n_frames": check_frames}
    files = {"fp32": "iqd.onnx"}
    if int8:
        quantize_int8(out / "iqd.onnx", out / "iqd.int8.onnx")
        add_metadata(out / "iqd.int8.onnx", meta)
        parity["int8"] = check_parity(model, out / "iqd.int8.onnx", enc, tokens, INT8_TOLERANCE)
        files["int8"] = "iqd.int8.onnx"
    text_entry = export_text(ckpt, out) if ckpt.get("text") else None
    if text_entry is not None:
        parity["text_logit"] = text_entry.pop("parity")
    manifest = {
        "schema_version": SCHEMA_VERSION, "kind": "e2e", "files": files, **({"text": text_entry} if text_entry else {}),
        "enc_dim": cfg.enc_dim,
        "vocab_size": cfg.vocab_size, "n_token_slots": N_TOKEN_SLOTS,
        "state": {name: list(s.shape) for name, s in st._asdict().items()},
        **({"ensemble": len(model.members)} if isinstance(model, IqEnsemble) else {}),
        # every decision setting, the speech-onset gate's defaults included for checkpoints saved before it
        "policy": DecisionPolicy.from_dict(ckpt["policy"]).to_dict(), "theta": ckpt.get("theta"), "frame_s": ckpt.get("frame_s", frame_seconds()),
        "dev": ckpt.get("dev"), "n_params": model.n_params(), "parity": parity,
        "bytes": {f: (out / f).stat().st_size for f in [*files.values(), *([text_entry["file"]] if text_entry else [])]},
        "asr": ckpt.get("train_config", {}).get("asr"),
    }
    if student is not None:
        manifest["encoder"] = export_student_copy(Path(student), Path(mel_filters) if mel_filters else None, out,
                                                  cfg.enc_dim - transducer_dim)
        if transducer_dim:
            manifest["encoder"].update(with_transducer=True, transducer_dim=transducer_dim)
    (out / "iqd.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if student is not None:  # the runtime opens it: graph, metadata, filters and widths agree
        from runtime.iqd import IqdModel

        IqdModel(out, "int8" if int8 else "fp32")
    return manifest


def export_student_copy(student: Path, mel_filters: Path | None, out: Path, enc_dim: int) -> dict[str, Any]:
    """The student's int8 step graph, its student.json (listing only that graph) and the mel
    filters under OUT/student; returns iqd.json's `encoder` entry."""
    import shutil

    meta_path = student / "student.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} missing: the detector was trained on a student's states; export it "
                                "with heed export student")
    meta = json.loads(meta_path.read_text())
    if int(meta["n_state"]) != enc_dim:
        raise ExportMismatch(f"{student}: the student gives {meta['n_state']}-wide states, the detector reads {enc_dim}")
    if mel_filters is None or not mel_filters.is_file():
        raise FileNotFoundError(f"{mel_filters}: Whisper's mel filters are needed beside the student (--mel-filters)")
    dest = out / "student"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    graph = meta["files"]["int8"]
    shutil.copy(student / graph, dest / graph)
    shutil.copy(mel_filters, dest / "mel_filters.npy")
    meta["files"] = {"int8": graph}
    (dest / "student.json").write_text(json.dumps(meta, indent=1) + "\n")
    return {"kind": "student", "dir": "student", "from": str(student), "bytes": (dest / graph).stat().st_size}


CHECK_TEXTS = ("", "set an alarm for seven", "hey tom play that song again", "what a lovely day it is",
               "show me flights from boston to denver", "qzx", "turn the", "i think that")


def export_text(ckpt: dict[str, Any], out: Path) -> dict[str, Any]:
    """Write text.npz; returns iqd.json's `text` entry with the parity of the numpy scorer (as
    loaded back from the file) against torch's EmbeddingBag over CHECK_TEXTS."""
    from runtime.iqd_text import HistoryText, text_features

    t = ckpt["text"]
    weights = np.asarray(t["weights"], np.float32)
    HistoryText(weights, float(t["bias"]), float(t["weight"])).save(out / "text.npz")
    loaded = HistoryText.from_file(out / "text.npz", float(t["weight"]))
    bag = nn.EmbeddingBag.from_pretrained(torch.from_numpy(weights)[:, None], mode="sum")
    worst = 0.0
    for text in CHECK_TEXTS:
        ref = float(bag(torch.tensor([text_features(text, len(weights))]))[0, 0]) + float(t["bias"]) if text else 0.0
        worst = max(worst, abs(loaded.logit(text) - ref))
    if worst > FP32_TOLERANCE * 10:
        raise ExportMismatch(f"text.npz: the numpy scorer differs from torch by {worst:.2e}")
    return {"file": "text.npz", "weight": float(t["weight"]), "n_hash": len(weights), "from": "onset",
            "reads": t.get("reads", "pieces"), "cascade": t.get("cascade"), "parity": worst}
