"""`heed train asr|lm`: the ASR's training recipes' command line (thin: the work is in asr/train.py and
asr/lm.py). `heed train tagger|iqd` are tagging/cli.py's and iqd/cli.py's; runtime/cli.py puts them together."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from asr.settings import apply_settings
from runtime.cli import positive_int


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    """Register `asr` and `lm` under `heed train`."""
    a = sub.add_parser("asr", help="the streaming transducer", description=__doc__)
    a.add_argument("--config", default="small",
                   help="preset: small (2-core CPU, under 2 h), base (accelerator), tiny (tests); student: the streaming "
                        "encoder distilled from Whisper tiny.en without transcripts (docs/student.md), student-tiny (tests)")
    a.add_argument("--corpus", help="corpus folder with train.jsonl and dev.jsonl (default: the preset's)")
    a.add_argument("--out", help="experiment folder: tokenizer, feature cache, checkpoints, log.csv")
    a.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    a.add_argument("--max-minutes", type=float, help="wall-clock budget of this run")
    a.add_argument("--max-epochs", type=positive_int, help="passes over the training data (default: the preset's)")
    a.add_argument("--train-limit", type=int, help="use only the first N training utterances")
    a.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a TrainConfig field (model.KEY for the model), value as JSON")
    a.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    a.set_defaults(func=run_asr)
    lm = sub.add_parser("lm", help="the character n-gram LM of the beam search's shallow fusion (no torch)")
    lm.add_argument("--corpus", default="data/c14k", help="corpus folder: train.jsonl is used, dev/test texts excluded")
    lm.add_argument("--tokens", required=True, help="the ASR's tokens.txt (a character vocabulary)")
    lm.add_argument("--order", type=positive_int, default=8, help="n-gram order in characters")
    lm.add_argument("--no-sources", action="store_true",
                    help="only the training transcripts, not the training split of a built corpus's text sources")
    lm.add_argument("--out", required=True, help="LM file to write (.npz)")
    lm.set_defaults(func=run_lm)



def run_asr(args: argparse.Namespace) -> int:
    import torch.distributed as dist

    from asr.train import PRESETS, train

    from asr.distill import PRESETS as STUDENT_PRESETS

    if args.config in STUDENT_PRESETS:
        return run_student(args)
    if args.config not in PRESETS:
        print(f"heed train asr: unknown --config {args.config!r}; choose from {', '.join([*PRESETS, *STUDENT_PRESETS])}",
              file=sys.stderr)
        return 1
    cfg = PRESETS[args.config]
    changes = {k: v for k, v in (("corpus", args.corpus), ("out", args.out or f"exp/asr-{args.config}"),
                                 ("max_minutes", args.max_minutes), ("max_epochs", args.max_epochs),
                                 ("train_limit", args.train_limit), ("num_threads", args.threads)) if v is not None}
    try:
        cfg = apply_settings(dataclasses.replace(cfg, **changes), args.set)
    except ValueError as e:
        raise SystemExit(f"heed train asr: {e}") from None
    if not os.path.exists(os.path.join(cfg.corpus, "train.jsonl")):
        print(f"heed train asr: {cfg.corpus}/train.jsonl not found; build a corpus first (heed corpus build)", file=sys.stderr)
        return 1
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        path = train(cfg, resume=args.resume, progress=not args.no_progress)
        if distributed:  # every rank done before the group goes: gloo aborts a rank whose peer tore down first
            dist.barrier()
    finally:
        if distributed:
            dist.destroy_process_group()
    print(f"checkpoint: {path}")
    return 0


def run_student(args: argparse.Namespace) -> int:
    """`heed train asr --config student`: label-free distillation (asr/distill.py)."""
    from asr.distill import PRESETS, train_student

    for flag, value in (("--corpus", args.corpus), ("--max-epochs", args.max_epochs), ("--train-limit", args.train_limit)):
        if value is not None:
            print(f"heed train asr: {flag} does not apply to --config {args.config} (its audio is the config's `train` "
                  "manifests; set them with --set train=[...])", file=sys.stderr)
            return 1
    changes = {k: v for k, v in (("out", args.out), ("max_minutes", args.max_minutes),
                                 ("num_threads", args.threads or None)) if v is not None}
    try:
        cfg = apply_settings(dataclasses.replace(PRESETS[args.config], **changes), args.set)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"heed train asr: {e}") from None
    for manifest in (*cfg.train, *([cfg.dev] if cfg.eval_every else [])):
        if not os.path.exists(manifest):
            print(f"heed train asr: {manifest} not found (docs/student.md says how to make the student's audio)",
                  file=sys.stderr)
            return 1
    try:
        path = train_student(cfg, resume=args.resume, progress=not args.no_progress)
    except ValueError as e:
        raise SystemExit(f"heed train asr: {e}") from None
    print(f"checkpoint: {path}")
    return 0


def run_lm(args: argparse.Namespace) -> int:
    from pathlib import Path

    from asr.lm import char_ids, read_tokens_txt, train_kneser_ney, training_texts

    corpus = Path(args.corpus)
    if not (corpus / "train.jsonl").exists():
        print(f"heed train lm: {corpus}/train.jsonl not found", file=sys.stderr)
        return 1
    table = read_tokens_txt(args.tokens)
    texts = training_texts(corpus, sources=not args.no_sources)
    lm = train_kneser_ney([char_ids(t, table) for t in texts], args.order, len(table))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lm.save(out)
    print(json.dumps({"out": str(out), "order": lm.order, "sentences": len(texts),
                      "characters": sum(map(len, texts)), "ngrams": sum(len(t) for t in lm.tok),
                      "bytes": out.stat().st_size}))
    return 0
