"""Save and load the modules of a layout family (a ``Kinds``) and layout structures."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from brickwork.errors import LayoutError, LoadError
from brickwork.layouts.kinds import Kinds
from brickwork.layouts.layout import Layout
from brickwork.layouts.node import Node, Source
from brickwork.modules import atomic_write_json, load_module, save_module

INDEX = "modules.json"


def _folder_name(i: int, module_name: str) -> str:
    return f"{i:04d}-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", module_name)[:60]


def save_kinds(kinds: Kinds, folder: str | os.PathLike[str]) -> Path:
    """Save every instantiated module of ``kinds`` to ``folder`` (one sub-folder each,
    plus ``modules.json`` mapping module names to sub-folders, written last).

    Example:
        >>> import tempfile
        >>> from brickwork.modules import And
        >>> kinds = Kinds(And=lambda: And.min("b n")); _ = kinds.module("And")
        >>> folder = save_kinds(kinds, tempfile.mkdtemp())
        >>> load_kinds(folder).names()
        ['And']
    """
    folder = Path(folder)
    index: dict[str, str] = {}
    for i, (name, module) in enumerate(kinds.items()):
        sub = _folder_name(i, name)
        save_module(module, folder / sub)
        index[name] = sub
    atomic_write_json(folder / INDEX, {"modules": index})
    return folder


def load_kinds(folder: str | os.PathLike[str], into: Kinds | None = None) -> Kinds:
    """Load modules saved by :func:`save_kinds` into ``into`` (or a new ``Kinds``)."""
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX).read_text())["modules"]
    except FileNotFoundError:
        raise LoadError(f"{folder / INDEX}: missing; was this folder written by save_kinds?") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LoadError(f"{folder / INDEX}: damaged ({exc})") from None
    kinds = into if into is not None else Kinds()
    for name, sub in index.items():
        if "/" in sub or "\\" in sub or sub.startswith("."):
            raise LoadError(f"{folder / INDEX}: module '{name}' points outside the folder ({sub!r})")
        kinds.add(name, load_module(folder / sub))
    return kinds


def layout_from_json(data: Mapping[str, Any], kinds: Kinds) -> Layout:
    """Rebuild a layout from :meth:`Layout.to_json` output (type-checked again)."""
    try:
        nodes = [Node(n["id"], n["module"], n["kind"], n.get("arg"),
                      {p: Source(s[0], s[1]) for p, s in n["inputs"].items()})
                 for n in data["nodes"]]
        outputs = {k: Source(s[0], s[1]) for k, s in data.get("outputs", {}).items()}
        return Layout(str(data.get("name", "layout")), nodes, kinds, outputs or None)
    except (KeyError, TypeError, IndexError) as exc:
        raise LayoutError(f"layout JSON is malformed: missing or bad field {exc}") from None
