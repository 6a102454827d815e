"""Shared pieces of the ``brickwork`` command line.

- :func:`add_common_arguments`: ``--debug``, ``-v/--verbose`` and ``--import MODULE``,
  accepted before and after any subcommand (``brickwork.cli.build_parser`` adds them to
  every subcommand parser; :func:`merge_common` folds the values together).
- :func:`device_arg`: a validated ``--device`` option.
- argparse ``type=`` validators with one-line messages: :func:`positive_int`,
  :func:`nonneg_int`, :func:`bounded_int`, :func:`bounded_float`, :func:`safe_name`,
  :func:`existing_file`, :func:`existing_dir`, :func:`writable_out_dir`,
  :func:`writable_out_file`.
- :class:`HelpFormatter`: help with defaults shown and descriptions kept as written;
  :func:`strip_rst` removes RST markup from docstrings used as descriptions.
- :func:`require_tensorboard`: refuse ``--tensorboard`` before anything is written when
  the extra is not installed.
- :func:`describe_error`: the one-line message the CLI shows for an exception.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
    >>> _ = p.add_argument("--scenes", type=bounded_int(1, 1000), default=10)
    >>> p.parse_args(["--scenes", "3"]).scenes
    3
    >>> strip_rst("see :mod:`brickwork.plan` and ``--out``")
    'see brickwork.plan and --out'
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from brickwork.errors import BrickworkError

logger = logging.getLogger(__name__)

# dests of the common flags on the top-level parser; subcommand parsers use
# "_sub<depth>_<dest>" so that a nested parser's namespace does not overwrite the
# values given before the subcommand (argparse copies a subparser's namespace over its
# parent's).
COMMON_DESTS = ("debug", "verbose", "imports")
_SUB_DEST = re.compile(r"^_sub\d+_(debug|verbose|imports)$")


class UsageError(BrickworkError):
    """A command-line argument is invalid (bad value, missing extra, unusable path)."""


# ----------------------------------------------------------------------------- help

_ROLE = re.compile(r":[a-zA-Z]+(?::[a-zA-Z]+)?:`(~?)([^`<]*?)(?:\s*<([^>]+)>)?`")


def strip_rst(text: str | None) -> str | None:
    """Remove RST markup from a docstring shown as ``--help`` text.

    ``:role:`target``` becomes ``target`` (``~a.b.C`` becomes ``C``), ````code````
    and ```text``` lose their backticks, and a paragraph ending in ``::`` ends in ``:``.

    Example:
        >>> strip_rst("uses :class:`~brickwork.plan.Plan`; run ``brickwork plan``::")
        'uses Plan; run brickwork plan:'
    """
    if text is None:
        return None

    def role(m: re.Match[str]) -> str:
        tilde, target, explicit = m.group(1), m.group(2).strip(), m.group(3)
        if explicit and target:  # :ref:`title <label>`
            return target
        target = explicit or target
        return target.rsplit(".", 1)[-1] if tilde else target

    text = _ROLE.sub(role, text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"(?<![`\w])`([^`\n]+)`(?![`\w])", r"\1", text)
    text = re.sub(r"\s*::$", ":", text, flags=re.MULTILINE)
    return text


class HelpFormatter(argparse.HelpFormatter):
    """Help with ``(default: X)`` after each option and descriptions wrapped per paragraph.

    Paragraphs (separated by blank lines) and ``-`` bullets are wrapped to the terminal;
    indented lines (examples) are kept as written. Defaults that say nothing (``None``,
    ``False``, ``[]``) are not shown, nor is a default the help text already mentions.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser(prog="x", formatter_class=HelpFormatter)
        >>> _ = p.add_argument("--seed", type=int, default=0, help="run seed")
        >>> "run seed (default: 0)" in p.format_help()
        True
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out: list[str] = []
        for block in re.split(r"\n\s*\n", text.strip("\n")):
            lines = block.splitlines()
            if lines and all(line.startswith((" ", "\t")) for line in lines if line.strip()):
                out.append("\n".join(indent + line for line in lines))
                continue
            items: list[str] = []
            for line in lines:
                if line.lstrip().startswith(("- ", "* ")) or not items:
                    items.append(line.strip())
                else:
                    items[-1] += " " + line.strip()
            wrapped = []
            for item in items:
                hang = "  " if item.startswith(("- ", "* ")) else ""
                wrapped.append(
                    textwrap.fill(
                        item, width, initial_indent=indent, subsequent_indent=indent + hang
                    )
                )
            out.append("\n".join(wrapped))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if text is argparse.SUPPRESS:
            return text
        if not _shows_default(action):
            return text
        if text and ("%(default)" in text or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def _shows_default(action: argparse.Action) -> bool:
    default = action.default
    return not (
        not action.option_strings
        or default is None
        or default is False
        or default is argparse.SUPPRESS
        or default == []
        or isinstance(action, (argparse._HelpAction, argparse._VersionAction))
    )


def tidy_parser(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    """Give ``parser`` the :class:`HelpFormatter` and an RST-free description.

    A parser without a description gets ``help_text`` (its one-line subcommand help);
    an option without help text but with a default gets ``default: X`` as its help.
    """
    if parser.formatter_class in (
        argparse.HelpFormatter,
        argparse.RawDescriptionHelpFormatter,
        argparse.ArgumentDefaultsHelpFormatter,
    ):
        parser.formatter_class = HelpFormatter
    parser.description = strip_rst(parser.description or help_text)
    parser.epilog = strip_rst(parser.epilog)
    for action in parser._actions:
        if action.help is None and _shows_default(action):
            action.help = "default: %(default)s"
        elif isinstance(action.help, str) and action.help is not argparse.SUPPRESS:
            action.help = strip_rst(action.help)


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line plus a pointer to ``--help``.

    Subcommand parsers made through ``add_subparsers().add_parser`` inherit the class.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n  (see '{self.prog} --help')\n")


# ----------------------------------------------------------------------------- common flags


def add_common_arguments(parser: argparse.ArgumentParser, *, depth: int = 0) -> None:
    """Add ``--debug``, ``-v/--verbose`` and ``--import MODULE`` to ``parser``.

    ``depth`` 0 is the top-level parser (dests ``debug``, ``verbose``, ``imports`` with
    defaults); deeper parsers get private dests without defaults that
    :func:`merge_common` folds into the top-level ones. A parser that already has
    ``--debug`` is left alone.
    """
    taken = parser._option_string_actions
    if all(flag in taken for flag in ("--debug", "--verbose", "--import")):
        return
    group = parser.add_argument_group("common options")
    if depth == 0:
        names = {"debug": "debug", "verbose": "verbose", "imports": "imports"}
        defaults: dict[str, Any] = {"debug": False, "verbose": False, "imports": []}
    else:
        names = {d: f"_sub{depth}_{d}" for d in COMMON_DESTS}
        defaults = {d: argparse.SUPPRESS for d in COMMON_DESTS}
    if "--debug" not in taken:
        group.add_argument(
            "--debug",
            action="store_true",
            dest=names["debug"],
            default=defaults["debug"],
            help="show tracebacks and debug logs",
        )
    if "--verbose" not in taken:
        flags = ["--verbose"] if "-v" in taken else ["-v", "--verbose"]
        group.add_argument(
            *flags,
            action="store_true",
            dest=names["verbose"],
            default=defaults["verbose"],
            help="show info logs",
        )
    if "--import" not in taken:
        group.add_argument(
            "--import",
            action="append",
            dest=names["imports"],
            metavar="MODULE",
            default=defaults["imports"],
            help="import this Python module first so that the module kinds it "
            "defines are known (repeatable)",
        )


def merge_common(args: argparse.Namespace) -> argparse.Namespace:
    """Fold the subcommand-level common flags into ``args.debug/verbose/imports``.

    Example:
        >>> ns = argparse.Namespace(debug=False, verbose=False, imports=["a"],
        ...                         _sub1_debug=True, _sub2_imports=["b"])
        >>> ns = merge_common(ns)
        >>> ns.debug, ns.imports, hasattr(ns, "_sub1_debug")
        (True, ['a', 'b'], False)
    """
    imports = list(getattr(args, "imports", None) or [])
    debug = bool(getattr(args, "debug", False))
    verbose = bool(getattr(args, "verbose", False))
    for key in sorted(vars(args)):
        m = _SUB_DEST.match(key)
        if not m:
            continue
        value = getattr(args, key)
        delattr(args, key)
        if m.group(1) == "imports":
            imports += [v for v in value if v not in imports]
        elif m.group(1) == "debug":
            debug = debug or bool(value)
        else:
            verbose = verbose or bool(value)
    args.imports, args.debug, args.verbose = imports, debug, verbose
    return args


def import_modules(names: Sequence[str]) -> None:
    """Import each ``--import MODULE`` (through ``brickwork.modules.import_kinds``).

    Raises:
        LoadError: a module cannot be imported; the message names it and the fix.
    """
    if not names:
        return
    from brickwork.modules import import_kinds

    import_kinds(list(names))


# ----------------------------------------------------------------------------- devices

_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d+|mps|meta)$")


def check_device(text: str, *, flag: str = "--device") -> str:
    """Validate a device string; returns it normalised (lower case, stripped).

    Raises:
        argparse.ArgumentTypeError: wrong shape, or CUDA/MPS asked where unavailable.

    Example:
        >>> check_device("CPU")
        'cpu'
    """
    value = str(text).strip().lower()
    if not _DEVICE.match(value):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a device; use cpu, cuda, cuda:N (N = GPU index) or mps"
        )
    if value.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{value}: CUDA is not available here (torch.cuda.is_available() is False); "
                f"use {flag} cpu, or install a CUDA build of PyTorch on a machine with a GPU"
            )
        if ":" in value:
            index, count = int(value.split(":")[1]), torch.cuda.device_count()
            if index >= count:
                raise argparse.ArgumentTypeError(
                    f"{value}: this machine has {count} CUDA device(s) (cuda:0 to "
                    f"cuda:{count - 1}); choose one of those"
                )
    elif value == "mps":
        import torch

        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError(
                f"mps: Apple MPS is not available here; use {flag} cpu"
            )
    return value


