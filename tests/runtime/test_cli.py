from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def heed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_of_the_interface() -> None:
    r = heed("--help")
    assert r.returncode == 0
    for name in ("demo", "mic", "transcribe", "eval", "bench", "corpus", "train", "export"):
        assert name in r.stdout


def test_corpus_help_lists_its_subcommands() -> None:
    r = heed("corpus", "--help")
    assert r.returncode == 0
    for name in ("build", "streams", "import", "stats", "check"):
        assert name in r.stdout


def test_command_of_a_later_issue_says_so(capsys) -> None:
    import argparse

    from runtime.cli import add_planned

    parser = argparse.ArgumentParser()
    add_planned(parser.add_subparsers(dest="what"), "train", {"thing": 9})
    args = parser.parse_args(["thing"])
    assert args.func(args) == 2 and "issue #9" in capsys.readouterr().err


def test_bad_size_is_one_clear_line(tmp_path: Path) -> None:
    r = heed("corpus", "build", "--out", str(tmp_path / "c"), "--size", "lots")
    assert r.returncode == 1 and "--size" in r.stderr and "Traceback" not in r.stderr


def test_runtime_cli_does_not_import_torch() -> None:
    code = "import sys, runtime.cli; runtime.cli.build_parser(); print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
