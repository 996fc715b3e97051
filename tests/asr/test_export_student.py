"""The student's streaming-step graph (asr/export_student.py): onnxruntime step by step equals torch
from an empty cache, the metadata describes the graph, the self-check fails on a corrupted graph,
and the export is deterministic. A small random student and teacher keep it to seconds."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from asr.distill import DistillConfig, load_student
from asr.export_student import (BOUNDS, FILES, ExportError, ExportMismatch, check_audio, check_mels, check_parity,
                                export_student, io_names)
from asr.student import Student, StudentConfig
from asr.whisper import Whisper, WhisperDims, sha256
from tests.conftest import scramble_largest_weight

DIMS = WhisperDims(n_state=64, n_head=2, n_audio_layer=2, n_text_layer=2, n_vocab=10, n_audio_ctx=64)


def tiny_teacher() -> Whisper:
    torch.manual_seed(0)
    whisper = Whisper(DIMS)
    with torch.no_grad():
        whisper.audio_pos.copy_(torch.randn_like(whisper.audio_pos))
    return whisper.eval()


def save_checkpoint(path: Path, cfg: StudentConfig) -> Path:
    """A checkpoint as asr/distill.py writes it, of a student from the tiny teacher with its
    weights moved off the teacher's (so that nothing is symmetric by accident)."""
    student = Student.from_whisper(tiny_teacher(), cfg)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    train = dataclasses.replace(DistillConfig(), model=cfg).to_dict()
    torch.save({"train_config": train, "dims": dataclasses.asdict(DIMS), "model": student.state_dict(), "step": 0}, path)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("student")
    ckpt = save_checkpoint(root / "best.pt", StudentConfig(chunk_frames=4))
    summary = export_student(ckpt, root / "onnx", whisper=tiny_teacher())
    return ckpt, root / "onnx", summary


def session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def test_export_writes_checked_graphs_and_metadata(exported) -> None:
    ckpt, out, summary = exported
    assert sorted(p.name for p in out.iterdir()) == ["student.int8.onnx", "student.json", "student.onnx"]
    meta = json.loads((out / "student.json").read_text())
    assert meta["schema_version"] == 1 and meta["files"] == FILES
    assert meta["checkpoint"]["sha256"] == sha256(ckpt)
    assert (meta["chunk_frames"], meta["left_chunks"], meta["mel_max_init"]) == (4, -1, -1.0)
    assert (meta["n_audio_ctx"], meta["n_mels"], meta["n_text_layer"]) == (64, 80, 2)
    assert meta["features"]["sample_rate"] == 16000 and meta["features"]["hop"] == 160
    inputs, outputs = io_names(2)
    assert meta["inputs"] == inputs == ["mel", "mel_max", "mel_cache", "conv_cache", "key_cache", "value_cache", "offset"]
    assert meta["outputs"] == outputs and outputs[:5] == ["cross_k_0", "cross_v_0", "cross_k_1", "cross_v_1", "states"]
    for name in FILES.values():
        graph = onnx.load(str(out / name))
        assert [i.name for i in graph.graph.input] == inputs and [o.name for o in graph.graph.output] == outputs
    fp32, int8 = meta["parity"]["fp32"], meta["parity"]["int8"]
    assert fp32["n_chunks"] >= 10 and fp32["cross_largest"] > 0.5
    assert max(fp32["cross_max_abs"], fp32["states_max_abs"], fp32["next_state_max_abs"]) <= BOUNDS["fp32"].max_abs
    assert 0 < int8["cross_rel"] <= BOUNDS["int8"].max_rel and int8["states_rel"] <= BOUNDS["int8"].max_rel
    assert summary["bytes"]["student.int8.onnx"] < summary["bytes"]["student.onnx"]


def stream(sess: ort.InferenceSession, mel: torch.Tensor, sizes: list[int], state: dict) -> list[dict]:
    """onnxruntime step by step over mel in chunks of `sizes` mel frames, carrying its state."""
    inputs, outputs = io_names(2)
    got, i = [], 0
    for n in sizes:
        res = dict(zip(outputs, sess.run(None, {"mel": mel[..., i : i + n].numpy(), **state})))
        got.append(res)
        state = {f: res[f"next_{f}"] for f in inputs[1:]}
        i += n
    assert i == mel.shape[-1]
    return got


