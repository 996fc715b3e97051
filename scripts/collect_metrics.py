#!/usr/bin/env python
"""Gather the benchmark reports of scripts/build_default_bundle.sh into the bundle's
`bundle.json` ("metrics"), so that the figures travel with the model they describe.

    .venv/bin/python scripts/collect_metrics.py --bundle models/default
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def collect(docs: Path) -> dict:
    m: dict = {}
    asr = _read(docs / "asr_bench.json")
    if asr:
        h = asr["heed"]
        m["asr"] = {"test_sample": f"{asr['manifest']}, {asr['n_utts']} utterances (per-voice sample)",
                    "wer": h["wer"], "wer_by_voice_set": {k: v["wer"] for k, v in h.get("by_voice_set", {}).items()},
                    "rtf_1_thread": h["rtf"], "chunk_ms_median": asr["chunk_ms"]["median"],
                    "chunk_ms_p95": asr["chunk_ms"]["p95"], "int8_asr_bytes": asr["int8_asr_bytes"],
                    "n_params": asr["n_params"]}
        if "whisper_tiny_en" in asr:
            m["asr"]["whisper_tiny_en_wer"] = asr["whisper_tiny_en"]["wer"]
        if h.get("understanding"):
            m["end_to_end"] = {k: h["understanding"][k] for k in ("slot_f1", "intent_accuracy", "n_utts")}
    for test in ("atis", "assistant"):
        r = _read(docs / f"bundle_tagger_{test}" / "results.json")
        if r:
            (name, rows), = [(k, v) for k, v in r.items() if k != "settings"]
            hear = next(v for k, v in rows.items() if k.startswith("HEAR"))
            every = next(v for k, v in rows.items() if k.startswith("hybrid, restart every word"))
            m.setdefault("tagger", {})[test] = {
                "test": name, "slot_f1": hear["slot_f1"], "intent_accuracy": hear["intent_accuracy"],
                "stream_exact_match": hear["exact_match"], "edit_overhead": hear["edit_overhead"],
                "flops_vs_hybrid_restart_every_word": hear["gflops"] / every["gflops"], "ms_per_word": hear["ms_per_word"]}
    rt = _read(docs / "runtime_bench.json")
    if rt:
        m["runtime"] = rt
    iqd = _read(docs / "iqd_bench.json")
    if iqd:  # the scalars per test set and system; the curves stay in docs/iqd_bench.json
        keep = ("eer", "fa_rate", "fr_rate", "median_s", "p90_s", "offline_eer")
        m["iqd"] = {where: {name: {k: r[k] for k in keep if k in r} for name, r in iqd[where].items() if isinstance(r, dict)}
                    for where in ("test", "streams") if where in iqd}
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--docs", default="docs")
    args = ap.parse_args()
    path = Path(args.bundle) / "bundle.json"
    manifest = json.loads(path.read_text())
    manifest["metrics"] = collect(Path(args.docs))
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
