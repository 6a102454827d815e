"""The plan file: a JSON description of a layout family plus its data (``brickwork plan``).

Format (every key but ``kinds``, ``layouts`` and ``data`` optional)::

    {
      "name": "toy-nmn",
      "imports": ["brickwork.training.fixtures"],        # modules that register the kinds
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
      "codependent": "surrogate",                         # or "joint" (make_plan's policy)
      "policy": {"find": "surrogate"},                    # per kind or module name
      "train": {"seed": 0, "workers": 2, "trials": 0, "val_fraction": 0.2,
                "hparams": {"find": {"epochs": 5, "optimizer": "sgd", "momentum": 0.9,
                                     "scheduler": "cosine", "loss": "mypkg.losses:focal",
                                     "metric": "mypkg.metrics:iou"}},
                "search": {"find": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2,
                                           "log": true}}},
                "register_tag": "v1"}
    }

``train.hparams`` is keyed by layout kind (``find``) or module name (``find[red]``, which
wins); its values are :class:`~brickwork.training.FitConfig` fields (``epochs``,
``batch_size``, ``lr``, ``optimizer``, ``scheduler``, ``max_time``, ``keep_best``, ...),
job settings (``patience``, ``pos_weight``; for modules trained through a surrogate
gradient module ``rank``, ``dropout``, ``starts``, ``plateau``, ``second_round``,
``rounds``, ``summary``, ``top_k``, ``sparsity``, ``prior``: see
:data:`brickwork.training.job.SURROGATE_HPARAMS`) and ``loss`` /
``metric``: importable names ``"pkg.mod:fn"`` (``loss(pred, target) -> tensor``,
``metric(pred, target) -> float``, higher is better). Every value is type-checked when
the file loads: a wrong type is a :class:`~brickwork.errors.PlanError` naming the file,
the key path, what was found and what was expected.

A source is ``"@name"`` (the layout's external input ``name``) or ``"node.port"``.
``data.path`` is a safetensors file of named tensors with a common first axis (written by
:meth:`brickwork.training.Samples.save`), holding the inputs, the targets and the
``layout`` column (each sample's index into ``layouts``).

Example:
    >>> import tempfile
    >>> from brickwork.training.fixtures import write_example_plan
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
from brickwork.modules import build_kind
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
    codependent: str = "surrogate"
    policy: Mapping[str, str] = field(default_factory=dict)

    def plan_options(self) -> dict[str, Any]:
        """The file's ``make_plan`` keywords: ``cycles``, ``codependent``, ``policy``.

        Example:
            >>> import tempfile
            >>> from brickwork.training.fixtures import write_example_plan
            >>> load_plan_file(write_example_plan(tempfile.mkdtemp(), samples=8)).plan_options()
            {'cycles': 'error', 'codependent': 'surrogate', 'policy': {}}
        """
        return {"cycles": self.cycles, "codependent": self.codependent, "policy": dict(self.policy)}


_JSON_NAMES = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
    list: "an array",
    dict: "an object",
}


def _found(value: Any) -> str:
    name = _JSON_NAMES.get(type(value), type(value).__name__)
    text = json.dumps(value, default=str)
    return f"{name} {text if len(text) <= 40 else text[:37] + '...'}"


def _bad(file: str, key: str, value: Any, expected: str) -> PlanError:
    return PlanError(f"{file}: {key}: expected {expected}, found {_found(value)}")


def _want(file: str, key: str, value: Any, kind: str) -> None:
    """Check one JSON value's type: ``str``, ``int``, ``number``, ``bool``, ``object``,
    ``array``, ``str-list``, ``str-map``."""
    ok = {
        "str": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
        "str-list": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "str-map": isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
    }[kind]
    if not ok:
        expected = {
            "str": "a string",
            "int": "an integer",
            "number": "a number",
            "bool": "true or false",
            "object": "an object {...}",
            "array": "an array [...]",
            "str-list": "an array of strings",
            "str-map": "an object of strings",
        }[kind]
        if kind in ("str-list", "str-map") and isinstance(value, (list, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for k, v in items:
                if not isinstance(v, str):
                    raise _bad(
                        file,
                        f"{key}.{k}" if isinstance(value, dict) else f"{key}[{k}]",
                        v,
                        "a string",
                    )
        raise _bad(file, key, value, expected)


_OPTIONAL_NUMBERS = ("max_time", "grad_clip", "pos_weight")
_INTS = {
    "epochs": 1,
    "batch_size": 1,
    "patience": 0,
    "rank": 1,
    "max_steps": 1,
    "starts": 1,
    "rounds": 1,
    "top_k": 1,
}
_NUMBERS = {
    "lr": 0.0,
    "weight_decay": 0.0,
    "momentum": 0.0,
    "dropout": 0.0,
    "plateau": 0.0,
    "sparsity": 0.0,
}


def _check_hparams(file: str, key: str, hp: Any) -> None:
    _want(file, key, hp, "object")
    for name, value in hp.items():
        here = f"{key}.{name}"
        if name in _INTS:
            if name == "max_steps" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < _INTS[name]:
                raise _bad(file, here, value, f"an integer >= {_INTS[name]}")
        elif name in _NUMBERS:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < _NUMBERS[name]
                or (name == "lr" and value <= 0)
            ):
                raise _bad(
                    file,
                    here,
                    value,
                    "a number > 0" if name == "lr" else f"a number >= {_NUMBERS[name]}",
                )
        elif name in _OPTIONAL_NUMBERS:
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
            ):
                raise _bad(file, here, value, "a number > 0 or null")
        elif name in ("optimizer", "keep_best_mode"):
            _want(file, here, value, "str")
        elif name == "summary":
            if value not in ("auto", "flat", "pooled"):
                raise _bad(file, here, value, '"auto", "flat" or "pooled"')
        elif name == "second_round":
            _want(file, here, value, "bool")
        elif name == "prior":
            if value is not None:
                _want(file, here, value, "str")
        elif name in ("scheduler", "keep_best"):
            if value is not None:
                _want(file, here, value, "str")
        elif name == "scheduler_kwargs":
            if value is not None:
                _want(file, here, value, "object")
        elif name in ("loss", "metric"):
            _want(file, here, value, "str")
            try:
                from brickwork.training.losses import resolve_callable

                resolve_callable(value)
            except ImportError:  # pragma: no cover - older fit without resolve_callable
                pass
            except BrickworkError as exc:
                raise PlanError(f"{file}: {here}: {exc}") from None
        elif not (value is None or isinstance(value, (str, int, float, bool))):
            raise _bad(file, here, value, "a number, string, boolean or null")
    try:
        import dataclasses

        from brickwork.training.fit import FitConfig

        fields = {f.name for f in dataclasses.fields(FitConfig)}
        FitConfig(**{k: v for k, v in hp.items() if k in fields and v is not None})
    except BrickworkError as exc:
        raise PlanError(f"{file}: {key}: {exc}") from None
    except TypeError as exc:
        raise PlanError(f"{file}: {key}: {exc}") from None


def validate_plan_json(raw: Any, file: str) -> None:
    """Check the JSON types of a plan file's content, all keys at once.

    Raises:
        PlanError: ``"<file>: <key path>: expected <type>, found <type> <value>"``.

    Example:
        >>> validate_plan_json({"kinds": {}, "layouts": [], "data": {"inputs": "x"}}, "p.json")
        Traceback (most recent call last):
        ...
        brickwork.errors.PlanError: p.json: data.inputs: expected an array of strings,
        found a string "x"
    """
    _want(file, "(top level)", raw, "object")
    for key in ("kinds", "layouts", "data"):
        if key not in raw:
            raise PlanError(f"{file}: key {key!r} is missing; see `brickwork plan --help-format`")
    if "name" in raw:
        _want(file, "name", raw["name"], "str")
    if "imports" in raw:
        _want(file, "imports", raw["imports"], "str-list")
    _want(file, "kinds", raw["kinds"], "object")
    for name, entry in raw["kinds"].items():
        here = f"kinds.{name}"
        _want(file, here, entry, "object")
        if "kind" not in entry:
            raise PlanError(
                f"{file}: {here}: key 'kind' is missing; write "
                '{"kind": "registered_kind", "config": {...}}'
            )
        _want(file, f"{here}.kind", entry["kind"], "str")
        if entry.get("config") is not None:
            _want(file, f"{here}.config", entry["config"], "object")
    if raw.get("functions") is not None:
        _want(file, "functions", raw["functions"], "str-map")
    _want(file, "layouts", raw["layouts"], "array")
    for i, lay in enumerate(raw["layouts"]):
        here = f"layouts[{i}]"
        _want(file, here, lay, "object")
        if "name" in lay:
            _want(file, f"{here}.name", lay["name"], "str")
        if lay.get("externals") is not None:
            _want(file, f"{here}.externals", lay["externals"], "str-map")
        if "nodes" in lay and "program" not in lay:
            _want(file, f"{here}.nodes", lay["nodes"], "array")
            for j, node in enumerate(lay["nodes"]):
                nh = f"{here}.nodes[{j}]"
                _want(file, nh, node, "object")
                if "module" not in node:
                    raise PlanError(f"{file}: {nh}: key 'module' is missing")
                _want(file, f"{nh}.module", node["module"], "str")
                if "id" in node:
                    _want(file, f"{nh}.id", node["id"], "str")
                if node.get("inputs") is not None:
                    _want(file, f"{nh}.inputs", node["inputs"], "str-map")
        if lay.get("outputs") is not None:
            _want(file, f"{here}.outputs", lay["outputs"], "str-map")
    data = raw["data"]
    _want(file, "data", data, "object")
    for key in ("inputs", "targets"):
        if key in data:
            _want(file, f"data.{key}", data[key], "str-list")
    if data.get("module_targets") is not None:
        _want(file, "data.module_targets", data["module_targets"], "str-map")
    for key in ("layout_column", "path"):
        if key in data:
            _want(file, f"data.{key}", data[key], "str")
    if "cycles" in raw:
        _want(file, "cycles", raw["cycles"], "str")
        if raw["cycles"] not in ("error", "joint"):
            raise _bad(file, "cycles", raw["cycles"], '"error" or "joint"')
    if "codependent" in raw and raw["codependent"] not in ("surrogate", "joint"):
        raise _bad(file, "codependent", raw["codependent"], '"surrogate" or "joint"')
    if "policy" in raw:
        _want(file, "policy", raw["policy"], "object")
        for k, v in raw["policy"].items():
            if v not in ("surrogate", "joint"):
                raise _bad(file, f"policy.{k}", v, '"surrogate" or "joint"')
    train = raw.get("train")
    if train is None:
        return
    _want(file, "train", train, "object")
    for key, lo in (("seed", None), ("workers", 1), ("trials", 0)):
        if key in train:
            v = train[key]
            if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo):
                raise _bad(
                    file, f"train.{key}", v, "an integer" + (f" >= {lo}" if lo is not None else "")
                )
    if "val_fraction" in train:
        v = train["val_fraction"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise _bad(file, "train.val_fraction", v, "a number in [0, 1)")
    if "register_tag" in train:
        _want(file, "train.register_tag", train["register_tag"], "str")
    if train.get("hparams") is not None:
        _want(file, "train.hparams", train["hparams"], "object")
        for name, hp in train["hparams"].items():
            _check_hparams(file, f"train.hparams.{name}", hp)
    if train.get("search") is not None:
        _want(file, "train.search", train["search"], "object")
        from brickwork.training.hpo import SearchSpace

        for name, space in train["search"].items():
            _want(file, f"train.search.{name}", space, "object")
            for pname, pspec in space.items():
                _want(file, f"train.search.{name}.{pname}", pspec, "object")
            try:
                SearchSpace(space)
            except BrickworkError as exc:
                raise PlanError(f"{file}: train.search.{name}: {exc}") from None
            except TypeError as exc:
                raise PlanError(f"{file}: train.search.{name}: malformed ({exc})") from None


def _check_names(
    file: str, train: Mapping[str, Any], kinds: Mapping[str, Any], family: list[Layout]
) -> None:
    known = (
        set(kinds) | set().union(*[lay.module_names() for lay in family]) if family else set(kinds)
    )
    for section in ("hparams", "search"):
        for name in train.get(section) or {}:
            if name not in known:
                raise PlanError(
                    f"{file}: train.{section}.{name}: no layout kind or module is named "
                    f"{name!r}; kinds: {sorted(kinds)} (or a module name such as "
                    "'find[red]')"
                )


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
            raise PlanError(f'{where}: kinds.{name} must be {{"kind": ..., "config": {{...}}}}')
        kind, config = str(entry["kind"]), dict(entry.get("config") or {})
        try:
            build_kind(kind, config)
        except BrickworkError as exc:
            raise PlanError(f"{where}: kinds.{name}: {exc}") from None
        factories[name] = lambda k=kind, c=config: build_kind(k, c)
    return Kinds(factories, functions=functions)


def _layout(entry: Mapping[str, Any], i: int, kinds: Kinds, where: str) -> Layout:
    name = str(entry.get("name", f"layout{i}"))
    here = f"{where}: layouts[{i}] ('{name}')"
    try:
        if "program" in entry:
            externals = {
                k: (parse_type(v) if isinstance(v, str) else None)
                for k, v in (entry.get("externals") or {}).items()
            }
            return from_program(entry["program"], kinds, externals=externals, name=name)
        nodes = []
        for j, n in enumerate(entry.get("nodes") or []):
            module = str(n["module"])
            fn, arg = split_module_name(module)
            inputs = {
                p: _source(s, f"{here}, node {j}, port '{p}'")
                for p, s in (n.get("inputs") or {}).items()
            }
            nodes.append(
                Node(str(n.get("id", f"{module}#{j}")), module, kinds.kind_for(fn), arg, inputs)
            )
        if not nodes:
            raise PlanError(f"{here}: give 'program' or a non-empty 'nodes' list")
        outputs = (
            {k: _source(v, f"{here}, output '{k}'") for k, v in entry["outputs"].items()}
            if entry.get("outputs")
            else None
        )
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
    except IsADirectoryError:
        raise PlanError(f"{path}: is a folder, expected a plan file (JSON)") from None
    except PermissionError:
        raise PlanError(f"{path}: permission denied; the plan file is not readable") from None
    except UnicodeDecodeError as exc:
        raise PlanError(
            f"{path}: not a text file (byte {exc.start} is not UTF-8); expected a JSON plan file"
        ) from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise PlanError(
            f"{path}: expected a JSON object with 'kinds', 'layouts' and 'data', "
            f"found {_found(raw)}"
        )
    validate_plan_json(raw, str(path))
    for mod in raw.get("imports", []):
        try:
            importlib.import_module(mod)
        except ImportError as exc:
            raise PlanError(
                f"{path}: cannot import {mod!r} ({exc}); install it or fix 'imports'"
            ) from None
    kinds = _kinds(raw["kinds"], raw.get("functions") or {}, str(path))
    family = [_layout(e, i, kinds, str(path)) for i, e in enumerate(raw["layouts"])]
    _check_names(str(path), raw.get("train") or {}, raw["kinds"], family)
    data = DataSpec.from_json(raw["data"])
    dp = raw["data"].get("path")
    data_path = (path.parent / dp) if dp else None
    return PlanFile(
        path,
        str(raw.get("name", path.stem)),
        kinds,
        family,
        data,
        data_path,
        str(raw.get("cycles", "error")),
        dict(raw.get("train") or {}),
        raw,
        str(raw.get("codependent", "surrogate")),
        dict(raw.get("policy") or {}),
    )