def device_arg(
    parser: argparse.ArgumentParser | Any, *, default: str = "cpu", help: str | None = None
) -> argparse.Action:
    """Add a validated ``--device`` option (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``meta``).

    Asking for CUDA on a machine without it is a one-line error naming the flag.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> _ = device_arg(p)
        >>> p.parse_args([]).device
        'cpu'
    """

    def device(text: str) -> str:
        return check_device(text)

    device.__name__ = "device"
    return parser.add_argument(
        "--device",
        type=device,
        default=default,
        metavar="DEVICE",
        help=help or "where modules run: cpu, cuda, cuda:N or mps",
    )


#: the largest --workers accepted (more processes than this is a typo on any machine)
MAX_WORKERS = 256


def workers_arg(
    parser: argparse.ArgumentParser | Any,
    *,
    default: int | None = 2,
    help: str = "parallel processes",
) -> argparse.Action:
    """Add ``--workers``: how many processes run the jobs (1 to :data:`MAX_WORKERS`).

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser()
        >>> _ = workers_arg(p)
        >>> p.parse_args([]).workers, p.parse_args(["--workers", "4"]).workers
        (2, 4)
    """
    return parser.add_argument(
        "--workers", type=bounded_int(1, MAX_WORKERS), default=default, help=help
    )


