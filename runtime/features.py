"""Log-mel filterbank features in numpy: the runtime's twin of `asr.features.fbank`.

This is Kaldi's `compute-fbank-feats` as torchaudio implements it
(`torchaudio.compliance.kaldi.fbank`), restricted to the options heed uses. Training computes
its features with torchaudio; the runtime computes them here, and `tests/asr/test_features.py`
asserts that both agree. This module must never import torch, not even indirectly.

Scaling: samples are float in [-1, 1]. Kaldi's defaults (energy and log floors, dither) assume
int16-valued samples, so both twins multiply by `INT16_SCALE` = 32768 before anything else, as
Kaldi and sherpa-onnx do.

Precision: both twins compute in float64 and return float32. In float32 the FFT's rounding
noise (about 1e-7 of the frame's energy) dominates bands far from a strong tone and the two
twins would disagree there by percents; in float64 they agree to float32 rounding.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

INT16_SCALE = 32768.0
# Kaldi floors mel energies at float32 epsilon before the log, so silence gives log(eps), not -inf.
LOG_FLOOR = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class FbankConfig:
    """Kaldi fbank options; saved with a model (`to_dict`) and read back by the runtime (`from_dict`).

    `dither` is a training-time augmentation: `asr.features.fbank` applies it, the runtime never
    does (inference features are deterministic). `high_freq` <= 0 is an offset from Nyquist.
    """

    sample_rate: int = 16000
    n_mels: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    preemphasis: float = 0.97
    window: str = "povey"
    remove_dc_offset: bool = True
    low_freq: float = 20.0
    high_freq: float = 0.0
    snip_edges: bool = True
    round_to_power_of_two: bool = True

    def __post_init__(self) -> None:
        if self.window not in _WINDOWS:
            raise ValueError(f"window must be one of {sorted(_WINDOWS)}, got {self.window!r}")
        if not 0.0 <= self.preemphasis <= 1.0:
            raise ValueError(f"preemphasis must be in [0, 1], got {self.preemphasis}")
        if self.frame_size < 2 or self.frame_shift < 1:
            raise ValueError(f"frame of {self.frame_size} samples every {self.frame_shift} is too small")

    @property
    def frame_size(self) -> int:
        """Samples in one frame (400 at the defaults); truncated like Kaldi."""
        return int(self.sample_rate * self.frame_length_ms * 0.001)

    @property
    def frame_shift(self) -> int:
        """Samples between frame starts (160 at the defaults)."""
        return int(self.sample_rate * self.frame_shift_ms * 0.001)

    @property
    def n_fft(self) -> int:
        """FFT length: the frame zero-padded to a power of two (512 at the defaults)."""
        if not self.round_to_power_of_two:
            return self.frame_size
        return 1 << (self.frame_size - 1).bit_length()

    def n_frames(self, n_samples: int) -> int:
        """Frames that `fbank` returns for `n_samples` samples."""
        if not self.snip_edges:
            return (n_samples + self.frame_shift // 2) // self.frame_shift
        if n_samples < self.frame_size:
            return 0
        return 1 + (n_samples - self.frame_size) // self.frame_shift

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FbankConfig":
        """Rebuild from `to_dict()`; unknown keys are an error, so a stale manifest fails loudly."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FbankConfig keys: {sorted(unknown)}")
        return cls(**d)


def _povey(n: int) -> np.ndarray:
    return _hann(n) ** 0.85


def _hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n) / (n - 1))


def _hamming(n: int) -> np.ndarray:
    return 0.54 - 0.46 * np.cos(2 * math.pi * np.arange(n) / (n - 1))


_WINDOWS = {"povey": _povey, "hanning": _hann, "hamming": _hamming, "rectangular": np.ones}


def _mel(freq: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def _mel_spacing(cfg: FbankConfig) -> tuple[float, float]:
    """(mel of low_freq, mel distance between neighbouring bands' centres)."""
    nyquist = 0.5 * cfg.sample_rate
    high_freq = cfg.high_freq if cfg.high_freq > 0 else cfg.high_freq + nyquist
    if not (0.0 <= cfg.low_freq < high_freq <= nyquist):
        raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist}, got {cfg.low_freq}, {high_freq}")
    mel_low = float(_mel(cfg.low_freq))
    return mel_low, (float(_mel(high_freq)) - mel_low) / (cfg.n_mels + 1)


def band_centres_hz(cfg: FbankConfig) -> np.ndarray:
    """The centre frequency (Hz) of each of the filterbank's mel bands, (n_mels,) ascending."""
    mel_low, delta = _mel_spacing(cfg)
    centres_mel = mel_low + (np.arange(cfg.n_mels) + 1) * delta
    return 700.0 * np.expm1(centres_mel / 1127.0)


