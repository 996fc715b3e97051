"""The torch fbank (training) and its numpy twin (runtime) give the same features."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.features import FbankConfig, fbank
from runtime.features import LOG_FLOOR
from runtime.features import fbank as np_fbank

CFG = FbankConfig()
TWIN_TOL = 1e-3  # max abs difference in the log domain


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """About two seconds of espeak-ng speech at 16 kHz, float32 in [-1, 1]."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed; it synthesizes the speech fixture")
    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "turn the kitchen lights off at seven"], check=True)
    samples, sr = sf.read(wav, dtype="float32")
    if sr != CFG.sample_rate:
        samples = AF.resample(torch.from_numpy(samples), sr, CFG.sample_rate).numpy()
    assert len(samples) > CFG.sample_rate, "espeak-ng made less than a second of audio"
    return samples


def _noise(n: int = 32000) -> np.ndarray:
    return (0.1 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)


def _sine(n: int = 32000, hz: float = 440.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / CFG.sample_rate)).astype(np.float32)


def _max_diff(samples: np.ndarray, cfg: FbankConfig = CFG) -> float:
    ours = np_fbank(samples, cfg)
    theirs = fbank(torch.from_numpy(samples), cfg).numpy()
    assert ours.shape == theirs.shape
    assert ours.dtype == np.float32
    return float(np.abs(ours - theirs).max())


@pytest.mark.parametrize("kind", ["speech", "noise", "sine"])
def test_numpy_twin_matches_torchaudio(kind: str, request: pytest.FixtureRequest) -> None:
    samples = request.getfixturevalue("speech") if kind == "speech" else {"noise": _noise, "sine": _sine}[kind]()
    diff = _max_diff(samples)
    print(f"{kind}: max |numpy - torchaudio| = {diff:.2e} (log domain)")
    assert diff < TWIN_TOL


def test_twins_agree_without_snip_edges() -> None:
    cfg = FbankConfig(snip_edges=False)
    samples = _noise(16037)
    assert np_fbank(samples, cfg).shape == (cfg.n_frames(16037), cfg.n_mels) == (100, 80)
    assert _max_diff(samples, cfg) < TWIN_TOL


@pytest.mark.parametrize("n_samples", [0, 399, 400, 559, 560, 16000, 16123])
def test_shapes(n_samples: int) -> None:
    samples = _noise(n_samples)
    n_frames = 1 + (n_samples - 400) // 160 if n_samples >= 400 else 0
    assert CFG.n_frames(n_samples) == n_frames
    assert fbank(torch.from_numpy(samples)).shape == (n_frames, 80)
    assert np_fbank(samples).shape == (n_frames, 80)


def test_silence_is_floored_not_infinite() -> None:
    zeros = np.zeros(16000, dtype=np.float32)
    for feats in (np_fbank(zeros), fbank(torch.from_numpy(zeros)).numpy()):
        assert np.isfinite(feats).all()
        np.testing.assert_allclose(feats, np.log(LOG_FLOOR), rtol=0, atol=1e-6)


def test_file_and_array_give_same_features(speech: np.ndarray, tmp_path: Path) -> None:
    # 16-bit PCM holds k / 32768 exactly, so int16 scaling recovers the file's integers.
    pcm = np.round(np.clip(speech, -1.0, 32767 / 32768) * 32768).astype(np.int16)
    path = tmp_path / "speech.wav"
    sf.write(path, pcm, CFG.sample_rate, subtype="PCM_16")
    from_file, sr = sf.read(path, dtype="float32")
    assert sr == CFG.sample_rate
    from_array = pcm.astype(np.float32) / 32768
    np.testing.assert_array_equal(np_fbank(from_file), np_fbank(from_array))
    torch.testing.assert_close(fbank(torch.from_numpy(from_file)), fbank(torch.from_numpy(from_array)), rtol=0, atol=0)


def test_config_round_trip() -> None:
    cfg = FbankConfig(n_mels=64, dither=1.0, low_freq=40.0, high_freq=-400.0)
    assert FbankConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert FbankConfig.from_dict(CFG.to_dict()) == CFG
    with pytest.raises(ValueError, match="unknown"):
        FbankConfig.from_dict({**CFG.to_dict(), "n_bins": 80})
    with pytest.raises(AttributeError):
        CFG.n_mels = 40  # type: ignore[misc]


def test_non_default_config_agrees() -> None:
    cfg = FbankConfig(n_mels=40, window="hamming", low_freq=60.0, high_freq=-400.0, preemphasis=0.0)
    assert _max_diff(_noise(8000), cfg) < TWIN_TOL
