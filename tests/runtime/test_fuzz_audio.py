"""Fuzzing the audio reader (bounded: a few hundred examples each): whatever bytes a file holds,
`load_audio` either returns finite float32 mono samples or raises AudioError naming the file;
never another exception, never NaN."""
from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.audio import AudioError, load_audio

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _wav(n: int = 800, rate: int = 16000, channels: int = 1, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    x = (0.3 * np.sin(np.arange(n * channels) / 7.0)).reshape(n, channels).astype(np.float32)
    sf.write(buf, x, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


VALID = [_wav(), _wav(rate=8000, channels=2), _wav(subtype="FLOAT"), _wav(n=3, subtype="PCM_U8")]


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        path.write_bytes(data)
        try:
            x = load_audio(path)
        except AudioError as e:
            assert str(path) in str(e)
            return
        assert x.dtype == np.float32 and x.ndim == 1 and len(x) > 0
        assert np.isfinite(x).all()


@FUZZ
@given(st.sampled_from(VALID), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8))
def test_fuzz_flipped_bytes(base: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(base)
    for pos, value in flips:
        data[pos % len(data)] = value
    _check(bytes(data))


@FUZZ
@given(st.sampled_from(VALID), st.integers(0, 2_000))
def test_fuzz_truncated(base: bytes, keep: int) -> None:
    _check(base[: keep % (len(base) + 1)])


@FUZZ
@given(st.sampled_from(VALID), st.sampled_from([4, 22, 24, 28, 32, 34, 40]), st.integers(0, 2**32 - 1))
def test_fuzz_header_fields(base: bytes, offset: int, value: int) -> None:
    """Sizes, channel counts, rates and bit depths in the RIFF header set to any 32-bit value."""
    data = bytearray(base)
    width = 2 if offset in (22, 32, 34) else 4
    data[offset : offset + width] = struct.pack("<H" if width == 2 else "<I", value % (1 << (8 * width)))
    _check(bytes(data))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    _check(data)
    _check(b"RIFF" + struct.pack("<I", len(data) + 4) + b"WAVE" + data)