@functools.lru_cache(maxsize=8)
def _window_and_banks(cfg: FbankConfig) -> tuple[np.ndarray, np.ndarray]:
    """The analysis window (frame_size,) and the mel filterbank (n_fft // 2 + 1, n_mels), read-only.

    The filterbank is Kaldi's: triangles equally spaced on the mel scale between low_freq and
    high_freq, evaluated at each FFT bin's mel frequency; the Nyquist bin gets weight 0.
    """
    window = _WINDOWS[cfg.window](cfg.frame_size).astype(np.float64)
    mel_low, delta = _mel_spacing(cfg)
    left = mel_low + np.arange(cfg.n_mels)[:, None] * delta  # (n_mels, 1)
    center, right = left + delta, left + 2 * delta
    mel = _mel(cfg.sample_rate / cfg.n_fft * np.arange(cfg.n_fft // 2))[None, :]  # (1, n_fft // 2)
    banks = np.maximum(0.0, np.minimum((mel - left) / (center - left), (right - mel) / (right - center)))
    banks = np.pad(banks, ((0, 0), (0, 1))).T.copy()  # (n_fft // 2 + 1, n_mels)
    window.flags.writeable = False
    banks.flags.writeable = False
    return window, banks


def _frames_to_fbank(frames: np.ndarray, cfg: FbankConfig) -> np.ndarray:
    """Log-mel energies of int16-scaled frames.

    Args:
        frames: (n_frames, frame_size) float64, already scaled by INT16_SCALE.
    Returns:
        (n_frames, n_mels) float32.
    """
    window, banks = _window_and_banks(cfg)
    if cfg.remove_dc_offset:
        frames = frames - frames.mean(axis=1, keepdims=True)
    if cfg.preemphasis != 0.0:
        # Kaldi's first sample is pre-emphasized against itself: x[0] -= p * x[0].
        previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
        frames = frames - cfg.preemphasis * previous
    power = np.abs(np.fft.rfft(frames * window, n=cfg.n_fft, axis=1)) ** 2  # (n_frames, n_fft // 2 + 1)
    return np.log(np.maximum(power @ banks, LOG_FLOOR)).astype(np.float32)


def _check_samples(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n_samples,), got {samples.shape}")
    if samples.size and not np.issubdtype(samples.dtype, np.floating):
        raise TypeError(f"expected float samples in [-1, 1], got {samples.dtype}")
    return samples.astype(np.float64) * INT16_SCALE


def fbank(samples: np.ndarray, cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """Log-mel filterbank of a whole signal, matching `torchaudio.compliance.kaldi.fbank`.

    Args:
        samples: (n_samples,) float in [-1, 1] at cfg.sample_rate.
    Returns:
        (n_frames, n_mels) float32, n_frames = cfg.n_frames(n_samples).
    """
    x = _check_samples(samples)
    n_frames, size, shift = cfg.n_frames(len(x)), cfg.frame_size, cfg.frame_shift
    if n_frames == 0:
        return np.zeros((0, cfg.n_mels), dtype=np.float32)
    if not cfg.snip_edges:
        if len(x) < size:
            raise ValueError(f"snip_edges=False needs at least one frame ({size} samples), got {len(x)}")
        # Kaldi reflects the signal at both ends, repeating the edge sample: [2, 1, 0 | 0, 1, 2, ...].
        pad = size // 2 - shift // 2
        x = np.concatenate([x[:pad][::-1], x, x[::-1]]) if pad > 0 else np.concatenate([x[-pad:], x[::-1]])
    starts = np.arange(n_frames)[:, None] * shift
    frames = x[starts + np.arange(size)]  # (n_frames, frame_size)
    return _frames_to_fbank(frames, cfg)


class StreamingFbank:
    """Fbank over audio that arrives in pieces of any size; the frames equal `fbank` on the whole.

    Only snip_edges=True streams: with it a frame depends on its own samples alone, so a frame is
    final as soon as its last sample arrives.
    """

    def __init__(self, cfg: FbankConfig = FbankConfig()) -> None:
        if not cfg.snip_edges:
            raise ValueError("StreamingFbank needs snip_edges=True (reflected edges need the future)")
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        """Forget all audio and frames; ready for a new utterance."""
        self._pending = np.zeros(0, dtype=np.float64)  # int16-scaled samples from the next frame's start
        self._ready: list[np.ndarray] = []  # computed, not yet popped; each (k, n_mels)
        self.n_frames_ready = 0
        self.finished = False

    def accept_waveform(self, samples: np.ndarray) -> None:
        """Append (n_samples,) float samples in [-1, 1] at cfg.sample_rate; computes completed frames."""
        if self.finished:
            raise RuntimeError("accept_waveform after input_finished; call reset() first")
        x = np.concatenate([self._pending, _check_samples(samples)])
        n_frames, size, shift = self.cfg.n_frames(len(x)), self.cfg.frame_size, self.cfg.frame_shift
        if n_frames:
            frames = x[np.arange(n_frames)[:, None] * shift + np.arange(size)]  # (n_frames, frame_size)
            self._ready.append(_frames_to_fbank(frames, self.cfg))
            self.n_frames_ready += n_frames
            x = x[n_frames * shift :]
        self._pending = x

    def input_finished(self) -> None:
        """No more audio. Trailing samples shorter than a frame are dropped, as snip_edges does."""
        self.finished = True

    def pop_frames(self) -> np.ndarray:
        """The frames completed since the last pop: (k, n_mels) float32, possibly k = 0."""
        if not self._ready:
            return np.zeros((0, self.cfg.n_mels), dtype=np.float32)
        out = np.concatenate(self._ready) if len(self._ready) > 1 else self._ready[0]
        self._ready = []
        self.n_frames_ready = 0
        return out
