#!/usr/bin/env python
"""Score trained detectors, unchanged, on a cache's dev split (with its continuous recordings when
the detector trained with them), e.g. on tokens of another search than the one they trained on:

    OMP_NUM_THREADS=1 .venv/bin/python scripts/iqd_rescore.py --cache exp/iqd10-beam/cache \
        exp/iqd8/e2e exp/iqd8/cascade [--split dev] [--json out.json]

Per detector: EER of the decisions (the checkpoint's policy, theta swept as in the benchmark), the
EER of the score at the endpoint, FA/FR at the checkpoint's theta and the median latency.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from iqd.bench import cascade_system, detector_policy, endpoints, frame_system
from iqd.cache import check_searches, open_splits
from iqd.train import load_detector, posteriors, tracks_of


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("detectors", nargs="+", help="folders with model.pt")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    searches = check_searches(args.cache)
    out = {"cache": args.cache, "search": searches.get(args.split), "split": args.split}
    for d in args.detectors:
        model, ckpt = load_detector(Path(d) / "model.pt")
        data = open_splits(args.cache, args.split, bool(ckpt["train_config"].get("streams")))
        labels = [u.directed for u in data.utts]
        if ckpt["kind"] == "cascade":
            scores = model.predict([u.hyp for u in data.utts]).numpy()
            r = cascade_system(scores, labels, endpoints(data), [u.speech_start for u in data.utts], ckpt["theta"])
        else:
            r = frame_system(model, ckpt, tracks_of(data, posteriors(model, data), detector_policy(ckpt)))
        r = {k: v for k, v in r.items() if k not in ("curve", "latency_eer")}
        out[d] = r
        print(f"{d} on {args.cache} {data.split} ({len(labels)}): EER {100 * r['eer']:.1f}% endpoint EER "
              f"{100 * r['offline_eer']:.1f}% median {r['median_s']:.2f} s (trained: dev EER "
              f"{100 * ckpt['dev']['eer']:.1f}%)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