def test_onnx_steps_equal_torch_from_an_empty_cache(exported) -> None:
    """From P = 0 (empty caches), chunks of every even length up to the chunk: each step equals
    torch's Student.step; whole chunks and a last shorter one concatenate to the cross keys/values
    of torch's whole segment under the chunk mask."""
    ckpt, out, _ = exported
    student, teacher = load_student(ckpt), tiny_teacher()
    sess = session(out / "student.onnx")
    inputs, _ = io_names(2)
    mel = check_mels(student, [check_audio(1.2, seed=5)])[0]
    assert mel.shape[-1] == 118  # 14 whole chunks of 8 mel frames and one of 6
    empty = dict(zip(inputs[1:], (t.numpy() for t in student.init_state(1))))
    assert empty["key_cache"].shape == (2, 1, 0, 64)
    sizes = [2, 4, 6, 8, 8, 4] + [8] * 10 + [6]
    state = student.init_state(1)
    i = 0
    for n, res in zip(sizes, stream(sess, mel, sizes, empty)):
        with torch.no_grad():
            states, state = student.step(mel[..., i : i + n], state)
            cross = teacher.cross_kv(states)
        i += n
        assert res["states"].shape == (1, n // 2, 64) and res["cross_k_0"].shape == (1, 2, 32, n // 2)
        assert res["next_key_cache"].shape == (2, 1, i // 2, 64) and int(res["next_offset"][0]) == i // 2
        for layer, kv in enumerate(cross):
            assert np.abs(res[f"cross_k_{layer}"] - kv.k.numpy()).max() < 1e-4
            assert np.abs(res[f"cross_v_{layer}"] - kv.v.numpy()).max() < 1e-4
    with torch.no_grad():
        whole = teacher.cross_kv(student(mel))
    got = stream(sess, mel, [8] * 14 + [6], empty)
    for layer, kv in enumerate(whole):
        k = np.concatenate([r[f"cross_k_{layer}"] for r in got], axis=3)
        v = np.concatenate([r[f"cross_v_{layer}"] for r in got], axis=2)
        assert k.shape == kv.k.shape == (1, 2, 32, 59)
        assert np.abs(k - kv.k.numpy()).max() < 1e-4 and np.abs(v - kv.v.numpy()).max() < 1e-4


def test_a_limited_left_context_trims_the_cache(tmp_path: Path) -> None:
    """left_chunks = 2: the traced trim keeps min(P + n / 2, 8) frames, as Student.step does."""
    ckpt = save_checkpoint(tmp_path / "best.pt", StudentConfig(chunk_frames=4, left_chunks=2))
    summary = export_student(ckpt, tmp_path / "onnx", ("fp32",), whisper=tiny_teacher())
    assert summary["parity"]["fp32"]["cross_max_abs"] <= BOUNDS["fp32"].max_abs and summary["left_frames"] == 8
    student, inputs = load_student(ckpt), io_names(2)[0]
    empty = dict(zip(inputs[1:], (t.numpy() for t in student.init_state(1))))
    mel = check_mels(student, [check_audio(0.5)])[0][..., :42]
    got = stream(session(tmp_path / "onnx" / "student.onnx"), mel, [6] * 7, empty)  # 3 encoder frames a step
    assert [r["next_key_cache"].shape[2] for r in got] == [3, 6, 8, 8, 8, 8, 8]


def test_the_check_fails_on_a_corrupted_graph(exported, tmp_path: Path) -> None:
    ckpt, out, _ = exported
    student, teacher = load_student(ckpt), tiny_teacher()
    mels = check_mels(student, [check_audio()])
    for precision in ("fp32", "int8"):
        broken = tmp_path / FILES[precision]
        shutil.copy(out / FILES[precision], broken)
        check_parity(student, teacher, broken, mels, BOUNDS[precision])  # the copy passes
        scramble_largest_weight(broken)
        with pytest.raises(ExportMismatch, match="differs from torch"):
            check_parity(student, teacher, broken, mels, BOUNDS[precision])


def test_export_is_deterministic_and_refuses_what_it_cannot_make(exported, tmp_path: Path) -> None:
    ckpt, out, _ = exported
    again = export_student(ckpt, tmp_path / "again", whisper=tiny_teacher())
    for name in (*FILES.values(), "student.json"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    assert again["files"] == FILES
    with pytest.raises(ExportError, match="precisions"):
        export_student(ckpt, tmp_path / "x", ("fp16",), whisper=tiny_teacher())
    other = Whisper(dataclasses.replace(DIMS, n_state=16))
    with pytest.raises(ExportError, match="n_state 64"):
        export_student(ckpt, tmp_path / "x", whisper=other)
    assert not (tmp_path / "x").exists()


def test_cli_refuses_a_missing_checkpoint_and_unknown_precisions(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from runtime.cli import main

    assert main(["export", "student", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "o")]) == 1
    assert "no such checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", "student", "--checkpoint", "x.pt", "--out", "o", "--precision", "fp32,fp16"])
    assert "comma-separated list of fp32, int8" in capsys.readouterr().err
