"""scripts/bench_tagger.py end to end on the toy export: gold prefixes and ASR-like partials."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from runtime.manifest import Utterance, write_manifest

from .conftest import toy_examples

ROOT = Path(__file__).resolve().parents[2]


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_tagger.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_bench_rows_on_gold_prefixes_and_on_partials(toy_export: Path, tmp_path: Path) -> None:
    examples = toy_examples(12, 21)
    write_manifest(tmp_path / "test.jsonl", [
        Utterance(id=e.id, text=" ".join(e.words), words=list(e.words), tags=list(e.tags), intent=e.intent,
                  source="assistant", split="test") for e in examples])
    r = _bench("--test", "assistant", "--corpus", str(tmp_path), "--hybrid", str(toy_export), "--out", str(tmp_path / "gold"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "gold" / "results.json").read_text())["assistant test"]
    hear = next(v for k, v in res.items() if k.startswith("HEAR"))
    every = res["hybrid, restart every word"]
    assert hear["slot_f1"] == every["slot_f1"] > 90  # the final restart makes the final labels the same
    assert hear["gflops"] < every["gflops"] and every["restarts_per_word"] == 1.0
    assert (tmp_path / "gold" / "arm_curve.png").stat().st_size > 0
    # partials with a revision ("boston" misheard as "austin" first), the last one final
    e = examples[0]
    feed = [list(e.words[:t]) for t in range(1, len(e.words) + 1)]
    feed.insert(2, feed[1] + ["austin"])
    (tmp_path / "partials.jsonl").write_text(json.dumps({"id": e.id, "partials": feed}) + "\n")
    r = _bench("--corpus", str(tmp_path), "--partials", str(tmp_path / "partials.jsonl"), "--hybrid", str(toy_export),
               "--no-curve", "--out", str(tmp_path / "asr"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "asr" / "results.json").read_text())["ASR partials"]
    row = res["hybrid, restart every word"]
    assert "exact_match" not in row and row["n_utterances"] == 1 and 0 <= row["edit_overhead"] < 1
    r = _bench("--partials", str(tmp_path / "partials.jsonl"), "--hybrid", str(toy_export))
    assert r.returncode != 0 and "--corpus" in r.stderr
