"""`heed corpus ...`: build, streams, import, stats, check."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from corpus.check import add_check_parser
    from corpus.importers import add_import_parser
    from corpus.stats import add_stats_parser
    from corpus.streams import add_streams_parser

    p = subparsers.add_parser("corpus", help="make and inspect data: build, streams, import, stats, check")
    sub = p.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND")
    sub.required = True
    b = sub.add_parser("build", help="synthesize a spoken-language corpus (manifests + 16 kHz WAVs)")
    b.add_argument("--out", type=Path, required=True, help="output folder")
    b.add_argument("--size", default="small", help="small (500 utterances), base (32,000) or a number")
    b.add_argument("--seed", type=int, default=0, help="random seed of the plan (sentences, voices, conditions)")
    b.add_argument("--workers", type=int, default=0, help="worker processes (default: all cores)")
    b.add_argument("--splits", default="train,dev,test",
                   help="render only these splits, comma-separated (default: %(default)s); the plan is the "
                        "same, so a test-only build holds exactly the full build's test utterances")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_guarded(_build))
    for add in (add_streams_parser, add_import_parser, add_stats_parser, add_check_parser):
        add(sub)


def _build(args: argparse.Namespace) -> int:
    from corpus.build import BuildConfig, build_corpus, parse_size

    cfg = BuildConfig(out=args.out, n_utterances=parse_size(args.size), seed=args.seed, workers=args.workers,
                      splits=tuple(s for s in args.splits.split(",") if s))
    t0 = time.time()
    by_split = build_corpus(cfg, progress=not args.quiet)
    hours = sum(u.duration for utts in by_split.values() for u in utts) / 3600
    counts = ", ".join(f"{s} {len(u)}" for s, u in by_split.items())
    print(f"{args.out}: {counts} utterances, {hours:.2f} h of audio in {time.time() - t0:.0f} s")
    return 0


def _guarded(func):
    """Run a command; the project's own errors become one line on stderr and exit status 1."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except user_errors() as e:
            print(f"heed corpus: {e}", file=sys.stderr)
            return 1

    return run


def user_errors() -> tuple[type[BaseException], ...]:
    from corpus.build import BuildError
    from runtime.manifest import ManifestError
    from corpus.sentence import SpokenFormError
    from corpus.tts import MissingEngineError, SynthesisError

    # ImportError and FileNotFoundError: the text sources raise them naming what to install.
    return (BuildError, ManifestError, SpokenFormError, MissingEngineError, SynthesisError,
            FileNotFoundError, ImportError)
