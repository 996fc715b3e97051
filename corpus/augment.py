"""Acoustic conditions for synthesized speech: speed, room, noise, telephone band, level.

numpy/scipy only. Every random choice comes from the `np.random.Generator` passed in, so the
same generator state gives the same audio. A condition is a JSON-serialisable dict (the
manifest's `augment` field, shared/INTERFACES.md section 1) drawn by `sample_condition` and
applied by `render`.

Room model (`synth_rir`): a direct-path impulse at distance_m / 343 m/s, then a tail of
Gaussian noise whose energy falls 60 dB in rt60_s, starting 2 ms after the direct path (a crude
stand-in for early reflections) and scaled to a direct-to-reverberant ratio `drr_db`
(near talkers ~ +4..+12 dB, far ones ~ -6..+2 dB). The tail is low-passed a little, since real
rooms absorb highs faster. It is no image method, but it reproduces what the models must be
robust to: smearing, a reverberant tail and a level that falls with distance.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, resample_poly, sosfiltfilt

SPEED_OF_SOUND_M_S = 343.0
NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
# Before gain_db, render sets the speech region to this RMS level; gain_db moves it from there.
REF_SPEECH_RMS_DBFS = -20.0
PEAK_LIMIT = 0.99
FRAME_S = 0.01


# ---------------------------------------------------------------- primitives


def trim_silence(x: np.ndarray, sr: int, threshold_db: float = -40.0) -> tuple[int, int]:
    """Where the speech is in a (clean, synthesized) signal.

    A 10 ms frame is speech when its RMS is within `threshold_db` of the loudest frame's.
    Returns (start, end) sample indices, end exclusive, at frame resolution; (0, 0) if all silent.
    """
    frame = max(1, int(sr * FRAME_S))
    n_frames = int(np.ceil(len(x) / frame))
    if n_frames == 0:
        return 0, 0
    padded = np.zeros(n_frames * frame, np.float64)
    padded[: len(x)] = x
    rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
    if rms.max() <= 0:
        return 0, 0
    active = np.flatnonzero(20 * np.log10(rms / rms.max() + 1e-12) > threshold_db)
    return int(active[0] * frame), int(min(len(x), (active[-1] + 1) * frame))


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation by resampling (tempo and pitch together, like Kaldi's 0.9/1.0/1.1).

    factor > 1 is faster: the result has len(x) / factor samples.
    """
    if factor == 1.0:
        return x.copy()
    ratio = Fraction(1.0 / factor).limit_denominator(100)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(x.dtype)