# ----------------------------------------------------------------------------- numbers


def bounded_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in ``[lo, hi]`` (either bound may be None).

    Example:
        >>> bounded_int(1, 10)("4")
        4
        >>> bounded_int(1, 10)("11")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: 11 is too large: the maximum is 10
    """

    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if lo is not None and value < lo:
            what = {0: "a count of 0 or more", 1: "a count of 1 or more"}.get(lo, f"at least {lo}")
            raise argparse.ArgumentTypeError(f"{value} is too small: expected {what}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"{value} is too large: the maximum is {hi}")
        return value

    parse.__name__ = "int"
    return parse


def bounded_float(
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Callable[[str], float]:
    """An argparse type: a finite float in ``[lo, hi]`` (``lo_open``/``hi_open``: strict).

    Example:
        >>> bounded_float(0, 1, lo_open=True)("0.5")
        0.5
    """

    def parse(text: str) -> float:
        try:
            value = float(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r}: a finite number is needed")
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise argparse.ArgumentTypeError(
                f"{value:g} is too small: expected {'more than' if lo_open else 'at least'} {lo:g}"
            )
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise argparse.ArgumentTypeError(
                f"{value:g} is too large: expected {'less than' if hi_open else 'at most'} {hi:g}"
            )
        return value

    parse.__name__ = "float"
    return parse


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1.

    Example:
        >>> positive_int("3")
        3
    """
    return bounded_int(1)(text)


def nonneg_int(text: str) -> int:
    """An argparse type: an integer ≥ 0.

    Example:
        >>> nonneg_int("0")
        0
    """
    return bounded_int(0)(text)


_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def safe_name(text: str) -> str:
    """An argparse type: a name used in file names (letters, digits, ``_``, ``-``).

    Example:
        >>> safe_name("val_ood")
        'val_ood'
    """
    if not _NAME.match(str(text)) or len(text) > 100:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a usable name: use only letters, digits, '_' and '-' "
            "(at most 100 characters), e.g. train or val_ood"
        )
    return str(text)


