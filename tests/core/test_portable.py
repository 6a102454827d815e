"""Portable modules: save_pretrained / from_pretrained across fresh interpreters, the
import allow-list (entry points, ``imports=``), untrusted folders (FIFO, devices,
symlinks, hostile configs) and file modes that respect the umask."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import brickwork.modules as bm
from brickwork.errors import LoadError

pytest.importorskip(
    "brickwork_toykinds", reason="install tests/fixtures/brickwork_toykinds (make venv)"
)


def run_py(code: str, cwd: Path | None = None, timeout: float = 120) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (fail with its stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


SAVE = """
    import torch
    from brickwork_toykinds.kinds import ToyFind
    torch.manual_seed(0)
    m = ToyFind(channels=4, hidden=8)
    m.save_pretrained({folder!r})
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    from safetensors.torch import save_file
    save_file({{"x": x, "y": m(x).detach()}}, {io!r})
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("portable")
    folder, io = root / "find", root / "io.safetensors"
    run_py(SAVE.format(folder=str(folder), io=str(io)))
    return folder, io


def test_from_pretrained_in_a_fresh_interpreter_is_bit_identical(saved):
    folder, io = saved
    card = json.loads((folder / "config.json").read_text())
    assert card["module"] == "brickwork_toykinds.kinds" and card["kind"] == "tk_find"
    out = run_py(f"""
        import sys, torch
        from safetensors.torch import load_file
        from brickwork.modules import Module
        assert "brickwork_toykinds" not in sys.modules
        m = Module.from_pretrained({str(folder)!r})
        assert "brickwork_toykinds.kinds" in sys.modules  # found through the entry point
        io = load_file({str(io)!r})
        print(type(m).__name__, torch.equal(m(io["x"]), io["y"]))
    """)
    assert out.split() == ["ToyFind", "True"]


def test_readme_use_snippet_runs_in_a_fresh_interpreter(saved):
    folder, _ = saved
    text = (folder / "README.md").read_text()
    front = text.split("---\n")[1]
    assert "library_name: brickwork" in front
    assert 'kind: "tk_find"' in front and 'module: "brickwork_toykinds.kinds"' in front
    assert "signature: \"(features: Features['b c h w']) -> (mask: SoftMask['b 1 h w'])\"" in front
    assert 'license: "mit"' in front and '- "brickwork"' in front
    snippet = re.search(r"## Use.*?```python\n(.*?)```", text, re.S).group(1)
    out = run_py(snippet, cwd=folder)
    assert out.strip() == "(features: Features['b c h w']) -> (mask: SoftMask['b 1 h w'])"


def test_front_matter_is_yaml(saved):
    yaml = pytest.importorskip("yaml")
    folder, _ = saved
    meta = yaml.safe_load((folder / "README.md").read_text().split("---\n")[1])
    assert meta["library_name"] == "brickwork" and meta["kind"] == "tk_find"
    assert meta["hyperparameters"] == {"channels": 4, "hidden": 8}


