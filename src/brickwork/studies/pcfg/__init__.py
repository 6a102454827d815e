"""PCFG SET (Hupkes et al. 2020) with independently trained neural modules.

Ten string-edit functions, one learned pointer module each, trained alone on
single-function examples over strings of ≤ 10 symbols, composed by layout (the parse
of the input is the program) and run autobatched. See ``docs/pcfg.md``.

Example:
    >>> from brickwork.studies.pcfg import parse_program, program_text
    >>> program_text(parse_program("append X6 Z11 , reverse Q13 Y2"))
    'append X6 Z11 , reverse Q13 Y2'
"""

from brickwork.studies.pcfg.compose import Composer, function_kinds, program_layout
from brickwork.studies.pcfg.data import (
    ARITY,
    BINARY,
    FUNCTIONS,
    HELD_OUT_PAIRS,
    SYMBOLS,
    UNARY,
    Call,
    Example,
    Program,
    Str,
    apply_reference,
    depth_of,
    direct_pairs,
    examples_digest,
    functions_of,
    make_examples,
    productivity_split,
    program_text,
    random_program,
    read_pcfg,
    systematicity_split,
    write_pcfg,
)
from brickwork.studies.pcfg.modules import BinaryPointer, UnaryPointer, make_function_module
from brickwork.studies.pcfg.parse import ProgramError, parse_program, parse_target
from brickwork.studies.pcfg.training import (
    load_registry,
    load_run,
    registry_name,
    single_function_samples,
    train_all,
    train_function,
)
from brickwork.studies.pcfg.types import SymbolSeq, decode, encode, lengths

__all__ = [
    "ARITY",
    "BINARY",
    "FUNCTIONS",
    "HELD_OUT_PAIRS",
    "SYMBOLS",
    "UNARY",
    "Call",
    "Example",
    "Program",
    "Str",
    "apply_reference",
    "depth_of",
    "direct_pairs",
    "examples_digest",
    "functions_of",
    "make_examples",
    "productivity_split",
    "program_text",
    "random_program",
    "read_pcfg",
    "systematicity_split",
    "write_pcfg",
    "ProgramError",
    "parse_program",
    "parse_target",
    "SymbolSeq",
    "decode",
    "encode",
    "lengths",
    "BinaryPointer",
    "UnaryPointer",
    "make_function_module",
    "Composer",
    "function_kinds",
    "program_layout",
    "load_registry",
    "load_run",
    "registry_name",
    "single_function_samples",
    "train_all",
    "train_function",
]
