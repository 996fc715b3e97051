"""`heed train iqd` / `heed export iqd` / `heed export bundle --iqd`: argument errors are one clear line."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def heed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_train_iqd_needs_a_kind() -> None:
    r = heed("train", "iqd", "--corpus", "x", "--out", "y")
    assert r.returncode == 2 and "--kind" in r.stderr and "Traceback" not in r.stderr


def test_train_iqd_rejects_an_unknown_kind() -> None:
    r = heed("train", "iqd", "--kind", "oracle", "--corpus", "x", "--out", "y")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_train_iqd_without_corpus_says_so(tmp_path: Path) -> None:
    r = heed("train", "iqd", "--kind", "e2e", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "train.jsonl not found" in r.stderr and "Traceback" not in r.stderr


def test_train_iqd_without_asr_or_cache_says_so(iqd_corpus: Path, tmp_path: Path) -> None:
    r = heed("train", "iqd", "--kind", "e2e", "--corpus", str(iqd_corpus), "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "--asr" in r.stderr and "Traceback" not in r.stderr
    r = heed("train", "iqd", "--kind", "e2e", "--corpus", str(iqd_corpus), "--out", str(tmp_path / "o"),
             "--asr", str(tmp_path / "missing.pt"))
    assert r.returncode == 1 and "no such checkpoint" in r.stderr


def test_export_iqd_of_a_missing_or_wrong_experiment(tmp_path: Path, iqd_runs: dict[str, Path]) -> None:
    r = heed("export", "iqd", str(tmp_path / "nothing"), "--out", str(tmp_path / "e"))
    assert r.returncode == 1 and "no such checkpoint" in r.stderr and "Traceback" not in r.stderr
    r = heed("export", "iqd", str(iqd_runs["cascade"]), "--out", str(tmp_path / "e"))
    assert r.returncode == 1 and "only the e2e detector" in r.stderr


def test_export_iqd_command_writes_a_checked_export(tmp_path: Path, iqd_runs: dict[str, Path]) -> None:
    r = heed("export", "iqd", str(iqd_runs["e2e"]), "--out", str(tmp_path / "e"), "--check-frames", "50")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "e" / "iqd.json").exists() and (tmp_path / "e" / "iqd.int8.onnx").exists()


def test_bundle_with_a_missing_iqd_export_fails_clearly(tiny_bundle: Path, tmp_path: Path) -> None:
    r = heed("export", "bundle", "--asr", str(tiny_bundle.parent / "asr-export"), "--out", str(tmp_path / "b"),
             "--iqd", str(tmp_path / "no-iqd"))
    assert r.returncode == 1 and "heed export iqd" in r.stderr and "Traceback" not in r.stderr


def test_train_iqd_fusion_needs_both_detectors(tmp_path: Path, iqd_runs: dict[str, Path]) -> None:
    r = heed("train", "iqd", "--kind", "fusion", "--e2e", str(iqd_runs["e2e"]), "--out", str(tmp_path / "f"))
    assert r.returncode == 1 and "--cascade" in r.stderr and "Traceback" not in r.stderr
    r = heed("train", "iqd", "--kind", "fusion", "--e2e", str(iqd_runs["e2e"]), "--cascade", str(tmp_path / "none"),
             "--out", str(tmp_path / "f"))
    assert r.returncode == 1 and "no such checkpoint" in r.stderr
    r = heed("train", "iqd", "--kind", "fusion", "--e2e", str(iqd_runs["cascade"]), "--cascade", str(iqd_runs["cascade"]),
             "--out", str(tmp_path / "f"))
    assert r.returncode == 1 and "e2e and a cascade" in r.stderr and "Traceback" not in r.stderr
    r = heed("train", "iqd", "--kind", "e2e", "--out", str(tmp_path / "o"))
    assert r.returncode == 1 and "needs --corpus" in r.stderr


def test_train_iqd_fusion_then_export(tmp_path: Path, iqd_runs: dict[str, Path]) -> None:
    r = heed("train", "iqd", "--kind", "fusion", "--e2e", str(iqd_runs["e2e"]), "--cascade", str(iqd_runs["cascade"]),
             "--out", str(tmp_path / "f"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    r = heed("export", "iqd", str(tmp_path / "f"), "--out", str(tmp_path / "e"), "--check-frames", "40")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "e" / "text.npz").exists() and '"text"' in (tmp_path / "e" / "iqd.json").read_text()