def test_disallowed_module_is_never_imported(tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    pkg.mkdir()
    marker = tmp_path / "imported.txt"
    (pkg / "bw_evil_kinds.py").write_text(
        textwrap.dedent(f"""
        import pathlib, torch
        pathlib.Path({str(marker)!r}).write_text("imported")
        from brickwork.modules import Module, register_kind
        from brickwork.types import Features
        @register_kind("bw_evil")
        class Evil(Module):
            inputs = {{"x": Features("b c")}}
            outputs = {{"y": Features("b c")}}
            def forward(self, x):
                return x
    """)
    )
    monkeypatch.syspath_prepend(str(pkg))
    folder = tmp_path / "m"
    bm.save_module(bm.Adapter("relu", "b n"), folder)
    card = json.loads((folder / "config.json").read_text())
    card.update(kind="bw_evil", module="bw_evil_kinds", config={})
    (folder / "config.json").write_text(json.dumps(card))
    with pytest.raises(LoadError) as err:
        bm.load_module(folder)
    msg = str(err.value)
    assert "'bw_evil'" in msg and "'bw_evil_kinds'" in msg
    assert "--import bw_evil_kinds" in msg and "imports=['bw_evil_kinds']" in msg
    assert "brickwork.kinds" in msg
    assert not marker.exists(), "the module named by the file was imported"
    assert "bw_evil_kinds" not in bm.allowed_kind_modules()
    assert "bw_evil_kinds" in bm.allowed_kind_modules(imports=["bw_evil_kinds"])
    # named by the user: imported, the kind is found (then the edited card fails checks)
    with pytest.raises(LoadError, match="signature mismatch|fingerprint|does not fit"):
        bm.load_module(folder, imports=["bw_evil_kinds"])
    assert marker.exists()


def test_import_kinds_reports_bad_names():
    with pytest.raises(LoadError, match="not a module path"):
        bm.import_kinds(["../evil"])
    with pytest.raises(LoadError, match="cannot import 'nope_pkg_zz'.*install the package"):
        bm.import_kinds(["nope_pkg_zz"])


def test_unknown_kind_without_module_names_the_fix(tmp_path):
    folder = bm.save_module(bm.Adapter("relu", "b n"), tmp_path / "m")
    card = json.loads((folder / "config.json").read_text())
    card["kind"] = "nowhere_kind"
    card.pop("module")
    (folder / "config.json").write_text(json.dumps(card))
    with pytest.raises(LoadError, match=r"unknown module kind 'nowhere_kind'.*--import pkg\.mod"):
        bm.load_module(folder)


def test_files_respect_the_umask(tmp_path):
    for umask, want in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        folder = tmp_path / f"u{umask:o}"
        out = run_py(f"""
            import os
            os.umask({umask})
            from brickwork.modules import And
            f = And.min("b n").save_pretrained({str(folder)!r})
            print(" ".join(oct(os.stat(p).st_mode & 0o777) for p in sorted(f.iterdir())))
        """)
        assert out.split() == [oct(want)] * 3, (umask, out)


def test_hostile_config_is_refused_before_allocating(saved, tmp_path):
    folder, _ = saved
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    card = json.loads((bad / "config.json").read_text())
    card["config"]["hidden"] = 200_000_000
    (bad / "config.json").write_text(json.dumps(card))
    out = run_py(f"""
        import resource, time
        from brickwork.modules import load_module
        from brickwork.errors import LoadError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.perf_counter()
        try:
            load_module({str(bad)!r})
        except LoadError as exc:
            msg = str(exc)
        else:
            msg = "LOADED"
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(round(time.perf_counter() - t, 3), round(grew, 1))
        print(msg)
    """)
    first, msg = out.split("\n", 1)
    seconds, grew_mb = map(float, first.split())
    assert "does not fit the weights" in msg and "inner.weight" in msg, msg
    assert "(8, 4, 1, 1)" in msg and "(200000000, 4, 1, 1)" in msg
    assert seconds < 5 and grew_mb < 100, (seconds, grew_mb)


@pytest.mark.parametrize("which", ["model.safetensors", "config.json"])
def test_fifo_is_refused_at_once(saved, tmp_path, which):
    import shutil

    folder, _ = saved
    bad = tmp_path / "fifo"
    shutil.copytree(folder, bad)
    (bad / which).unlink()
    os.mkfifo(bad / which)
    t = time.perf_counter()
    with pytest.raises(
        LoadError, match=rf"{which}: is a FIFO \(named pipe\), expected a regular file"
    ):
        bm.load_module(bad)
    assert time.perf_counter() - t < 1.0


def test_device_and_symlinks_are_refused(saved, tmp_path):
    import shutil

    folder, _ = saved
    bad = tmp_path / "dev"
    shutil.copytree(folder, bad)
    (bad / "model.safetensors").unlink()
    (bad / "model.safetensors").symlink_to("/dev/zero")
    t = time.perf_counter()
    with pytest.raises(LoadError, match="is a symbolic link, expected a regular file"):
        bm.load_module(bad)
    with pytest.raises(LoadError, match="is a device"):
        bm.read_safetensors_header("/dev/zero", max_bytes=1 << 20)
    assert time.perf_counter() - t < 1.0
    with pytest.raises(LoadError, match="is a directory"):
        bm.read_regular_bytes(tmp_path, max_bytes=10)


def test_size_cap_and_bad_headers(tmp_path):
    p = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(4, 5), "b": torch.ones(3)}, p)
    assert bm.read_safetensors_header(p, max_bytes=1 << 20) == {"a": (4, 5), "b": (3,)}
    with pytest.raises(LoadError, match="over the 10-byte limit"):
        bm.read_safetensors_header(p, max_bytes=10)

    def write(header: dict, data: bytes) -> None:
        raw = json.dumps(header).encode()
        p.write_bytes(len(raw).to_bytes(8, "little") + raw + data)

    write({"a": {"dtype": "F32", "shape": [400000, 5], "data_offsets": [0, 80]}}, bytes(80))
    with pytest.raises(LoadError, match=r"needs 8000000 bytes, the offsets give 80"):
        bm.read_safetensors_header(p, max_bytes=1 << 20)
    write({"a": {"dtype": "F32", "shape": [20], "data_offsets": [0, 80]}}, bytes(40))
    with pytest.raises(LoadError, match="outside the 40-byte data section"):
        bm.read_safetensors_header(p, max_bytes=1 << 20)
    write({"a": {"dtype": "X9", "shape": [1], "data_offsets": [0, 4]}}, bytes(4))
    with pytest.raises(LoadError, match="unknown dtype 'X9'"):
        bm.read_safetensors_header(p, max_bytes=1 << 20)
    p.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    with pytest.raises(LoadError, match="not a valid safetensors file"):
        bm.read_safetensors_header(p, max_bytes=1 << 20)


