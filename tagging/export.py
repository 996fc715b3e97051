"""`heed export tagger`: the tagger as up to three ONNX graphs, fp32 and int8, checked against torch.

Graphs (N is the batch, 1 in the runtime; every size is read back from tagger.json):

- token.onnx: `word_ids` (N, T) int64, `char_ids` (N, T, C) int64 -> `token` (N, T, token_dim).
  T and C dynamic. A word's vector depends on that word alone.
- uni_step.onnx (hybrid, uni): `token` (N, token_dim), `h`, `c` (n_uni_layers, N, uni_dim) ->
  `u` (N, uni_dim), `next_h`, `next_c`, `slot_logits` (N, n_slots), `intent_logits` (N, n_intents)
  and, for a hybrid, `arm_logit` (N,). The unidirectional heads and the ARM ride in the step so
  that a new token costs one call.
- bi.onnx (hybrid, bi): `bi_input` (N, T, d) -> `slot_logits` (N, T, n_slots), `intent_logits`
  (N, n_intents), T dynamic; `bi_input` is the unidirectional outputs `u` of the prefix (hybrid)
  or its token vectors (bi).

The folder also holds words.txt, chars.txt, slots.txt, intents.txt (one symbol a line; line k is
id k) and tagger.json: schema_version, kind, model config, file names per precision, state
names and shape, the restart policy (ARM threshold, every-k, final restart), the tag decoding
(`decode`: "bio", labels kept valid BIO; runtime/tagger.py), the checkpoint's
dev and ARM figures, and the parity figures. Each graph also carries schema_version and the
model config as ONNX metadata.

Parity: ten or more real tokens go through torch and onnxruntime side by side (onnxruntime fed
its own state), the bidirectional pass over every prefix; `ExportMismatch` beyond the precision's
`ParityBounds`: every output within `FP32_TOLERANCE` for fp32; for int8 (dynamic quantization of
MatMul, Gemm and LSTM weights), which changes the numbers on purpose, each logit output within a
share of its spread and the slot labels agreeing with torch's (`label_agreement`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from asr.export import add_metadata, quantize_int8
from tagging.data import Example, Tables, encode
from runtime.tagger import ARM_OUTPUT, BI_OUTPUTS, TOKEN_OUTPUTS, UNI_STEP_OUTPUTS, TaggerState
from tagging.model import Tagger

SCHEMA_VERSION = 1
FP32_TOLERANCE = 1e-4
LOGITS = ("uni_slot", "uni_intent", "arm", "bi_slot", "bi_intent")


@dataclass(frozen=True)
class ParityBounds:
    """How far onnxruntime may be from torch on the check examples.

    max_abs: every output; None leaves them unbounded.
    max_logit_rel: each logit output's largest difference over the standard deviation of torch's.
    min_label_agreement: the share of slot labels (argmax) on which both agree.
    """

    max_abs: float | None
    max_logit_rel: float
    min_label_agreement: float


# int8: the shipped tagger's logits move by 0.10-0.14 of their spread and agree on 99.5% of the
# labels; a broken graph moves them by their whole spread (tests/tagging/test_export.py).
BOUNDS = {"fp32": ParityBounds(FP32_TOLERANCE, 1e-3, 0.95), "int8": ParityBounds(None, 0.3, 0.95)}
PARTS = {"hybrid": ("token", "uni_step", "bi"), "bi": ("token", "bi"), "uni": ("token", "uni_step")}


class ExportMismatch(RuntimeError):
    """onnxruntime disagrees with torch on an exported graph."""


class _Token(nn.Module):
    def __init__(self, model: Tagger) -> None:
        super().__init__()
        self.tokens = model.tokens

    def forward(self, word_ids, char_ids):
        return self.tokens(word_ids, char_ids)


class _UniStep(nn.Module):
    def __init__(self, model: Tagger) -> None:
        super().__init__()
        self.model = model

    def forward(self, token, h, c):
        u, state = self.model.step(token, TaggerState(h, c))
        slot, intent = self.model.uni_heads(u)
        outs = (u, state.h, state.c, slot, intent)
        if self.model.cfg.kind == "hybrid":
            outs += (self.model.arm_logit(u, slot),)
        return outs


class _Bi(nn.Module):
    def __init__(self, model: Tagger) -> None:
        super().__init__()
        self.model = model

    def forward(self, bi_input):
        return self.model.bi_forward(bi_input)


def _uni_outputs(model: Tagger) -> list[str]:
    """uni_step's output names: a hybrid's step also gives the ARM's restart logit."""
    return [*UNI_STEP_OUTPUTS, *([ARM_OUTPUT] if model.cfg.kind == "hybrid" else [])]


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str], dynamic: dict) -> None:
    import warnings

    # A fresh wrapper is in training mode, and the exporter restores that mode recursively after
    # tracing, which would switch the model's dropout on for the parity check that follows.
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the LSTM-with-batch_first export warnings are about batch > 1 states
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
                          opset_version=17, dynamo=False)


