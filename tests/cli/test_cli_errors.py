"""Bad command-line input ends in one line naming the argument/file and the fix — never a
traceback (unless --debug), and nothing is written before the input is checked."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from brickwork.cli import build_parser, main
from brickwork.cli.common import (
    UsageError,
    bounded_int,
    check_device,
    check_writable_dir,
    describe_error,
    merge_common,
    require_tensorboard,
    strip_rst,
)
from brickwork.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """main(argv) in-process; argparse's SystemExit counts as a return code."""
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return rc, out, err


def expect_error(argv: list[str], capsys: pytest.CaptureFixture[str], *words: str) -> str:
    rc, _, err = run_cli(argv, capsys)
    assert rc != 0, f"{argv} was accepted"
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"
    # one message line (argparse adds a pointer to --help on the next line)
    assert len([line for line in err.splitlines() if "error" in line]) == 1, err
    return err


# ----------------------------------------------------------------------------- common flags


def test_common_flags_after_the_subcommand_and_before_it() -> None:
    parser = build_parser()
    args = merge_common(
        parser.parse_args(
            [
                "--import",
                "a.kinds",
                "registry",
                "--import",
                "b.kinds",
                "list",
                "-v",
                "--import",
                "c.kinds",
                "--debug",
            ]
        )
    )
    assert args.imports == ["a.kinds", "b.kinds", "c.kinds"]
    assert args.debug and args.verbose
    args = merge_common(parser.parse_args(["clevr", "stats", __file__, "--debug"]))
    assert args.debug and not args.verbose and args.imports == []
    args = merge_common(parser.parse_args(["plan", __file__]))
    assert args.imports == [] and args.debug is False
    assert not [k for k in vars(args) if k.startswith("_sub")]


def test_import_of_a_missing_module_is_one_line(capsys, tmp_path) -> None:
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    expect_error(
        ["plan", str(plan), "--import", "no_such_pkg_h5.kinds"],
        capsys,
        "no_such_pkg_h5.kinds",
        "--import",
    )


def test_debug_after_the_subcommand_shows_the_traceback(monkeypatch, tmp_path) -> None:
    import brickwork.cli.plan as plan_cli

    def boom(args: argparse.Namespace) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.json"))

    monkeypatch.setattr(plan_cli, "run", boom)
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    with pytest.raises(OSError):
        main(["plan", str(plan), "--debug"])


# ----------------------------------------------------------------------------- top-level handler


@pytest.mark.parametrize(
    "exc, words",
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/d/out.json"),
            ["disk full while writing /d/out.json"],
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/run"),
            ["permission denied: /ro/run", "choose a writable --out"],
        ),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "/d/plan"),
            ["/d/plan is a folder, expected a file"],
        ),
        (
            NotADirectoryError(errno.ENOTDIR, "Not a directory", "/d/file/x"),
            ["/d/file/x", "a file is in the way where a folder is expected"],
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file", "/d/nope"),
            ["no such file or folder: /d/nope"],
        ),
        (json.JSONDecodeError("Expecting value", "{,", 1), ["invalid JSON", "line 1 column 2"]),
        (
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
            ["not UTF-8 text", "byte 0"],
        ),
        (KeyError("layouts"), ["missing or unknown key 'layouts'"]),
        (TypeError("expected int, got str"), ["TypeError", "expected int, got str"]),
    ],
)
def test_errors_become_one_line(exc, words, monkeypatch, tmp_path, capsys) -> None:
    import brickwork.cli.plan as plan_cli

    def boom(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(plan_cli, "run", boom)
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    rc, _, err = run_cli(["plan", str(plan)], capsys)
    assert rc == 2
    for word in words:
        assert word in err
    assert err.count("\n") == 1


def test_json_and_key_errors_name_the_input_file(tmp_path) -> None:
    plan = tmp_path / "p.json"
    plan.write_text("{")
    ns = argparse.Namespace(file=str(plan), out=str(tmp_path / "missing"))
    assert f"(reading {plan})" in describe_error(json.JSONDecodeError("x", "{", 1), ns)
    assert f"(reading {plan})" in describe_error(KeyError("data"), ns)


def test_interrupt_exits_130(monkeypatch, tmp_path, capsys) -> None:
    import brickwork.cli.plan as plan_cli

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(plan_cli, "run", interrupted)
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    rc, _, err = run_cli(["plan", str(plan)], capsys)
    assert rc == 130 and "interrupted" in err


def test_unexpected_errors_have_no_traceback(monkeypatch, tmp_path, capsys) -> None:
    import brickwork.cli.plan as plan_cli

    def bug(args: argparse.Namespace) -> int:
        raise RuntimeError("something odd")

    monkeypatch.setattr(plan_cli, "run", bug)
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    rc, _, err = run_cli(["plan", str(plan)], capsys)
    assert rc == 1 and "internal error: RuntimeError: something odd" in err and "--debug" in err


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "brickwork", *argv]


