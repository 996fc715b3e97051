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
}
# command -> (the packages' modules that each register their part with `add_<command>_parser(sub)`,
# one-line help, metavar of the part). Each package owns its recipes; none imports another's command line.
GROUPS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "train": (("asr.train_cli", "tagging.cli", "iqd.cli"), "training recipes: asr, lm, tagger, iqd", "RECIPE"),
    "export": (("asr.export_cli", "tagging.cli", "iqd.cli"), "ONNX export with self-check", "WHAT"),
}
PLANNED: dict[str, int] = {}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's help ends with its default, unless it has none
    (None, False, an empty list) or already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, [], argparse.SUPPRESS) and action.option_strings
        if shown and "default" not in text:
            text += " (default: %(default)s)"
        return text


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


# `--threads` of the runtime commands, one text for all of them
NO_SECOND_PASS_HELP = ("finals from the streaming pass alone: leave out the bundle's Whisper second pass (faster, "
                       "much worse on real speech; partials then come from the streaming pass too)")
STREAM_PARTIALS_HELP = ("partials from the streaming pass alone: Whisper's decoder does not read the open segment "
                        "(bundle.json `partials`; faster, much worse on real speech); finals still from the second pass")
THREADS_HELP = ("onnxruntime threads per graph; on a 2-core machine 2 threads made a stream 3 to 6 times slower "
                "than 1 (heed bench --threads 2: the graphs are small, threading costs more than it gains); "
                "run more streams instead")


def _formatted(parser: argparse.ArgumentParser) -> None:
    """HelpFormatter for a parser and every subcommand under it."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _formatted(sub)


def build_parser(every_command: bool = False) -> argparse.ArgumentParser:
    """The `heed` parser; only the command being run is built in full (its module imported), unless
    every_command (the tests' check that every option has help)."""
    parser = argparse.ArgumentParser(prog="heed", description="Streaming speech understanding on the CPU.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    commands = {**{k: ((m,), h, None) for k, (m, h) in COMMANDS.items()}, **GROUPS}
    for name, (modules, help_, metavar) in commands.items():
        owners = [_owner(m) for m in modules] if wanted == name or every_command else [None]
        if any(o is None for o in owners):
            p = sub.add_parser(name, help=help_, add_help=False)
            p.set_defaults(func=_unavailable(name, modules[0]))
            p.add_argument("rest", nargs=argparse.REMAINDER)
        elif metavar is None:
            owners[0].add_parser(sub)
        else:
            group = sub.add_parser(name, help=help_).add_subparsers(dest=metavar.lower(), metavar=metavar)
            group.required = True
            for owner in owners:
                getattr(owner, f"add_{name}_parser")(group)
    _formatted(parser)
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
