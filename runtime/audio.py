"""Reading and normalising audio for the runtime: any rate, mono or stereo, float or int16.

One reader for every file heed opens (`heed transcribe`, `eval`, `demo`, the corpus tools):
`AudioReader` reads a file from disk in blocks, so memory stays flat in the file's length, and
reads every format libsndfile reads, the codecs it cannot seek in too (GSM610, G721, G723,
NMS-ADPCM, XI-DPCM: their frame count is not needed). On top of it:

- `stream_audio(path, rate)`: the file as mono float32 blocks at `rate` (soxr, streamed);
- `load_audio(path, rate)`: the same, whole, for short files;
- `read_audio(path, start, stop)`: a stretch at the file's own rate and channels (corpus tools).

Every problem becomes an `AudioError` whose message names the file and what is wrong with it,
so a command over many files can report one and carry on with the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

BLOCK_S = 10.0  # seconds of audio read from disk at a time
MAX_FLOAT_PEAK = 2.0  # float samples beyond this (6 dB over full scale) are not audio in [-1, 1]
MIN_RATE, MAX_RATE = 1000, 768_000  # sample rates accepted, Hz


class AudioError(ValueError):
    """Audio that cannot be used, with a message fit for the user."""


def to_mono_float(samples: np.ndarray, where: str = "audio") -> np.ndarray:
    """(n,) or (n, channels) float or integer samples -> (n,) float32 in [-1, 1].

    int8, int16 and int32 samples are scaled by their type's range; float samples must lie in
    [-1, 1] (up to MAX_FLOAT_PEAK: overs are kept); channels are averaged. Raises AudioError on
    NaN/Inf, on a shape that is not audio, on floats far outside [-1, 1] (PCM values given as
    floats) and on integer types whose range says nothing about the audio's (int64, unsigned).
    """
    x = np.asarray(samples)
    if x.ndim not in (1, 2):
        raise AudioError(f"{where}: expected samples of shape (n,) or (n, channels), got {x.shape}")
    if x.dtype in (np.int8, np.int16, np.int32):  # scale before mixing, while the type still says the range
        x = x.astype(np.float64) / -np.iinfo(x.dtype).min
    elif np.issubdtype(x.dtype, np.integer):
        raise AudioError(f"{where}: samples of type {x.dtype} have no audio scale (int64 holding int16 values "
                         "would be read as silence); give int16, int32, or float in [-1, 1]")
    elif np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64, copy=False)
        if x.size and not np.all(np.isfinite(x)):
            raise AudioError(f"{where}: the samples contain NaN or Inf")
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        if peak > MAX_FLOAT_PEAK:
            hint = " (int16 PCM as floats? divide by 32768)" if peak > 256 else ""
            raise AudioError(f"{where}: float samples reach {peak:g}; float audio must lie in [-1, 1]{hint}")
    elif x.size:
        raise AudioError(f"{where}: samples of type {x.dtype} are not audio")
    if x.ndim == 2:
        if x.shape[1] > 16 and x.shape[0] <= 16:  # (channels, n) given: accept it as such
            x = x.T
        x = x.mean(axis=1)
    if x.size and not np.all(np.isfinite(x)):
        raise AudioError(f"{where}: the samples contain NaN or Inf")
    return x.astype(np.float32)


def check_rate(rate, where: str = "audio") -> int:
    """A sample rate as a whole number of Hz between MIN_RATE and MAX_RATE; AudioError otherwise
    (None, 16000.7, 1 Hz: never truncated or guessed)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise AudioError(f"{where}: the sample rate must be a number of Hz, got {rate!r}")
    if not float(rate).is_integer():
        raise AudioError(f"{where}: the sample rate must be a whole number of Hz, got {rate}")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{where}: a sample rate of {int(rate)} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    return int(rate)


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


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says."""

    path: Path
    sample_rate: int
    channels: int
    format: str  # libsndfile's container, e.g. "WAV", "FLAC"
    subtype: str  # its encoding, e.g. "PCM_16", "GSM610"
    frames: int | None  # None where the codec cannot tell without decoding (the non-seekable ones)

    @property
    def duration_s(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate


class AudioReader:
    """One audio file, read from disk in blocks.

        with AudioReader(path) as r:   # AudioError: missing, a folder, not audio, truncated
            for block in r.blocks():   # (n, channels) float32 at r.info.sample_rate
                ...
    """

    def __init__(self, path: str | Path) -> None:
        import soundfile as sf

        self.path = path = Path(path)
        if not path.exists():
            raise AudioError(f"{path}: no such file")
        if path.is_dir():
            raise AudioError(f"{path}: is a folder, not an audio file")
        try:
            self._f = sf.SoundFile(str(path))
        except TypeError:  # soundfile asks for the rate and encoding of headerless audio
            raise AudioError(f"{path}: not a readable audio file (headerless raw audio: its sample rate and "
                             "encoding are not in the file; convert it to WAV or FLAC)") from None
        except (sf.LibsndfileError, RuntimeError, ValueError) as e:
            raise AudioError(f"{path}: not a readable audio file ({e})") from None
        f = self._f
        self.info = AudioInfo(path, f.samplerate, f.channels, f.format, f.subtype, f.frames if f.seekable() else None)
        missing = wav_shortfall(path)
        if missing:
            self.close()
            raise AudioError(f"{path}: truncated: the WAV header promises {missing} more bytes of audio than the file holds")
        try:
            check_rate(f.samplerate, str(path))
            if f.channels <= 0:
                raise AudioError(f"{path}: not a readable audio file ({f.channels} channels)")
        except AudioError:
            self.close()
            raise

    def blocks(self, block_s: float = BLOCK_S, start: int = 0, stop: int | None = None,
               dtype: str = "float32") -> Iterator[np.ndarray]:
        """The samples from frame `start` to `stop` (None: the end) in blocks of about `block_s`
        seconds: (n, channels) arrays of `dtype`. The file is read once, front to back; a codec
        that cannot seek is read up to `start` and the frames before it dropped."""
        import soundfile as sf

        f, n = self._f, max(1, int(block_s * self.info.sample_rate))
        pos = 0
        try:
            if start and f.seekable():
                f.seek(start)
                pos = start
            while stop is None or pos < stop:
                want = n if stop is None else min(n, stop - pos)
                block = f.read(want, dtype=dtype, always_2d=True)
                if not len(block):
                    return
                if pos + len(block) > start:
                    yield block[max(0, start - pos) :]
                pos += len(block)
        except (sf.LibsndfileError, RuntimeError) as e:
            where = f"unreadable after {pos / self.info.sample_rate:.2f} s" if pos else "not a readable audio file"
            raise AudioError(f"{self.path}: {where} ({e})") from None

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def audio_info(path: str | Path, count_frames: bool = False) -> AudioInfo:
    """The header of an audio file; AudioError naming the file when it is not usable audio.
    count_frames: decode a codec that cannot seek to count its frames (else `frames` is None)."""
    import dataclasses

    with AudioReader(path) as r:
        if r.info.frames is None and count_frames:
            return dataclasses.replace(r.info, frames=sum(len(b) for b in r.blocks()))
        return r.info


def stream_audio(path: str | Path, target_rate: int = 16000, block_s: float = BLOCK_S) -> Iterator[np.ndarray]:
    """A file as blocks of (n,) float32 mono samples at target_rate, read and resampled as a stream
    (memory flat in the file's length). AudioError naming the file on any problem, when it is met:
    before the first block for a file that is not audio, later for NaN in the samples."""
    with AudioReader(path) as r:
        rate = r.info.sample_rate
        resampler = None
        if rate != target_rate:
            import soxr

            resampler = soxr.ResampleStream(rate, target_rate, 1, dtype="float32", quality="HQ")
        n_in = n_out = 0
        for block in r.blocks(block_s):
            n_in += len(block)
            x = to_mono_float(block, str(path))
            if resampler is not None:
                x = resampler.resample_chunk(x, last=False)
            n_out += len(x)
            if len(x):
                yield x
        if resampler is not None and n_in:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            n_out += len(tail)
            if len(tail):
                yield tail
    if n_in == 0:
        raise AudioError(f"{path}: holds no audio samples")
    if n_out == 0:  # found by tests/runtime/test_fuzz_audio.py: 3 samples at 96 kHz
        raise AudioError(f"{path}: too short: {n_in} samples at {rate} Hz are not one sample at {target_rate} Hz")


def load_audio(path: str | Path, target_rate: int = 16000) -> np.ndarray:
    """A file as (n,) float32 mono at target_rate; AudioError naming the file on any problem."""
    return np.concatenate(list(stream_audio(path, target_rate)))


def read_audio(path: str | Path, start: int = 0, stop: int | None = None,
               dtype: str = "float32") -> tuple[np.ndarray, int]:
    """Frames `start` to `stop` of a file at its own rate: ((n, channels) `dtype`, sample_rate)."""
    with AudioReader(path) as r:
        blocks = list(r.blocks(start=start, stop=stop, dtype=dtype))
        empty = np.zeros((0, r.info.channels), dtype)
        return (np.concatenate(blocks) if blocks else empty), r.info.sample_rate
