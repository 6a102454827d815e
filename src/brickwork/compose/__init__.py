"""Reuse by composition (thesis §5.3 future work; HOUDINI, Valkov et al. 2018).

Collection types (``ListOf``, ``Padded``), parameter-free combinators (``compose``,
``map_l``, ``fold_l``, ``conv_l``) type-checked when built, holes (new modules whose
architecture follows their port types), a type-directed search over registry modules,
and :func:`solve`, which trains the best candidates and registers the winner's new
modules with lineage.

Example:
    >>> import torch
    >>> from brickwork.types import Bool
    >>> count = compose(map_l(leaf(LibraryOp("as_count"))), fold_l(leaf(LibraryOp("add"))))
    >>> count(Padded.from_list([torch.ones(3, 1), torch.ones(1, 1)])).tolist()
    [[3.0], [1.0]]
"""

from brickwork.compose.holes import Hole, ensemble_of, hole_arch, make_hole
from brickwork.compose.jobs import run_candidate, score
from brickwork.compose.library import LibraryOp, standard_library
from brickwork.compose.program import (
    Compose,
    Conv,
    Fn,
    Fold,
    Leaf,
    Map,
    build_program,
    compose,
    conv_l,
    fold_l,
    leaf,
    map_l,
    term_str,
)
from brickwork.compose.search import Function, Space, functions
from brickwork.compose.solve import (
    Candidate,
    Solution,
    SolveConfig,
    Task,
    count_space,
    registry_functions,
    solve,
    spearman,
    standalone_term,
)
from brickwork.compose.taskfile import load_sequence_file, load_task_file
from brickwork.compose.types import (
    ListOf,
    Padded,
    abstract,
    ctype_from_json,
    hole_allowed,
    is_decision,
    parse_ctype,
)

__all__ = [
    "Candidate",
    "Compose",
    "Conv",
    "Fn",
    "Fold",
    "Function",
    "Hole",
    "Leaf",
    "LibraryOp",
    "ListOf",
    "Map",
    "Padded",
    "Solution",
    "SolveConfig",
    "Space",
    "Task",
    "abstract",
    "build_program",
    "compose",
    "conv_l",
    "count_space",
    "ctype_from_json",
    "fold_l",
    "functions",
    "hole_allowed",
    "hole_arch",
    "is_decision",
    "leaf",
    "load_sequence_file",
    "load_task_file",
    "make_hole",
    "ensemble_of",
    "map_l",
    "parse_ctype",
    "registry_functions",
    "run_candidate",
    "score",
    "solve",
    "spearman",
    "standalone_term",
    "standard_library",
    "term_str",
]