def test_build_checks_shapes_on_meta_and_builds_on_device():
    from brickwork_toykinds.kinds import ToyFind

    want = {k: tuple(v.shape) for k, v in ToyFind(channels=4, hidden=8).state_dict().items()}
    m = bm.build_kind("tk_find", {"channels": 4, "hidden": 8}, expect_shapes=want, device="meta")
    assert all(p.is_meta for p in m.parameters())
    with pytest.raises(LoadError) as err:
        bm.build_kind(
            "tk_find",
            {"channels": 4, "hidden": 200_000_000},
            expect_shapes={**want, "extra.weight": (1,)},
        )
    msg = str(err.value)
    assert "unexpected in the weights ['extra.weight']" in msg and "inner.bias" in msg


def test_register_kind_refuses_a_same_named_class_of_another_module():
    from brickwork_toykinds.kinds import ToyExist

    Impostor = type(
        "ToyExist", (bm.Module,), {"__module__": "other_pkg.kinds", "__qualname__": "ToyExist"}
    )
    with pytest.raises(
        LoadError,
        match=r"'tk_exist' is already registered by "
        r"brickwork_toykinds\.kinds\.ToyExist; "
        r"other_pkg\.kinds\.ToyExist cannot take its name",
    ):
        bm.register_kind("tk_exist")(Impostor)
    assert bm.kind_info("tk_exist").factory is ToyExist
    bm.register_kind("tk_exist")(ToyExist)  # the same class again (a reload) is fine


def test_from_pretrained_missing_folder_and_wrong_class(tmp_path):
    with pytest.raises(LoadError, match="no such folder"):
        bm.Module.from_pretrained(tmp_path / "nope")
    folder = bm.And.min("b n").save_pretrained(tmp_path / "and")
    with pytest.raises(LoadError, match="holds a And .*not a Or"):
        bm.Or.from_pretrained(folder)
    assert bm.And.from_pretrained(folder).mode == "min"


def test_map_location_builds_on_that_device(saved):
    folder, _ = saved
    m = bm.load_module(folder, map_location="meta")
    assert all(p.is_meta for p in m.parameters())
    cpu = bm.load_module(folder, map_location="cpu")
    assert all(p.device.type == "cpu" for p in cpu.parameters())


def test_from_pretrained_by_registry_name_in_a_fresh_interpreter(saved, tmp_path):
    folder, io = saved
    reg = tmp_path / "reg"
    run_py(f"""
        from brickwork.modules import Module
        from brickwork.registry import Registry
        Registry({str(reg)!r}).put("tk_find.red", Module.from_pretrained({str(folder)!r}))
    """)
    out = run_py(
        f"""
        import sys, torch
        from safetensors.torch import load_file
        from brickwork.modules import Module
        m = Module.from_pretrained("tk_find.red", registry={str(reg)!r})
        io = load_file({str(io)!r})
        print(torch.equal(m(io["x"]), io["y"]))
    """,
        cwd=tmp_path,
    )
    assert out.split() == ["True"]
