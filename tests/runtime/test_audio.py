from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from runtime.audio import AudioError, load_audio, resample
from runtime.evaluate import normalize, pooled_wer


def test_load_audio_mixes_stereo_and_resamples(tmp_path: Path) -> None:
    t = np.arange(44100) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(tmp_path / "s.wav", np.stack([tone, tone], axis=1), 44100, subtype="PCM_16")
    x = load_audio(tmp_path / "s.wav", 16000)
    assert x.dtype == np.float32 and abs(len(x) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 16000 / len(x) - 440) < 2
    assert abs(np.max(np.abs(x[100:-100])) - 0.5) < 0.01


def test_load_audio_refuses_with_the_file_name(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(AudioError, match=r"x\.wav: not a readable audio file"):
        load_audio(tmp_path / "x.wav")
    with pytest.raises(AudioError, match="is a folder"):
        load_audio(tmp_path)


def test_truncated_wav_is_refused_and_a_complete_one_is_not(tmp_path: Path) -> None:
    sf.write(tmp_path / "full.wav", np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[:5000])
    assert len(load_audio(tmp_path / "full.wav")) == 16000
    with pytest.raises(AudioError, match=r"cut\.wav: truncated"):
        load_audio(tmp_path / "cut.wav")


def test_resample_keeps_length_ratio() -> None:
    assert len(resample(np.zeros(8000, np.float32), 8000, 16000)) == 16000


def test_normalize_and_pooled_wer() -> None:
    assert normalize("Wake me up, at SEVEN!  ") == "wake me up at seven"
    assert normalize("don't") == "don't"
    assert pooled_wer([("a b c d", "a x c d"), ("e f", "e f")]) == pytest.approx(1 / 6)
    assert pooled_wer([("a b", "a b c")]) == pytest.approx(0.5)
    assert pooled_wer([("", "")]) is None
