#!/usr/bin/env python
"""Variants of the IQD's text fusion that were tried and not kept (docs/iqd.md, "The label history
read as text"): each prints dev and test EER and median latency over the fusion weights, the
policy chosen on dev (utterances + recordings) at every weight, as `heed train iqd --kind fusion`.

    # the reader: a classifier trained on every word prefix of the reference texts instead of the cascade's
    OMP_NUM_THREADS=1 python scripts/iqd_fusion_experiments.py --exp exp/iqd11 --corpus data/c14k prefix-reader

    # more training audio the ASR never heard: a fresh corpus's train split cached as EXTRA/train,
    # the joint network and the cascade retrained on train + EXTRA/train + train-streams
    heed corpus build --out data/iqd-fresh --size 5000 --seed 23
    python -m iqd.replay --asr exp/iqd11/asr9.pt --corpus data/iqd-fresh --cache exp/iqd12/cache --split train \
        --limit 4000 --crop --search beam --lm exp/bundle-lm/asr/lm.npz
    OMP_NUM_THREADS=1 python scripts/iqd_fusion_experiments.py --exp exp/iqd11 --corpus data/c14k \
        extra-train --extra exp/iqd12/cache

    # the text of the finished best hypothesis instead of the fed tokens (dev utterances only)
    python -m iqd.replay --asr exp/iqd11/asr9.pt --corpus data/c14k --cache exp/iqd11-final/cache --split dev \
        --search beam --lm exp/bundle-lm/asr/lm.npz --history final
    OMP_NUM_THREADS=1 python scripts/iqd_fusion_experiments.py --exp exp/iqd11 --corpus data/c14k \
        final-history --final exp/iqd11-final/cache

EXP holds the run of scripts/train_iqd_all.sh (cache/, e2e/, cascade/); the retrained models use
their train_config (the same budget, seed 0).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import sys
from pathlib import Path

import torch

import iqd.train as T
from iqd.cache import IqdCache, open_splits
from iqd.evaluate import choose_policy, evaluate_policy
from iqd.fusion import cache_pieces, from_cascade, fuse_tracks
from runtime.detection_metrics import eer
from iqd.model import TextClassifier
from runtime.iqd_policy import DecisionPolicy

WEIGHTS = (0.0, 0.3, 0.4, 0.5)


def fused_rows(name: str, e2e, reader, dev, test, base: DecisionPolicy) -> list[str]:
    pieces = cache_pieces(dev)
    td = T.tracks_of(dev, T.posteriors(e2e, dev), base)
    tt = T.tracks_of(test, T.posteriors(e2e, test), base)
    rows = []
    for w in WEIGHTS:
        text = from_cascade(reader, w)
        fd = fuse_tracks(td, [(u.tokens, u.token_frames) for u in dev.utts], text, pieces)
        policy, theta, search = choose_policy(fd, 1.4, base)
        r = evaluate_policy(fuse_tracks(tt, [(u.tokens, u.token_frames) for u in test.utts], text, pieces), policy, theta)
        rows.append(f"| {name} | {w:g} | {100 * search['chosen']['eer']:.1f}% / {search['chosen']['median_s']:.2f} s | "
                    f"{100 * r['eer']:.1f}% / {r['median_s']:.2f} s |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exp", required=True, type=Path)
    ap.add_argument("--corpus", required=True, type=Path)
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("prefix-reader")
    x = sub.add_parser("extra-train")
    x.add_argument("--extra", required=True, type=Path, nargs="+", help="cache folders whose train splits are added")
    x.add_argument("--minutes", type=float, help="the joint network's training budget (default: its train_config's)")
    x.add_argument("--no-main", action="store_true", help="leave out EXP's own train split (the recordings stay)")
    f = sub.add_parser("final-history")
    f.add_argument("--final", required=True, type=Path, help="a cache of the dev split made with --history final")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cache = args.exp / "cache"
    dev, test = open_splits(cache, "dev", True), IqdCache(cache, "test")
    e2e, ck = T.load_detector(args.exp / "e2e" / "model.pt")
    cascade, cck = T.load_detector(args.exp / "cascade" / "model.pt")
    base = DecisionPolicy.from_dict(ck["policy"])
    if args.what == "final-history":  # the joint network reads the fed tokens in both rows; the text differs
        fed, final = IqdCache(cache, "dev"), IqdCache(args.final, "dev")
        if [u.id for u in fed.utts] != [u.id for u in final.utts]:
            raise SystemExit("the two dev caches hold different utterances")
        tracks = T.tracks_of(fed, T.posteriors(e2e, fed), base)
        print("| text read from | w | dev utterances EER / median |\n|---|---:|---:|")
        for w in WEIGHTS:
            for name, c in (("fed tokens", fed), ("finished best", final)):
                fused = fuse_tracks(tracks, [(u.tokens, u.token_frames) for u in c.utts], from_cascade(cascade, w),
                                    cache_pieces(fed))
                _, _, search = choose_policy(fused, 1.4, base)
                print(f"| {name} | {w:g} | {100 * search['chosen']['eer']:.1f}% / {search['chosen']['median_s']:.2f} s |")
        return 0
    print("| joint network + reader | w | dev EER / median | test EER / median |\n|---|---:|---:|---:|", flush=True)
    if args.what == "prefix-reader":
        from iqd_text_ceiling import prefix_classifier

        fused_rows("shipped + the cascade's classifier", e2e, cascade, dev, test, base)
        fused_rows("shipped + reference-prefix classifier", e2e, prefix_classifier(args.corpus), dev, test, base)
        return 0
    cfg, ccfg = T.TrainConfig.from_dict(ck["train_config"]), T.TrainConfig.from_dict(cck["train_config"])
    train, _ = T.prepare(dataclasses.replace(cfg, cache=str(cache), streams=True, extra_train=tuple(map(str, args.extra)),
                                             main_train=not args.no_main), progress=False)
    if args.minutes:
        cfg = dataclasses.replace(cfg, max_minutes=args.minutes)
    print(f"training on {len(train)} rows ({train.split}), {cfg.max_minutes:g} minutes", flush=True)
    torch.manual_seed(cfg.seed)
    new_e2e = T._fit_frames(cfg, T._new_model(cfg, train, train.vocab_size), train, dev, csv.writer(io.StringIO()), False)
    torch.manual_seed(ccfg.seed)
    new_casc = T._fit_cascade(ccfg, TextClassifier(dataclasses.replace(ccfg.model, kind="cascade")), train, dev,
                              csv.writer(io.StringIO()), False)
    labels = [u.directed for u in test.utts]
    print(f"cascade on the final transcripts, test EER: retrained {100 * eer(new_casc.predict([u.hyp for u in test.utts]).numpy(), labels):.1f}%, "
          f"shipped {100 * eer(cascade.predict([u.hyp for u in test.utts]).numpy(), labels):.1f}%", flush=True)
    fused_rows("shipped + shipped cascade", e2e, cascade, dev, test, base)
    fused_rows("retrained + retrained cascade", new_e2e, new_casc, dev, test, base)
    fused_rows("retrained + shipped cascade", new_e2e, cascade, dev, test, base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
