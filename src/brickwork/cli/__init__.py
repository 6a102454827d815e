"""The ``brickwork`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; the modules are listed in ``_SUBCOMMANDS``. Only the CLI
prints; errors derived from :class:`brickwork.errors.BrickworkError` are shown as a
message (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from brickwork._version import __version__
from brickwork.errors import BrickworkError

# module names under brickwork.cli, each with register(subparsers)
_SUBCOMMANDS = ["demo", "sorting", "clevr", "plan", "train", "registry"]


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="brickwork",
        description="Typed, independently trained, reusable neural modules.",
    )
    parser.add_argument("--version", action="version", version=f"brickwork {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="show info logs")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        module = importlib.import_module(f"brickwork.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except BrickworkError as exc:
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
