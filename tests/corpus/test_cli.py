"""`heed corpus ...` end to end, through the console entry point, for what a user sees."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def heed(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_missing_engine_names_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # no espeak-ng, flite or festival on PATH
    r = heed("corpus", "build", "--out", str(tmp_path / "c"), "--size", "20", env=env)
    assert r.returncode == 1, r.stderr
    assert "apt-get install espeak-ng" in r.stderr and "apt-get install flite" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "c" / "train.jsonl").exists()


def test_build_then_stats_then_streams(tmp_path: Path) -> None:
    out = tmp_path / "c"
    r = heed("corpus", "build", "--out", str(out), "--size", "30", "--seed", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "train 24, dev 2, test 4 utterances" in r.stdout
    r = heed("corpus", "stats", str(out), "--plot", str(tmp_path / "s.png"))
    assert r.returncode == 0 and "sentences shared by train-test: 0" in r.stdout
    assert (tmp_path / "s.png").stat().st_size > 10_000
    r = heed("corpus", "streams", str(out), "--split", "train", "--n", "1", "--min-s", "10", "--max-s", "20")
    assert r.returncode == 0, r.stderr
    index = [json.loads(line) for line in (out / "streams" / "train.jsonl").read_text().splitlines()]
    assert len(index) == 1 and 10 <= index[0]["duration"] <= 20.5
