"""Reading and normalising audio for the runtime: any rate, mono or stereo, float or int16.

Every problem becomes an `AudioError` whose message names the file and what is wrong with it,
so a command over many files can report one and carry on with the rest.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """Audio that cannot be used, with a message fit for the user."""


def to_mono_float(samples: np.ndarray, where: str = "audio") -> np.ndarray:
    """(n,) or (n, channels) float or integer samples -> (n,) float32 in [-1, 1].

    Integer samples are scaled by their type's range; channels are averaged.
    Raises AudioError on NaN/Inf or on a shape that is not audio.
    """
    x = np.asarray(samples)
    if x.ndim not in (1, 2):
        raise AudioError(f"{where}: expected samples of shape (n,) or (n, channels), got {x.shape}")
    if np.issubdtype(x.dtype, np.integer):  # scale before mixing, while the type still says the range
        info = np.iinfo(x.dtype)
        x = x.astype(np.float64) / max(abs(info.min), info.max)
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64, copy=False)
    elif x.size:
        raise AudioError(f"{where}: samples of type {x.dtype} are not audio")
    if x.ndim == 2:
        if x.shape[1] > 16 and x.shape[0] <= 16:  # (channels, n) given: accept it as such
            x = x.T
        x = x.mean(axis=1)
    if x.size and not np.all(np.isfinite(x)):
        raise AudioError(f"{where}: the samples contain NaN or Inf")
    return x.astype(np.float32)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(n,) float32 at `rate` -> float32 at `target` (soxr, high quality)."""
    if rate == target:
        return samples
    if rate <= 0:
        raise AudioError(f"sample rate must be positive, got {rate}")
    import soxr

    return soxr.resample(samples, rate, target, quality="HQ").astype(np.float32)


def wav_shortfall(path: Path) -> int:
    """Bytes missing from a RIFF/WAVE file's data chunk (0 if complete or not a WAV).

    libsndfile quietly shortens a truncated WAV to what is there, so a cut-off recording would
    decode as a shorter one; this reads the header's promise and compares it with the file.
    A data size of 0 or 0xFFFFFFFF is a streaming writer's placeholder and is not judged.
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return 0
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, pos + 8 + chunk_size - size)
            pos += 8 + chunk_size + (chunk_size & 1)
    return 0


def load_audio(path: str | Path, target_rate: int = 16000) -> np.ndarray:
    """A file as (n,) float32 mono at target_rate; AudioError naming the file on any problem."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"{path}: not a readable audio file ({e})") from None
    missing = wav_shortfall(path)
    if missing:
        raise AudioError(f"{path}: truncated: the WAV header promises {missing} more bytes of audio than the file holds")
    if len(data) == 0:
        raise AudioError(f"{path}: holds no audio samples")
    x = resample(to_mono_float(data, str(path)), rate, target_rate)
    if len(x) == 0:  # found by tests/runtime/test_fuzz_audio.py: 3 samples at 96 kHz
        raise AudioError(f"{path}: too short: {len(data)} samples at {rate} Hz are not one sample at {target_rate} Hz")
    return x
