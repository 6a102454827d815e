"""Layouts: immutable, type-checked DAGs of modules, and the autobatched runner.

Example:
    >>> from brickwork.modules import Adapter
    >>> from brickwork.layouts import chain
    >>> chain(Adapter("log", "b k"), Adapter("softmax", "b k")).depth()
    2
"""

from brickwork.layouts.build import LayoutBuilder, NodeRef, chain, from_program
from brickwork.layouts.io import layout_from_json, load_kinds, save_kinds
from brickwork.layouts.kinds import Kinds
from brickwork.layouts.layout import Layout, fix_hint
from brickwork.layouts.node import Node, Source, module_argument, split_module_name
from brickwork.layouts.program import flatten_program, parse_sexpr
from brickwork.layouts.runner import Runner, call_group
from brickwork.layouts.schedule import Schedule, compile_schedule

__all__ = [
    "Kinds",
    "Layout",
    "LayoutBuilder",
    "Node",
    "NodeRef",
    "Runner",
    "Schedule",
    "Source",
    "call_group",
    "chain",
    "compile_schedule",
    "fix_hint",
    "flatten_program",
    "from_program",
    "layout_from_json",
    "load_kinds",
    "module_argument",
    "parse_sexpr",
    "save_kinds",
    "split_module_name",
]