# ----------------------------------------------------------------------------- paths


def existing_file(text: str) -> str:
    """An argparse type: a readable regular file (a folder or FIFO is refused).

    Example:
        >>> existing_file("/no/such/file")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: /no/such/file does not exist; expected a file
    """
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist; expected a file")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f"{text} is not a regular file (a FIFO or device?); expected a file"
        )
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: permission denied; the file is not readable")
    return str(text)


def existing_dir(text: str) -> str:
    """An argparse type: an existing, readable folder.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> existing_dir(d) == d
        True
    """
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist; expected a folder")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, expected a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: permission denied; the folder is not readable")
    return str(text)


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(who: str, path: Path, *, made: str, fix: str, writable: str) -> None:
    """Refuse ``path`` when the nearest folder above it that exists is a file (``made``:
    what cannot be made under it; ``fix``: what to do) or is not writable."""
    base = _nearest_existing(path)
    if not base.is_dir():
        raise UsageError(f"{who}: {base} is a file, so {made} under it; {fix}")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(
            f"{who}: permission denied ({base} is not writable); choose a writable {writable}"
        )


def check_writable_dir(text: str | os.PathLike[str], *, flag: str = "--out") -> str:
    """Check that ``text`` is, or can be created as, a writable folder; creates nothing.

    Raises:
        UsageError: it is a file, lies under a file, or is not writable.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> check_writable_dir(d + "/new/run") == d + "/new/run"
        True
    """
    path = Path(text)
    who = f"{flag} {text}" if flag else str(text)
    other = f"choose another {flag}" if flag else "choose another folder"
    if path.exists() and not path.is_dir():
        raise UsageError(f"{who}: is a file, expected a folder; {other}")
    _check_creatable(who, path, made="no folder can be made", fix=other, writable=flag or "folder")
    return str(text)


