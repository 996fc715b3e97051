"""A detector on the student inside the pipeline: after every endpoint the student restarts at
the new segment's first sample, so each chunk's frames are the student's frames of that chunk's
audio (a stand-in student graph whose state i is the number i shows which frames were read)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.export import install_iqd
from iqd.export import export_iqd
from iqd.model import IqdConfig, IqJoint
from runtime.audio import load_audio
from runtime.iqd_policy import DecisionPolicy
from tests.conftest import PositionStudent, student_folder

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "models" / "default"


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    out = tmp_path / "bundle"
    shutil.copytree(BUNDLE, out, ignore=shutil.ignore_patterns("whisper", "examples"))
    torch.manual_seed(0)
    export_iqd(IqJoint(IqdConfig(enc_dim=8, vocab_size=30)), {"policy": DecisionPolicy().to_dict(), "theta": 0.5},
               tmp_path / "iqd", int8=True, check_frames=20)
    folder = student_folder(tmp_path / "iqd" / "student")
    np.save(folder / "mel_filters.npy", np.abs(np.random.default_rng(0).normal(size=(80, 201))))
    meta = json.loads((tmp_path / "iqd" / "iqd.json").read_text())
    (tmp_path / "iqd" / "iqd.json").write_text(json.dumps({**meta, "encoder": {"kind": "student", "dir": "student"}}))
    entry = install_iqd(tmp_path / "iqd", out, ["int8"])
    manifest = json.loads((out / "bundle.json").read_text())
    manifest["iqd"] = entry
    manifest.pop("second_pass", None)
    manifest.pop("partials", None)
    (out / "bundle.json").write_text(json.dumps(manifest))
    import runtime.bundle

    real = runtime.bundle.onnx_session
    monkeypatch.setattr(runtime.bundle, "onnx_session",
                        lambda path, threads=1, arena=True: PositionStudent() if Path(path).name == "student.int8.onnx"
                        else real(path, threads, arena))
    return out


@pytest.mark.parametrize("vad", [False, True])
def test_each_chunk_reads_the_students_frames_of_its_own_segment(bundle: Path, vad: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.iqd import IqdStream
    from runtime.pipeline import Pipeline

    seen: list[tuple[int, float]] = []  # (chunk's first frame, the student state number its first frame read)
    accept = IqdStream.accept

    def spy(self, chunk, heard_text=None):
        if len(self.heard):
            seen.append((chunk.first_frame, float(self.heard[0, 0])))
        return accept(self, chunk, heard_text)

    monkeypatch.setattr(IqdStream, "accept", spy)
    pipe = Pipeline.from_bundle(bundle, vad=vad, second_pass=False, heard_partials=False)
    gap = np.zeros(16000 * 2, np.float32)
    x = np.concatenate([gap[:8000], load_audio(BUNDLE / "examples" / "01-assistant.wav"), gap,
                        load_audio(BUNDLE / "examples" / "02-atis.wav"), gap])
    stream = pipe.create_stream()
    for i in range(0, len(x), 1600):
        stream.accept_waveform(x[i : i + 1600], 16000)
    stream.input_finished()
    starts = {round(ev["segment"]["start"] / 0.04) for ev in stream.events() if ev.get("final") and ev.get("segment")}
    assert len(starts) >= 2 and len(seen) > 10
    for first_frame, state in seen:
        # frame k of a segment reads states 2k, 2k+1 (their mean 2k + 0.5): the segment began at
        segment_start = first_frame - (state - 0.5) / 2
        assert segment_start in starts, (first_frame, state, sorted(starts))