def _closed_pipe(argv: list[str]) -> tuple[int, str]:
    """Run the CLI with its stdout read end closed at once (like `| head -0`)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=120), err


def test_closed_output_pipe_exits_quietly(tmp_path) -> None:
    rc, err = _closed_pipe(_cli("--help"))
    assert rc in (0, 141) and "Traceback" not in err and "Exception ignored" not in err, err
    rc, err = _closed_pipe(_cli("registry", "list", "--registry", str(tmp_path / "reg")))
    assert rc == 141 and err == "", err
    rc, err = _closed_pipe(
        _cli(
            "clevr",
            "generate",
            "--scenes",
            "2",
            "--no-images",
            "--processes",
            "1",
            "--out",
            str(tmp_path / "ds"),
        )
    )
    assert (
        rc == 141
        and "Traceback" not in err
        and "Exception ignored" not in err
        and "BrokenPipe" not in err
    ), err


def test_real_process_prints_no_traceback(tmp_path) -> None:
    res = subprocess.run(_cli("plan", str(tmp_path)), capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "is a folder, expected a file" in res.stderr


# ----------------------------------------------------------------------------- --device


def test_device_argument_is_validated(capsys, tmp_path) -> None:
    expect_error(
        ["sorting", "train", "--device", "gpu0", "--out", str(tmp_path / "s")],
        capsys,
        "argument --device",
        "cpu, cuda, cuda:N",
    )
    assert not (tmp_path / "s").exists()
    assert check_device(" CPU ") == "cpu"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line(capsys, tmp_path) -> None:
    for argv in (["sorting", "evaluate"], ["clevr", "study"], ["demo"]):
        expect_error(
            [*argv, "--device", "cuda", "--out", str(tmp_path / "x")],
            capsys,
            "argument --device",
            "CUDA is not available",
            "--device cpu",
        )
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- clevr generate


def _gen(tmp_path: Path, *extra: str) -> list[str]:
    return [
        "clevr",
        "generate",
        "--scenes",
        "3",
        "--out",
        str(tmp_path / "ds"),
        "--processes",
        "1",
        *extra,
    ]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--questions-per-scene", "-1"], ["--questions-per-scene", "too small", "1 or more"]),
        (["--questions-per-scene", "0"], ["--questions-per-scene", "too small"]),
        (["--questions-per-scene", "100000"], ["--questions-per-scene", "maximum is 1000"]),
        (["--max-depth", "10000"], ["--max-depth", "reachable maximum is 60"]),
        (["--max-depth", "0"], ["--max-depth", "too small"]),
        (["--min-depth", "-3"], ["--min-depth", "too small"]),
        (["--min-depth", "8", "--max-depth", "5"], ["--min-depth 8 is larger than --max-depth 5"]),
        (["--split", "../../x"], ["--split", "'../../x' is not a usable name", "letters, digits"]),
        (["--split", "a/b"], ["--split", "not a usable name"]),
        (["--processes", "-2"], ["--processes", "too small"]),
        (["--width", "100000"], ["--width", "maximum is 4096"]),
        (["--supersample", "0"], ["--supersample", "too small"]),
        (["--seed", "x"], ["--seed", "'x' is not a whole number"]),
        (["--families", "exist,nope"], ["--families", "unknown ['nope']", "choose from"]),
        (["--condition", "/no/such.json"], ["--condition", "does not exist"]),
        (["--cogent", "A", "--condition", __file__], ["--cogent and --condition"]),
    ],
)
def test_generate_refuses_bad_numbers_and_names(extra, words, tmp_path, capsys) -> None:
    expect_error(_gen(tmp_path, *extra), capsys, *words)
    assert not (tmp_path / "ds").exists(), "something was written before the check"


def test_generate_scenes_zero_and_huge(tmp_path, capsys) -> None:
    base = ["clevr", "generate", "--out", str(tmp_path / "ds")]
    expect_error([*base, "--scenes", "0"], capsys, "--scenes", "too small")
    expect_error([*base, "--scenes", "99999999999"], capsys, "--scenes", "maximum is")
    assert not (tmp_path / "ds").exists()


def test_generate_out_under_a_file_is_refused(tmp_path, capsys) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    expect_error(
        ["clevr", "generate", "--scenes", "2", "--out", str(blocker / "ds")],
        capsys,
        "--out",
        "is a file, so no folder can be made under it",
    )
    expect_error(
        ["clevr", "generate", "--scenes", "2", "--out", str(blocker)],
        capsys,
        "--out",
        "is a file, expected a folder",
    )


def test_generate_unwritable_out_is_refused(tmp_path, capsys, monkeypatch) -> None:
    """An --out the user cannot write is refused before anything is made (os.access is
    what the check asks; faked here because root, which CI runs as, can write anywhere)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    expect_error(_gen(ro / "ds"), capsys, "--out", "permission denied", "writable")
    assert list(ro.iterdir()) == []


