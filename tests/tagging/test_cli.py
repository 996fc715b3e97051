from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def heed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_train_tagger_without_a_corpus_is_one_clear_line(tmp_path: Path) -> None:
    r = heed("train", "tagger", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "exp"))
    assert r.returncode == 1 and "train.jsonl not found" in r.stderr and "Traceback" not in r.stderr
    r = heed("train", "tagger", "--help")
    assert r.returncode == 0 and "--kind" in r.stdout and "--asr-hypotheses" in r.stdout and "--min-word-count" in r.stdout


def test_export_tagger_writes_a_checked_folder(toy_hybrid: Path, tmp_path: Path) -> None:
    r = heed("export", "tagger", str(toy_hybrid), "--out", str(tmp_path / "x"), "--no-int8", "--arm-threshold", "0.7")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "x" / "tagger.json").read_text())
    assert m["policy"]["arm_threshold"] == 0.7 and list(m["files"]) == ["fp32"]
    r = heed("export", "tagger", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "y"))
    assert r.returncode == 1 and "no such checkpoint" in r.stderr
