"""The IQD on the student's states in the runtime (runtime/iqd.py with iqd.json's `encoder`): the
stream reads, for each of the transducer's chunks, the student's frames of the same audio, exactly
the frames a cache holds (`StudentFrames.whole`, `fit_frames`), whatever the audio's piece size;
and the export refuses a student of the wrong width or without its filters."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from iqd.export import ExportMismatch, export_iqd, export_student_copy
from iqd.model import IqdConfig, IqJoint
from runtime.asr import ChunkResult
from runtime.iqd import IqdModel, IqdStream
from runtime.iqd_policy import DecisionPolicy
from runtime.student_frames import StudentFrames, fit_frames
from tests.conftest import STUDENT_META, PositionStudent, student_folder

@pytest.fixture
def student_iqd(tmp_path: Path) -> IqdModel:
    """A random joint network over 8-wide frames, exported; then given a stand-in student graph."""
    torch.manual_seed(0)
    model = IqJoint(IqdConfig(enc_dim=8, vocab_size=30))
    ckpt = {"policy": DecisionPolicy().to_dict(), "theta": 0.5}
    export_iqd(model, ckpt, tmp_path / "iqd", int8=False, check_frames=20)
    iqd = IqdModel(tmp_path / "iqd", "fp32")
    folder = student_folder(tmp_path / "iqd" / "student")
    np.save(folder / "mel_filters.npy", np.abs(np.random.default_rng(0).normal(size=(80, 201))))
    iqd._load_student(tmp_path / "iqd" / "iqd.json", folder, 1, session=PositionStudent())
    return iqd


@pytest.mark.parametrize("piece", [320, 1600, 7777])
def test_the_stream_reads_the_students_frames_of_its_chunks(student_iqd: IqdModel, piece: int) -> None:
    x = np.random.default_rng(2).normal(scale=0.1, size=16000 * 2 + 300).astype(np.float32)
    n_frames = len(x) // 640
    frames = fit_frames(StudentFrames(student_iqd.student, student_iqd.mel_filters).whole(x), n_frames)
    state, want = student_iqd.init_state(), []
    for t in range(n_frames):
        p, state = student_iqd.step(frames[t], [], state)
        want.append(p)
    stream = IqdStream(student_iqd, 0.04, DecisionPolicy(onset_min_ms=0.0))
    assert stream.hears_audio
    got, fed, done = [], 0, 0
    while done < n_frames:
        if fed < len(x):  # audio arrives in pieces; a chunk of 8 frames is decoded once its audio is in
            stream.accept_audio(x[fed : fed + piece])
            fed += piece
        if fed >= len(x) and fed != -1:
            stream.finish_audio()
            fed = -1 if fed >= len(x) else fed
        ready = n_frames if fed == -1 else min(n_frames, (fed - 350) // 640 // 8 * 8)
        while done + 8 <= ready or (fed == -1 and done < ready):
            n = min(8, n_frames - done)
            stream.accept(ChunkResult(np.zeros((n, 256), np.float32), done, None, ((),) * n, False))
            got.append(stream.probability)
            done += n
        if fed == -1:
            break
    assert done == n_frames
    np.testing.assert_allclose(got[-1], want[-1], rtol=1e-5)
    np.testing.assert_allclose(got, [want[min(i * 8 + 7, n_frames - 1)] for i in range(len(got))], rtol=1e-5)


def test_a_transducer_detector_needs_no_audio(tmp_path: Path) -> None:
    model = IqJoint(IqdConfig(enc_dim=8, vocab_size=30))
    export_iqd(model, {"policy": DecisionPolicy().to_dict(), "theta": 0.5}, tmp_path / "iqd", int8=False, check_frames=20)
    stream = IqdStream(IqdModel(tmp_path / "iqd", "fp32"), 0.04, DecisionPolicy())
    assert not stream.hears_audio
    stream.accept_audio(np.zeros(1600, np.float32))  # a no-op
    stream.finish_audio()


def test_the_student_copy_is_checked(tmp_path: Path) -> None:
    filters = tmp_path / "mel_filters.npy"
    np.save(filters, np.zeros((80, 201)))
    with pytest.raises(ExportMismatch, match="8-wide"):
        export_student_copy(student_folder(tmp_path / "wide", n_state=8), filters, tmp_path / "out", enc_dim=384)
    with pytest.raises(FileNotFoundError, match="mel filters"):
        export_student_copy(student_folder(tmp_path / "ok"), tmp_path / "missing.npy", tmp_path / "out", enc_dim=8)
    with pytest.raises(FileNotFoundError, match="student.json"):
        export_student_copy(tmp_path / "nothing", filters, tmp_path / "out", enc_dim=8)
    entry = export_student_copy(student_folder(tmp_path / "ok"), filters, tmp_path / "out", enc_dim=8)
    assert entry["kind"] == "student" and (tmp_path / "out" / "student" / "mel_filters.npy").is_file()


def test_iqd_json_naming_a_bad_student_is_refused(student_iqd: IqdModel, tmp_path: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(student_iqd.folder, folder)
    meta = json.loads((folder / "iqd.json").read_text())
    (folder / "iqd.json").write_text(json.dumps({**meta, "encoder": {"kind": "wav2vec"}}))
    with pytest.raises(ValueError, match="encoder kind"):
        IqdModel(folder, "fp32")
    (folder / "iqd.json").write_text(json.dumps({**meta, "encoder": {"kind": "student", "dir": "student"}}))
    (folder / "student" / "student.json").write_text(json.dumps({**STUDENT_META, "n_state": 384}))
    with pytest.raises(ValueError, match="8-wide frames, the student gives 384"):
        IqdModel(folder, "fp32")
    shutil.rmtree(folder / "student")
    with pytest.raises(ValueError, match="student.json"):
        IqdModel(folder, "fp32")


def test_a_detector_reading_both_gets_the_transducers_frame_then_the_students(tmp_path: Path) -> None:
    torch.manual_seed(1)
    export_iqd(IqJoint(IqdConfig(enc_dim=12, vocab_size=30)), {"policy": DecisionPolicy().to_dict(), "theta": 0.5},
               tmp_path / "iqd", int8=False, check_frames=20)
    meta = json.loads((tmp_path / "iqd" / "iqd.json").read_text())
    meta["encoder"] = {"kind": "student", "dir": "student", "with_transducer": True, "transducer_dim": 4}
    (tmp_path / "iqd" / "iqd.json").write_text(json.dumps(meta))
    folder = student_folder(tmp_path / "iqd" / "student")
    np.save(folder / "mel_filters.npy", np.abs(np.random.default_rng(0).normal(size=(80, 201))))
    with pytest.raises(ValueError):  # the loader opens the student's graph (a stand-in below)
        IqdModel(tmp_path / "iqd", "fp32")
    meta["encoder"] = {"kind": "transducer"}
    (tmp_path / "iqd" / "iqd.json").write_text(json.dumps(meta))
    iqd = IqdModel(tmp_path / "iqd", "fp32")
    iqd.transducer_dim = 4
    iqd._load_student(tmp_path / "iqd" / "iqd.json", folder, 1, session=PositionStudent())
    x = np.random.default_rng(3).normal(scale=0.1, size=16000).astype(np.float32)
    trans = np.random.default_rng(4).normal(size=(8, 4)).astype(np.float32)
    heard = StudentFrames(iqd.student, iqd.mel_filters).accept(x)[:8]
    state = iqd.init_state()
    for t in range(8):
        p, state = iqd.step(np.concatenate([trans[t], heard[t]]), [], state)
    stream = IqdStream(iqd, 0.04, DecisionPolicy(onset_min_ms=0.0))
    stream.accept_audio(x)
    stream.accept(ChunkResult(trans, 0, None, ((),) * 8, False))
    assert stream.probability == pytest.approx(p, rel=1e-5)
    with pytest.raises(ValueError, match="4-wide transducer"):
        stream.accept(ChunkResult(np.zeros((8, 5), np.float32), 8, None, ((),) * 8, False))


def test_the_heard_partials_read_live_are_what_the_cache_reads(tmp_path: Path) -> None:
    from runtime.iqd_text import HistoryText

    torch.manual_seed(2)
    export_iqd(IqJoint(IqdConfig(enc_dim=8, vocab_size=30)), {"policy": DecisionPolicy().to_dict(), "theta": 0.5},
               tmp_path / "iqd", int8=False, check_frames=20)
    iqd = IqdModel(tmp_path / "iqd", "fp32")
    iqd.text = HistoryText(np.random.default_rng(5).normal(size=1024).astype(np.float32), 0.3, 0.5)
    iqd.text_reads = "heard"
    enc = np.random.default_rng(6).normal(size=(40, 8)).astype(np.float32)
    heard = [[8, "set"], [16, "set an alarm"], [32, "set an alarm for seven"]]  # as iqd.replay.heard_track gives
    state, joint = iqd.init_state(), []
    for t in range(40):
        p, state = iqd.step(enc[t], [5] if t == 3 else [], state)
        joint.append(p)
    onset = 3  # the first spoken token (the gate is off)
    want = iqd.text.fuse_track(np.array(joint), iqd.text.heard_logits(heard, onset, 40))
    stream = IqdStream(iqd, 0.04, DecisionPolicy(onset_min_ms=0.0), pieces=["<b>"] + ["x"] * 29)
    got = []
    for k in range(5):
        text = next((h[1] for h in reversed(heard) if h[0] <= 8 * k), "")
        tokens = tuple((5,) if 8 * k + i == 3 else () for i in range(8))
        stream.accept(ChunkResult(enc[8 * k : 8 * k + 8], 8 * k, None, tokens, False), heard_text=text)
        got.append(stream.probability)
    np.testing.assert_allclose(got, want[7::8], rtol=1e-5)
    assert iqd.text.heard_logits(heard, 20, 40)[:20].tolist() == [0.0] * 20  # nothing before the onset


def test_installing_a_detector_copies_its_student_and_only_the_bundles_graphs(tmp_path: Path) -> None:
    from asr.export import install_iqd

    export_iqd(IqJoint(IqdConfig(enc_dim=8, vocab_size=30)), {"policy": DecisionPolicy().to_dict(), "theta": 0.5},
               tmp_path / "exp", int8=True, check_frames=20)
    student_folder(tmp_path / "exp" / "student")
    entry = install_iqd(tmp_path / "exp", tmp_path / "bundle", ["int8"])
    assert entry["dir"] == "iqd" and entry["precisions"] == ["int8"] and entry["theta"] == 0.5
    assert (tmp_path / "bundle" / "iqd" / "iqd.int8.onnx").is_file()
    assert not (tmp_path / "bundle" / "iqd" / "iqd.onnx").exists()  # no fp32 graph in an int8 bundle
    assert (tmp_path / "bundle" / "iqd" / "student" / "student.int8.onnx").is_file()  # the student's graph stays