def test_check_writable_dir_refuses_a_read_only_parent(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(UsageError, match=r"--out .*permission denied .*choose a writable --out"):
        check_writable_dir(tmp_path / "run")


def test_generate_into_an_old_dataset_needs_force_and_drops_stale_images(tmp_path, capsys) -> None:
    common = [
        "--width",
        "12",
        "--height",
        "8",
        "--supersample",
        "1",
        "--max-depth",
        "3",
        "--questions-per-scene",
        "2",
    ]
    images = tmp_path / "ds" / "images" / "train"
    assert run_cli(_gen(tmp_path, *common), capsys)[0] == 0
    assert sorted(p.name for p in images.iterdir()) == [
        "CLEVR_train_000000.png",
        "CLEVR_train_000001.png",
        "CLEVR_train_000002.png",
    ]
    before = (tmp_path / "ds" / "questions" / "CLEVR_train_questions.json").read_bytes()
    small = [
        "clevr",
        "generate",
        "--scenes",
        "2",
        "--out",
        str(tmp_path / "ds"),
        "--processes",
        "1",
        "--seed",
        "5",
        *common,
    ]
    expect_error(small, capsys, "already holds split 'train'", "--force")
    assert (tmp_path / "ds" / "questions" / "CLEVR_train_questions.json").read_bytes() == before
    assert run_cli([*small, "--force"], capsys)[0] == 0
    assert sorted(p.name for p in images.iterdir()) == [
        "CLEVR_train_000000.png",
        "CLEVR_train_000001.png",
    ]
    assert run_cli([*small, "--force", "--no-images"], capsys)[0] == 0
    assert list(images.iterdir()) == []
    # another split in the same folder is not "old"
    assert (
        run_cli(
            [
                "clevr",
                "generate",
                "--scenes",
                "1",
                "--out",
                str(tmp_path / "ds"),
                "--split",
                "val",
                "--processes",
                "1",
                *common,
            ],
            capsys,
        )[0]
        == 0
    )


def test_generate_dataset_library_checks(tmp_path, monkeypatch) -> None:
    from brickwork.studies.clevr.data import generate as gen

    with pytest.raises(DataError, match="split name '../x'"):
        gen.generate_dataset(tmp_path, 2, 2, 4, split="../x", processes=1)
    with pytest.raises(DataError, match=r"questions_per_scene = -1; expected a whole number"):
        gen.generate_dataset(tmp_path, 2, -1, 4, processes=1)
    with pytest.raises(DataError, match="reachable maximum is 60"):
        gen.generate_dataset(tmp_path, 2, 2, 10000, processes=1)
    with pytest.raises(DataError, match="no family among"):
        gen.generate_dataset(tmp_path, 2, 2, 2, families=["query_color"], processes=1)
    assert not (tmp_path / "images").exists()
    monkeypatch.setattr(gen, "generate_questions", lambda *a, **k: [])
    with pytest.raises(DataError, match="no question could be generated .* not written"):
        gen.generate_dataset(tmp_path, 2, 2, 4, processes=1, render=False)
    assert not (tmp_path / "questions").exists()


def test_generate_questions_refuses_unreachable_depths() -> None:
    from brickwork.studies.clevr.data import generate_questions, generate_scene
    from brickwork.studies.clevr.data.question_generator import MAX_DEPTH

    scene = generate_scene(0, seed=0)
    with pytest.raises(ValueError, match=f"reachable maximum is {MAX_DEPTH}"):
        generate_questions(scene, 1, max_depth=MAX_DEPTH + 1)
    with pytest.raises(ValueError, match="0 or more"):
        generate_questions(scene, -1)
    assert len(generate_questions(scene, 1, min_depth=MAX_DEPTH, max_depth=MAX_DEPTH)) == 1


# ----------------------------------------------------------------------------- other clevr commands


def test_clevr_paths_are_checked(tmp_path, capsys) -> None:
    expect_error(
        ["clevr", "render", str(tmp_path), "--out", str(tmp_path / "r")],
        capsys,
        "is a folder, expected a file",
    )
    expect_error(
        ["clevr", "execute", "--scenes", str(tmp_path / "none.json"), "--questions", __file__],
        capsys,
        "--scenes",
        "does not exist",
    )
    expect_error(
        [
            "clevr",
            "execute",
            "--scenes",
            __file__,
            "--questions",
            __file__,
            "--json",
            str(tmp_path),
        ],
        capsys,
        "--json",
        "is a folder, expected a file path",
    )
    expect_error(["clevr", "stats", str(tmp_path / "none")], capsys, "does not exist")
    expect_error(["clevr", "stats", str(tmp_path), "--split", "../x"], capsys, "--split")
    expect_error(["clevr", "stats", str(tmp_path)], capsys, "no questions file for split 'train'")
    expect_error(
        ["clevr", "render", __file__, "--out", str(tmp_path / "r"), "--limit", "0"],
        capsys,
        "--limit",
        "too small",
    )
    expect_error(
        ["clevr", "render", __file__, "--out", str(tmp_path / "r"), "--sheet", "-1"],
        capsys,
        "--sheet",
        "too small",
    )
    assert not (tmp_path / "r").exists()


def test_clevr_study_arguments(tmp_path, capsys) -> None:
    out = str(tmp_path / "study")
    expect_error(
        ["clevr", "study", "--out", out, "--workers", "-2"], capsys, "--workers", "too small"
    )
    expect_error(["clevr", "study", "--out", out, "--workers", "0"], capsys, "--workers")
    expect_error(["clevr", "study", "--out", out, "--lr", "5"], capsys, "--lr 5.0", "(0, 1)")
    expect_error(["clevr", "study", "--out", out, "--lr", "nan"], capsys, "--lr", "finite")
    expect_error(["clevr", "study", "--out", out, "--seed", "-1"], capsys, "--seed")
    assert not (tmp_path / "study").exists()


# ------------------------------------------------------------------------- sorting / demo / plan


@pytest.mark.parametrize(
    "argv, words",
    [
        (["sorting", "train", "--workers", "-2"], ["--workers", "too small"]),
        (["sorting", "compare", "--workers", "0"], ["--workers", "too small"]),
        (["sorting", "train", "--workers", "100000"], ["--workers", "maximum is 256"]),
        (["sorting", "train", "--monolithic-cap", "-5"], ["--monolithic-cap", "too small"]),
        (["sorting", "train", "--monolithic-cap", "inf"], ["--monolithic-cap", "finite"]),
        (
            ["sorting", "compare", "--variants", "modular_typed,bogus"],
            ["--variants", "unknown variant(s) ['bogus']", "choose from"],
        ),
        (["sorting", "train", "--seed", "-4"], ["--seed", "too small"]),
        (["demo", "--workers", "-1"], ["--workers"]),
        (["demo", "--seed", "abc"], ["--seed", "not a whole number"]),
    ],
)
def test_sorting_and_demo_numbers(argv, words, tmp_path, capsys) -> None:
    expect_error([*argv, "--out", str(tmp_path / "o")], capsys, *words)
    assert not (tmp_path / "o").exists()


def test_sorting_evaluate_without_a_train_run_writes_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "never"
    expect_error(
        ["sorting", "evaluate", "--quick", "--out", str(out)],
        capsys,
        "no trained study there",
        "brickwork sorting train --out",
    )
    assert not out.exists()


def test_sorting_json_must_be_a_file(tmp_path, capsys) -> None:
    expect_error(
        ["sorting", "compare", "--json", str(tmp_path), "--out", str(tmp_path / "o")],
        capsys,
        "--json",
        "is a folder",
    )


def test_plan_paths(tmp_path, capsys) -> None:
    expect_error(["plan", str(tmp_path)], capsys, "is a folder, expected a file")
    expect_error(["plan", str(tmp_path / "nope.json")], capsys, "does not exist")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe{")
    rc, _, err = run_cli(["plan", str(bad)], capsys)
    assert rc == 2 and str(bad) in err
    bad.write_text("{")
    rc, _, err = run_cli(["plan", str(bad)], capsys)
    assert rc == 2 and "JSON" in err and str(bad) in err
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    expect_error(["plan", str(plan), "--json", str(tmp_path)], capsys, "--json", "is a folder")


# ----------------------------------------------------------------------------- help and extras


def _all_parsers(parser: argparse.ArgumentParser, prefix: str = "brickwork"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{prefix} {name}")


def test_help_has_no_rst_markup_and_shows_defaults() -> None:
    seen = {}
    for name, parser in _all_parsers(build_parser()):
        text = parser.format_help()
        seen[name] = text
        assert "``" not in text and ":mod:`" not in text and ":class:`" not in text, name
        assert "--debug" in text and "--import MODULE" in text, name
    assert "(default: 10)" in seen["brickwork clevr generate"]
    assert "reaches 60" in seen["brickwork clevr generate"]
    assert "--force" in seen["brickwork clevr generate"]
    assert "(default: runs/sorting)" in seen["brickwork sorting evaluate"]
    assert "(default: cpu)" in seen["brickwork clevr study"]
    assert "brickwork.plan.spec_file" in seen["brickwork plan"]


def test_strip_rst() -> None:
    assert (
        strip_rst(":func:`~brickwork.training.fit` and :mod:`brickwork.plan`")
        == "fit and brickwork.plan"
    )
    assert (
        strip_rst("run ``brickwork train`` or `brickwork plan`")
        == "run brickwork train or brickwork plan"
    )
    assert strip_rst("Example::\n\n    x") == "Example:\n\n    x"


def test_bounded_int_messages() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="-1 is too small: expected a count of 0"):
        bounded_int(0)("-1")


def test_require_tensorboard_names_the_extra(monkeypatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        UsageError, match=r"--tensorboard needs TensorBoard.*brickwork\[tensorboard\]"
    ):
        require_tensorboard()


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorboard") is not None,
    reason="tensorboard is installed",
)
def test_train_tensorboard_without_the_extra_writes_nothing(tmp_path, capsys) -> None:
    plan = tmp_path / "p.json"
    plan.write_text("{}")
    out = tmp_path / "run"
    expect_error(
        ["train", str(plan), "--tensorboard", "--out", str(out)],
        capsys,
        "--tensorboard needs TensorBoard",
        "pip install",
    )
    assert not out.exists()


# ----------------------------------------------------------------------------- --device wiring


def test_sorting_device_and_workers_reach_the_study(tmp_path, capsys, monkeypatch) -> None:
    import brickwork.studies.sorting as sorting

    seen = {}

    def fake_run_study(cfg, out, *, train=True, evaluate=True, device="cpu", **kw):
        seen.update(cfg=cfg, out=out, train=train, evaluate=evaluate, device=device, **kw)
        return {}

    monkeypatch.setattr(sorting, "run_study", fake_run_study)
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "train.json").write_text("{}")
    for action in ("train", "evaluate", "compare"):
        rc, out, _ = run_cli(
            [
                "sorting",
                action,
                "--quick",
                "--out",
                str(tmp_path / "o"),
                "--device",
                "meta",
                "--workers",
                "3",
            ],
            capsys,
        )
        assert rc == 0 and seen["device"] == "meta" and seen["cfg"].workers == 3
        assert seen["train"] == (action != "evaluate") and seen["evaluate"] == (action != "train")
    rc, _, _ = run_cli(["demo", "--out", str(tmp_path / "d"), "--device", "meta"], capsys)
    assert rc == 0 and seen["device"] == "meta" and seen["cfg"].quick


