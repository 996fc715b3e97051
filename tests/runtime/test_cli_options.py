"""Every option of every `heed` command has help, and the help shows its default (issue 20)."""
from __future__ import annotations

import argparse

from runtime.cli import build_parser


def _parsers(parser: argparse.ArgumentParser, name: str = "heed"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_every_option_has_help_that_shows_its_default() -> None:
    missing, no_default = [], []
    parsers = list(_parsers(build_parser(every_command=True)))
    assert len(parsers) > 20, "every command and subcommand is built"
    for name, parser in parsers:
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(label)
            elif action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS):
                if f"default: {action.default}" not in text and "default" not in action.help:
                    no_default.append(label)
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help hides the default: {no_default}"
