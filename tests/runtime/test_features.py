"""Streaming fbank equals whole-signal fbank, and the runtime's features never import torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime.features import FbankConfig, StreamingFbank, fbank

REPO = Path(__file__).resolve().parents[2]
STREAM_TOL = 1e-4


def _signal(n: int = 16000 + 123, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(n)).astype(np.float32)


def _stream(extractor: StreamingFbank, samples: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, start = [], 0
    for size in sizes:
        extractor.accept_waveform(samples[start : start + size])
        start += size
        ready = extractor.n_frames_ready
        frames = extractor.pop_frames()
        assert frames.shape == (ready, 80)
        assert extractor.n_frames_ready == 0
        out.append(frames)
    assert start >= len(samples)
    extractor.input_finished()
    out.append(extractor.pop_frames())
    return np.concatenate(out)


def _sizes(kind: str, n: int) -> list[int]:
    if kind == "random":
        rng = np.random.default_rng(1)
        sizes = rng.integers(0, 900, size=n // 100).tolist()
        return sizes + [n - sum(sizes)] if sum(sizes) < n else sizes
    size = int(kind)
    return [size] * -(-n // size)


@pytest.mark.parametrize("kind", ["1", "37", "160", "400", "4000", "random"])
def test_streaming_equals_whole(kind: str) -> None:
    samples = _signal()
    whole = fbank(samples)
    streamed = _stream(StreamingFbank(), samples, _sizes(kind, len(samples)))
    assert streamed.shape == whole.shape == (1 + (len(samples) - 400) // 160, 80)
    assert np.abs(streamed - whole).max() < STREAM_TOL


def test_frames_accumulate_until_popped() -> None:
    extractor = StreamingFbank()
    samples = _signal(4000)
    extractor.accept_waveform(samples[:399])
    assert extractor.n_frames_ready == 0
    assert extractor.pop_frames().shape == (0, 80)
    extractor.accept_waveform(samples[399:1000])
    extractor.accept_waveform(samples[1000:])
    assert extractor.n_frames_ready == 1 + (4000 - 400) // 160
    assert np.abs(extractor.pop_frames() - fbank(samples)).max() < STREAM_TOL


def test_reset_starts_a_new_utterance() -> None:
    extractor = StreamingFbank()
    extractor.accept_waveform(_signal(1234, seed=2))
    extractor.input_finished()
    with pytest.raises(RuntimeError):
        extractor.accept_waveform(_signal(10))
    extractor.reset()
    assert extractor.n_frames_ready == 0 and not extractor.finished
    samples = _signal(5000, seed=3)
    streamed = _stream(extractor, samples, _sizes("37", len(samples)))
    assert np.abs(streamed - fbank(samples)).max() < STREAM_TOL


def test_rejects_what_it_cannot_stream() -> None:
    with pytest.raises(ValueError):
        StreamingFbank(FbankConfig(snip_edges=False))
    with pytest.raises(TypeError):
        StreamingFbank().accept_waveform(np.zeros(10, dtype=np.int16))


def test_runtime_features_do_not_import_torch() -> None:
    code = "import sys, runtime.features; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
