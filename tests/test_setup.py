"""scripts/setup: every clone keeps working whatever other clones do (issue 20 item 9).

Two copies of this checkout are set up on the shared environment this checkout's own .venv uses
(HEED_SHARED_ENV: nothing is downloaded); each .venv/bin/heed runs its own copy's code, and
deleting one copy leaves the other working. Before, the shared environment held one editable
install of heed, re-pointed at whichever clone ran setup last: the first clone then ran the
second's code, and failed with ModuleNotFoundError once it was deleted."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".venv", ".git", "data", "exp", "__pycache__", "*.egg-info", ".pytest_cache",
                              ".hypothesis", "build", "dist")


def _shared_env() -> Path:
    stamp = ROOT / ".venv" / ".heed-clone"
    if (ROOT / ".venv").is_symlink() or not stamp.is_file():
        pytest.skip("this checkout's .venv was not made by scripts/setup (run scripts/setup first)")
    return Path(stamp.read_text().split()[0])


def _setup(clone: Path, shared: Path) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(["bash", "scripts/setup"], cwd=clone, capture_output=True, text=True, timeout=600,
                       env={**os.environ, "HEED_SHARED_ENV": str(shared)})
    assert r.returncode == 0, r.stderr
    return time.perf_counter() - t0


def _heed_home(clone: Path, cwd: Path) -> str:
    """Where `clone`'s own interpreter finds heed's runtime package, run from a neutral folder."""
    r = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", "import runtime; print(runtime.__file__)"],
                       cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_each_clone_runs_its_own_code_and_survives_the_others(tmp_path: Path) -> None:
    shared = _shared_env()
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        shutil.copytree(ROOT, clone, ignore=SKIP, symlinks=True)
        _setup(clone, shared)
    assert not (a / ".venv").is_symlink() and (a / ".venv" / "bin" / "heed").is_file()
    neutral = tmp_path / "elsewhere"
    neutral.mkdir()
    assert _heed_home(a, neutral) == str(a / "runtime" / "__init__.py")
    assert _heed_home(b, neutral) == str(b / "runtime" / "__init__.py")
    shutil.rmtree(b)
    r = subprocess.run([str(a / ".venv" / "bin" / "heed"), "--help"], cwd=neutral, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "transcribe" in r.stdout, r.stderr
    assert _setup(a, shared) < 30  # set up already: next to nothing to do
