"""The student's states as the IQD's 40 ms frames (runtime/student_frames.py): the same frames
whatever the audio's block size, two states per frame, positions restarted per segment, nothing
past Whisper's 30 s, and cut or padded to the transducer's frame count."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.partials import StudentEncoder
from runtime.student_frames import StudentFrames, fit_frames
from tests.conftest import PositionStudent, student_folder


@pytest.fixture
def frames(tmp_path: Path) -> StudentFrames:
    enc = StudentEncoder(student_folder(tmp_path), session=PositionStudent())
    return StudentFrames(enc, np.abs(np.random.default_rng(0).normal(size=(80, 201))))


@pytest.mark.parametrize("block", [160, 1234, 5120, 16000])
def test_frames_do_not_depend_on_the_block_size(frames: StudentFrames, block: int) -> None:
    x = np.random.default_rng(1).normal(scale=0.1, size=16000 * 2 + 555).astype(np.float32)
    whole = frames.whole(x)
    frames.reset()
    parts = [frames.accept(x[i : i + block]) for i in range(0, len(x), block)] + [frames.finish()]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # 10 ms mel frames, 20 ms states, 40 ms frames: two states each, in order from position 0
    assert abs(len(whole) - len(x) / 640) <= 1
    np.testing.assert_array_equal(whole[:10, 0], np.arange(10) * 2 + 0.5)


def test_a_chunk_gives_eight_frames_once_complete(frames: StudentFrames) -> None:
    assert len(frames.accept(np.zeros(5120, np.float32))) == 0  # 12.5 ms short of its last mel frame
    assert len(frames.accept(np.zeros(200, np.float32))) == 8


def test_positions_restart_per_segment_and_stop_at_30_s(frames: StudentFrames) -> None:
    x = np.zeros(16000 * 31, np.float32)
    out = frames.whole(x)
    assert out[:750, 0].max() < 1500 and (out[750:] == 0).all()  # past 1,500 states: zeros
    again = frames.whole(x[:16000])
    assert again[0, 0] == 0.5  # a new segment starts at position 0


def test_fit_frames_cuts_or_repeats_the_last() -> None:
    f = np.arange(6, dtype=np.float32).reshape(3, 2)
    assert fit_frames(f, 2).tolist() == [[0, 1], [2, 3]]
    assert fit_frames(f, 5)[3:].tolist() == [[4, 5], [4, 5]]
    assert fit_frames(np.zeros((0, 2), np.float32), 2).tolist() == [[0, 0], [0, 0]]
