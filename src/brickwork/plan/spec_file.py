"""The plan file: a JSON description of a layout family plus its data (``brickwork plan``).

Format (every key but ``kinds``, ``layouts`` and ``data`` optional)::

    {
      "name": "toy-nmn",
      "imports": ["brickwork.training.examples"],        # modules that register the kinds
      "kinds": {                                          # layout kind -> registered kind + config
        "find": {"kind": "toy_find", "config": {"channels": 4}},
        "Sum":  {"kind": "Sum", "config": {"axes": "b 5"}}
      },
      "functions": {"filter_color": "find"},              # program function -> kind
      "layouts": [
        {"name": "q0", "program": [{"function": "find", "value_inputs": ["red"], "inputs": []}],
         "externals": {"features": "Features[b 4 h w]"}},
        {"name": "q1",
         "nodes": [{"id": "f", "module": "find[red]", "inputs": {"features": "@features"}},
                   {"id": "d", "module": "describe[what]",
                    "inputs": {"features": "@features", "mask": "f.mask"}}],
         "outputs": {"answer": "d.answer"}}
      ],
      "data": {"inputs": ["features", "question"], "targets": ["answer"],
               "module_targets": {}, "layout_column": "layout",
               "path": "data.safetensors"},               # relative to the plan file
      "cycles": "error",                                  # or "joint"
      "train": {"seed": 0, "workers": 2, "trials": 0, "hparams": {"find": {"epochs": 5}},
                "search": {"find": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": true}}},
                "register_tag": "v1"}
    }

A source is ``"@name"`` (the layout's external input ``name``) or ``"node.port"``.
``data.path`` is a safetensors file of named tensors with a common first axis (written by
:meth:`brickwork.training.Samples.save`), holding the inputs, the targets and the
``layout`` column (each sample's index into ``layouts``).

Example:
    >>> import tempfile
    >>> from brickwork.training.examples import write_example_plan
    >>> path = write_example_plan(tempfile.mkdtemp(), samples=64)
    >>> spec = load_plan_file(path)
    >>> len(spec.family), spec.data.targets
    (4, frozenset({'answer'}))
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, final

from brickwork.errors import BrickworkError, PlanError
from brickwork.layouts import Kinds, Layout, Node, Source, from_program, split_module_name
from brickwork.modules import build
from brickwork.plan.data_spec import DataSpec
from brickwork.types import parse_type


@final
@dataclass(frozen=True)
class PlanFile:
    """A loaded plan file: the family, its vocabulary, the data spec and options."""

    path: Path
    name: str
    kinds: Kinds
    family: list[Layout]
    data: DataSpec
    data_path: Path | None
    cycles: str = "error"
    train: Mapping[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)


def _source(text: Any, where: str) -> Source:
    if not isinstance(text, str) or not text:
        raise PlanError(f"{where}: a source must be '@input' or 'node.port', got {text!r}")
    if text.startswith("@"):
        return Source(None, text[1:])
    if "." not in text:
        raise PlanError(f"{where}: source {text!r} needs a port: write 'node.port' or '@input'")
    node, port = text.rsplit(".", 1)
    return Source(node, port)


def _kinds(spec: Mapping[str, Any], functions: Mapping[str, str], where: str) -> Kinds:
    factories = {}
    for name, entry in spec.items():
        if not isinstance(entry, Mapping) or "kind" not in entry:
            raise PlanError(f"{where}: kinds.{name} must be {{\"kind\": ..., \"config\": {{...}}}}")
        kind, config = str(entry["kind"]), dict(entry.get("config") or {})
        try:
            build(kind, config)
        except BrickworkError as exc:
            raise PlanError(f"{where}: kinds.{name}: {exc}") from None
        factories[name] = (lambda k=kind, c=config: build(k, c))
    return Kinds(factories, functions=functions)


def _layout(entry: Mapping[str, Any], i: int, kinds: Kinds, where: str) -> Layout:
    name = str(entry.get("name", f"layout{i}"))
    here = f"{where}: layouts[{i}] ('{name}')"
    try:
        if "program" in entry:
            externals = {k: (parse_type(v) if isinstance(v, str) else None)
                         for k, v in (entry.get("externals") or {}).items()}
            return from_program(entry["program"], kinds, externals=externals, name=name)
        nodes = []
        for j, n in enumerate(entry.get("nodes") or []):
            module = str(n["module"])
            fn, arg = split_module_name(module)
            inputs = {p: _source(s, f"{here}, node {j}, port '{p}'")
                      for p, s in (n.get("inputs") or {}).items()}
            nodes.append(Node(str(n.get("id", f"{module}#{j}")), module, kinds.kind_for(fn), arg, inputs))
        if not nodes:
            raise PlanError(f"{here}: give 'program' or a non-empty 'nodes' list")
        outputs = ({k: _source(v, f"{here}, output '{k}'") for k, v in entry["outputs"].items()}
                   if entry.get("outputs") else None)
        return Layout(name, nodes, kinds, outputs)
    except PlanError:
        raise
    except BrickworkError as exc:
        raise PlanError(f"{here}: {exc}") from None
    except (KeyError, TypeError) as exc:
        raise PlanError(f"{here}: malformed entry ({exc!r})") from None


def load_plan_file(path: str | os.PathLike[str]) -> PlanFile:
    """Read and check a plan file (see the module docstring for the format).

    Raises:
        PlanError: unreadable JSON, unknown kinds, layouts that do not type-check (with
            file, layout and node in the message).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanError(f"{path}: plan file not found") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: expected a JSON object with 'kinds', 'layouts' and 'data'")
    for key in ("kinds", "layouts", "data"):
        if key not in raw:
            raise PlanError(f"{path}: key {key!r} is missing; see `brickwork plan --help-format`")
    for mod in raw.get("imports", []):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise PlanError(f"{path}: cannot import {mod!r} ({exc}); install it or fix 'imports'") from None
    kinds = _kinds(raw["kinds"], raw.get("functions") or {}, str(path))
    family = [_layout(e, i, kinds, str(path)) for i, e in enumerate(raw["layouts"])]
    data = DataSpec.from_json(raw["data"])
    dp = raw["data"].get("path")
    data_path = (path.parent / dp) if dp else None
    return PlanFile(path, str(raw.get("name", path.stem)), kinds, family, data, data_path,
                    str(raw.get("cycles", "error")), dict(raw.get("train") or {}), raw)
