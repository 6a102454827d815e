"""brickwork.compose: combinators, holes, typed search, solve with a registry, CLI errors."""

from __future__ import annotations

import json

import pytest
import torch

from brickwork.cli import main
from brickwork.compose import (
    LibraryOp,
    ListOf,
    Padded,
    Solution,
    SolveConfig,
    Space,
    Task,
    compose,
    conv_l,
    count_space,
    fold_l,
    functions,
    leaf,
    make_hole,
    map_l,
    parse_ctype,
    solve,
    spearman,
    standard_library,
)
from brickwork.compose.search import Function
from brickwork.compose.solve import map_fold_group
from brickwork.errors import LayoutError, PlanError, PortError
from brickwork.registry import Registry
from brickwork.studies.compose import count_samples, digit_pools, program_correct, recognise_samples
from brickwork.types import Bool, Count, Features, Probs

IMG = Features("b 1 8 8")


def test_map_fold_count_variable_lengths_with_mask():
    count = compose(map_l(leaf(LibraryOp("as_count"))), fold_l(leaf(LibraryOp("add"))))
    p = Padded.from_list(
        [
            torch.tensor([[1.0], [0.0], [1.0], [1.0]]),
            torch.tensor([[1.0]]),
            torch.tensor([[0.0], [1.0]]),
        ]
    )
    assert count(p).squeeze(1).tolist() == [3.0, 1.0, 1.0]
    # padded positions never count, whatever they hold (here: true, inside Bool's domain)
    garbage = Padded(p.values + (~p.mask).float().unsqueeze(-1), p.mask)
    assert count(garbage).squeeze(1).tolist() == [3.0, 1.0, 1.0]


def test_build_time_type_errors_name_both_sides():
    with pytest.raises(LayoutError, match=r"produces List\[Bool\['b 1'\]\].*expects List\[Count"):
        compose(map_l(leaf(LibraryOp("not"))), fold_l(leaf(LibraryOp("add"))))
    with pytest.raises(LayoutError, match="fold step"):
        map_l(leaf(LibraryOp("add")))


def test_conv_windows_see_neighbours_only_inside_the_list():
    # conv(fold(add)) over counts = sum of each element's window of 3 (clipped at the ends)
    f = conv_l(compose(fold_l(leaf(LibraryOp("add")))))
    p = Padded.from_list([torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([[8.0]])])
    out = f(p)
    assert out.values[0].squeeze(1).tolist() == [3.0, 7.0, 6.0]
    assert out.values[1, 0].item() == 8.0 and out.mask.tolist() == p.mask.tolist()


def test_holes_follow_port_types_and_stay_in_domain():
    x = torch.randn(6, 1, 8, 8)
    assert make_hole(IMG, Bool("b 1")).arch == "cnn"
    probs = make_hole(IMG, Probs("b 10"))(x=x)
    assert torch.allclose(probs.sum(1), torch.ones(6), atol=1e-5)
    assert (make_hole(IMG, Count("b 1"))(x=x) >= 0).all()
    assert make_hole(ListOf(IMG), Count("b 1")).arch == "rnn"
    assert make_hole({"state": Count("b 1"), "item": Bool("b 1")}, Count("b 1")).arch == "step"
    with pytest.raises(PortError, match="no hole architecture"):
        make_hole(IMG, ListOf(Bool("b 1")))


def test_typed_search_finds_the_counting_program_and_counts_fewer_than_shape_only():
    fns = functions(standard_library()) + [
        Function(("reg", "recog.a@1"), (IMG,), Bool("b 1")),
        Function(("reg", "recog.b@1"), (IMG,), Bool("b 1")),
    ]
    task = Task("c", ListOf(IMG), Count("b 1"))
    space = Space.build(task.input, task.output, fns, "typed")
    terms = space.programs(7, max_holes=0)
    want = [
        "compose",
        ["map", ["compose", ["reg", "recog.a@1"], ["lib", "as_count"]]],
        ["fold", ["lib", "add"]],
    ]
    assert want in terms
    assert program_correct(want, "count", ["recog.a@1"])
    assert not program_correct(want, "count", ["recog.b@1"])
    counts = count_space(task, fns, 7, 2)
    assert counts["typed"] == len(space.programs(7, 2))
    assert counts["typed"] * 4 < counts["shape_only"] and counts["typed"] * 100 < counts["untyped"]


def test_spearman():
    assert spearman([1, 2, 3], [3, 2, 1]) == -1.0
    assert spearman([1, 2], [1, 2]) is None


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    pools = digit_pools(0)
    files = {}
    for name, s in {
        "r_train": recognise_samples(pools["train"], 3, seed=0, fraction=0.5),
        "r_val": recognise_samples(pools["val"], 3, seed=1),
        "c_train": count_samples(pools["train"], 3, n=120, lengths=(2, 5), seed=0),
        "c_val": count_samples(pools["val"], 3, n=80, lengths=(2, 5), seed=1),
        "c_long": count_samples(pools["test"], 3, n=40, lengths=(30, 30), seed=2),
    }.items():
        files[name] = str(s.save(root / f"{name}.safetensors"))
    return files


