from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.manifest import read_manifest
from runtime.audio import load_audio
from runtime.demo import View, describe, load_examples
from runtime.pipeline import Pipeline


def _heed(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo_bundle(tiny_bundle: Path, four_utts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle with two of the fixture recordings as its examples."""
    root = tmp_path_factory.mktemp("demo") / "bundle"
    shutil.copytree(tiny_bundle, root)
    (root / "examples").mkdir()
    lines = []
    for u in read_manifest(four_utts / "dev.jsonl")[:2]:
        shutil.copy(four_utts / u.audio, root / "examples" / Path(u.audio).name)
        lines.append(json.dumps({"audio": Path(u.audio).name, "text": u.text, "directed": u.directed}))
    (root / "examples" / "examples.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_demo_plain_prints_partials_and_the_same_finals_as_the_pipeline(demo_bundle: Path) -> None:
    r = _heed("demo", "--bundle", str(demo_bundle), "--fast", "--plain")
    assert r.returncode == 0, r.stderr
    pipe = Pipeline.from_bundle(demo_bundle)
    for ex in load_examples(demo_bundle):
        s = pipe.create_stream()
        s.accept_waveform(load_audio(ex.path), 16000)
        s.input_finished()
        assert ex.path.name in r.stdout and f"said:      {ex.text}" in r.stdout
        assert f"final:   {s.result()['text']}" in r.stdout, r.stdout
    assert "partial:" in r.stdout
    assert "real-time factor" in r.stdout.splitlines()[-1]


def test_demo_without_fast_keeps_real_time_pace(demo_bundle: Path, tmp_path: Path) -> None:
    one = tmp_path / "one"
    shutil.copytree(demo_bundle, one)
    index = one / "examples" / "examples.jsonl"
    index.write_text(index.read_text().splitlines()[0] + "\n")
    duration = len(load_audio(load_examples(one)[0].path)) / 16000
    t0 = time.perf_counter()
    r = _heed("demo", "--bundle", str(one), "--plain")
    assert r.returncode == 0, r.stderr
    assert time.perf_counter() - t0 >= duration


def test_demo_names_a_bundle_without_examples(tiny_bundle: Path) -> None:
    r = _heed("demo", "--bundle", str(tiny_bundle), "--fast")
    assert r.returncode == 1 and "has no recordings" in r.stderr and "Traceback" not in r.stderr


def test_demo_names_a_corrupt_examples_index(demo_bundle: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(demo_bundle, bad)
    (bad / "examples" / "examples.jsonl").write_text('{"text": "no audio field"}\n')
    r = _heed("demo", "--bundle", str(bad), "--fast")
    assert r.returncode == 1 and "examples.jsonl:1" in r.stderr and "Traceback" not in r.stderr


def test_view_shows_tags_intent_slots_and_directedness() -> None:
    ev = {"t": 1.0, "final": True, "text": "wake me at seven",
          "words": [{"word": "wake", "tag": "O"}, {"word": "me", "tag": "O"}, {"word": "at", "tag": "O"},
                    {"word": "seven", "tag": "B-time"}],
          "intent": {"label": "set_alarm", "probability": 0.9},
          "slots": [{"slot": "time", "value": "seven", "start": 0.8, "end": 1.0}],
          "directed": {"probability": 0.94, "decision": "directed", "decided_at": 0.96}}
    line = describe(ev)
    assert line.startswith("wake me at seven/B-time | intent=set_alarm (0.90)")
    assert "time='seven'" in line and "directed p=0.94, directed at 0.96 s" in line
    view = View("a.wav", "wake me at seven", 1.0, {}, [ev])
    assert view.lines()[1] == "  said:      wake me at seven" and view.lines()[2].startswith("  final:")
