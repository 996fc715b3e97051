#!/usr/bin/env python
"""The streaming student's numbers for docs/student.md: dev WER of a checkpoint, and training curves.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/student_report.py dev exp/student/best.pt --fill teacher
    OMP_NUM_THREADS=1 .venv/bin/python scripts/student_report.py dev --teacher       # the second pass itself
    OMP_NUM_THREADS=1 .venv/bin/python scripts/student_report.py dev --init          # Whisper's weights, chunk mask
    .venv/bin/python scripts/student_report.py curve main=exp/student/log.csv --out docs/student_wer.png

`dev`: Whisper tiny.en's unchanged decoder (torch, the second pass's greedy search and guards)
over the student's states of each clip of --dev and 2 s of zeros, the positions after them
filled with the teacher's (or the student's) states of a constant input; spoken-form WER per
source (asr.distill.dev_wer), printed as JSON.
`curve`: plots real-dev WER against steps for each LABEL=log.csv and prints the rows as a markdown table.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path



def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("dev")
    d.add_argument("checkpoint", nargs="?", help="best.pt / last.pt of heed train asr --config student")
    d.add_argument("--init", action="store_true", help="the untrained student (Whisper's weights under the chunk mask)")
    d.add_argument("--teacher", action="store_true", help="Whisper's full-context encoder instead of a student")
    d.add_argument("--fill", choices=("teacher", "student"), default="teacher")
    d.add_argument("--dev", default="data/real/dev.jsonl")
    c = sub.add_parser("curve")
    c.add_argument("logs", nargs="+", metavar="LABEL=LOG.csv")
    c.add_argument("--out", required=True)
    c.add_argument("--title", default="")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from asr import distill

    if args.what == "curve":
        logs = dict(item.split("=", 1) for item in args.logs)
        distill.plot_curves(logs, args.out, args.title)
        for label, path in logs.items():
            rows = distill.read_log(path)
            sources = sorted(k for k in rows[0] if k.startswith("wer_"))
            print(f"\n{label} ({path})\n\n| step | minutes | " + " | ".join(["WER", *(s[4:] for s in sources)]) + " |")
            print("|---:|---:|" + "---:|" * (1 + len(sources)))
            for r in rows:
                print(f"| {int(r['step'])} | {r['minutes']:.0f} | " +
                      " | ".join(f"{100 * r[k]:.1f}%" for k in ["wer", *sources]) + " |")
        return 0

    from asr.student import Student, StudentConfig
    from asr.whisper import load_whisper

    whisper = load_whisper()
    folder = distill.reader_folder(whisper, Path(tempfile.mkdtemp()) / "whisper")
    if args.teacher:
        reader, what = distill.teacher_reader(whisper, folder), "teacher (full context)"
    else:
        if bool(args.init) == bool(args.checkpoint):
            ap.error("give a checkpoint, --init or --teacher")
        student = distill.load_student(args.checkpoint) if args.checkpoint else \
            Student.from_whisper(whisper, StudentConfig()).eval()
        reader, what = distill.student_reader(student, whisper, folder, args.fill), args.checkpoint or "init"
    t0 = time.time()
    result = distill.dev_wer(reader, distill.load_dev(args.dev))
    print(json.dumps({"model": what, "fill": None if args.teacher else args.fill, **result,
                      "seconds": round(time.time() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
