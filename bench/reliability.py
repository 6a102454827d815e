"""Reliability: kill -9 + resume, honest resume, concurrent registry writers, the
put/remove blob race, a lost registry index, untrusted import folders, corrupted files.

Prints one JSON object on its last line (``ok`` is true when every count of failures
is 0):

* ``resume``: ``trials`` runs of ``brickwork train`` on the toy NMN plan (with HPO) killed
  with SIGKILL at a random moment (the whole process group, like a crash), then resumed
  with ``--resume``; each must end with the weight digests of an uninterrupted run.
* ``registry_writers``: 8 processes × 50 entries into one registry at once: all present,
  ``verify`` clean, no errors.
* ``corruption``: truncated / bit-flipped blobs, edited cards, pickle payloads, path
  traversal in names — every one must be refused; counts reported.
* ``resume_changes``: ``brickwork train --resume`` after the data, the seed or the
  hyperparameters changed must refuse (exit 2, one error line) and leave
  ``summary.json`` and the registry byte-for-byte unchanged; a copied run folder (the
  original deleted) resumes and registers the copy's weights.
* ``put_remove_race``: 2 processes × ``--race-iterations`` (default 1,000) put and
  remove entries of identical weights: 0 puts whose blob is gone afterwards, 0 errors.
* ``index_lost``: index.sqlite deleted (and replaced by garbage): ``registry list``
  refuses naming ``reindex``, ``verify`` says so, ``reindex`` brings every version and
  alias back.
* ``untrusted_import``: FIFO / ``/dev/zero`` import folders refused within 1 s each; a
  hostile config (hidden=2e8: 3.2 GB of weights) refused with the peak RSS of the
  importing process growing by less than 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from brickwork.errors import BrickworkError

PY = sys.executable
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
# the console script (guarded main); `python -m brickwork` where it is not installed
_SCRIPT = Path(PY).parent / "brickwork"
BRICKWORK = [str(_SCRIPT)] if _SCRIPT.exists() else [PY, "-m", "brickwork"]


def fingerprints(run: Path) -> dict[str, str]:
    summary = json.loads((run / "summary.json").read_text())
    return {n: r["fingerprint"] for n, r in summary["modules"].items()}


#: where the `brickwork train` runs of the resume scenarios train (--device)
DEVICE = "cpu"


def train_cmd(plan: Path, out: Path, resume: bool = False) -> list[str]:
    cmd = BRICKWORK + [
        "train",
        str(plan),
        "--out",
        str(out),
        "--no-register",
        "--trials",
        "3",
        "--workers",
        "2",
        "--device",
        DEVICE,
    ]
    return cmd + (["--resume"] if resume else [])


def resume_trials(root: Path, trials: int, seed: int) -> dict:
    from brickwork.training.fixtures import example_plan_json, nmn_data

    spec = example_plan_json()
    spec["train"]["search"] = {
        "encoder": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
    }
    spec["train"]["hparams"] = {
        k: {"epochs": 6} for k in ("find", "encoder", "describe", "measure")
    }
    folder = root / "plan"
    folder.mkdir(parents=True)
    nmn_data(2048, len(spec["layouts"]), seed=0).save(folder / "data.safetensors")
    plan = folder / "plan.json"
    plan.write_text(json.dumps(spec))
    t = time.perf_counter()
    subprocess.run(train_cmd(plan, root / "ref"), check=True, env=ENV, capture_output=True)
    ref_time = time.perf_counter() - t
    ref = fingerprints(root / "ref")
    rng = random.Random(seed)
    rows = []
    k = 0
    while sum(r["killed"] for r in rows) < trials and k < 3 * trials:
        out = root / f"trial{k}"
        k += 1
        delay = rng.uniform(0.1, 0.6) * ref_time
        proc = subprocess.Popen(
            train_cmd(plan, out),
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        r = subprocess.run(
            train_cmd(plan, out, resume=True), env=ENV, capture_output=True, text=True
        )
        ok = r.returncode == 0 and fingerprints(out) == ref
        rows.append(
            {
                "kill_after_s": round(delay, 2),
                "killed": killed,
                "resumed_rc": r.returncode,
                "identical": ok,
                "error": "" if r.returncode == 0 else r.stderr[-400:],
            }
        )
    killed = [r for r in rows if r["killed"]]
    return {
        "trials": len(killed),
        "identical": sum(r["identical"] for r in killed),
        "attempts": len(rows),
        "all_attempts_identical": all(r["identical"] for r in rows),
        "reference_seconds": ref_time,
        "runs": rows,
    }


WRITER = """
import sys, torch
from brickwork.registry import Registry
from brickwork.training.fixtures import ToyClassifier
reg = Registry(sys.argv[1]); p = int(sys.argv[2]); n = int(sys.argv[3]); errors = 0
for i in range(n):
    torch.manual_seed(p * 1000 + i)
    try:
        reg.put(
            f"toy_classifier.w{p}-{i}",
            ToyClassifier(dim=4, classes=2, hidden=4),
            metrics={"i": i},
        )
    except Exception as exc:
        errors += 1
        print("ERR", type(exc).__name__, exc, file=sys.stderr)
