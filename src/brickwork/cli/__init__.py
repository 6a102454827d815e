"""The ``brickwork`` command line.

Each subcommand lives in its own module of this package and exposes
``register(subparsers)``; the modules are listed in ``_SUBCOMMANDS``. Only the CLI
prints. ``--debug``, ``-v/--verbose`` and ``--import MODULE`` are accepted before and
after any subcommand. No error shows a traceback unless ``--debug`` is given: errors
derived from :class:`brickwork.errors.BrickworkError`, and OSError, ValueError,
TypeError, KeyError, UnicodeDecodeError and JSON errors, are shown as one line naming
the file or argument and the fix (exit 2); a closed output pipe (``brickwork registry
list | head``) ends quietly (exit 141); Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from brickwork._version import __version__
from brickwork.cli.common import (
    ArgumentParser,
    HelpFormatter,
    add_common_arguments,
    describe_error,
    import_modules,
    merge_common,
    tidy_parser,
)
from brickwork.errors import BrickworkError

logger = logging.getLogger(__name__)

# module names under brickwork.cli, each with register(subparsers)
_SUBCOMMANDS = [
    "demo",
    "sorting",
    "clevr",
    "plan",
    "train",
    "evaluate",
    "registry",
    "pcfg",
    "compose",
]

# exit codes
EXIT_USAGE = 2
EXIT_INTERNAL = 1
EXIT_SIGPIPE = 141
EXIT_INTERRUPTED = 130


def _subparsers(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[argparse.ArgumentParser, str | None]]:
    """Every direct subcommand parser of ``parser`` with its one-line help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    yield sub, helps.get(name)


def _finish(parser: argparse.ArgumentParser, depth: int) -> None:
    """Add the common flags and the help formatter to every nested subcommand parser."""
    for sub, help_text in _subparsers(parser):
        tidy_parser(sub, help_text)
        add_common_arguments(sub, depth=depth + 1)
        _finish(sub, depth + 1)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    parser = ArgumentParser(
        prog="brickwork",
        description="Typed, independently trained, reusable neural modules.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"brickwork {__version__}")
    add_common_arguments(parser, depth=0)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _SUBCOMMANDS:
        module = importlib.import_module(f"brickwork.cli.{name}")
        module.register(subparsers)
    _finish(parser, 0)
    return parser


def _stdout_is_broken() -> bool:
    """Whether stdout is a pipe whose reader has gone (``| head`` finished)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # not a real file (captured in tests)
        return False
    try:
        import select

        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll() here: assume it was stdout
        return True


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (e.g. captured in tests)
        pass


def _error(message: str) -> None:
    try:
        print(f"error: {message}", file=sys.stderr)
    except (OSError, ValueError):  # stderr gone too: nothing left to tell
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code.

    0 success; 1 a command's own failure (e.g. ``clevr execute`` disagreements) or an
    unexpected error (one line; ``--debug`` shows the traceback); 2 bad input: a usage
    error, a :class:`~brickwork.errors.BrickworkError`, or an OSError/ValueError/TypeError/
    KeyError/UnicodeDecodeError/JSON error shown as one line naming the file and the fix;
    130 Ctrl-C; 141 the reader of stdout went away (``| head``). argparse's own errors
    and ``--help``/``--version`` raise SystemExit as usual.

    Example:
        >>> main(["clevr", "generate", "--scenes", "0", "--out", "x"])
        Traceback (most recent call last):
        ...
        SystemExit: 2
    """
    debug = "--debug" in (sys.argv[1:] if argv is None else list(argv))
    try:
        code = _main(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:
        # the reader of our output went away (`brickwork registry list | head`): stop
        # quietly, like any Unix tool killed by SIGPIPE
        _silence_stdout()
        return EXIT_SIGPIPE
    except KeyboardInterrupt:
        if debug:
            raise
        _error("interrupted")
        return EXIT_INTERRUPTED


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = merge_common(parser.parse_args(argv))
    level = logging.DEBUG if args.debug else logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose or args.debug:
        logging.getLogger("brickwork").setLevel(level)
    try:
        import_modules(args.imports)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        result = args.func(args)
    except BrokenPipeError:
        if _stdout_is_broken():
            raise
        if args.debug:
            raise
        _error(describe_error(BrokenPipeError(32, "Broken pipe"), args))
        return EXIT_USAGE
    except (KeyboardInterrupt, SystemExit):
        raise
    except BrickworkError as exc:
        if args.debug:
            raise
        _error(describe_error(exc, args))
        return EXIT_USAGE
    except (OSError, ValueError, TypeError, KeyError, MemoryError) as exc:
        if args.debug:
            raise
        _error(describe_error(exc, args) + " (--debug shows the traceback)")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the CLI never shows a traceback without --debug
        if args.debug:
            raise
        _error(describe_error(exc, args))
        return EXIT_INTERNAL
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