def check_writable_file(text: str | os.PathLike[str], *, flag: str = "--json") -> str:
    """Check that a file can be written at ``text``; creates nothing.

    Raises:
        UsageError: it is a folder, its folder cannot be made, or is not writable.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> check_writable_file(d + "/report.json") == d + "/report.json"
        True
        >>> check_writable_file(d)
        Traceback (most recent call last):
        ...
        brickwork.cli.common.UsageError: --json ...: is a folder, expected a file path; e.g.
        --json .../out.json
    """
    path = Path(text)
    who = f"{flag} {text}" if flag else str(text)
    if path.is_dir():
        raise UsageError(
            f"{who}: is a folder, expected a file path; e.g. "
            f"{(flag + ' ') if flag else ''}{path / 'out.json'}"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{who}: permission denied; the file is not writable")
    _check_creatable(
        who,
        path.parent,
        made="the file cannot be written",
        fix="choose another path",
        writable="path",
    )
    return str(text)


def _as_type(check: Callable[..., str], name: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return check(text, flag="")
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


writable_out_dir = _as_type(check_writable_dir, "folder")
writable_out_dir.__doc__ = """An argparse type: a folder that exists writable or can be created."""
writable_out_file = _as_type(check_writable_file, "file")
writable_out_file.__doc__ = """An argparse type: a file path that can be written."""


# ----------------------------------------------------------------------------- extras


def require_tensorboard(flag: str = "--tensorboard") -> None:
    """Refuse ``flag`` when TensorBoard is not installed (call before making any folder).

    Raises:
        UsageError: the ``tensorboard`` package is missing; the message says how to install.
    """
    if importlib.util.find_spec("tensorboard") is None:
        raise UsageError(
            f"{flag} needs TensorBoard, which is not installed: "
            "pip install 'brickwork[tensorboard]' (or pip install tensorboard), "
            f"or drop {flag}"
        )


# ----------------------------------------------------------------------------- progress


class heartbeat:  # noqa: N801 - used like a function: ``with heartbeat(...):``
    """Print one line every ``interval`` seconds to stderr while a long call runs.

    For library calls that show no progress of their own: the line says how long it has
    been running and, with ``count``, how much is done (e.g. module folders saved).

    Example:
        >>> with heartbeat("demo", interval=60):
        ...     pass
    """

    def __init__(
        self, desc: str, interval: float = 30.0, count: Callable[[], str] | None = None
    ) -> None:
        import threading

        self.desc, self.interval, self.count = desc, interval, count
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat:{desc}", daemon=True)

    def _run(self) -> None:
        import sys
        import time

        t0 = time.monotonic()
        while not self._stop.wait(self.interval):
            minutes, seconds = divmod(int(time.monotonic() - t0), 60)
            extra = ""
            if self.count is not None:
                try:
                    extra = f", {self.count()}"
                except OSError:
                    extra = ""
            try:
                print(
                    f"{self.desc}: running for {minutes}m{seconds:02d}s{extra}",
                    file=sys.stderr,
                    flush=True,
                )
            except (OSError, ValueError):
                return

    def __enter__(self) -> heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


# ----------------------------------------------------------------------------- errors


def _input_files(args: argparse.Namespace | None) -> list[str]:
    """The string arguments that name existing files: where a bad file came from."""
    if args is None:
        return []
    found = []
    for key, value in sorted(vars(args).items()):
        if key.startswith("_") or not isinstance(value, (str, os.PathLike)):
            continue
        try:
            if Path(value).is_file():
                found.append(str(value))
        except (OSError, ValueError):
            continue
    return found


def _in_files(args: argparse.Namespace | None) -> str:
    files = _input_files(args)
    return f" (reading {', '.join(files)})" if files else ""


def describe_error(exc: BaseException, args: argparse.Namespace | None = None) -> str:
    """The one-line message the CLI shows for ``exc``: what happened, where, and the fix.

    Example:
        >>> describe_error(IsADirectoryError(21, "Is a directory", "runs/x"))
        'runs/x is a folder, expected a file; pass a file path'
    """
    if isinstance(exc, BrickworkError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError):
        name = exc.filename if exc.filename is not None else None
        where = f"{name}" if name is not None else "a file"
        other = f" -> {exc.filename2}" if getattr(exc, "filename2", None) else ""
        code = exc.errno
        if code == errno.ENOSPC or code == errno.EDQUOT:
            return (
                f"disk full while writing {where}{other}; free some space or choose "
                "another --out on a disk with room"
            )
        if isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
            return (
                f"permission denied: {where}{other}; choose a writable --out (or fix the "
                "file's permissions)"
            )
        if code == errno.EROFS:
            return f"read-only file system: {where}; choose a writable --out"
        if isinstance(exc, IsADirectoryError):
            return f"{where} is a folder, expected a file; pass a file path"
        if isinstance(exc, NotADirectoryError):
            return (
                f"{where}: a file is in the way where a folder is expected; pass a folder "
                "path (or remove the file)"
            )
        if isinstance(exc, FileNotFoundError):
            return f"no such file or folder: {where}{other}; check the path"
        if isinstance(exc, FileExistsError):
            return f"{where} already exists; remove it or choose another path"
        if code == errno.ENAMETOOLONG:
            return f"file name too long: {where}; choose a shorter path"
        if code == errno.ELOOP:
            return f"too many levels of symbolic links: {where}; fix the link"
        if isinstance(exc, BrokenPipeError):
            return "broken pipe: a worker process or the reader of the output went away"
        reason = exc.strerror or str(exc) or type(exc).__name__
        return f"{reason}: {where}{other}"
    if isinstance(exc, json.JSONDecodeError):
        return (
            f"invalid JSON{_in_files(args)}: {exc.msg} at line {exc.lineno} column "
            f"{exc.colno}; fix the file (it must be valid JSON)"
        )
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"not UTF-8 text{_in_files(args)}: {exc.reason} at byte {exc.start}; pass a "
            "UTF-8 text/JSON file (is this a binary file?)"
        )
    if isinstance(exc, KeyError):
        key = exc.args[0] if exc.args else "?"
        return (
            f"missing or unknown key {key!r}{_in_files(args)}; check the file's fields and "
            "the names given on the command line"
        )
    if isinstance(exc, (ValueError, TypeError)):
        return (
            f"{type(exc).__name__}{_in_files(args)}: {exc}; check the arguments and the "
            "input file's values"
        )
    if isinstance(exc, MemoryError):
        return "out of memory; choose smaller sizes (or a smaller input)"
    return (
        f"internal error: {type(exc).__name__}: {exc}; rerun with --debug for the "
        "traceback and report it"
    )


__all__ = [
    "ArgumentParser",
    "HelpFormatter",
    "UsageError",
    "add_common_arguments",
    "bounded_float",
    "bounded_int",
    "check_device",
    "check_writable_dir",
    "check_writable_file",
    "describe_error",
    "device_arg",
    "existing_dir",
    "existing_file",
    "heartbeat",
    "import_modules",
    "merge_common",
    "nonneg_int",
    "positive_int",
    "require_tensorboard",
    "safe_name",
    "strip_rst",
    "tidy_parser",
    "writable_out_dir",
    "writable_out_file",
]
