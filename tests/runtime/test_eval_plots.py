"""`heed eval --out` plots: WER per condition and voice always; the IQD's DET curve and latency CDF
only when the results carry IQD decisions of both classes."""
from __future__ import annotations

from pathlib import Path

from runtime.evaluate import EvalReport, UttResult, _groups, write_plots


def _report(with_iqd: bool) -> EvalReport:
    results = []
    for i in range(8):
        directed = i % 2 == 0
        iqd = {"probability": 0.9 - 0.1 * i, "decision": "directed" if directed else "undirected",
               "decided_at": 1.0 + 0.1 * i} if with_iqd else None
        results.append(UttResult(id=f"u{i}", ref="turn on the light", hyp="turn the light" if i % 3 else "turn on the light",
                                 duration_s=2.0, compute_s=0.05, voice=f"v{i % 2}", directed=directed,
                                 conditions=("clean",) if i < 4 else ("reverb",), speech_start=0.3, directed_hyp=iqd))
    return EvalReport(manifest="m.jsonl", bundle="b", n_utts=8, wer=0.2, rtf=0.02, threads=1,
                      groups=_groups(results), results=results)


def _is_png(p: Path) -> bool:
    return p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 1000


def test_plots_with_iqd(tmp_path: Path) -> None:
    written = write_plots(_report(True), tmp_path)
    assert {p.name for p in written} == {"wer_by_condition.png", "wer_by_voice.png", "iqd_det.png", "iqd_latency_cdf.png"}
    assert all(_is_png(p) for p in written)


def test_no_iqd_plots_without_iqd(tmp_path: Path) -> None:
    written = write_plots(_report(False), tmp_path)
    assert {p.name for p in written} == {"wer_by_condition.png", "wer_by_voice.png"}
    assert not (tmp_path / "iqd_det.png").exists()