def synth_rir(rng: np.random.Generator, sr: int, rt60_s: float, *, drr_db: float = 3.0,
              distance_m: float = 1.0) -> np.ndarray:
    """A synthetic room impulse response (see the module docstring).

    Returns (n_samples,) float64: zeros up to the direct path, the direct path (1.0), the tail.
    """
    delay = int(round(distance_m / SPEED_OF_SOUND_M_S * sr))
    gap = int(0.002 * sr)
    n_tail = max(1, int(rt60_s * sr))
    t_s = np.arange(n_tail) / sr
    tail = rng.standard_normal(n_tail) * np.exp(-3.0 * np.log(10) * t_s / rt60_s)  # -60 dB energy at rt60_s
    tail = lfilter([0.6], [1.0, -0.4], tail)  # gentle one-pole low-pass
    tail *= np.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))  # direct energy is 1
    rir = np.zeros(delay + gap + n_tail)
    rir[delay] = 1.0
    rir[delay + gap:] = tail
    return rir


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with `rir`, aligned so the direct path lands where the dry signal was.

    The direct-path delay (the RIR's largest tap) is cut off, so speech_start keeps its meaning;
    the output has len(x) samples (a tail past the end is dropped; render pads after speech).
    """
    delay = int(np.argmax(np.abs(rir)))
    return fftconvolve(x, rir)[delay: delay + len(x)].astype(x.dtype)


def make_noise(kind: str, n: int, rng: np.random.Generator, sr: int,
               pool: list[np.ndarray] | None = None) -> np.ndarray:
    """`n` samples of noise with unit RMS.

    kind: "white", "pink" (1/f power), "brown" (1/f^2 power), "hum" (50 or 60 Hz mains with
    harmonics and a little hiss), "babble" (needs `pool`, clips of speech at `sr`).
    """
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind in ("pink", "brown"):
        x = _coloured(rng.standard_normal(n), sr, exponent=1.0 if kind == "pink" else 2.0)
    elif kind == "hum":
        x = _hum(n, rng, sr)
    elif kind == "babble":
        if not pool:
            raise ValueError("babble noise needs a pool of speech clips")
        x = babble(pool, n, rng, n_talkers=int(rng.integers(3, 8)))
    else:
        raise ValueError(f"unknown noise kind {kind!r}; known: {', '.join(NOISE_KINDS)}")
    return _unit_rms(x)


def _coloured(white: np.ndarray, sr: int, exponent: float) -> np.ndarray:
    """Shape white noise to power ~ 1/f^exponent (above 20 Hz, so brown noise does not drift)."""
    spectrum = np.fft.rfft(white)
    f_hz = np.fft.rfftfreq(len(white), 1.0 / sr)
    spectrum *= np.maximum(f_hz, 20.0) ** (-exponent / 2)
    spectrum[0] = 0.0
    return np.fft.irfft(spectrum, n=len(white))


def _hum(n: int, rng: np.random.Generator, sr: int) -> np.ndarray:
    mains_hz = float(rng.choice([50.0, 60.0])) * rng.uniform(0.995, 1.005)
    t_s = np.arange(n) / sr
    x = np.zeros(n)
    for k in range(1, 9):  # odd harmonics are stronger, as from a transformer's buzz
        amplitude = (1.0 if k % 2 else 0.4) / k
        x += amplitude * np.sin(2 * np.pi * k * mains_hz * t_s + rng.uniform(0, 2 * np.pi))
    return x + 0.03 * np.std(x) * rng.standard_normal(n)


def babble(pool: list[np.ndarray], n: int, rng: np.random.Generator, n_talkers: int) -> np.ndarray:
    """Sum of `n_talkers` streams, each random clips from `pool` end to end, at equal level.

    Returns (n,) with unit RMS.
    """
    if not pool:
        raise ValueError("babble needs a non-empty pool of speech clips")
    mix = np.zeros(n)
    for _ in range(n_talkers):
        mix += _unit_rms(_talker(pool, n, rng))
    return _unit_rms(mix)


def _talker(pool: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Random clips from `pool` back to back, starting at a random point, cut to n samples."""
    parts: list[np.ndarray] = []
    total = 0
    while total < n + 1:
        clip = pool[int(rng.integers(len(pool)))]
        parts.append(clip)
        total += len(clip)
    stream = np.concatenate(parts)
    offset = int(rng.integers(0, max(1, len(stream) - n)))
    return stream[offset: offset + n].astype(np.float64)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float,
              speech_region: tuple[int, int] | None = None) -> np.ndarray:
    """x + noise scaled so that, over speech_region (start, end samples; default all), the ratio
    of speech power to noise power is snr_db."""
    if len(noise) != len(x):
        raise ValueError(f"noise has {len(noise)} samples, speech {len(x)}")
    start, end = speech_region if speech_region is not None else (0, len(x))
    p_speech = float(np.mean(np.square(x[start:end], dtype=np.float64)))
    p_noise = float(np.mean(np.square(noise[start:end], dtype=np.float64)))
    if p_noise <= 0 or p_speech <= 0:
        return x.copy()
    scale = np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return (x + scale * noise).astype(x.dtype)


def telephone(x: np.ndarray, sr: int, *, codec: bool = True) -> np.ndarray:
    """Telephone channel: 300-3400 Hz band-pass (zero phase, so timing is kept), then with
    `codec` a round trip through 8 kHz G.711 mu-law (8 bits)."""
    sos = butter(6, [300.0, 3400.0], btype="bandpass", fs=sr, output="sos")
    y = sosfiltfilt(sos, x.astype(np.float64))
    if codec:
        ratio = Fraction(8000, sr)
        narrow = resample_poly(y, ratio.numerator, ratio.denominator)
        narrow = _mu_law_round_trip(narrow)
        y = resample_poly(narrow, ratio.denominator, ratio.numerator)[: len(x)]
        y = np.pad(y, (0, len(x) - len(y)))
    return y.astype(x.dtype)


def _mu_law_round_trip(x: np.ndarray, mu: float = 255.0) -> np.ndarray:
    peak = max(1.0, float(np.max(np.abs(x))))  # the codec clips at full scale; scale instead
    y = x / peak
    encoded = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    quantized = np.round((encoded + 1) / 2 * 255) / 255 * 2 - 1
    return peak * np.sign(quantized) * np.expm1(np.abs(quantized) * np.log1p(mu)) / mu


def apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by gain_db. Clipping protection: if the result would exceed PEAK_LIMIT it is scaled
    down to that peak instead (so the effective gain can be lower than asked); clipping
    distortion itself is not simulated."""
    y = x * 10 ** (gain_db / 20)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > PEAK_LIMIT:
        y = y * (PEAK_LIMIT / peak)
    return y.astype(x.dtype)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0
    return x / rms if rms > 0 else x


# ---------------------------------------------------------------- conditions
# Undirected speech is more often far, reverberant, quieter and noisier, but every condition
# occurs for both classes, so acoustics alone cannot decide directedness.

P_CLEAN = {True: 0.2, False: 0.15}
P_FAR = {True: 0.25, False: 0.6}
P_RIR = {"near": 0.3, "far": 0.75}
P_TELEPHONE = 0.08
NOISE_WEIGHTS = {  # "none" is noise-free but may still be reverberant or telephone-band
    True: {"none": 0.22, "white": 0.1, "pink": 0.16, "brown": 0.12, "hum": 0.1, "babble": 0.3},
    False: {"none": 0.18, "white": 0.1, "pink": 0.16, "brown": 0.12, "hum": 0.1, "babble": 0.34},
}
# The Whisper check (docs/corpus.md) found speech under 5 dB SNR, and far rooms with a
# direct-to-reverberant ratio down to -6 dB, close to unintelligible: those settings are gone.
SNR_RANGE_DB = {True: (6.0, 30.0), False: (5.0, 28.0)}
GAIN_RANGE_DB = {"near": (-15.0, 3.0), "far": (-27.0, -3.0)}
DRR_RANGE_DB = {"near": (5.0, 12.0), "far": (-2.0, 4.0)}
DISTANCE_RANGE_M = {"near": (0.3, 1.2), "far": (2.0, 6.0)}
RT60_RANGE_S = {"near": (0.15, 0.5), "far": (0.3, 0.8)}
SPEEDS = (0.9, 1.0, 1.1)


def sample_condition(rng: np.random.Generator, directed: bool) -> dict[str, Any]:
    """Draw the acoustic condition for one utterance of the given class.

    Keys: clean, speed, distance, rir, rt60_s, drr_db, distance_m, noise (a NOISE_KINDS value or
    "none"), snr_db, telephone, gain_db, pad_before_s, pad_after_s. Absent values are null.
    """
    clean = bool(rng.random() < P_CLEAN[directed])
    distance = "far" if (not clean and rng.random() < P_FAR[directed]) else "near"
    cond: dict[str, Any] = {
        "clean": clean, "speed": float(rng.choice(SPEEDS)), "distance": distance,
        "rir": False, "rt60_s": None, "drr_db": None, "distance_m": None,
        "noise": "none", "snr_db": None, "telephone": False, "gain_db": 0.0,
        "pad_before_s": _uniform(rng, 0.2, 1.0), "pad_after_s": _uniform(rng, 0.3, 1.0),
    }
    if clean:
        return cond
    if rng.random() < P_RIR[distance]:
        cond.update(rir=True, rt60_s=_uniform(rng, *RT60_RANGE_S[distance]),
                    drr_db=_uniform(rng, *DRR_RANGE_DB[distance]), distance_m=_uniform(rng, *DISTANCE_RANGE_M[distance]))
    kinds, weights = zip(*NOISE_WEIGHTS[directed].items())
    cond["noise"] = str(rng.choice(kinds, p=np.array(weights) / sum(weights)))
    if cond["noise"] != "none":
        cond["snr_db"] = _uniform(rng, *SNR_RANGE_DB[directed])
    cond["telephone"] = bool(rng.random() < P_TELEPHONE)
    cond["gain_db"] = _uniform(rng, *GAIN_RANGE_DB[distance])
    return cond


def _uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return round(float(rng.uniform(low, high)), 2)


def render(speech: np.ndarray, sr: int, cond: dict[str, Any], rng: np.random.Generator,
           babble_pool: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
    """Apply a condition to trimmed speech.

    Order: speed, silence padding, reverb, noise at snr_db over the speech region, telephone,
    level (speech RMS to REF_SPEECH_RMS_DBFS + gain_db, with apply_gain's clipping protection).

    Args:
        speech: (n,) trimmed synthesized speech at sr.
        cond: from sample_condition.
        babble_pool: speech clips at sr for babble noise, ideally other sentences; when empty,
            babble is built from `speech` itself.
    Returns:
        (audio (m,) float32 in [-1, 1], speech_start_s, speech_end_s): where the speed-perturbed
        speech sits in the output, not counting the reverb tail.
    """
    x = change_speed(speech.astype(np.float64), float(cond.get("speed", 1.0)))
    before = int(round(float(cond.get("pad_before_s", 0.0)) * sr))
    after = int(round(float(cond.get("pad_after_s", 0.0)) * sr))
    y = np.concatenate([np.zeros(before), x, np.zeros(after)])
    region = (before, before + len(x))
    if cond.get("rir"):
        rir = synth_rir(rng, sr, float(cond["rt60_s"]), drr_db=float(cond.get("drr_db", 3.0)),
                        distance_m=float(cond.get("distance_m", 1.0)))
        y = reverberate(y, rir)
    if cond.get("noise", "none") != "none":
        # Without a pool, babble is made of the utterance's own speech at random offsets.
        noise = make_noise(str(cond["noise"]), len(y), rng, sr, pool=babble_pool or [x])
        y = add_noise(y, noise, float(cond["snr_db"]), region)
    if cond.get("telephone"):
        y = telephone(y, sr)
    y = _set_speech_level(y, region, REF_SPEECH_RMS_DBFS)
    y = apply_gain(y, float(cond.get("gain_db", 0.0)))
    return y.astype(np.float32), region[0] / sr, region[1] / sr


def _set_speech_level(y: np.ndarray, region: tuple[int, int], rms_dbfs: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(y[region[0]: region[1]])))) if region[1] > region[0] else 0.0
    return y * (10 ** (rms_dbfs / 20) / rms) if rms > 0 else y