print(errors)
"""


def registry_writers(root: Path, procs: int, per: int) -> dict:
    from brickwork.registry import Registry

    path = root / "reg-concurrent"
    Registry(path)
    t = time.perf_counter()
    ps = [
        subprocess.Popen(
            [PY, "-c", WRITER, str(path), str(p), str(per)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(procs)
    ]
    errors = 0
    for p in ps:
        out, err = p.communicate()
        errors += int(out.strip() or 0) if p.returncode == 0 else per
    reg = Registry(path)
    problems = reg.verify()
    return {
        "processes": procs,
        "entries_each": per,
        "present": len(reg),
        "expected": procs * per,
        "verify_problems": len(problems),
        "errors": errors,
        "seconds": time.perf_counter() - t,
    }


MALICIOUS_PICKLE = b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR."


def corruption(root: Path) -> dict:
    import torch

    from brickwork.registry import Registry
    from brickwork.training.fixtures import ToyClassifier

    base = root / "reg-base"
    reg = Registry(base)
    torch.manual_seed(0)
    reg.put("toy_classifier.good-v1", ToyClassifier(dim=4, classes=2), metrics={"acc": 0.9})
    card = reg.card("toy_classifier.good-v1")
    cases: list[tuple[str, bool, str]] = []

    def fresh(name: str) -> Registry:
        dst = root / f"reg-{name}"
        shutil.copytree(base, dst)
        return Registry(dst)

    def refused(name: str, action, registry: Registry | None = None) -> None:
        try:
            action()
        except BrickworkError as exc:
            flagged = registry is None or bool(registry.verify())
            cases.append((name, flagged, str(exc)[:160]))
            return
        cases.append((name, False, "accepted"))

    def blob(r: Registry) -> Path:
        return r.blob_path(card.weights_sha256)

    r = fresh("truncated")
    data = blob(r).read_bytes()
    blob(r).write_bytes(data[: len(data) // 2])
    refused("truncated blob", lambda: r.load(card.name), r)
    r = fresh("bitflip")
    data = bytearray(blob(r).read_bytes())
    data[-3] ^= 0x10
    blob(r).write_bytes(bytes(data))
    refused("bit-flipped blob", lambda: r.load(card.name), r)
    r = fresh("header-bitflip")
    data = bytearray(blob(r).read_bytes())
    data[12] ^= 0x01
    blob(r).write_bytes(bytes(data))
    refused("bit-flipped blob header", lambda: r.load(card.name), r)
    r = fresh("card-edited")
    p = r.card_path(card.name)
    p.write_text(p.read_text().replace('"acc": 0.9', '"acc": 0.99'))
    refused("card edited (metrics)", lambda: r.load(card.name), r)
    r = fresh("card-config")
    p = r.card_path(card.name)
    p.write_text(p.read_text().replace('"classes": 2', '"classes": 3'))
    refused("card edited (config)", lambda: r.load(card.name), r)
    r = fresh("card-garbage")
    r.card_path(card.name).write_bytes(b"\x00not json")
    refused("card replaced by garbage", lambda: r.load(card.name), r)
    r = fresh("pickle-blob")
    blob(r).write_bytes(MALICIOUS_PICKLE)
    refused("pickle payload as blob", lambda: r.load(card.name), r)
    # exported folders with pickles, matching digests in config.json
    exp = root / "export-pickle"
    reg.export(card.name, exp)
    (exp / "model.safetensors").write_bytes(MALICIOUS_PICKLE)
    import hashlib

    meta = json.loads((exp / "config.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(MALICIOUS_PICKLE).hexdigest()
    meta["registry_card"]["weights_sha256"] = meta["weights_sha256"]
    (exp / "config.json").write_text(json.dumps(meta))
    target = Registry(root / "reg-import")
    refused(
        "import: pickle with a matching digest", lambda: target.import_(exp, "toy_classifier.evil")
    )
    exp2 = root / "export-bin"
    exp2.mkdir()
    (exp2 / "pytorch_model.bin").write_bytes(b"PK\x03\x04" + MALICIOUS_PICKLE)
    (exp2 / "config.json").write_text("{}")
    refused("import: pytorch_model.bin only", lambda: target.import_(exp2, "toy_classifier.evil2"))
    exp3 = root / "export-traversal"
    reg.export(card.name, exp3)
    meta = json.loads((exp3 / "config.json").read_text())
    meta["registry_card"]["name"] = "../../outside.x"
    (exp3 / "config.json").write_text(json.dumps(meta))
    refused("import: path traversal in the card's name", lambda: target.import_(exp3))
    m = ToyClassifier(dim=4, classes=2)
    for bad in (
        "../evil.v1",
        "toy/../../x.y",
        "toy_classifier./etc/passwd",
        "..\\x.y",
        "toy_classifier..",
        ".hidden.x",
        "toy_classifier.a/b",
        "toy_classifier.a\x00b",
    ):
        refused(f"name {bad!r}", lambda bad=bad: target.put(bad, m))
    refused("load '../index.sqlite'", lambda: reg.load("../index.sqlite"))
    escaped = [p for p in root.rglob("*") if "outside" in p.name or p.name == "evil.v1.json"]
    return {
        "cases": len(cases),
        "refused": sum(ok for _, ok, _ in cases),
        "files_outside_registry": len(escaped),
        "details": [{"case": c, "refused": ok, "message": m} for c, ok, m in cases],
    }


def _tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (what "unchanged" means)."""
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def resume_changes(root: Path) -> dict:
    """Resume after a change refuses and writes nothing; a copied run folder resumes."""
    from brickwork.modules import load_module
    from brickwork.registry import Registry
    from brickwork.training.fixtures import example_plan_json, nmn_data

    spec = example_plan_json()
    spec["train"].pop("search", None)
    spec["train"]["hparams"] = {
        k: {"epochs": 2} for k in ("find", "encoder", "describe", "measure")
    }
    folder = root / "plan"
    folder.mkdir(parents=True)
    data_path, plan = folder / "data.safetensors", folder / "plan.json"
    nmn_data(512, len(spec["layouts"]), seed=0).save(data_path)
    plan.write_text(json.dumps(spec))
    run, reg_path = root / "run", root / "reg"

    def train(*extra: str, out: Path = run) -> subprocess.CompletedProcess:
        return subprocess.run(
            BRICKWORK
            + [
                "train",
                str(plan),
                "--out",
                str(out),
                "--registry",
                str(reg_path),
                "--workers",
                "2",
                "--device",
                DEVICE,
                *extra,
            ],
            env=ENV,
            capture_output=True,
            text=True,
        )

    first = train()
    if first.returncode != 0:
        return {"error": f"first train failed: {first.stderr[-400:]}", "failures": 1}
    original_data = data_path.read_bytes()
    cases = []

    def change(label: str, extra: list[str], mutate=None, restore=None) -> None:
        before_run, before_reg = _tree_digest(run), _tree_digest(reg_path)
        if mutate:
            mutate()
        r = train("--resume", *extra)
        if restore:
            restore()
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        ok = (
            r.returncode == 2
            and len(errors) == 1
            and _tree_digest(run) == before_run
            and _tree_digest(reg_path) == before_reg
        )
        cases.append(
            {
                "change": label,
                "rc": r.returncode,
                "refused_and_unchanged": ok,
                "message": (errors[0] if errors else r.stderr[-300:])[:300],
            }
        )

    change("seed", ["--seed", "1"])
    change(
        "data",
        [],
        lambda: nmn_data(512, len(spec["layouts"]), seed=1).save(data_path),
        lambda: data_path.write_bytes(original_data),
    )
    hp = json.loads(plan.read_text())
    hp["train"]["hparams"]["find"]["epochs"] = 3
    original_plan = plan.read_text()
    change(
        "hparams",
        [],
        lambda: plan.write_text(json.dumps(hp)),
        lambda: plan.write_text(original_plan),
    )
    # a copied run folder, the original gone: resumes from the copy, registers its weights
    copy = root / "run-copy"
    shutil.copytree(run, copy)
    shutil.rmtree(run)
    r = train("--resume", out=copy)
    copied: dict = {"rc": r.returncode, "error": r.stderr[-300:] if r.returncode else ""}
    if r.returncode == 0:
        summary = json.loads((copy / "summary.json").read_text())
        reg = Registry(reg_path)
        own = 0
        for name, ref in summary["registered"].items():
            module_dir = copy / summary["modules"][name]["module_dir"]
            own += reg.card(ref).fingerprint == load_module(module_dir).fingerprint()
        # files of the copy that still name the original run folder
        copied.update(
            registered=len(summary["registered"]),
            own_weights=own,
            files_naming_original=sum(
                f'{run}"' in p.read_text() or f"{run}/" in p.read_text()
                for p in copy.rglob("*.json")
            ),
        )
    failures = sum(not c["refused_and_unchanged"] for c in cases)
    failures += int(
        copied["rc"] != 0
        or copied.get("own_weights") != copied.get("registered")
        or copied.get("files_naming_original", 1) != 0
    )
    return {"changes": cases, "copied_run": copied, "failures": failures}