def test_clevr_study_device_reaches_the_config(tmp_path, capsys, monkeypatch) -> None:
    from dataclasses import fields

    import brickwork.studies.clevr.nmn as nmn

    seen = {}

    def fake_run_study(out, cfg, cache, progress=False):
        seen.update(cfg=cfg, progress=progress)
        raise DataError("stopped by the test")

    monkeypatch.setattr(nmn, "run_study", fake_run_study)
    argv = [
        "clevr",
        "study",
        "--quick",
        "--out",
        str(tmp_path / "s"),
        "--device",
        "meta",
        "--workers",
        "3",
    ]
    if "device" in {f.name for f in fields(nmn.StudyConfig)}:
        expect_error(argv, capsys, "stopped by the test")
        assert seen["cfg"].device == "meta" and seen["cfg"].workers == 3 and seen["progress"]
    else:  # the NMN study has no device yet: a non-CPU device is refused, not ignored
        expect_error(argv, capsys, "--device meta", "CPU only")


def test_heartbeat_prints_while_a_call_runs(capsys) -> None:
    import time

    from brickwork.cli.common import heartbeat

    with heartbeat("long job", interval=0.05, count=lambda: "3 done"):
        time.sleep(0.3)
    err = capsys.readouterr().err
    assert "long job: running for 0m00s, 3 done" in err
