"""The whole NMN study on a tiny configuration: every job runs in worker processes, the
summary holds the acceptance keys with fractions in [0, 1], the figures are written,
and a rerun resumes from the saved job results instead of training again."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from brickwork.errors import TrainingError
from brickwork.studies.clevr.nmn import StudyConfig
from brickwork.studies.clevr.nmn.jobs import E2E_LR_RANGE, study_job, study_jobs
from brickwork.studies.clevr.nmn.sgm_study import sgm_study_settings
from brickwork.studies.clevr.nmn.study import run_study
from brickwork.studies.clevr.nmn.variants import VARIANTS

TINY = replace(
    StudyConfig.quick(seed=1),
    train_scenes=60,
    val_scenes=16,
    test_scenes=16,
    questions_train=5,
    questions_eval=3,
    encoder_epochs=1,
    seconds_e2e=1.5,
    seconds_downstream=1.0,
    seconds_film=1.0,
    seconds_all_depths=0.5,
    sgm_steps=15,
    sgm_hpo_trials=2,
    sgm_study_points=3,
    seconds_sgm_study=0.5,
    seeds=2,
    workers=2,
)


def _fractions(d):
    return all(0.0 <= v["mean"] <= 1.0 for v in d.values())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("nmn-study")
    summary = run_study(root / "out", TINY, root / "cache")
    return root, summary


def test_tiny_study_reports_every_variant_with_fractions(study):
    root, s = study
    for key in ("accuracy", "seen_error", "unseen_error"):
        assert set(s[key]) == set(VARIANTS)
        assert _fractions(s[key])
        assert all(v["n"] == TINY.seeds and "std" in v for v in s[key].values())
    depths = [int(d) for d in s["error_by_depth"]["modular_typed"]]
    assert max(depths) > TINY.train_max_depth  # unseen depths are evaluated
    assert -1.0 <= s["sgm_pearson_r"] <= 1.0 or math.isnan(s["sgm_pearson_r"])
    assert len(s["sgm"]["points"]) == len(sgm_study_settings(TINY))
    assert {"spearman_rho", "pearson_r_leave_one_out_min", "pareto_front"} <= set(s["sgm"])
    assert all(isinstance(c["met"], bool) for c in s["acceptance"].values())
    assert s["machine"]["workers"] == 2 and s["machine"]["cpus"] >= 1
    c = s["cost"]
    assert (
        c["per_trial"]["cost_ratio_parallel"] <= c["modular_hpo_only"]["cost_ratio_parallel"] + 1e-9
    )
    assert c["modular_critical_path_seconds"] <= c["modular_sum_seconds"] + 1e-9
    assert c["e2e_parallel_seconds"] <= c["e2e_seconds"] + 1e-9
    # the end-to-end side searches as many learning rates as each module's search tries
    assert s["cost"]["e2e_trials"] == 2 and len(s["cost"]["e2e_search"]) == 2
    assert {t["lr"] for t in s["cost"]["e2e_search"]} == {TINY.lr, E2E_LR_RANGE[1]}
    assert s["cost"]["e2e_seconds"] > s["cost"]["modular_hpo_only"]["e2e_seconds"]
    assert s["plan"]["find[red]"]["mode"] == "surrogate"
    saved = json.loads((root / "out" / "summary.json").read_text())
    assert saved["data_digest"] == s["data_digest"] and saved["config"]["seeds"] == 2
    for png in ("1_accuracy", "2_depth_typed_vs_classic", "3_depth_nmn_vs_film", "4_sgm", "5_cost"):
        assert (root / "out" / f"{png}.png").stat().st_size > 1000


def test_unknown_job_kind_is_a_clear_error(study):
    root, _ = study
    job = {**study_jobs(root / "out", TINY, root / "cache")[0], "kind": "nope"}
    with pytest.raises(TrainingError, match="unknown kind 'nope'.*study_jobs"):
        study_job(job)


def test_tiny_study_resumes_from_saved_jobs(study, caplog):
    root, first = study
    jobs = study_jobs(root / "out", TINY, root / "cache")
    assert {p.stem for p in (root / "out" / "jobs").glob("*.json")} == {j["name"] for j in jobs}
    caplog.set_level("INFO", logger="brickwork.training.jobcache")
    again = run_study(root / "out", TINY, root / "cache")
    assert f"{len(jobs)} of {len(jobs)} jobs already done" in caplog.text
    assert again["accuracy"] == first["accuracy"]
    assert again["wall_seconds"] < first["wall_seconds"]


def test_job_keys_change_only_for_the_jobs_a_change_reaches(study, monkeypatch, caplog):
    import brickwork.studies.clevr.nmn.jobs as study_module

    root, _ = study
    jobs = study_jobs(root / "out", TINY, root / "cache")
    before = {j["name"]: study_module._job_key(j) for j in jobs}
    # a bigger stage-1 search: the answer-supervised modular jobs and the SGM-study
    # points (each find keeps the best of as many starts), plus one more end-to-end
    # trial; the end-to-end, FiLM and targets jobs keep their keys
    wider = {
        j["name"]: study_module._job_key(j)
        for j in study_jobs(root / "out", replace(TINY, sgm_hpo_trials=3), root / "cache")
    }
    changed = {n for n in before if wider.get(n) != before[n]}
    assert changed == {
        j["name"]
        for j in jobs
        if j.get("variant") in ("modular_typed", "modular_classic") or j["kind"] == "sgm_point"
    }
    assert len(set(wider) - set(before)) == 1
    # a change to the code a job runs reruns the jobs that run it, and only those
    import brickwork.training.jobcache as jobcache

    real = jobcache._source

    def edited(*names):
        def source(module):
            digest, deps = real(module)
            return (digest[::-1] if module.rsplit(".", 1)[-1] in names else digest), deps

        monkeypatch.setattr(jobcache, "_source", source)
        return {
            n
            for n, k in before.items()
            if study_module._job_key(next(j for j in jobs if j["name"] == n)) != k
        }

    # modular training: the three modular variants and the SGM points (their finds)
    assert edited("modular") == {
        j["name"]
        for j in jobs
        if j["kind"] == "sgm_point" or j.get("variant", "").startswith("modular")
    }
    # the whole-model loop: every job trains through it
    assert edited("end_to_end") == set(before)
    # the SGM correlation study: its points only
    points = edited("sgm_study")
    assert points == {j["name"] for j in jobs if j["kind"] == "sgm_point"}
    caplog.set_level("INFO", logger="brickwork.training.jobcache")
    run_study(root / "out", TINY, root / "cache")
    assert f"{len(jobs) - len(points)} of {len(jobs)} jobs already done" in caplog.text
