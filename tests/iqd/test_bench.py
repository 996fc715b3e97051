"""scripts/bench_iqd.py end to end on the tiny detectors: the test-split rows and the E2E's early operating point."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench(runs: dict[str, Path], asr: Path, corpus: Path, out: Path, *extra: str) -> dict:
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_iqd.py"), "--asr", str(asr / "last.pt"),
                        "--corpus", str(corpus), "--cache", str(runs["e2e"].parent / "cache"),
                        *[a for k in ("e2e", "independent", "cascade") for a in (f"--{k}", str(runs[k]))],
                        "--no-streams", "--json", str(out / "b.json"), "--md", str(out / "b.md"),
                        "--det-png", str(out / "det.png"), "--latency-png", str(out / "lat.png"), *extra],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "b.json").read_text())


def test_bench_scores_the_e2e_early_point_within_its_budget(iqd_runs: dict[str, Path], overfit_asr: Path,
                                                            iqd_corpus: Path, tmp_path: Path) -> None:
    res = _bench(iqd_runs, overfit_asr, iqd_corpus, tmp_path / "late", "--early-gap-s", "-10")  # any policy fits
    assert {"e2e", "independent", "cascade", "e2e early"} <= set(res["test"])
    early, ind = res["systems"]["e2e early"], res["systems"]["independent"]
    assert abs(early["dev"]["max_median_latency_s"] - (ind["dev"]["median_s"] + 10)) < 1e-9
    assert early["dev"]["median_s"] <= early["dev"]["max_median_latency_s"]
    assert res["test"]["e2e early"]["n"] == res["test"]["e2e"]["n"] == 4
    gap = res["e2e_vs_independent"]["test (e2e early)"]["median_latency_reduction_s"]
    assert abs(gap - (res["test"]["independent"]["median_s"] - res["test"]["e2e early"]["median_s"])) < 1e-9
    assert "e2e early" in (tmp_path / "late" / "b.md").read_text()
    for extra in (("--early-gap-s", "10"), ("--no-early",)):  # no policy decides 10 s before speech; off
        res = _bench(iqd_runs, overfit_asr, iqd_corpus, tmp_path / extra[-1], *extra)
        assert "e2e early" not in res["test"] and "test (e2e early)" not in res["e2e_vs_independent"]
        assert "test (e2e)" in res["e2e_vs_independent"]


def test_bench_scores_the_fused_detector_next_to_the_plain_one(iqd_runs: dict[str, Path], overfit_asr: Path,
                                                               iqd_corpus: Path, tmp_path: Path) -> None:
    from iqd.fusion import fit_fusion

    fit_fusion(iqd_runs["e2e"] / "model.pt", iqd_runs["cascade"] / "model.pt", tmp_path / "fusion", progress=False)
    res = _bench(iqd_runs, overfit_asr, iqd_corpus, tmp_path / "b", "--fusion", str(tmp_path / "fusion"),
                 "--early-gap-s", "-10")
    assert {"e2e", "e2e + text", "e2e early", "e2e + text early"} <= set(res["test"])
    assert res["test"]["e2e + text"]["n"] == res["test"]["e2e"]["n"] == 4
    fused = json.loads((tmp_path / "fusion" / "dev.json").read_text())
    assert res["systems"]["e2e + text"]["theta"] == fused["theta"]  # its own dev-chosen operating point
    assert "test (e2e + text)" in res["e2e_vs_independent"]  # the shipped row is compared with the baseline
    # the fused early point re-chooses its weight within the early budget; w = 0 is the plain early point
    early, plain = res["systems"]["e2e + text early"], res["systems"]["e2e early"]
    assert early["text_weight"] in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6) and plain["text_weight"] is None
    assert early["dev"]["eer"] <= plain["dev"]["eer"] + 1e-9
