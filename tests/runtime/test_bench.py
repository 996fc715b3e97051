from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corpus.manifest import read_manifest


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


def test_bench_rejects_bad_stream_counts(tiny_bundle: Path) -> None:
    r = _heed("bench", "--bundle", str(tiny_bundle), "--streams", "0,x")
    assert r.returncode == 1 and "--streams" in r.stderr and "Traceback" not in r.stderr
