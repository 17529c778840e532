"""The `rankstack` command. Each command group lives in its own module, which registers its subcommands."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from rankstack.errors import RankstackError

#: Modules of the command groups, in the order `rankstack --help` lists them.
COMMANDS = ("index", "search", "evaluate", "experiment", "train", "demo", "datasets")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rankstack", description="Multi-stage search and evaluation.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"rankstack.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("default")
    warnings.formatwarning = lambda message, *a, **k: f"rankstack: warning: {message}\n"
    try:
        args.func(args)
    except RankstackError as e:
        print(f"rankstack: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
