"""corpus.augment: primitives do what their names say; conditions overlap between classes."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.signal import welch

from corpus import augment as A

SR = 16000


def _speechlike(rng: np.random.Generator, dur_s: float = 1.0) -> np.ndarray:
    """Amplitude-modulated harmonic tone: energy like speech, no engine needed."""
    t = np.arange(int(dur_s * SR)) / SR
    tone = sum(np.sin(2 * np.pi * k * 140 * t) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.3 * tone * envelope / np.max(np.abs(tone)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def _pool(rng: np.random.Generator) -> list[np.ndarray]:
    return [_speechlike(rng, d) for d in (0.5, 0.8, 1.1)]


def test_trim_silence_finds_speech() -> None:
    x = np.concatenate([np.zeros(SR // 2), _speechlike(np.random.default_rng(0)), np.zeros(SR)])
    start, end = A.trim_silence(x, SR)
    assert abs(start - SR // 2) <= 160 and abs(end - 3 * SR // 2) <= 160
    assert A.trim_silence(np.zeros(100), SR) == (0, 0)


@pytest.mark.parametrize("factor", [0.9, 1.0, 1.1])
def test_change_speed_scales_length(factor: float) -> None:
    x = _speechlike(np.random.default_rng(1))
    assert abs(len(A.change_speed(x, factor)) - len(x) / factor) <= 2


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.3, 30.0])
@pytest.mark.parametrize("kind", A.NOISE_KINDS)
def test_add_noise_hits_snr_on_speech_region(kind: str, snr_db: float) -> None:
    rng = np.random.default_rng(2)
    x = np.concatenate([np.zeros(SR // 2), _speechlike(rng), np.zeros(SR // 2)])
    noise = A.make_noise(kind, len(x), rng, SR, pool=_pool(rng))
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-6)
    region = (SR // 2, 3 * SR // 2)
    y = A.add_noise(x, noise, snr_db, region)
    s, e = region
    measured = 10 * np.log10(np.mean(x[s:e] ** 2) / np.mean((y - x)[s:e] ** 2))
    assert abs(measured - snr_db) < 0.5


def test_babble_without_pool_fails() -> None:
    with pytest.raises(ValueError, match="pool"):
        A.make_noise("babble", 100, np.random.default_rng(0), SR, pool=[])


def test_noise_colours_tilt_as_named() -> None:
    rng = np.random.default_rng(3)
    def low_to_high_db(kind: str) -> float:
        f, p = welch(A.make_noise(kind, 4 * SR, rng, SR), fs=SR, nperseg=1024)
        return 10 * np.log10(p[(f > 100) & (f < 300)].mean() / p[(f > 3000) & (f < 6000)].mean())
    white, pink, brown = (low_to_high_db(k) for k in ("white", "pink", "brown"))
    assert abs(white) < 2 and pink > 8 and brown > pink + 8
    f, p = welch(A.make_noise("hum", 4 * SR, rng, SR), fs=SR, nperseg=4096)
    assert p[f < 500].sum() > 0.95 * p.sum()


def test_rir_decays_and_reverb_keeps_alignment() -> None:
    rng = np.random.default_rng(4)
    rir = A.synth_rir(rng, SR, rt60_s=0.6, drr_db=0.0, distance_m=3.0)
    delay = int(np.argmax(np.abs(rir)))
    assert delay == round(3.0 / A.SPEED_OF_SOUND_M_S * SR)
    tail = rir[delay + 1:]
    tenth = len(tail) // 10
    assert np.sum(tail[-tenth:] ** 2) < 1e-4 * np.sum(tail[:tenth] ** 2)
    assert 10 * np.log10(1.0 / np.sum(tail**2)) == pytest.approx(0.0, abs=0.01)
    x = np.zeros(SR)
    x[4000] = 1.0
    y = A.reverberate(x, rir)
    assert len(y) == len(x) and int(np.argmax(np.abs(y))) == 4000 and np.max(np.abs(y[:4000])) < 1e-9


def test_telephone_removes_energy_above_4k() -> None:
    x = A.make_noise("white", 2 * SR, np.random.default_rng(5), SR)
    y = A.telephone(x, SR)
    f, p = welch(y, fs=SR, nperseg=1024)
    assert len(y) == len(x)
    assert p[f > 4000].sum() < 1e-3 * p.sum()
    assert p[f < 200].sum() < 1e-2 * p.sum()


def test_apply_gain_scales_and_protects_from_clipping() -> None:
    x = np.full(10, 0.1)
    assert np.allclose(A.apply_gain(x, -6.0), 0.1 * 10 ** (-6 / 20))
    assert np.max(np.abs(A.apply_gain(x, 40.0))) == pytest.approx(A.PEAK_LIMIT)


def test_render_clean_puts_speech_where_it_says() -> None:
    rng = np.random.default_rng(6)
    speech = _speechlike(rng, 1.2)
    cond = {"clean": True, "speed": 1.1, "rir": False, "noise": "none", "telephone": False, "gain_db": 0.0,
            "pad_before_s": 0.4, "pad_after_s": 0.6}
    audio, start_s, end_s = A.render(speech, SR, cond, rng, [])
    assert audio.dtype == np.float32 and np.max(np.abs(audio)) <= 1.0
    assert start_s == pytest.approx(0.4) and end_s == pytest.approx(0.4 + 1.2 / 1.1, abs=1e-3)
    assert len(audio) == pytest.approx(SR * (1.0 + 1.2 / 1.1), abs=2)
    a, b = A.trim_silence(audio, SR)
    assert abs(a / SR - start_s) <= 0.02 and abs(b / SR - end_s) <= 0.02
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(audio[a:b] ** 2)))
    assert rms_dbfs == pytest.approx(A.REF_SPEECH_RMS_DBFS, abs=0.5)


def test_render_is_deterministic_for_every_kind_of_condition() -> None:
    speech = _speechlike(np.random.default_rng(7))
    pool = _pool(np.random.default_rng(8))
    conds = [A.sample_condition(np.random.default_rng(s), directed=bool(s % 2)) for s in range(40)]
    for cond in conds:
        json.dumps(cond)
        out1 = A.render(speech, SR, cond, np.random.default_rng(11), pool)
        out2 = A.render(speech, SR, cond, np.random.default_rng(11), pool)
        assert np.array_equal(out1[0], out2[0]) and out1[1:] == out2[1:]
        assert np.max(np.abs(out1[0])) <= 1.0 and np.all(np.isfinite(out1[0]))
    assert any(c["rir"] for c in conds) and any(c["noise"] == "babble" for c in conds)
    assert any(c["telephone"] for c in conds)


def test_sample_condition_is_deterministic() -> None:
    a = [A.sample_condition(np.random.default_rng(9), True) for _ in range(2)]
    assert a[0] == a[1]


def _labels(cond: dict) -> list[str]:
    return [f"noise:{cond['noise']}", f"rir:{cond['rir']}", f"telephone:{cond['telephone']}",
            f"distance:{cond['distance']}", f"speed:{cond['speed']}", f"clean:{cond['clean']}"]


def test_conditions_overlap_between_classes() -> None:
    rng = np.random.default_rng(10)
    by_class = {d: [A.sample_condition(rng, d) for _ in range(2000)] for d in (True, False)}
    kinds = {d: {lab for c in cs for lab in _labels(c)} for d, cs in by_class.items()}
    expected = {f"noise:{k}" for k in (*A.NOISE_KINDS, "none")} | {"rir:True", "rir:False", "telephone:True",
                "telephone:False", "distance:near", "distance:far", "clean:True", "clean:False"}
    assert expected <= kinds[True] and expected <= kinds[False]

    def mean(d: bool, key: str) -> float:
        return float(np.mean([float(c[key]) for c in by_class[d]]))
    far = {d: np.mean([c["distance"] == "far" for c in cs]) for d, cs in by_class.items()}
    assert mean(False, "gain_db") < mean(True, "gain_db") - 2
    assert far[False] > far[True] + 0.2
    gains = {d: [c["gain_db"] for c in cs if not c["clean"]] for d, cs in by_class.items()}
    assert np.percentile(gains[False], 90) > np.percentile(gains[True], 25)  # wide overlap


def test_render_clean_with_synthesized_speech() -> None:
    from corpus import tts
    try:
        tts.require_voices(["espeak-ng/en-us+m3"])
    except tts.MissingEngineError as e:
        pytest.skip(f"engine not installed: {e}")
    raw = tts.synthesize("espeak-ng/en-us+m3", "set an alarm for seven thirty")
    a, b = A.trim_silence(raw, SR)
    assert 0 <= a < b <= len(raw) and (b - a) > SR // 2
    cond = {"clean": True, "speed": 0.9, "rir": False, "noise": "none", "telephone": False, "gain_db": -6.0,
            "pad_before_s": 0.3, "pad_after_s": 0.5}
    audio, start_s, end_s = A.render(raw[a:b], SR, cond, np.random.default_rng(0), [])
    s, e = A.trim_silence(audio, SR)
    assert abs(s / SR - start_s) <= 0.02 and abs(e / SR - end_s) <= 0.02


def test_render_babble_without_pool_uses_the_speech_itself() -> None:
    speech = _speechlike(np.random.default_rng(12))
    cond = {"clean": False, "speed": 1.0, "rir": False, "noise": "babble", "snr_db": 5.0, "telephone": False,
            "gain_db": 0.0, "pad_before_s": 0.2, "pad_after_s": 0.2}
    audio, start_s, _ = A.render(speech, SR, cond, np.random.default_rng(0), [])
    assert np.sqrt(np.mean(audio[: int(start_s * SR)] ** 2)) > 1e-3  # noise before the speech