def test_solve_reuses_the_registered_recogniser_and_never_forgets(digits_files, tmp_path):
    reg = Registry(tmp_path / "reg")
    cfg = SolveConfig(
        rank_limit=2,
        top_k=2,
        rank_steps=10,
        fit={"epochs": 4, "batch_size": 32, "lr": 3e-3, "keep_best": "val_score"},
    )
    first = solve(
        Task("recognise_3", IMG, Bool("b 1"), digits_files["r_train"], digits_files["r_val"]),
        reg,
        workdir=tmp_path / "w1",
        config=cfg,
    )
    assert first.registered == ["recognise_3.new0@1"]
    card = reg.card("recognise_3.new0@1")
    assert card.lineage["task"] == "recognise_3" and len(card.data_digest) == 64
    before = reg.card("recognise_3.new0").fingerprint
    second = solve(
        Task(
            "count_3",
            ListOf(IMG),
            Count("b 1"),
            digits_files["c_train"],
            digits_files["c_val"],
            {"long": digits_files["c_long"]},
        ),
        reg,
        workdir=tmp_path / "w2",
        config=cfg,
    )
    assert isinstance(second, Solution)
    # rank_limit is 2, yet every map-then-fold group got ranked (so the short list can
    # keep a slot for it)
    ranked = {map_fold_group(c.term) for c in second.candidates if c.holes and c.cheap is not None}
    groups = {map_fold_group(c.term) for c in second.candidates if c.holes} - {None}
    assert len(groups) > 2 and groups <= ranked
    assert program_correct(second.winner.term, "count", ["recognise_3.new0@1"]), second.table()
    assert reg.card("recognise_3.new0").fingerprint == before  # frozen: nothing retrained
    assert second.winner.result is not None
    assert second.winner.result["tests"]["long"]["mae_per_element"] < 0.1
    assert (tmp_path / "w2" / "solution.json").exists()


def test_no_candidate_names_the_type_and_closest_signatures(digits_files, tmp_path):
    reg = Registry(tmp_path / "reg")
    with pytest.raises(
        PlanError, match=r"no program .* produces Probs\['b 10'\] from Bool\['b 1'\]"
    ):
        solve(
            Task("t", Bool("b 1"), Probs("b 10"), digits_files["r_train"], digits_files["r_val"]),
            reg,
            workdir=tmp_path / "w",
        )


def test_parse_ctype():
    assert parse_ctype("List[List[Bool[b 1]]]") == ListOf(ListOf(Bool("b 1")))


def _task_file(folder, **over):
    data = {
        "name": "t",
        "input": "Features[b 1 8 8]",
        "output": "Bool[b 1]",
        "data": {"train": "train.st", "val": "val.st"},
    }
    data.update(over)
    path = folder / "task.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_cli_bad_inputs_are_one_line(tmp_path, capsys, digits_files):
    assert (
        main(
            ["compose", _task_file(tmp_path, output="Nope[b 1]"), "--registry", str(tmp_path / "r")]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown type kind 'Nope'" in err[0]
    assert main(["compose", _task_file(tmp_path), "--registry", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0]
    import shutil

    shutil.copy(digits_files["r_train"], tmp_path / "train.st")
    shutil.copy(digits_files["r_val"], tmp_path / "val.st")
    path = _task_file(tmp_path, input="Bool[b 1]", output="Probs[b 10]")
    assert (
        main(["compose", path, "--registry", str(tmp_path / "r"), "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Probs['b 10']" in err[0] and "closest registry signatures" in err[0]
    # a bad ensemble option is refused on reading the file, before any training
    path = _task_file(tmp_path, search={"fit": {"ensemble": 3, "ensemble_scope": "best"}})
    out = tmp_path / "o2"
    assert main(["compose", path, "--registry", str(tmp_path / "r"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{path}: search.fit: ensemble_scope got 'best'" in err[0]
    assert not (out / "t").exists()


def test_only_new_modules_are_saved_and_registry_modules_stay_frozen(digits_files, tmp_path):
    from brickwork.compose import run_candidate
    from brickwork.compose.program import hole_term

    reg = Registry(tmp_path / "reg")
    torch.manual_seed(0)
    ref = reg.put("recognise_3.new0", make_hole(IMG, Bool("b 1"))).ref
    before = reg.card(ref).fingerprint
    step = hole_term({"state": Count("b 1"), "item": Bool("b 1")}, Count("b 1"))
    term = ["compose", ["map", ["reg", ref]], ["fold", step]]
    out = run_candidate(
        {
            "term": term,
            "registry": str(reg.root),
            "train": digits_files["c_train"],
            "val": digits_files["c_val"],
            "fit": {"epochs": 1, "batch_size": 32},
            "out": str(tmp_path / "cand"),
        }
    )
    assert len(out["saved"]) == 1 and out["trained"]
    from brickwork.modules import load_module

    assert load_module(out["saved"][0]).arch == "step"
    assert reg.load(ref).fingerprint() == before