def _sessions(out: Path, kind: str, suffix: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return {p: ort.InferenceSession(str(out / f"{p}{suffix}.onnx"), opts, providers=["CPUExecutionProvider"])
            for p in PARTS[kind]}


def check_parity(model: Tagger, tables: Tables, examples: Sequence[Example], out: Path, suffix: str = "",
                 bounds: ParityBounds | None = None) -> dict[str, float]:
    """Run `examples` (at least ten tokens in all) through torch and onnxruntime; raise beyond
    `bounds` (the precision's: `BOUNDS["int8"]` for suffix ".int8", else `BOUNDS["fp32"]`).

    Returns the largest absolute differences per output, `<output>_rel` for the logit outputs
    (over the standard deviation of torch's) and `label_agreement`, the share of slot labels
    (every prefix's bidirectional labels and every unidirectional label) on which both agree.
    """
    bounds = bounds or BOUNDS["int8" if suffix == ".int8" else "fp32"]
    kind = model.cfg.kind
    if sum(len(e.words) for e in examples) < 10:
        raise ValueError("the parity check needs at least ten tokens")
    sess = _sessions(out, kind, suffix)
    worst: dict[str, float] = {}
    seen: dict[str, list[np.ndarray]] = {}  # torch's logits, for their spread
    agree = total = 0

    def diff(name: str, a: torch.Tensor, b: np.ndarray) -> None:
        worst[name] = max(worst.get(name, 0.0), float(np.abs(a.numpy() - b).max()))
        if name in LOGITS:
            seen.setdefault(name, []).append(a.numpy().ravel())

    with torch.no_grad():
        for e in examples:
            b = encode(tables, [e])
            t_tok = model.tokens(torch.from_numpy(b.word_ids), torch.from_numpy(b.char_ids))
            (o_tok,) = sess["token"].run(list(TOKEN_OUTPUTS), {"word_ids": b.word_ids, "char_ids": b.char_ids})
            diff("token", t_tok, o_tok)
            bi_in_t, bi_in_o = t_tok[0], o_tok[0]
            if "uni_step" in sess:
                state = model.init_state(1)
                h, c = state.h.numpy(), state.c.numpy()
                us_t, us_o = [], []
                for t in range(len(e.words)):
                    t_outs = _UniStep(model)(t_tok[:, t], *state)
                    o_outs = sess["uni_step"].run(_uni_outputs(model), {"token": o_tok[:, t], "h": h, "c": c})
                    for name, a, o in zip(("u", "h", "c", "uni_slot", "uni_intent", "arm"), t_outs, o_outs):
                        diff(name, a, o)
                    agree += int(t_outs[3].argmax(-1) == o_outs[3].argmax(-1))
                    total += 1
                    state, (h, c) = type(state)(t_outs[1], t_outs[2]), (o_outs[1], o_outs[2])
                    us_t.append(t_outs[0][0])
                    us_o.append(o_outs[0][0])
                bi_in_t, bi_in_o = torch.stack(us_t), np.stack(us_o)
            if "bi" in sess:
                for t in range(1, len(e.words) + 1):
                    t_slot, t_int = model.bi_forward(bi_in_t[None, :t])
                    o_slot, o_int = sess["bi"].run(list(BI_OUTPUTS), {"bi_input": bi_in_o[None, :t]})
                    diff("bi_slot", t_slot, o_slot)
                    diff("bi_intent", t_int, o_int)
                    agree += int((t_slot.argmax(-1).numpy() == o_slot.argmax(-1)).sum())
                    total += t
    rel = {f"{k}_rel": worst[k] / max(float(np.std(np.concatenate(v))), 1e-6) for k, v in seen.items()}
    figures = worst | rel | {"label_agreement": agree / total}
    bad = [f"{k} by {v:.2e}" for k, v in worst.items() if bounds.max_abs is not None and v > bounds.max_abs]
    bad += [f"{k[:-4]} by {v:.2f} of its spread (bound {bounds.max_logit_rel})"
            for k, v in rel.items() if v > bounds.max_logit_rel]
    if figures["label_agreement"] < bounds.min_label_agreement:
        bad.append(f"labels agree on {figures['label_agreement']:.1%} (bound {bounds.min_label_agreement:.0%})")
    if bad:
        bound = "" if bounds.max_abs is None else f" (tolerance {bounds.max_abs:.0e})"
        raise ExportMismatch(f"onnxruntime{suffix or ' fp32'} differs from torch: " + ", ".join(bad) + bound)
    return figures


def parity_examples(tables: Tables, n: int = 12, seed: int = 0) -> list[Example]:
    """Sentences of random table words (and one unseen word) for the parity check: any words do,
    what matters is that every graph sees ten or more real tokens and several lengths."""
    import random

    rng = random.Random(seed)
    vocab = list(tables.words[2:]) or ["a"]
    out = []
    for i in range(n):
        words = [rng.choice(vocab) for _ in range(rng.randint(3, 15))]
        if i == 0:
            words[1] = "qzxwvj"  # not in the table: <unk> plus its letters
        out.append(Example(tuple(words), ("O",) * len(words)))
    return out


def _write_lines(path: Path, items: Sequence[str]) -> None:
    for s in items:
        if "\n" in s or s == "":
            raise ValueError(f"symbol {s!r} cannot be written one per line")
    path.write_text("\n".join(items) + "\n", encoding="utf-8")


def export_tagger(model: Tagger, tables: Tables, out_dir: str | Path, check_examples: Sequence[Example],
                  ckpt: dict[str, Any] | None = None, int8: bool = True) -> dict[str, Any]:
    """Write the graphs, symbol tables and tagger.json to out_dir; returns tagger.json's content.

    check_examples: real utterances for the parity check (ten or more tokens in all).
    Raises ExportMismatch when onnxruntime (fp32 or int8) differs from torch beyond `BOUNDS`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cfg = model.cfg
    parts = PARTS[cfg.kind]
    b = encode(tables, list(check_examples[:1]))
    with torch.no_grad():
        tok = model.tokens(torch.from_numpy(b.word_ids), torch.from_numpy(b.char_ids))
        _export(_Token(model), (torch.from_numpy(b.word_ids), torch.from_numpy(b.char_ids)), out / "token.onnx",
                ["word_ids", "char_ids"], list(TOKEN_OUTPUTS),
                {"word_ids": {0: "N", 1: "T"}, "char_ids": {0: "N", 1: "T", 2: "C"}, "token": {0: "N", 1: "T"}})
        bi_input = tok
        if "uni_step" in parts:
            st = model.init_state(1)
            names = _uni_outputs(model)
            _export(_UniStep(model), (tok[:, 0], *st), out / "uni_step.onnx", ["token", *TaggerState._fields], names,
                    {"token": {0: "N"}, "h": {1: "N"}, "c": {1: "N"}, **{n: {0: "N"} for n in names if n not in ("next_h", "next_c")},
                     "next_h": {1: "N"}, "next_c": {1: "N"}})
            bi_input = model.uni_forward(tok)
        if "bi" in parts:
            _export(_Bi(model), (bi_input,), out / "bi.onnx", ["bi_input"], list(BI_OUTPUTS),
                    {"bi_input": {0: "N", 1: "T"}, "slot_logits": {0: "N", 1: "T"}, "intent_logits": {0: "N"}})
    meta = {"schema_version": str(SCHEMA_VERSION), "model_config": json.dumps(cfg.to_dict()), "kind": cfg.kind}
    for p in parts:
        add_metadata(out / f"{p}.onnx", meta)
    parity = {"fp32": check_parity(model, tables, check_examples, out)}
    files = {"fp32": {p: f"{p}.onnx" for p in parts}}
    if int8:
        for p in parts:
            quantize_int8(out / f"{p}.onnx", out / f"{p}.int8.onnx", ("MatMul", "Gemm", "LSTM"))
            add_metadata(out / f"{p}.int8.onnx", meta)
        parity["int8"] = check_parity(model, tables, check_examples, out, ".int8")
        files["int8"] = {p: f"{p}.int8.onnx" for p in parts}
    for name in ("words", "chars", "slots", "intents"):
        _write_lines(out / f"{name}.txt", getattr(tables, name))
    arm = (ckpt or {}).get("arm")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": cfg.kind,
        "model_config": cfg.to_dict(),
        "files": files,
        "tables": {name: f"{name}.txt" for name in ("words", "chars", "slots", "intents")},
        "max_word_chars": tables.max_word_chars,
        "state": {"names": list(TaggerState._fields), "shape": [cfg.n_uni_layers, cfg.uni_dim]} if "uni_step" in parts else None,
        "policy": {"restart": {"hybrid": "arm", "bi": "every", "uni": "never"}[cfg.kind],
                   "arm_threshold": arm["threshold"] if arm else None, "every_k": 4, "final_restart": "bi" in parts},
        # runtime.tagger keeps labels valid BIO (Viterbi on restarts): +0.7 slot F1 on ATIS test
        "decode": "bio",
        "dev": (ckpt or {}).get("dev"),
        "arm": arm,
        "n_params": model.n_params(),
        "parity": parity,
        "bytes": {},
    }
    manifest["bytes"] = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.suffix == ".onnx"}
    (out / "tagger.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
