from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.manifest import read_manifest


ROOT = Path(__file__).resolve().parents[2]


def _heed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True, timeout=300)


def test_bench_measures_concurrency_chunks_latency_and_memory(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    wavs = [str(four_utts / u.audio) for u in read_manifest(four_utts / "dev.jsonl")]
    r = _heed("bench", "--bundle", str(tiny_bundle), "--audio", *wavs, "--seconds", "4", "--streams", "1,2",
              "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert [c["streams"] for c in report["concurrency"]] == [1, 2]
    assert all(c["wall_s"] > 0 and c["audio_s_per_stream"] >= 4 for c in report["concurrency"])
    assert 0 < report["chunk_ms"]["p50"] <= report["chunk_ms"]["p95"]
    assert report["latency"]["final_after_speech_end_s"] is not None
    assert report["peak_rss_mb"] > 10 and report["bundle_mb"] > 0
    assert "| 2 |" in (tmp_path / "b.md").read_text()
    heed = report["asr_only"]["heed"]
    assert heed["n_chunks"] > 0 and 0 < heed["rtf"] and 0 < heed["chunk_ms_p50"] <= heed["chunk_ms_p95"]


def test_bench_puts_sherpa_onnx_beside_our_asr(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    pytest.importorskip("sherpa_onnx", reason="sherpa-onnx is in the dev extra: pip install -e '.[dev]'")
    wavs = [str(four_utts / u.audio) for u in read_manifest(four_utts / "dev.jsonl")]
    r = _heed("bench", "--bundle", str(tiny_bundle), "--audio", *wavs, "--seconds", "4", "--streams", "1",
              "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "b.json").read_text())["asr_only"]
    heed, sherpa = a["heed"], a["sherpa_onnx"]
    assert "absent" not in sherpa and sherpa["version"]
    assert sherpa["n_chunks"] == heed["n_chunks"] > 0  # the same audio in the same chunks
    assert 0 < sherpa["rtf"] < 10 and 0 < sherpa["rtf_cpu"] and 0 < sherpa["chunk_ms_p50"] <= sherpa["chunk_ms_p95"]
    assert f"| sherpa-onnx {sherpa['version']} OnlineRecognizer |" in (tmp_path / "b.md").read_text()


def test_bench_says_when_sherpa_onnx_is_absent(tiny_bundle: Path, four_utts: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sherpa_onnx.py").write_text("raise ImportError('blocked by the test')\n")
    wavs = [str(four_utts / u.audio) for u in read_manifest(four_utts / "dev.jsonl")]
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "bench", "--bundle", str(tiny_bundle), "--audio", *wavs,
                        "--seconds", "2", "--streams", "1", "--out", str(tmp_path / "b")], capture_output=True, text=True,
                       timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(ROOT)])})
    assert r.returncode == 0, r.stderr
    a = json.loads((tmp_path / "b.json").read_text())["asr_only"]
    assert "not importable" in a["sherpa_onnx"]["absent"] and a["heed"]["n_chunks"] > 0
    assert "sherpa-onnx: absent" in (tmp_path / "b.md").read_text()


def test_bench_rejects_bad_stream_counts(tiny_bundle: Path) -> None:
    r = _heed("bench", "--bundle", str(tiny_bundle), "--streams", "0,x")
    assert r.returncode == 1 and "--streams" in r.stderr and "Traceback" not in r.stderr
