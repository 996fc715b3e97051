"""The `heed` console script: one parser, each subcommand registered by the package that owns it.

Owners are imported only when their command runs, so `heed --help` stays fast and the
runtime's commands never pull in torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> (owning module with `add_parser(subparsers)`, one-line help). A module that does not
# exist yet is listed with the issue that brings it, so `heed --help` tells the truth.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("runtime.demo", "stream the bundled example recordings through the default bundle"),
    "mic": ("runtime.mic", "the live view from a microphone"),
    "transcribe": ("runtime.transcribe", "streaming decode of audio files"),
    "eval": ("runtime.evaluate", "WER, slot F1, IQD EER and latency on a manifest"),
    "bench": ("runtime.bench", "speed, latency and memory figures"),
    "corpus": ("corpus.cli", "make and inspect data: build, streams, import, stats, check"),
    "train": ("asr.train_cli", "training recipes: asr, tagger, iqd"),
    "export": ("asr.export_cli", "ONNX export with self-check"),
}
PLANNED: dict[str, int] = {}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heed", description="Streaming speech understanding on the CPU.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (module, help_) in COMMANDS.items():
        owner = _owner(module) if wanted == name else None
        if owner is not None:
            owner.add_parser(sub)
        else:
            p = sub.add_parser(name, help=help_, add_help=False)
            p.set_defaults(func=_unavailable(name, module))
            p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _owner(module: str):
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return None
        raise


def _unavailable(name: str, module: str):
    def run(args: argparse.Namespace) -> int:
        if name in PLANNED:
            return _say_later(name, PLANNED[name])
        print(f"heed {name}: not available in this version", file=sys.stderr)
        return 2

    return run


def add_planned(sub: argparse._SubParsersAction, command: str, planned: dict[str, int]) -> None:
    """Register subcommands that a later issue brings (`heed train tagger`, ...): each says so, exit 2."""
    for name, issue in planned.items():
        p = sub.add_parser(name, help=f"arrives with issue #{issue}")
        p.set_defaults(func=lambda args, what=f"{command} {name}", i=issue: _say_later(what, i))


def _say_later(what: str, issue: int) -> int:
    print(f"heed {what}: not available in this version (it arrives with issue #{issue})", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = ["heed", *argv]
    args = build_parser().parse_args(sys.argv[1:])
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
