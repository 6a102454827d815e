"""PCFG SET format, generator split rules, the prefix parser and its errors."""

from __future__ import annotations

import random

import pytest
import torch

from brickwork.errors import BrickworkError, DataError
from brickwork.studies.pcfg import (
    HELD_OUT_PAIRS,
    SymbolSeq,
    apply_reference,
    decode,
    direct_pairs,
    encode,
    functions_of,
    make_examples,
    parse_program,
    productivity_split,
    program_text,
    random_program,
    read_pcfg,
    systematicity_split,
    write_pcfg,
)
from brickwork.studies.pcfg.parse import ProgramError


def test_issue_example_and_reference_functions():
    prog = parse_program("append X6 Z11 , reverse Q13 Y2")
    assert " ".join(apply_reference(prog)) == "X6 Z11 Y2 Q13"
    cases = {
        "shift A1 B2 C3": "B2 C3 A1",
        "echo A1 B2": "A1 B2 B2",
        "swap_first_last A1 B2 C3": "C3 B2 A1",
        "repeat A1 B2": "A1 B2 A1 B2",
        "prepend A1 , B2": "B2 A1",
        "remove_first A1 , B2": "B2",
        "remove_second A1 , B2": "A1",
        "copy A1": "A1",
    }
    for src, tgt in cases.items():
        assert " ".join(apply_reference(parse_program(src))) == tgt


def test_parse_round_trips_generated_programs():
    rng = random.Random(3)
    for _ in range(200):
        prog = random_program(rng, rng.randint(1, 12))
        assert parse_program(program_text(prog)) == prog


def test_files_round_trip_and_refuse_unparallel(tmp_path):
    ex = make_examples(20, seed=1, functions=(1, 4))
    src, tgt = write_pcfg(tmp_path / "x", ex)
    assert src.name == "x.src" and tgt.name == "x.tgt"
    assert read_pcfg(src, tgt) == ex
    tgt.write_text("A1\n")
    with pytest.raises(DataError, match="parallel"):
        read_pcfg(src, tgt)


def test_productivity_split_rule():
    train, test = productivity_split(150, 60, seed=0)
    assert max(len(functions_of(parse_program(e.source))) for e in train) <= 8
    assert min(len(functions_of(parse_program(e.source))) for e in test) >= 9
    assert max(len(e.target.split()) for e in test) > 50
    assert train == productivity_split(150, 60, seed=0)[0]  # seeded


def test_systematicity_split_rule():
    train, test = systematicity_split(150, 60, seed=0)
    held = set(HELD_OUT_PAIRS)
    assert not any(direct_pairs(parse_program(e.source)) & held for e in train)
    assert all(direct_pairs(parse_program(e.source)) & held for e in test)


@pytest.mark.parametrize(
    "line, needle",
    [
        ("revers A1", "token 1 'revers': unknown function"),
        ("copy A1 Q21", "token 3 'Q21': unknown symbol"),
        ("append A1 B2 reverse C3", "token 4 'reverse': expected ','"),
        ("append A1 B2", "is missing ','"),
        ("append A1 , B2 , C3", "token 5 ',': unbalanced arguments"),
        ("append , B2", "token 2 ',': expected the first argument"),
        ("reverse", "unbalanced arguments"),
        ("A1 B2", "token 1 'A1': expected a function name"),
    ],
)
def test_parse_errors_name_the_token(line, needle):
    with pytest.raises(ProgramError) as info:
        parse_program(line)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg
    assert isinstance(info.value, BrickworkError)


def test_symbol_sequence_type():
    x = encode([["A1", "B2", "C3"], ["Z20"], []], width=4)
    t = SymbolSeq("b w 46")
    assert t.check(x) == "" and decode(x) == [["A1", "B2", "C3"], ["Z20"], []]
    bad = x.clone()
    bad[1, 2, 0] = 1.0  # a letter without a number after the pad
    assert "letters" in t.check(bad)
    gap = x.clone()
    gap[0, 1] = 0.0
    assert "suffix" in t.check(gap)
    soft = x * 0.8 + 0.01
    assert t.check(t.project(soft)) == "" and decode(t.project(soft)) == decode(x)
    assert torch.equal(t.project(x), x)


def test_generator_controls_depth_and_string_length():
    from brickwork.studies.pcfg import depth_of

    ex = make_examples(100, seed=2, functions=(2, 7), max_depth=3, string_length=(4, 6))
    progs = [parse_program(e.source) for e in ex]
    assert max(depth_of(p) for p in progs) <= 3
    assert {len(s) for p in progs for s in _strings(p)} <= {4, 5, 6}


def _strings(p):
    from brickwork.studies.pcfg import Str

    return [p.symbols] if isinstance(p, Str) else [s for a in p.args for s in _strings(a)]


def test_composer_refuses_a_function_without_module():
    from brickwork.studies.pcfg import Composer, make_function_module

    with pytest.raises(DataError, match="no trained module for reverse"):
        Composer({"copy": make_function_module("copy")})([parse_program("reverse A1")])
