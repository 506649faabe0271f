"""The ``compactvideo`` command: parse the arguments, then call the library.

Each module of this package declares one command (or one group of commands) in a ``register(commands)``
function that adds its parser and sets ``run`` to a short function calling into the package; nothing
here computes anything itself.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence

import torch

from compactvideo import __version__
from compactvideo.errors import CompactVideoError, CompactVideoWarning, OptionError

# The command modules, in the order `compactvideo --help` lists them.
COMMAND_MODULES = (
    "demo",
    "data",
    "models",
    "train",
    "evaluate",
    "compress",
    "profiling",
    "export",
    "reproduce",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compactvideo",
        description="Train, compress, evaluate and deploy compact video classifiers.",
    )
    parser.add_argument("--version", action="version", version=f"compactvideo {__version__}")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own choice; 1 is best on small shared CPUs)",
    )
    parser.set_defaults(run=lambda args: parser.print_help() or 2)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"compactvideo.cli.{name}").register(commands)
    return parser


def _one_line_warnings(fallback: Callable) -> Callable:
    """A ``warnings.showwarning`` printing compactvideo's own warnings on one line, like its errors, and
    handing the others to ``fallback``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, CompactVideoWarning):
            print(f"compactvideo: warning: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        try:
            return int(args.run(args) or 0)
        except OptionError as error:  # named after the flag the user typed
            print(f"compactvideo: error: {error.flag_message()}", file=sys.stderr)
            return 2
        except CompactVideoError as error:
            print(f"compactvideo: error: {error}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("compactvideo: interrupted", file=sys.stderr)
            return 130
