#!/usr/bin/env python
"""How the IQD speech-onset gate's defaults (runtime/iqd_policy.py: ONSET_*) were chosen on dev (docs/iqd.md).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/choose_onset_gate.py --asr exp/iqd/asr/final.pt --corpus data/c14k \
        --cache exp/iqd/cache --e2e exp/iqd/e2e --independent exp/iqd/independent --work /tmp/onset-gate

Dev streams: the corpus's dev utterances joined as `heed corpus streams` joins the test split
(seed 0, 30-60 s), written under WORK (never into the corpus), and streamed through the frozen ASR
as `iqd/bench.py` streams the test recordings (the ASR's output is cached in WORK). For
every gate setting of the grid, each detector with its own dev-chosen policy and theta is scored
on the dev streams and on the cached dev utterances. The rule: the lowest E2E EER on the dev
streams, then the lowest E2E EER on the dev utterances. Prints one JSON line per setting, then the
chosen one.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import torch

from iqd.cache import IqdCache, frame_seconds
from iqd.evaluate import evaluate_policy
from iqd.streams import (decode_recording, join_recordings, labelled_utterances, load_timelines, match,
                         segment_posteriors, segment_track)
from iqd.train import load_detector, posteriors, tracks_of
from runtime.iqd_policy import DecisionPolicy


def dev_streams(args) -> list[tuple[dict, np.ndarray, np.ndarray, list]]:
    """(timeline, fbank (T, n_mels), encoder output (T', J), segments) of each dev stream; cached in WORK."""
    work = Path(args.work)
    cached = work / "asr_dev_streams.pkl"
    if cached.exists():
        return pickle.loads(cached.read_bytes())
    from asr.backend import TorchTransducer
    from iqd.replay import SearchConfig

    manifest = (Path(args.corpus) / "dev.jsonl").read_text().splitlines()
    join_recordings(args.corpus, "dev", [json.loads(line) for line in manifest if line.strip()], work, args.n_streams)
    stream = SearchConfig().stream(TorchTransducer.from_checkpoint(args.asr))  # greedy search
    out = []
    for wav, tl in load_timelines(work, "dev")[: args.n_streams]:
        feats, enc, segments = decode_recording(stream, wav)
        out.append((tl, feats, enc, segments))
    cached.write_bytes(pickle.dumps(out))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asr", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--cache", required=True, help="the detectors' cache (its dev split is used)")
    ap.add_argument("--e2e", required=True)
    ap.add_argument("--independent")
    ap.add_argument("--work", required=True, help="scratch folder for the dev streams")
    ap.add_argument("--n-streams", type=int, default=20)
    ap.add_argument("--margins-db", default="3,4.5,6,8")
    ap.add_argument("--min-ms", default="40,80")
    ap.add_argument("--rise-db-per-s", default="3")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fs = frame_seconds()
    models = {"e2e": load_detector(Path(args.e2e) / "model.pt")}
    if args.independent:
        models["independent"] = load_detector(Path(args.independent) / "model.pt")
    cache = IqdCache(args.cache, "dev")
    silent = cache.silent_tokens
    items = {n: [] for n in models}  # (posteriors, segment, utterance, fbank) per matched dev-stream utterance
    for tl, feats, enc, segments in dev_streams(args):
        utts = labelled_utterances(tl)
        for u, seg in zip(utts, match(utts, segments, fs, silent)):
            for n, (model, _) in models.items():
                p = segment_posteriors(model, feats, enc, seg) if seg is not None else np.zeros(0)
                items[n].append((p, seg, u, feats))
    utt_p = {n: posteriors(m, cache) for n, (m, _) in models.items()}
    floats = lambda s: [float(x) for x in s.split(",")]  # noqa: E731
    grid = [{"onset_min_ms": 0.0}] + [
        {"onset_margin_db": m, "onset_min_ms": ms, "noise_floor_rise_db_per_s": r}
        for m, ms, r in itertools.product(floats(args.margins_db), floats(args.min_ms), floats(args.rise_db_per_s))]
    rows = []
    for gate in grid:
        row = {"gate": gate}
        for n, (_, ckpt) in models.items():
            pol = dataclasses.replace(DecisionPolicy.from_dict(ckpt["policy"]), **gate)
            s = evaluate_policy([segment_track(p, seg, u, fs, silent, feats, pol) for p, seg, u, feats in items[n]],
                                pol, ckpt["theta"])
            d = evaluate_policy(tracks_of(cache, utt_p[n], pol), pol, ckpt["theta"])
            row[n] = {"streams_eer": s["eer"], "streams_fa": s["fa_rate"], "streams_fr": s["fr_rate"],
                      "streams_median_s": s["median_s"], "utterances_eer": d["eer"], "utterances_median_s": d["median_s"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    gated = [r for r in rows if r["gate"]["onset_min_ms"] > 0]
    best = min(gated, key=lambda r: (round(r["e2e"]["streams_eer"], 4), round(r["e2e"]["utterances_eer"], 4)))
    print(json.dumps({"chosen": best["gate"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
