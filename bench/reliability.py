"""Reliability: kill -9 + resume, concurrent registry writers, corrupted registry files.

Prints one JSON object on its last line:

* ``resume``: ``trials`` runs of ``brickwork train`` on the toy NMN plan (with HPO) killed
  with SIGKILL at a random moment (the whole process group, like a crash), then resumed
  with ``--resume``; each must end with the weight digests of an uninterrupted run.
* ``registry_writers``: 8 processes × 50 entries into one registry at once: all present,
  ``verify`` clean, no errors.
* ``corruption``: truncated / bit-flipped blobs, edited cards, pickle payloads, path
  traversal in names — every one must be refused; counts reported.
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


def fingerprints(run: Path) -> dict[str, str]:
    summary = json.loads((run / "summary.json").read_text())
    return {n: r["fingerprint"] for n, r in summary["modules"].items()}


def train_cmd(plan: Path, out: Path, resume: bool = False) -> list[str]:
    cmd = [PY, "-m", "brickwork", "train", str(plan), "--out", str(out), "--no-register",
           "--trials", "3", "--workers", "2"]
    return cmd + (["--resume"] if resume else [])


def resume_trials(root: Path, trials: int, seed: int) -> dict:
    from brickwork.training.examples import example_plan_json, nmn_data

    spec = example_plan_json()
    spec["train"]["search"] = {"encoder": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}}
    spec["train"]["hparams"] = {k: {"epochs": 6} for k in ("find", "encoder", "describe", "measure")}
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
        proc = subprocess.Popen(train_cmd(plan, out), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        r = subprocess.run(train_cmd(plan, out, resume=True), env=ENV, capture_output=True, text=True)
        ok = r.returncode == 0 and fingerprints(out) == ref
        rows.append({"kill_after_s": round(delay, 2), "killed": killed, "resumed_rc": r.returncode,
                     "identical": ok, "error": "" if r.returncode == 0 else r.stderr[-400:]})
    killed = [r for r in rows if r["killed"]]
    return {"trials": len(killed), "identical": sum(r["identical"] for r in killed),
            "attempts": len(rows), "all_attempts_identical": all(r["identical"] for r in rows), "reference_seconds": ref_time,
            "runs": rows}


WRITER = """
import sys, torch
from brickwork.registry import Registry
from brickwork.training.examples import ToyClassifier
reg = Registry(sys.argv[1]); p = int(sys.argv[2]); n = int(sys.argv[3]); errors = 0
for i in range(n):
    torch.manual_seed(p * 1000 + i)
    try:
        reg.put(f"toy_classifier.w{p}-{i}", ToyClassifier(dim=4, classes=2, hidden=4), metrics={"i": i})
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
    ps = [subprocess.Popen([PY, "-c", WRITER, str(path), str(p), str(per)], env=ENV,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
          for p in range(procs)]
    errors = 0
    for p in ps:
        out, err = p.communicate()
        errors += int(out.strip() or 0) if p.returncode == 0 else per
    reg = Registry(path)
    problems = reg.verify()
    return {"processes": procs, "entries_each": per, "present": len(reg),
            "expected": procs * per, "verify_problems": len(problems), "errors": errors,
            "seconds": time.perf_counter() - t}


MALICIOUS_PICKLE = b"\x80\x04cos\nsystem\n(S'echo pwned'\ntR."


def corruption(root: Path) -> dict:
    import torch

    from brickwork.registry import Registry
    from brickwork.training.examples import ToyClassifier

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
    refused("import: pickle with a matching digest", lambda: target.import_(exp, "toy_classifier.evil"))
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
    for bad in ("../evil.v1", "toy/../../x.y", "toy_classifier./etc/passwd", "..\\x.y",
                "toy_classifier..", ".hidden.x", "toy_classifier.a/b", "toy_classifier.a\x00b"):
        refused(f"name {bad!r}", lambda bad=bad: target.put(bad, m))
    refused("load '../index.sqlite'", lambda: reg.load("../index.sqlite"))
    escaped = [p for p in root.rglob("*") if "outside" in p.name or p.name == "evil.v1.json"]
    return {"cases": len(cases), "refused": sum(ok for _, ok, _ in cases),
            "files_outside_registry": len(escaped),
            "details": [{"case": c, "refused": ok, "message": m} for c, ok, m in cases]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trials", type=int, default=None)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bw-reliability-"))
    trials = args.trials or 5
    out = {"bench": "reliability", "quick": args.quick}
    out["resume"] = resume_trials(root / "resume", trials, seed=1)
    out["registry_writers"] = registry_writers(root, 8, 50)
    out["corruption"] = corruption(root / "corrupt")
    out["ok"] = (out["resume"]["identical"] == out["resume"]["trials"] >= 5
                 and out["resume"]["all_attempts_identical"]
                 and out["registry_writers"]["present"] == 400
                 and out["registry_writers"]["verify_problems"] == 0
                 and out["registry_writers"]["errors"] == 0
                 and out["corruption"]["refused"] == out["corruption"]["cases"])
    shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
