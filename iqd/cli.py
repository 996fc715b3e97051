"""`heed train iqd` and `heed export iqd`: thin argument parsing; the work is in iqd/train.py and iqd/export.py."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from asr.settings import apply_settings
from runtime.cli import positive_int


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("iqd", help="intended-query detection: e2e, independent, cascade, or the e2e fused with the cascade's text reader",
                       description="Train an intended-query detector on a corpus with directed labels, on the "
                                   "frozen ASR's encoder outputs and transcripts (cached under --cache). "
                                   "--kind fusion trains nothing: it chooses on dev how much the e2e detector "
                                   "trusts the cascade's classifier reading its label history as text (iqd/fusion.py).")
    t.add_argument("--kind", required=True, choices=["e2e", "independent", "cascade", "fusion"],
                   help="e2e: the joint network on the ASR's encoder and tokens; independent: acoustic only; "
                        "cascade: a text classifier on the transcript; fusion: e2e reading its history as text")
    t.add_argument("--corpus", help="corpus folder with train.jsonl and dev.jsonl (directed labels); not for fusion")
    t.add_argument("--e2e", action="append", default=[],
                   help="fusion: experiment folder of the e2e detector (holds model.pt); repeated: joint networks "
                        "of other seeds, averaged (their mean logit) before the text is fused")
    t.add_argument("--cascade", help="fusion: experiment folder of the cascade detector (holds model.pt)")
    t.add_argument("--text-reads", choices=["pieces", "heard"], default="pieces",
                   help="fusion: the text the cascade's classifier reads: the label history's pieces (default) or "
                        "the heard partials' words (Whisper's decoder; a cache filled with --heard)")
    t.add_argument("--out", required=True, help="experiment folder: model.pt, dev.json, log.csv")
    t.add_argument("--asr", help="the frozen ASR's checkpoint (needed to fill the cache)")
    t.add_argument("--cache", help="cache folder of the frozen ASR's outputs (default OUT/cache); share it between kinds")
    t.add_argument("--train-limit", type=int, help="training utterances to cache (default 3000)")
    t.add_argument("--dev-limit", type=int, help="dev utterances to cache (default all)")
    t.add_argument("--max-epochs", type=positive_int, help="passes over the training data (default: TrainConfig's)")
    t.add_argument("--max-minutes", type=float, help="wall-clock budget of the training loop (default 8)")
    t.add_argument("--max-latency", type=float, help="median latency budget (s) of the policy search on dev (default 1.4)")
    t.add_argument("--lr", type=float, help="Adam learning rate (default 2e-3)")
    t.add_argument("--streams", action="store_true",
                   help="also train on the cache's continuous recordings (train-streams) and choose the epoch and "
                        "the policy on dev + dev-streams (python -m iqd.replay --split S --streams N fills them)")
    t.add_argument("--extra-train", action="append", default=[], metavar="CACHE",
                   help="also train on this cache's train split (same ASR and search), e.g. of a corpus the ASR "
                        "never trained on (python -m iqd.replay --corpus OTHER --cache CACHE --split train --crop)")
    t.add_argument("--no-main-train", action="store_true",
                   help="train on the --extra-train caches (and, with --streams, the cache's recordings) instead of "
                        "the cache's own train split: the ASR's own training audio gives too clean label histories")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field of iqd/train.py (model.KEY for IqdConfig), value as JSON, "
                        "e.g. --set token_dropout=0.1 --set model.enc_dropout=0.2")
    t.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads")
    t.add_argument("--seed", type=int, default=0, help="random seed of initialization and batching")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.set_defaults(func=run_train)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("iqd", help="the E2E detector: one-frame ONNX step with state, fp32 and int8; parity-checked")
    e.add_argument("expdir", help="experiment folder of heed train iqd --kind e2e or --kind fusion (holds model.pt)")
    e.add_argument("--out", required=True, help="folder for iqd.onnx, iqd.int8.onnx and iqd.json")
    e.add_argument("--no-int8", action="store_true", help="fp32 graph only, no int8 quantization")
    e.add_argument("--check-frames", type=positive_int, default=200, help="frames compared between torch and onnxruntime")
    e.add_argument("--into", metavar="BUNDLE",
                   help="also install the export (its int8 graph) as BUNDLE's detector: BUNDLE/iqd and bundle.json's iqd entry")
    e.add_argument("--mel-filters", default="models/default/whisper/mel_filters.npy",
                   help="Whisper's mel filters, copied beside the student for a detector trained on its states "
                        "(default: the default bundle's second pass, made by scripts/setup)")
    e.set_defaults(func=run_export)


def _fail(what: str, msg: str) -> int:
    print(f"heed {what}: {msg}", file=sys.stderr)
    return 1


def override(cfg, items: list[str]):
    """cfg (a TrainConfig) with `--set KEY=VALUE` items applied; ValueError on an unknown key or a bad item."""
    return apply_settings(cfg, items)


def run_fusion(args: argparse.Namespace) -> int:
    from iqd.fusion import fit_fusion

    if not args.e2e or not args.cascade:
        return _fail("train iqd", "--kind fusion needs --e2e DIR and --cascade DIR (folders of heed train iqd)")
    e2e = [Path(d) / "model.pt" for d in args.e2e]
    cascade = Path(args.cascade) / "model.pt"
    for p in [*e2e, cascade]:
        if not p.exists():
            return _fail("train iqd", f"{p}: no such checkpoint")
    try:
        path = fit_fusion(e2e, cascade, args.out, cache=args.cache, progress=not args.quiet, reads=args.text_reads)
    except (FileNotFoundError, ValueError) as e:
        return _fail("train iqd", str(e))
    print(f"checkpoint: {path}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from iqd.train import TrainConfig, train

    if args.kind == "fusion":
        return run_fusion(args)
    if not args.corpus:
        return _fail("train iqd", f"--kind {args.kind} needs --corpus")
    if not (Path(args.corpus) / "train.jsonl").exists():
        return _fail("train iqd", f"{args.corpus}/train.jsonl not found; build a corpus first (heed corpus build)")
    cache = Path(args.cache or Path(args.out) / "cache")
    if not args.asr and not (cache / "dev.index.jsonl").exists():
        return _fail("train iqd", f"no cache at {cache}: give --asr CHECKPOINT (the frozen ASR) to fill it")
    if args.asr and not Path(args.asr).exists():
        return _fail("train iqd", f"{args.asr}: no such checkpoint")
    changes = {k: v for k, v in (("train_limit", args.train_limit), ("dev_limit", args.dev_limit),
                                 ("max_epochs", args.max_epochs), ("max_minutes", args.max_minutes),
                                 ("max_median_latency_s", args.max_latency), ("lr", args.lr)) if v is not None}
    try:
        cfg = dataclasses.replace(TrainConfig(), kind=args.kind, corpus=args.corpus, out=args.out, asr=args.asr,
                                  cache=args.cache, threads=args.threads, seed=args.seed, streams=args.streams,
                                  extra_train=tuple(args.extra_train), main_train=not args.no_main_train,
                                  **changes)
        cfg = override(cfg, args.set)
        path = train(cfg, progress=not args.quiet)
    except (FileNotFoundError, ValueError) as e:
        return _fail("train iqd", str(e))
    print(f"checkpoint: {path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from iqd.export import ExportMismatch, export_iqd
    from iqd.train import load_detector

    ckpt_path = Path(args.expdir) / "model.pt"
    if not ckpt_path.exists():
        return _fail("export iqd", f"{ckpt_path}: no such checkpoint (train one with heed train iqd --kind e2e)")
    model, ckpt = load_detector(ckpt_path)
    if ckpt["kind"] != "e2e":
        return _fail("export iqd", f"{ckpt_path} is a {ckpt['kind']} detector; only the e2e detector runs in the runtime")
    check_enc = None
    cache = Path(ckpt["train_config"].get("cache") or Path(args.expdir) / "cache")
    if (cache / "dev.index.jsonl").exists():
        from iqd.cache import IqdCache

        dev = IqdCache(cache, "dev")
        frames, n = [], 0
        for i in range(len(dev)):  # real encoder frames, utterance after utterance
            if n >= args.check_frames:
                break
            frames.append(dev.enc(i))
            n += len(frames[-1])
        check_enc = np.concatenate(frames) if n >= args.check_frames else None
    student, transducer_dim = None, 0
    if (cache / "meta.json").exists():
        cache_meta = json.loads((cache / "meta.json").read_text())
        student = cache_meta.get("student")
        transducer_dim = cache_meta.get("joined", [0])[0] if student else 0
    try:
        manifest = export_iqd(model, ckpt, args.out, int8=not args.no_int8, check_frames=args.check_frames,
                              check_enc=check_enc, student=student, mel_filters=args.mel_filters,
                              transducer_dim=transducer_dim)
    except (ExportMismatch, FileNotFoundError, ValueError) as e:
        return _fail("export iqd", str(e))
    print(json.dumps({k: manifest[k] for k in ("files", "policy", "theta", "parity", "n_params", "bytes")}, indent=1))
    if args.into:
        from asr.export import install_iqd
        from runtime.bundle import Bundle, BundleError

        try:
            bundle = Bundle.load(args.into)
        except BundleError as e:
            return _fail("export iqd", str(e))
        entry = install_iqd(Path(args.out), bundle.path, ["int8"] if "int8" in manifest["files"] else ["fp32"])
        bm = json.loads(bundle.json_path.read_text())
        bm["iqd"] = entry
        bundle.json_path.write_text(json.dumps(bm, indent=1) + "\n")
        print(f"installed in {bundle.path}/iqd")
    return 0
