#!/usr/bin/env python
"""Tune shallow fusion of a character n-gram LM on the dev split (never the test split).

    .venv/bin/python scripts/tune_lm.py --bundle models/default --corpus data/c14k --per-voice 12 \\
        --lm exp/lm/lm6.npz exp/lm/lm8.npz --scale 0.2 0.4 0.6 --bonus 0 0.5 1 --out exp/lm/tune.json

Decodes a per-voice sample of dev.jsonl through the bundle's streaming ASR (tagger and IQD off:
they do not change the words) once without an LM and once per (LM, scale, bonus, eos_scale),
and prints pooled WER by voice set with the real-time factor. Writes every row as JSON.
"""
from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default="models/default")
    ap.add_argument("--corpus", default="data/c14k")
    ap.add_argument("--split", default="dev", choices=["dev", "train"], help="never test: it is measured once, at the end")
    ap.add_argument("--per-voice", type=int, default=12)
    ap.add_argument("--lm", nargs="+", required=True, help="LM files of heed train lm")
    ap.add_argument("--scale", type=float, nargs="+", default=[0.3])
    ap.add_argument("--bonus", type=float, nargs="+", default=[0.0])
    ap.add_argument("--eos-scale", type=float, nargs="+", default=[0.0])
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--out", default="exp/lm/tune.json")
    args = ap.parse_args()

    from runtime.manifest import read_manifest
    from corpus.tts import VOICES
    from runtime.evaluate import evaluate, pooled_wer, select
    from runtime.lm import LmFusion, NgramLM
    from runtime.pipeline import Pipeline

    manifest = Path(args.corpus) / f"{args.split}.jsonl"
    utts = select(read_manifest(manifest), None, args.per_voice)
    pipe = Pipeline.from_bundle(args.bundle, threads=1)
    pipe.tagger = pipe.iqd = None  # words only
    heldout = {v for v, voice in VOICES.items() if voice.heldout}
    configs = [] if args.no_baseline else [(None, 0.0, 0.0, 0.0)]
    configs += list(itertools.product(args.lm, args.scale, args.bonus, args.eos_scale))
    rows, lms = [], {}
    for path, scale, bonus, eos in configs:
        if path is not None and path not in lms:
            lms[path] = NgramLM.load(path)
        pipe.lm = None if path is None else LmFusion(lms[path], scale, bonus, eos)
        r = evaluate(manifest, pipe, utts)
        row = {"lm": path, "order": lms[path].order if path else None, "scale": scale, "bonus": bonus, "eos_scale": eos,
               "wer": r.wer, "rtf": r.rtf, "n_utts": r.n_utts, **{
                   f"wer_{name}": pooled_wer((x.ref, x.hyp) for x in r.results if (x.voice in heldout) is held)
                   for name, held in (("heldout", True), ("training", False))}}
        rows.append(row)
        print(f"{str(path):22s} scale {scale:4.2f} bonus {bonus:4.2f} eos {eos:4.2f}  WER {100 * r.wer:5.2f}% "
              f"(held-out {100 * row['wer_heldout']:5.2f}%, training {100 * row['wer_training']:5.2f}%)  "
              f"RTF {r.rtf:.4f}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps(old + rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
