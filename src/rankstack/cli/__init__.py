"""The `rankstack` command. Each command group lives in its own module, which registers its subcommands:
`register(sub)` adds its parser(s) and sets `func` to the module's `run(args)`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from rankstack.errors import RankstackError

#: Modules of the command groups, in the order `rankstack --help` lists them (one a line: others add theirs).
COMMANDS = (
    "index",
    "encode",
    "search",
    "run",
    "fuse",
    "rerank",
    "evaluate",
    "experiment",
    "train",
    "serve",
    "demo",
    "datasets",
    "check",
)
#: Packages of the optional extras: a command that misses one says which extra to install.
OPTIONAL_PACKAGES = {"torch", "transformers", "faiss", "matplotlib", "sentence_transformers", "gguf", "accelerate",
                     "huggingface_hub", "scipy", "ir_datasets"}


def build_parser() -> argparse.ArgumentParser:
    from rankstack import __version__

    parser = argparse.ArgumentParser(prog="rankstack", description="Multi-stage search and evaluation.")
    parser.add_argument("--version", action="version", version=f"rankstack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"rankstack.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; 0 on success, 2 for bad input (one line on stderr, no traceback), 130 when interrupted."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_transformers()
    warnings.simplefilter("default")
    warnings.formatwarning = lambda message, *a, **k: f"rankstack: warning: {message}\n"
    logging.basicConfig(level=logging.WARNING, format="rankstack: %(message)s")
    try:
        args.func(args)
    except RankstackError as e:
        return _fail(e)
    except OSError as e:  # a file that cannot be written or read (a full disk, a missing folder, no permission)
        return _fail(f"{e.strerror or e}: {e.filename}" if e.filename else e)
    except ImportError as e:
        if (e.name or "").split(".")[0] not in OPTIONAL_PACKAGES:
            return _internal(e)
        return _fail(f"{e}; this command needs an optional extra: pip install 'rankstack[neural,faiss]' "
                     "(CPU torch: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)")
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: one line, and the traceback on request
        return _internal(e)
    return 0


def _internal(error: Exception) -> int:
    if os.environ.get("RANKSTACK_DEBUG"):
        raise error
    print(f"rankstack: internal error: {type(error).__name__}: {_one_line(error)} (RANKSTACK_DEBUG=1 shows the "
          "traceback; please report it)", file=sys.stderr)
    return 1


def _quiet_transformers() -> None:
    """No model-load reports between the command's own lines, and transformers' loading bars only on a terminal
    (as rankstack's own bars)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    terminal = sys.stderr.isatty()
    if not terminal:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # imported already (the environment is read at import)
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        if not terminal:
            hf_logging.disable_progress_bar()


def _fail(error: object) -> int:
    print(f"rankstack: error: {_one_line(error)}", file=sys.stderr)
    return 2


def _one_line(error: object) -> str:
    return " ".join(str(error).split())
