"""Nodes of a layout and the sources their input ports read from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Source:
    """Where an input port reads from: output ``port`` of node ``node``, or, when
    ``node`` is ``None``, the layout's external input named ``port``.

    Example:
        >>> Source(None, "features"), Source("find[red]#0", "mask")
        (Source(<input 'features'>), Source('find[red]#0'.mask))
    """

    node: str | None
    port: str

    @property
    def external(self) -> bool:
        return self.node is None

    def __repr__(self) -> str:
        if self.node is None:
            return f"Source(<input '{self.port}'>)"
        return f"Source('{self.node}'.{self.port})"

    def describe(self) -> str:
        return f"input '{self.port}'" if self.node is None else f"node '{self.node}'"


def split_module_name(name: str) -> tuple[str, str | None]:
    """Split a module name into its kind and argument: the one parser of module names.

    ``"filter_color[red]"`` → ``("filter_color", "red")``; ``"And"`` → ``("And", None)``.

    Example:
        >>> split_module_name("filter_color[red]"), split_module_name("And")
        (('filter_color', 'red'), ('And', None))
    """
    if name.endswith("]") and "[" in name:
        fn, arg = name[:-1].split("[", 1)
        return fn, arg
    return name, None


def module_argument(name: str) -> str | None:
    """The argument of an instantiated module name (``"find[red]"`` → ``"red"``), or
    ``None`` for a plain one (``"scene"``); use it instead of slicing the name.

    Example:
        >>> module_argument("find[red]"), module_argument("scene")
        ('red', None)
    """
    return split_module_name(name)[1]


@dataclass(frozen=True)
class Node:
    """One application of a module inside a layout.

    Attributes:
        id: unique within the layout (``"filter_color[red]#2"``).
        module: the module name; the same name anywhere means the same weights.
        kind: the module kind (a key of :class:`~brickwork.layouts.Kinds`).
        arg: the argument of an instantiated kind (``"red"``), if any.
        inputs: input port → :class:`Source`.
    """

    id: str
    module: str
    kind: str
    arg: str | None = None
    inputs: Mapping[str, Source] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", MappingProxyType(dict(self.inputs)))

    def __hash__(self) -> int:
        return hash(
            (self.id, self.module, tuple(sorted(self.inputs.items(), key=lambda kv: kv[0])))
        )
