"""The streaming student encoder (asr/student.py): step by step equals the masked whole segment,
positions restart at each segment, and its features are Whisper's."""
from __future__ import annotations

import pytest
import torch

from asr.student import Student, StudentConfig, StudentError, chunk_mask, log_mel_power, normalise
from asr.whisper import WhisperDims

SMALL = WhisperDims(n_state=32, n_head=2, n_audio_layer=2, n_audio_ctx=64)


def small_student(cfg: StudentConfig, dtype: torch.dtype = torch.float64) -> Student:
    torch.manual_seed(0)
    student = Student(SMALL, cfg)
    with torch.no_grad():
        student.audio_pos.copy_(torch.randn_like(student.audio_pos))  # torch's default init elsewhere
    return student.to(dtype).eval()


def mel_of(seconds: float, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(1, 80, T) log10 mel power of noise with a louder burst, T even."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * 16000)
    audio = torch.randn(n, generator=g) * 0.01
    audio[n // 3 : n // 2] *= 30  # the running floor rises when the burst comes
    mel = log_mel_power(audio)
    return mel[None, :, : mel.shape[1] // 2 * 2].to(dtype)


def streamed(student: Student, mel: torch.Tensor, chunk: int) -> tuple[torch.Tensor, object]:
    state = student.init_state(mel.shape[0])
    state = type(state)(*(t.to(mel.dtype) if t.is_floating_point() else t for t in state))
    out = []
    for i in range(0, mel.shape[-1], chunk):
        y, state = student.step(mel[..., i : i + chunk], state)
        out.append(y)
    return torch.cat(out, 1), state


@pytest.mark.parametrize("cfg", [StudentConfig(chunk_frames=4), StudentConfig(chunk_frames=4, left_chunks=1),
                                 StudentConfig(chunk_frames=3, left_chunks=0)], ids=["all-left", "one-left", "no-left"])
def test_step_by_step_equals_the_masked_whole_segment(cfg: StudentConfig) -> None:
    """In float64 exactly (only the order of sums differs); a segment whose last chunk is partial."""
    student = small_student(cfg)
    mel = mel_of(1.1)  # 110 mel frames = 55 encoder frames: the last chunk is partial
    assert mel.shape[-1] % (2 * cfg.chunk_frames) != 0
    with torch.no_grad():
        whole = student(mel)
        step, state = streamed(student, mel, 2 * cfg.chunk_frames)
    assert whole.shape == step.shape == (1, 55, 32)
    assert (whole - step).abs().max() < 1e-9
    left = 55 if cfg.left_chunks < 0 else min(55, cfg.left_chunks * cfg.chunk_frames)
    assert state.key_cache.shape == (2, 1, left, 32)
    assert int(state.offset) == 55


def test_step_equals_whole_in_float32_from_whisper() -> None:
    """Whisper tiny.en's own weights, float32, 320 ms chunks: within 1e-3 (states are O(1), up to ~10)."""
    from asr.whisper import WhisperError, load_whisper

    try:
        whisper = load_whisper()
    except WhisperError as e:
        pytest.skip(str(e))
    student = Student.from_whisper(whisper).eval()
    mel = mel_of(2.0, dtype=torch.float32)
    with torch.no_grad():
        whole = student(mel)
        step, _ = streamed(student, mel, 32)
    assert whole.abs().max() > 1.0
    assert (whole - step).abs().max() < 1e-3


def test_the_mask_sees_no_later_chunk() -> None:
    """A change in a later chunk leaves every earlier frame's state as it was."""
    student = small_student(StudentConfig(chunk_frames=4))
    mel = mel_of(0.8)
    later = mel.clone()
    later[..., 40:] += 1.0  # encoder frames 20.. (chunk 5 on)
    with torch.no_grad():
        a, b = student(mel), student(later)
    assert (a[:, :20] - b[:, :20]).abs().max() < 1e-12
    assert (a[:, 20:] - b[:, 20:]).abs().max() > 1e-3
    mask = chunk_mask(8, 4, 0)
    assert mask[3, 0] == 0 and mask[3, 4] == float("-inf") and mask[4, 3] == float("-inf")


def test_positions_restart_at_each_segment() -> None:
    """A segment streamed after another, from a fresh state, gives what it gives alone; a segment
    longer than the positions is refused by both paths."""
    student = small_student(StudentConfig(chunk_frames=4))
    first, second = mel_of(0.6, seed=1), mel_of(0.6, seed=2)
    with torch.no_grad():
        alone, _ = streamed(student, second, 8)
        _, state = streamed(student, first, 8)
        assert int(state.offset) == 30
        again, state = streamed(student, second, 8)  # a new segment: streamed() starts from init_state
        assert (alone - again).abs().max() == 0
        # carried on without the reset, the same audio reads differently (other positions and context)
        cont = type(state)(*state)
        on, _ = student.step(second[..., :8], cont)
        assert (on - alone[:, :4]).abs().max() > 1e-3
        with pytest.raises(StudentError, match="30 s"):
            student(mel_of(1.3))  # 130 mel frames = 65 encoder frames > 64 positions
        with pytest.raises(StudentError, match="30 s"):
            streamed(student, mel_of(1.3), 8)
    with pytest.raises(StudentError, match="even"):
        student.step(first[..., :7], student.init_state(1))


def test_features_are_whispers_log_mel() -> None:
    """Whisper's whole-window floor on log_mel_power is asr.whisper.log_mel; the student's running
    floor equals it once the loudest frame has passed."""
    from asr.whisper import log_mel

    g = torch.Generator().manual_seed(3)
    audio = torch.randn(16000, generator=g) * 0.05
    raw = log_mel_power(audio, 3200)
    assert (normalise(raw, raw.max()) - log_mel(audio, 3200)).abs().max() < 1e-6


def test_from_whisper_front_end_runs_one_frame_behind() -> None:
    """The causal convolutions give Whisper's outputs one encoder frame (two mel frames) later."""
    import torch.nn.functional as F

    from asr.whisper import Whisper

    torch.manual_seed(0)
    whisper = Whisper(WhisperDims(n_state=32, n_head=2, n_audio_layer=2, n_text_layer=1, n_vocab=10, n_audio_ctx=64))
    student = Student.from_whisper(whisper, StudentConfig(chunk_frames=4))
    x = torch.randn(1, 80, 40)
    with torch.no_grad():
        teacher = F.gelu(whisper.conv2(F.gelu(whisper.conv1(x))))
        ours = F.gelu(student.conv2(F.pad(F.gelu(student.conv1(F.pad(x, (2, 0)))), (2, 0))))
    assert (ours[..., 2:] - teacher[..., 1:-1]).abs().max() < 1e-5
    for name, p in student.named_parameters():
        assert p.data_ptr() not in {q.data_ptr() for q in whisper.parameters()}, f"{name} shares the teacher's memory"
