"""The library's job cache: results reused only under the same key, stored as each job ends."""

from __future__ import annotations

import json

import pytest

from brickwork.errors import TrainingError
from brickwork.training import JobCache, LocalExecutor, source_digests
from brickwork.training.jobcache import _source

CALLS: list[str] = []


def work(job):
    CALLS.append(job["name"])
    if job.get("fail"):
        raise ValueError(f"job {job['name']} fails")
    return {"y": job["x"] * 10}


def _cache(folder):
    # the key leaves out "note": a field the result does not depend on
    return JobCache(folder, key=lambda job: {k: v for k, v in job.items() if k != "note"})


def test_results_are_reused_only_under_the_same_key(tmp_path):
    CALLS.clear()
    jobs = [{"name": "a", "x": 1}, {"name": "b", "x": 2}]
    assert _cache(tmp_path).run(work, jobs) == {"a": {"y": 10}, "b": {"y": 20}}
    assert CALLS == ["a", "b"]
    stored = json.loads((tmp_path / "a.json").read_text())
    assert stored["result"] == {"y": 10} and stored["job"] == jobs[0]
    # an unread field does not rerun; a changed one reruns that job only
    again = [{"name": "a", "x": 1, "note": "other"}, {"name": "b", "x": 3}]
    assert _cache(tmp_path).run(work, again) == {"a": {"y": 10}, "b": {"y": 30}}
    assert CALLS == ["a", "b", "b"]


def test_an_interrupted_run_keeps_what_finished(tmp_path):
    CALLS.clear()
    jobs = [{"name": "ok", "x": 1}, {"name": "bad", "x": 2, "fail": True}]
    with pytest.raises(TrainingError, match="bad"):
        _cache(tmp_path).run(work, jobs)
    assert (tmp_path / "ok.json").exists() and not (tmp_path / "bad.json").exists()
    CALLS.clear()
    fixed = [jobs[0], {"name": "bad", "x": 2}]
    assert _cache(tmp_path).run(work, fixed)["bad"] == {"y": 20}
    assert CALLS == ["bad"]
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".json"]  # no temp files left


def test_a_damaged_result_file_reruns_its_job(tmp_path):
    CALLS.clear()
    jobs = [{"name": "a", "x": 1}]
    _cache(tmp_path).run(work, jobs)
    (tmp_path / "a.json").write_text("{not json")
    assert _cache(tmp_path).run(work, jobs) == {"a": {"y": 10}}
    assert CALLS == ["a", "a"]


def test_results_come_from_an_executor(tmp_path):
    CALLS.clear()
    with LocalExecutor(in_process=True) as ex:
        out = _cache(tmp_path).run(work, [{"name": "a", "x": 4}], executor=ex)
    assert out == {"a": {"y": 40}} and CALLS == ["a"]


@pytest.mark.parametrize(
    "jobs,match",
    [
        ([{"x": 1}], "job name None cannot name a file"),
        ([{"name": "../up", "x": 1}], "job name '../up' cannot name a file"),
        ([{"name": "a", "x": 1}, {"name": "a", "x": 2}], r"job names \['a'\] appear more"),
    ],
)
def test_bad_job_names_are_refused_before_anything_runs(tmp_path, jobs, match):
    CALLS.clear()
    with pytest.raises(TrainingError, match=match):
        _cache(tmp_path).run(work, jobs)
    assert CALLS == [] and not tmp_path.joinpath("a.json").exists()


def test_source_digests_follow_imports_under_the_prefix_only(tmp_path, monkeypatch):
    (tmp_path / "pkg_jc").mkdir()
    (tmp_path / "pkg_jc" / "__init__.py").write_text("")
    (tmp_path / "pkg_jc" / "a.py").write_text("import json\nfrom pkg_jc import b\n")
    (tmp_path / "pkg_jc" / "b.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _source.cache_clear()
    # `from pkg_jc import b` reaches the module pkg_jc.b; json is not under the prefix
    assert sorted(source_digests(["pkg_jc.a"], follow="pkg_jc.")) == ["pkg_jc.a", "pkg_jc.b"]
    assert sorted(source_digests(["pkg_jc.a"])) == ["pkg_jc.a"]
    before = source_digests(["pkg_jc.b"])
    (tmp_path / "pkg_jc" / "b.py").write_text("X = 2\n")
    _source.cache_clear()
    assert source_digests(["pkg_jc.b"]) != before
    with pytest.raises(TrainingError, match="no Python source file"):
        source_digests(["json.nonexistent_module_xyz"])
