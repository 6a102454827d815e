"""Training jobs of candidate programs (run in executor workers or in process).

A job is a JSON-able dict: the program's term, the registry path, the data files, the
output type, the fit configuration and seed, an output folder. The worker rebuilds the
program (registry modules loaded and frozen, holes new from the job's seed, or copied
from an initial module for the transfer baseline), fits it with
:func:`brickwork.training.fit`, scores it on validation and on any test files, and saves
the new modules (safetensors + JSON) for registration.

Example:
    >>> from brickwork.types import Bool, Count
    >>> loss_name(Count("b 1")), loss_name(Bool("b 1"))
    ('mse', 'bce')
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from brickwork.compose.holes import Hole, ensemble_of
from brickwork.compose.library import LibraryOp
from brickwork.compose.program import Fn, build_program, term_holes
from brickwork.compose.types import CType, ListOf, Padded, ctype_from_json, is_image
from brickwork.errors import DataError
from brickwork.modules import Module, load_module, save_module

log = logging.getLogger(__name__)

INPUT, MASK, TARGET = "x", "x_mask", "y"
#: seed offset between the members of an ensemble (``fit.ensemble``)
ENSEMBLE_SEED_STEP = 7919
#: what ``fit.ensemble`` applies to in :func:`brickwork.compose.solve`: every full
#: training (``"all"``) or only the winner, after selection among single fits (``"winner"``)
ENSEMBLE_SCOPES = ("all", "winner")


def ensemble_options(fit: dict[str, Any]) -> tuple[int, str]:
    """``(K, scope)`` of a fit configuration's ``ensemble`` (default 1) and
    ``ensemble_scope`` (default ``"all"``), checked.

    Raises:
        DataError: K is not an integer >= 1, or the scope is not one of
            :data:`ENSEMBLE_SCOPES`.

    Example:
        >>> ensemble_options({"ensemble": 3, "ensemble_scope": "winner"})
        (3, 'winner')
        >>> ensemble_options({})
        (1, 'all')
    """
    k = fit.get("ensemble", 1)
    k = 1 if k is None else k
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DataError(
            f"compose fit: ensemble got {k!r}, expected an integer >= 1 (1: one fit; K: the "
            "ensemble of K independent fits); fix the task's or study's fit configuration"
        )
    scope = fit.get("ensemble_scope", "all") or "all"
    if scope not in ENSEMBLE_SCOPES:
        raise DataError(
            f"compose fit: ensemble_scope got {scope!r}, expected one of {ENSEMBLE_SCOPES} "
            "('all': every full training is an ensemble; 'winner': candidates are selected "
            "as single fits and only the winner's new modules become ensembles); fix the "
            "task's or study's fit configuration"
        )
    return int(k), str(scope)


def loss_name(t: CType) -> str:
    """``bce`` for Bool/SoftMask outputs, ``nll`` for Probs, ``mse`` otherwise."""
    kind = getattr(t, "kind", "")
    if kind in ("Bool", "SoftMask"):
        return "bce"
    if kind in ("Probs", "OneHot", "Pointer"):
        return "nll"
    return "mse"


def shift_images(x: torch.Tensor, pixels: int) -> torch.Tensor:
    """Every image of ``x`` (``[..., c, h, w]``) moved by its own random offset of up to
    ``pixels`` pixels in each direction, zeros shifted in (the training augmentation
    of :func:`run_candidate`'s ``augment_shift``; all-zero padding stays zero).

    Example:
        >>> x = torch.zeros(1, 1, 3, 3)
        >>> x[0, 0, 1, 1] = 1.0
        >>> torch.manual_seed(0) and None
        >>> y = shift_images(x.expand(64, 1, 3, 3), 1)
        >>> y.sum().item(), len({tuple(i.nonzero()[0].tolist()) for i in y})
        (64.0, 9)
    """
    if pixels <= 0:
        return x
    n = int(math.prod(x.shape[:-3]))
    c, h, w = x.shape[-3:]
    flat = torch.nn.functional.pad(x.reshape(n, c, h, w), (pixels,) * 4).permute(0, 2, 3, 1)
    dy = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    dx = torch.randint(0, 2 * pixels + 1, (n,), device=x.device)
    rows = dy[:, None] + torch.arange(h, device=x.device)
    cols = dx[:, None] + torch.arange(w, device=x.device)
    picked = flat[
        torch.arange(n, device=x.device)[:, None, None],
        rows[:, :, None],
        cols[:, None, :],
    ]
    return picked.permute(0, 3, 1, 2).reshape(x.shape)


def program_input(batch: Any, in_type: CType) -> Any:
    """The program's input from a batch of samples (a :class:`Padded` for lists)."""
    if isinstance(in_type, ListOf):
        return Padded(batch[INPUT], batch[MASK].bool())
    return batch[INPUT]


def batch_loss(
    out: torch.Tensor, y: torch.Tensor, kind: str, pos_weight: float | None = None
) -> torch.Tensor:
    if kind == "bce":
        weight = None
        if pos_weight is not None:
            weight = torch.where(y.float() > 0.5, float(pos_weight), 1.0).to(out.dtype)
        return torch.nn.functional.binary_cross_entropy(
            out.clamp(1e-6, 1 - 1e-6), y.float(), weight=weight
        )
    if kind == "nll":
        return torch.nn.functional.nll_loss(torch.log(out.clamp(min=1e-8)), y.reshape(-1).long())
    return torch.nn.functional.mse_loss(out, y.float())


@torch.no_grad()
def score(
    program: Fn,
    data: Any,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    errors: list[float] | None = None,
) -> dict[str, float]:
    """Metrics of ``program`` on samples: ``score`` (higher is better: accuracy, or
    minus the RMSE), ``acc`` or ``rmse``/``mae``/``mae_per_element``.

    The batches run where the program's weights are (or on ``device``, where the
    program is moved); the metrics are Python floats. ``errors``, when given, receives
    every sample's loss behind the score (0/1 for accuracy, the squared error for
    RMSE), in sample order: what :func:`brickwork.compose.solve`'s selection compares
    pairwise.
    """
    if device is not None:
        program = program.to(device)
    else:
        first: torch.Tensor | None = next(iter(program.parameters()), None)
        if first is None:
            first = next(iter(program.buffers()), None)
        device = first.device if first is not None else torch.device("cpu")
    program.eval()
    kind = loss_name(program.out_type)
    outs, ys, lens = [], [], []
    for batch in data.to(device).batches(batch_size, shuffle=False):
        outs.append(program(program_input(batch, program.in_type)))
        ys.append(batch[TARGET])
        if MASK in list(batch):
            lens.append(batch[MASK].float().sum(1))
    out, y = torch.cat(outs).cpu(), torch.cat(ys).cpu()
    lens = [t.cpu() for t in lens]
    if kind in ("bce", "nll"):
        if kind == "bce":
            right = ((out > 0.5).float() == y.float()).float().reshape(len(y), -1).mean(1)
        else:
            right = (out.argmax(-1) == y.reshape(-1).long()).float()
        if errors is not None:
            errors.extend((1.0 - right).tolist())
        acc = float(right.mean())
        return {"score": acc, "acc": acc}
    err = (out - y.float()).reshape(len(y), -1).abs().mean(1)
    if errors is not None:
        errors.extend((err**2).tolist())
    rmse = float(torch.sqrt((err**2).mean()))
    res = {"score": -rmse, "rmse": rmse, "mae": float(err.mean())}
    if lens:
        res["mae_per_element"] = float((err / torch.cat(lens).clamp(min=1)).mean())
    return res


def _resolve_leaf(
    job: dict[str, Any],
    registry: Any,
    loaded: dict[str, Module] | None = None,
    *,
    built: dict[int, Hole] | None = None,
    ensembles: dict[int, Hole] | None = None,
) -> Any:
    """A leaf resolver for :func:`build_program`: library ops, frozen registry modules
    (cached in ``loaded``), new holes seeded by the job (recorded in ``built`` by hole
    index), or the given trained ``ensembles`` by hole index."""
    init = job.get("init") or {}

    def resolve(t: Any, k: int) -> Module:
        if t[0] == "lib":
            name = t[1]
            if name.startswith("expect"):
                return LibraryOp("expect", k=int(name[6:] or 10))
            return LibraryOp(name)
        if t[0] == "reg":
            if loaded is not None and t[1] in loaded:
                return loaded[t[1]]
            m = registry.load(t[1])
            m.requires_grad_(False)  # registry modules stay frozen: nothing is forgotten
            if loaded is not None:
                loaded[t[1]] = m
            return m
        if t[0] == "hole":
            if ensembles is not None:
                return ensembles[k]
            seed = int(job.get("seed", 0)) * 1000 + k
            torch.manual_seed(seed)
            ins = json.loads(t[1])
            hole = Hole(
                _arch(ins, t[2]),
                ins,
                json.loads(t[2]),
                hidden=int(job.get("hidden", 64)),
            )
            src = init.get(str(k))
            if src:
                source = registry.load(src)
                if isinstance(source, Hole) and source.members_count > 1:
                    # from an ensemble, member m of this fit starts from its member m
                    source = source.members[int(job.get("member", 0)) % source.members_count]
                _copy_encoder(hole, source)
            if built is not None:
                built[k] = hole
            return hole
        raise DataError(f"compose job: unknown leaf {t!r}")

    return resolve


def _arch(ins: dict[str, Any], out: str) -> str:
    from brickwork.compose.holes import hole_arch

    arch = hole_arch(
        {k: ctype_from_json(v) for k, v in ins.items()},
        ctype_from_json(json.loads(out)),
    )
    if arch is None:
        raise DataError(f"compose job: no hole architecture for {ins} -> {out}")
    return arch


def _copy_encoder(hole: Hole, source: Module) -> None:
    """Low-level transfer: copy the convolutional encoder's weights when shapes agree."""
    mine = hole.state_dict()
    theirs = {k: v for k, v in source.state_dict().items() if k.startswith("enc.")}
    same = {k: v for k, v in theirs.items() if k in mine and mine[k].shape == v.shape}
    hole.load_state_dict({**mine, **same})


def run_candidate(job: dict[str, Any]) -> dict[str, Any]:
    """Train (when it has new modules) and score one candidate program.

    Keys of ``job``: ``term``, ``registry`` (path), ``train``/``val`` (Samples files),
    ``tests`` (name → file, optional), ``fit`` (FitConfig fields, plus ``min_steps``:
    a small training set is repeated within each epoch so that the fit makes at least
    that many optimizer steps, with the same number of validations), ``seed``, ``out``
    (folder for the new modules, optional), ``init`` (hole index → registry ref whose
    encoder initialises that hole), ``hidden``, ``val_limit`` (score on the first that
    many validation samples only: the cheap ranking), ``select_split`` (the share of the
    validation samples, the last ones, held out from the fit's keep-best and scored for
    selection: see :func:`split_val`), ``device`` (where the program trains and is
    scored; default ``cpu``).

    Two ``fit`` keys are the trainer's own, not FitConfig fields: ``pos_weight`` (a
    ``Bool`` output's BCE weights its positive samples by this number, or by
    negatives ÷ positives of the training targets with ``"balanced"``: a rare class's
    misses then cost as much in all as the common class's; ``None``: no weighting) and
    ``augment_shift`` (every training image, each list item too, moved by its own
    random offset of up to that many pixels, see :func:`shift_images`; validation and
    scoring see the images as they are). A third, ``ensemble`` (K, default 1), fits the
    program K times from different seeds (new modules and shuffling; each fit keeps
    its own best checkpoint) and makes every new module the ensemble of its K trained
    copies (:func:`brickwork.compose.holes.ensemble_of`: logits averaged), which is
    scored and saved: K times the training time. Member ``m`` of the ensemble is
    exactly the single fit of the job with ``seed`` + ``m`` × :data:`ENSEMBLE_SEED_STEP`
    and ``member`` ``m`` (what :func:`run_ensemble` combines). ``ensemble_scope`` is
    :func:`brickwork.compose.solve`'s (which fits get K) and ignored here.
    """
    from brickwork.registry import Registry
    from brickwork.training import FitConfig, FitResult, Samples, fit

    torch.set_num_threads(1)
    start = time.perf_counter()
    registry = Registry(job["registry"]) if job.get("registry") else None
    device = torch.device(job.get("device") or "cpu")
    built: dict[int, Hole] = {}
    program = build_program(job["term"], _resolve_leaf(job, registry, built=built)).to(device)
    train = Samples.load(job["train"])
    val = Samples.load(job["val"])
    if job.get("val_limit") and len(val) > int(job["val_limit"]):  # the ranking's subset
        val = val.select(torch.arange(int(job["val_limit"])))
        fit_val = val
    else:
        fit_val, val = split_val(val, float(job.get("select_split") or 0.0))
    kind = loss_name(program.out_type)
    params = [p for p in program.parameters() if p.requires_grad]
    result: dict[str, Any] = {
        "term": job["term"],
        "trained": bool(params),
        "epochs": 0,
        "parameters": int(sum(p.numel() for p in params)),
    }
    if params:
        fields = {"seed": int(job.get("seed", 0)), **job.get("fit", {})}
        shift = int(fields.pop("augment_shift", 0) or 0)
        pos_weight = _pos_weight(fields.pop("pos_weight", None), train, kind)
        image_in = is_image(program.in_type) or (
            isinstance(program.in_type, ListOf) and is_image(program.in_type.item)
        )

        def loss_fn(model: Fn, batch: Any) -> torch.Tensor:
            x = program_input(batch, model.in_type)
            if shift and image_in and model.training:  # augment training batches only
                x = (
                    Padded(shift_images(x.values, shift), x.mask)
                    if isinstance(x, Padded)
                    else shift_images(x, shift)
                )
            return batch_loss(model(x), batch[TARGET], kind, pos_weight)

        def evaluate(model: Fn, data: Any) -> dict[str, float]:
            return {"val_score": score(model, data)["score"]}

        members = ensemble_options(fields)[0]
        fields.pop("ensemble", None)
        fields.pop("ensemble_scope", None)
        train = _at_least(train, int(fields.pop("min_steps", 0) or 0), fields)

        def fit_member(model: Fn, m: int) -> FitResult:
            """Fit ``model``, member ``m`` of an ensemble (0: the only one), seeded apart."""
            with torch.random.fork_rng():
                return fit(
                    model,
                    loss_fn,
                    train,
                    val=fit_val,
                    evaluate=evaluate,
                    config=FitConfig(**{**fields, "seed": fields["seed"] + ENSEMBLE_SEED_STEP * m}),
                    parameters=[p for p in model.parameters() if p.requires_grad],
                    device=device,
                )

        fitted = fit_member(program, 0)
        result["epochs"], result["steps"] = fitted.epochs, fitted.steps
        if members > 1:  # K - 1 more independent fits; every new module becomes their mean
            copies = [built]
            for m in range(1, members):
                other: dict[int, Hole] = {}
                again = {
                    **job,
                    "seed": int(job.get("seed", 0)) + ENSEMBLE_SEED_STEP * m,
                    "member": m,
                }
                twin = build_program(job["term"], _resolve_leaf(again, registry, built=other))
                result["steps"] += fit_member(twin.to(device), m).steps
                copies.append(other)
            means = {k: ensemble_of([c[k].cpu() for c in copies]) for k in built}
            program = build_program(job["term"], _resolve_leaf(job, registry, ensembles=means))
            program = program.to(device)
            result["members"] = members
            result["parameters"] = int(
                sum(p.numel() for p in program.parameters() if p.requires_grad)
            )
    _score_and_save(program, val, job, device, result, save=bool(params))
    result["seconds"] = time.perf_counter() - start
    return result


def _score_and_save(
    program: Fn,
    val: Any,
    job: dict[str, Any],
    device: torch.device,
    result: dict[str, Any],
    *,
    save: bool,
) -> None:
    """Into ``result``: ``program``'s score on ``val`` (with its per-sample errors) and
    on the job's ``tests``; with ``save`` and the job's ``out``, the folders its new
    modules are saved in (from the CPU) under ``saved``."""
    from brickwork.training import Samples

    val_errors: list[float] = []
    result["val"] = score(program, val, device=device, errors=val_errors)
    result["val_errors"] = val_errors
    result["tests"] = {
        name: score(program, Samples.load(path), device=device)
        for name, path in (job.get("tests") or {}).items()
    }
    if save and job.get("out"):
        where = Path(job["out"])
        program = program.to("cpu")  # new modules are saved from the CPU
        result["saved"] = [
            str(save_module(hole, where / f"new{k}")) for k, hole in enumerate(_holes(program))
        ]


def run_ensemble(job: dict[str, Any]) -> dict[str, Any]:
    """Combine independently trained copies of one program's new modules into ensembles
    and score the result (no training): what :func:`brickwork.compose.solve` does to the
    winner with ``fit.ensemble_scope="winner"``.

    Keys of ``job``: ``term``, ``registry``, ``val``, ``select_split``, ``tests``,
    ``device``, ``out`` as for :func:`run_candidate`, and ``members``: one list per
    trained copy of the folders its new modules were saved in (a :func:`run_candidate`
    result's ``saved``, in the term's hole order). Every new module becomes
    :func:`brickwork.compose.holes.ensemble_of` its copies (logits averaged); the program
    is scored on the selection part of validation and on the tests, and its new modules
    are saved in ``out``. Returns a :func:`run_candidate`-like result with ``members``.

    Raises:
        DataError: no members, or members with different numbers of new modules or
            modules that are not holes.

    Example:
        >>> import tempfile
        >>> from brickwork.compose.holes import make_hole
        >>> from brickwork.compose.program import hole_term
        >>> from brickwork.training import Samples
        >>> from brickwork.types import Bool, Features
        >>> d = Path(tempfile.mkdtemp())
        >>> val = Samples({"x": torch.randn(8, 4), "y": torch.ones(8, 1)}).save(d / "val.st")
        >>> copies = [
        ...     [str(save_module(make_hole(Features("b 4"), Bool("b 1")), d / f"fit{m}"))]
        ...     for m in range(3)
        ... ]
        >>> term = hole_term({"x": Features("b 4")}, Bool("b 1"))
        >>> r = run_ensemble({"term": term, "val": str(val), "members": copies, "out": str(d)})
        >>> r["members"], load_module(r["saved"][0]).config["members"], sorted(r["val"])
        (3, 3, ['acc', 'score'])
    """
    from brickwork.registry import Registry
    from brickwork.training import Samples

    torch.set_num_threads(1)
    start = time.perf_counter()
    folders: list[list[str]] = [list(m) for m in job.get("members") or []]
    holes = len(term_holes(job["term"]))
    if not folders or any(len(m) != holes for m in folders):
        raise DataError(
            f"compose run_ensemble: members got {[len(m) for m in folders]} saved modules "
            f"each, expected at least one member with {holes} (one per new module of "
            f"{job['term']!r}); fix: pass every copy's run_candidate 'saved' list"
        )
    copies: list[list[Hole]] = []
    for member in folders:
        loaded = [load_module(folder) for folder in member]
        for folder, module in zip(member, loaded):
            if not isinstance(module, Hole):
                raise DataError(
                    f"compose run_ensemble: {folder} holds a {type(module).__name__}, "
                    "expected a compose.hole; fix: pass folders saved by run_candidate"
                )
        copies.append([m for m in loaded if isinstance(m, Hole)])
    means = {k: ensemble_of([c[k] for c in copies]) for k in range(holes)}
    registry = Registry(job["registry"]) if job.get("registry") else None
    device = torch.device(job.get("device") or "cpu")
    program = build_program(job["term"], _resolve_leaf(job, registry, ensembles=means))
    program = program.to(device)
    val = split_val(Samples.load(job["val"]), float(job.get("select_split") or 0.0))[1]
    result: dict[str, Any] = {
        "term": job["term"],
        "trained": True,
        "members": len(copies),
        "parameters": int(sum(p.numel() for p in program.parameters() if p.requires_grad)),
    }
    _score_and_save(program, val, job, device, result, save=True)
    result["seconds"] = time.perf_counter() - start
    return result


def _pos_weight(option: Any, train: Any, kind: str) -> float | None:
    """The weight of positive samples in a BCE loss: ``None`` (none), a number, or
    ``"balanced"`` (negatives ÷ positives among the training targets)."""
    if option is None or kind != "bce":
        return None
    if option == "balanced":
        y = train[TARGET].float()
        pos = float((y > 0.5).sum())
        return (y.numel() - pos) / pos if pos else None
    if isinstance(option, (int, float)) and not isinstance(option, bool) and option > 0:
        return float(option)
    raise DataError(
        f"compose fit: pos_weight got {option!r}, expected None, a positive number or "
        "'balanced'; fix the task's or study's fit configuration"
    )


def split_val(val: Any, share: float) -> tuple[Any, Any]:
    """``(fit part, selection part)`` of validation samples: the last ``share`` of them
    are held out from the fit's keep-best and only scored, so that a trained
    candidate's selection score is not biased by the checkpoint chosen on it (both
    parts are the whole set when ``share`` is 0 or the set is tiny).

    Example:
        >>> from brickwork.training import Samples
        >>> a, b = split_val(Samples({"x": torch.arange(10.0)}), 0.5)
        >>> a["x"].tolist(), b["x"].tolist()
        ([0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0])
    """
    n = len(val)
    k = n - int(round(n * share))
    if share <= 0 or k < 2 or n - k < 2:
        return val, val
    return val.select(torch.arange(k)), val.select(torch.arange(k, n))


def _at_least(train: Any, min_steps: int, fields: dict[str, Any]) -> Any:
    """``train`` repeated within an epoch so that ``epochs`` epochs make ``min_steps``
    optimizer steps (itself when they already do)."""
    epochs, batch = int(fields.get("epochs", 10)), int(fields.get("batch_size", 64))
    if not min_steps or -(-len(train) // batch) * epochs >= min_steps:
        return train
    per_epoch = -(-min_steps // epochs)
    reps = -(-per_epoch * batch // len(train))
    return train.select(torch.arange(len(train)).repeat(reps))


def score_programs(job: dict[str, Any]) -> dict[str, Any]:
    """Score several programs without new modules on validation (no training), loading
    every registry module and the data once: ``job`` is a :func:`run_candidate` job with
    ``terms`` (a list of terms) instead of ``term``; returns ``{"results": [...]}``, one
    :func:`run_candidate`-like result per term.
    """
    from brickwork.registry import Registry
    from brickwork.training import Samples

    torch.set_num_threads(1)
    registry = Registry(job["registry"]) if job.get("registry") else None
    device = torch.device(job.get("device") or "cpu")
    val = split_val(Samples.load(job["val"]), float(job.get("select_split") or 0.0))[1]
    val = val.to(device)
    loaded: dict[str, Module] = {}
    results = []
    for term in job["terms"]:
        start = time.perf_counter()
        if term_holes(term):
            raise DataError(
                f"score_programs: {term!r} has new modules; train it with run_candidate"
            )
        program = build_program(term, _resolve_leaf(job, registry, loaded)).to(device)
        val_errors: list[float] = []
        results.append(
            {
                "term": term,
                "trained": False,
                "epochs": 0,
                "parameters": 0,
                "val": score(program, val, device=device, errors=val_errors),
                "val_errors": val_errors,
                "tests": {},
                "seconds": time.perf_counter() - start,
            }
        )
    return {"results": results}


def _holes(program: Fn) -> list[Hole]:
    out: list[Hole] = []
    seen: set[int] = set()

    def walk(m: torch.nn.Module) -> None:
        for child in m.children():
            if isinstance(child, Hole):  # a new module (registry ones are Holes too, frozen)
                if id(child) not in seen and any(p.requires_grad for p in child.parameters()):
                    seen.add(id(child))
                    out.append(child)
            else:
                walk(child)

    walk(program)
    return out


def load_saved(folder: str) -> Module:
    return load_module(folder)


__all__ = [
    "ENSEMBLE_SCOPES",
    "ensemble_options",
    "run_candidate",
    "run_ensemble",
    "score",
    "score_programs",
    "loss_name",
    "term_holes",
]
