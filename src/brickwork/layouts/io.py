"""Save and load the modules of a layout family (a ``Kinds``) and layout structures."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from brickwork.errors import LayoutError, LoadError
from brickwork.layouts.kinds import Kinds
from brickwork.layouts.layout import Layout
from brickwork.layouts.node import Node, Source
from brickwork.modules import (
    MAX_CONFIG_BYTES,
    atomic_write_json,
    load_module,
    read_regular_bytes,
    save_module,
)

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


def load_kinds(
    folder: str | os.PathLike[str],
    into: Kinds | None = None,
    *,
    map_location: str | torch.device | None = None,
    imports: Sequence[str] = (),
) -> Kinds:
    """Load modules saved by :func:`save_kinds` into ``into`` (or a new ``Kinds``).

    Each saved name gets its own weights. A name that was not saved (``find[purple]``
    when only ``find[blue]`` was) gets a fresh module: from ``into``'s factory for its
    kind, else rebuilt from the saved module's class and config (untrained), or a
    :class:`LayoutError` when it cannot be rebuilt — never another name's weights.

    Args:
        folder: written by :func:`save_kinds`.
        into: a vocabulary to add the modules to (its factories serve unseen names).
        map_location: the device to load the modules on.
        imports: module paths you trust to define kinds (see ``load_module``).

    Example:
        >>> import tempfile
        >>> from brickwork.modules import And
        >>> kinds = Kinds(); _ = kinds.add("And[blue]", And.min("b n"))
        >>> back = load_kinds(save_kinds(kinds, tempfile.mkdtemp()))
        >>> back.module("And[purple]") is back.module("And[blue]")
        False
    """
    folder = Path(folder)
    try:
        raw = read_regular_bytes(folder / INDEX, max_bytes=MAX_CONFIG_BYTES)
        index = json.loads(raw)["modules"]
        if not isinstance(index, dict):
            raise TypeError(f"'modules' is a {type(index).__name__}, expected an object")
    except LoadError as exc:
        if not (folder / INDEX).exists():
            raise LoadError(
                f"{folder / INDEX}: missing; was this folder written by save_kinds?"
            ) from None
        raise exc from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise LoadError(f"{folder / INDEX}: damaged ({exc})") from None
    kinds = into if into is not None else Kinds()
    for name, sub in index.items():
        if not isinstance(sub, str) or "/" in sub or "\\" in sub or sub.startswith("."):
            raise LoadError(
                f"{folder / INDEX}: module '{name}' points outside the folder ({sub!r})"
            )
        kinds.add(name, load_module(folder / sub, map_location=map_location, imports=imports))
    return kinds


def layout_from_json(data: Mapping[str, Any], kinds: Kinds) -> Layout:
    """Rebuild a layout from :meth:`Layout.to_json` output (type-checked again)."""
    try:
        nodes = [
            Node(
                n["id"],
                n["module"],
                n["kind"],
                n.get("arg"),
                {p: Source(s[0], s[1]) for p, s in n["inputs"].items()},
            )
            for n in data["nodes"]
        ]
        outputs = {k: Source(s[0], s[1]) for k, s in data.get("outputs", {}).items()}
        return Layout(str(data.get("name", "layout")), nodes, kinds, outputs or None)
    except (KeyError, TypeError, IndexError) as exc:
        raise LayoutError(f"layout JSON is malformed: missing or bad field {exc}") from None