RACE = r"""
import json, sys, time, torch
from brickwork.registry import Registry
from brickwork.training.fixtures import ToyClassifier
root, who, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
torch.manual_seed(0)  # every process holds identical weights
module = ToyClassifier(dim=4, classes=2, hidden=4)
reg = Registry(root)
while time.time() < start:
    time.sleep(0.001)
lost = errors = 0
t = time.perf_counter()
for i in range(n):
    try:
        card = reg.put(f"toy_classifier.{who}", module)
        if not reg.blob_path(card.weights_sha256).exists():
            lost += 1
        elif i % 50 == 0:
            reg.load(card.ref)
        reg.remove(f"toy_classifier.{who}")
    except Exception as exc:
        errors += 1
        print("ERR", type(exc).__name__, exc, file=sys.stderr)
print(json.dumps({"lost": lost, "errors": errors, "seconds": time.perf_counter() - t}))
"""


def put_remove_race(root: Path, iterations: int) -> dict:
    from brickwork.registry import Registry

    path = root / "reg-race"
    Registry(path)
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [PY, "-c", RACE, str(path), who, str(iterations), str(start)],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    lost = errors = 0
    seconds = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            errors += iterations
            continue
        row = json.loads(out.strip().splitlines()[-1])
        lost, errors = lost + row["lost"], errors + row["errors"]
        seconds.append(row["seconds"])
    reg = Registry(path)
    left = len(list((path / "blobs").glob("*/*.safetensors")))
    return {
        "processes": 2,
        "iterations_each": iterations,
        "lost_blobs": lost,
        "errors": errors,
        "entries_left": len(reg),
        "blobs_left": left,
        "verify_problems": len(reg.verify()),
        "seconds": max(seconds or [0.0]),
        "failures": lost + errors + len(reg) + left,
    }


