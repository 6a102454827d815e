"""brickwork.compose selection: the validation-noise rule, the map-then-fold shortlist, the
held-out selection half of the validation set, the study's fresh-registry check."""

from __future__ import annotations

import pytest
import torch

from brickwork.compose import (
    ListOf,
    SolveConfig,
)
from brickwork.compose.jobs import split_val
from brickwork.compose.program import hole_term
from brickwork.compose.solve import (
    Candidate,
    complexity,
    map_fold_group,
    map_fold_refs,
    select,
    shortlist,
)
from brickwork.errors import DataError
from brickwork.training import Samples
from brickwork.types import Bool, Count, Features, Probs

CNN = hole_term({"x": Features("b 1 8 8")}, Bool("b 1"))
READ = hole_term({"x": Probs("b 10")}, Count("b 1"))
STEP = hole_term({"state": Count("b 1"), "item": Bool("b 1")}, Count("b 1"))
RNN = hole_term({"x": ListOf(Features("b 1 8 8"))}, Count("b 1"))


def _mf(g: list, step: str = "add") -> list:
    return ["compose", ["map", g], ["fold", ["lib", step]]]


def _cand(term: list, holes: int, errors: list[float], params: int = 0) -> Candidate:
    rmse = (sum(errors) / len(errors)) ** 0.5
    c = Candidate(term, holes, 7, cheap=-rmse, final=-rmse)
    c.result = {"val_errors": errors, "parameters": params}
    return c


def test_reuse_wins_unless_a_new_network_is_clearly_better_on_validation():
    reuse = _mf(["compose", ["reg", "rec@1"], ["lib", "as_count"]])
    new = _mf(["compose", CNN, ["lib", "as_count"]])
    # the new network is better by 3 lists of 100: within the noise (z = 3)
    reuse_errors = [1.0] * 5 + [0.0] * 95
    close = [1.0] * 2 + [0.0] * 98
    cfg = SolveConfig(relative_tolerance=0.0)
    assert select([_cand(reuse, 0, reuse_errors), _cand(new, 1, close, 13000)], cfg).holes == 0
    # ... by 30 lists of 100: clearly better, the new network wins
    far = [1.0] * 30 + [0.0] * 70
    assert select([_cand(reuse, 0, far), _cand(new, 1, [0.0] * 100, 13000)], cfg).holes == 1
    # without the noise rule (z = 0) a 3-list advantage is enough
    cfg0 = SolveConfig(relative_tolerance=0.0, noise_z=0.0)
    assert select([_cand(reuse, 0, reuse_errors), _cand(new, 1, close, 13000)], cfg0).holes == 1


def test_of_the_tied_the_least_complex_class_wins_then_the_best_in_it():
    assert complexity(RNN) == (1, 3) and complexity(_mf(CNN)) == (1, 2)
    assert complexity(["fold", STEP]) == (1, 1) and complexity(["reg", "r@1"]) == (0, 0)
    cfg = SolveConfig(relative_tolerance=0.0)
    # a list LSTM is best, an image network per element is within the noise: it wins
    lstm = _cand(RNN, 1, [0.0] * 100, 90000)
    per_item = _cand(_mf(CNN), 1, [1.0] * 2 + [0.0] * 98, 13000)
    assert select([lstm, per_item], cfg) is per_item
    # two readouts of one class: the much better one wins even with more parameters
    read = _cand(_mf(["compose", ["reg", "classify@1"], READ]), 1, [0.0] * 100, 4900)
    step = _cand(
        ["compose", ["map", ["reg", "rec@1"]], ["fold", STEP]], 1, [1.0] * 2 + [0.0] * 98, 4400
    )
    assert select([read, step], cfg) is read


def test_shortlist_keeps_a_map_then_fold_slot_for_every_registry_group():
    read = _mf(["compose", ["reg", "classify@1"], READ])
    assert map_fold_refs(read) == ("classify@1", "add")
    assert map_fold_refs(["compose", ["map", CNN], ["fold", CNN]]) is None  # a new step
    # ranked best first; the readout of the registry classifier is ranked last
    ranked = [Candidate(RNN, 1, 1, cheap=-0.5 - i / 100) for i in range(8)]
    ranked.append(Candidate(read, 1, 7, cheap=-2.0))
    short = shortlist(ranked, SolveConfig(top_k=3, structured_k=2, reuse_k=0))
    assert len(short) == 3 and any(c.term is read for c in short)
    assert len(shortlist(ranked, SolveConfig(top_k=20))) == 9  # at most 10, here all 9


def test_a_bool_and_a_count_readout_of_one_registry_module_get_a_slot_each():
    bool_read = hole_term({"x": Probs("b 10")}, Bool("b 1"))
    as_bool = _mf(["compose", ["compose", ["reg", "classify@1"], bool_read], ["lib", "as_count"]])
    as_count = _mf(["compose", ["reg", "classify@1"], READ])
    assert map_fold_group(as_bool) == (("classify@1", "add"), ("Bool",))
    assert map_fold_group(as_count) == (("classify@1", "add"), ("Count",))
    assert map_fold_group(["compose", ["map", CNN], ["fold", CNN]]) is None
    # the Count readout is ranked first; the Bool readout last, behind list networks
    ranked = [Candidate(as_count, 1, 7, cheap=-0.5)]
    ranked += [Candidate(RNN, 1, 1, cheap=-0.6 - i / 100) for i in range(6)]
    ranked.append(Candidate(as_bool, 1, 9, cheap=-2.0))
    short = shortlist(ranked, SolveConfig(top_k=3, structured_k=2, reuse_k=0))
    assert any(c.term is as_bool for c in short) and any(c.term is as_count for c in short)


def test_selection_half_of_validation_is_held_out_from_keep_best():
    fit_part, select_part = split_val(Samples({"x": torch.arange(150.0)}), 0.5)
    assert len(fit_part) == 75 and len(select_part) == 75
    assert float(select_part["x"][0]) == 75.0
    whole = Samples({"x": torch.arange(3.0)})
    assert split_val(whole, 0.5)[0] is whole  # too small to split: both are the whole set


def test_study_refuses_a_registry_left_by_an_earlier_run(tmp_path):
    from brickwork.compose import LibraryOp
    from brickwork.registry import Registry
    from brickwork.studies.compose import StudyConfig
    from brickwork.studies.compose.study import run_sequence

    Registry(tmp_path / "cs1-s0" / "registry").put("recognise_3.new0", LibraryOp("not"))
    with pytest.raises(DataError, match="empty output folder"):
        run_sequence("cs1", 0, StudyConfig.quick(), tmp_path, None)