def index_lost(root: Path) -> dict:
    import torch

    from brickwork.registry import Registry
    from brickwork.training.fixtures import ToyClassifier

    path = root / "reg-index"
    reg = Registry(path)
    for i in range(12):
        for v in range(1 + i % 3):
            torch.manual_seed(100 * i + v)
            reg.put(
                f"toy_classifier.e{i}", ToyClassifier(dim=4, classes=2, hidden=4), metrics={"v": v}
            )
        if i % 4 == 0:
            reg.alias(f"toy_classifier.e{i}@1", "production")
    reg.remove("toy_classifier.e5@2")

    def state(r: Registry) -> list:
        return [
            (e.ref, e.aliases, e.card.to_json() if e.card else None)
            for e in r.list(all_versions=True)
        ]

    before = state(reg)
    rows = []
    for how in ("deleted", "garbage"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{reg.index_path}{suffix}").unlink(missing_ok=True)
        if how == "garbage":
            reg.index_path.write_bytes(b"not a database " * 64)
        cli = BRICKWORK + ["registry", "--registry", str(path)]
        ls = subprocess.run(cli + ["list"], env=ENV, capture_output=True, text=True)
        vf = subprocess.run(cli + ["verify"], env=ENV, capture_output=True, text=True)
        t = time.perf_counter()
        ri = subprocess.run(cli + ["reindex"], env=ENV, capture_output=True, text=True)
        after = state(Registry(path))
        rows.append(
            {
                "index": how,
                "list_refused": ls.returncode != 0
                and "reindex" in ls.stderr
                and "(no entries" not in ls.stdout,
                "verify_says_reindex": vf.returncode == 1 and "registry reindex" in vf.stdout,
                "reindex_rc": ri.returncode,
                "reindex_seconds": time.perf_counter() - t,
                "versions_before": len(before),
                "versions_after": len(after),
                "identical": after == before,
                "verify_after": len(Registry(path).verify()),
            }
        )
    failures = sum(
        not (
            r["list_refused"]
            and r["verify_says_reindex"]
            and r["reindex_rc"] == 0
            and r["identical"]
            and r["verify_after"] == 0
        )
        for r in rows
    )
    return {"cases": rows, "aliases": sum(len(a) for _, a, _ in before) - 12, "failures": failures}


HOSTILE = r"""
import json, resource, sys, time
from brickwork.errors import BrickworkError
from brickwork.registry import Registry
import brickwork.training.fixtures  # the kind
dst = Registry(sys.argv[2])
dst.names()  # warm: every lazy import done before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    dst.import_(sys.argv[1])
    refused, message = False, "accepted"
except BrickworkError as exc:
    refused, message = True, str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"refused": refused, "message": message[:300], "seconds": time.perf_counter() - t,
                  "peak_rss_growth_mb": (after - before) / 1024}))
"""

ATTEMPT = r"""
import json, sys, time
from brickwork.errors import BrickworkError
from brickwork.registry import Registry
dst = Registry(sys.argv[2])
t = time.perf_counter()
try:
    dst.import_(sys.argv[1])
    refused, message = False, "accepted"
except BrickworkError as exc:
    refused, message = True, str(exc)
seconds = time.perf_counter() - t
print(json.dumps({"refused": refused, "message": message[:300], "seconds": seconds}))
"""


def untrusted_import(root: Path) -> dict:
    import torch

    from brickwork.registry import Registry
    from brickwork.training.fixtures import ToyClassifier

    src = Registry(root / "reg-src")
    torch.manual_seed(0)
    src.put("toy_classifier.good", ToyClassifier(dim=4, classes=2))
    cases = []

    def attempt(label: str, prepare, script: str = ATTEMPT, limit_mb: float | None = None) -> None:
        folder = src.export("toy_classifier.good", root / f"import-{label}")
        prepare(folder)
        try:
            r = subprocess.run(
                [PY, "-c", script, str(folder), str(root / f"reg-{label}")],
                env=ENV,
                capture_output=True,
                text=True,
                timeout=60,
            )
            row = json.loads(r.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            row = {"refused": False, "message": "hung (killed after 60 s)", "seconds": 60.0}
        except (ValueError, IndexError):
            row = {"refused": False, "message": r.stderr[-300:], "seconds": 0.0}
        ok = row["refused"] and row["seconds"] < 1.0
        if limit_mb is not None:
            ok = ok and row["peak_rss_growth_mb"] < limit_mb
        cases.append({"case": label, "ok": ok, **row})

    def fifo(name: str):
        def prepare(folder: Path) -> None:
            (folder / name).unlink()
            os.mkfifo(folder / name)

        return prepare

    def link(name: str, target: str):
        def prepare(folder: Path) -> None:
            (folder / name).unlink()
            os.symlink(target, folder / name)

        return prepare

    def hostile(folder: Path) -> None:
        meta = json.loads((folder / "config.json").read_text())
        meta["config"]["hidden"] = meta["registry_card"]["config"]["hidden"] = 200_000_000
        (folder / "config.json").write_text(json.dumps(meta))

    attempt("fifo-config", fifo("config.json"))
    attempt("fifo-weights", fifo("model.safetensors"))
    attempt("dev-zero-weights", link("model.safetensors", "/dev/zero"))
    attempt("dev-zero-config", link("config.json", "/dev/zero"))
    attempt("hostile-config", hostile, HOSTILE, limit_mb=100.0)
    return {"cases": cases, "failures": sum(not c["ok"] for c in cases)}


SCENARIOS = (
    "resume",
    "registry_writers",
    "corruption",
    "resume_changes",
    "put_remove_race",
    "index_lost",
    "untrusted_import",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="200 race iterations")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--race-iterations", type=int, default=None)
    ap.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        default=None,
        help="run only these scenarios (repeatable)",
    )
    ap.add_argument(
        "--device", default="cpu", help="where the train runs train (cpu, cuda, cuda:N)"
    )
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    root = Path(tempfile.mkdtemp(prefix="bw-reliability-"))
    trials = args.trials or 5
    race = args.race_iterations or (200 if args.quick else 1000)
    only = set(args.only or SCENARIOS)
    out: dict = {
        "bench": "reliability",
        "quick": args.quick,
        "scenarios": sorted(only),
        "device": DEVICE,
    }
    checks = []
    if "resume" in only:
        out["resume"] = resume_trials(root / "resume", trials, seed=1)
        checks.append(
            out["resume"]["identical"] == out["resume"]["trials"] >= 5
            and out["resume"]["all_attempts_identical"]
        )
    if "registry_writers" in only:
        out["registry_writers"] = registry_writers(root, 8, 50)
        checks.append(
            out["registry_writers"]["present"] == 400
            and out["registry_writers"]["verify_problems"] == 0
            and out["registry_writers"]["errors"] == 0
        )
    if "corruption" in only:
        out["corruption"] = corruption(root / "corrupt")
        checks.append(out["corruption"]["refused"] == out["corruption"]["cases"])
    if "resume_changes" in only:
        out["resume_changes"] = resume_changes(root / "resume-changes")
        checks.append(out["resume_changes"]["failures"] == 0)
    if "put_remove_race" in only:
        out["put_remove_race"] = put_remove_race(root, race)
        checks.append(out["put_remove_race"]["failures"] == 0 and (race >= 1000 or args.quick))
    if "index_lost" in only:
        out["index_lost"] = index_lost(root / "index-lost")
        checks.append(out["index_lost"]["failures"] == 0)
    if "untrusted_import" in only:
        out["untrusted_import"] = untrusted_import(root / "untrusted")
        checks.append(out["untrusted_import"]["failures"] == 0)
    out["ok"] = all(checks)
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
