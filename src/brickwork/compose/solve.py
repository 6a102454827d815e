"""Solve a task by composition: find functions in the registry by signature, enumerate
typed programs, rank them cheaply, train the best on the executor, keep the winner and
register its new modules with lineage.

Example:
    >>> from brickwork.compose.types import ListOf
    >>> from brickwork.types import Count, Features
    >>> t = Task("count", ListOf(Features("b 1 8 8")), Count("b 1"))
    >>> t.signature_text
    "List[Features['b 1 8 8']] -> Count['b 1']"
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from brickwork.compose.jobs import (
    ENSEMBLE_SEED_STEP,
    ensemble_options,
    run_candidate,
    run_ensemble,
    score_programs,
)
from brickwork.compose.library import standard_library
from brickwork.compose.program import hole_term, term_holes, term_refs, term_size, term_str
from brickwork.compose.search import Function, Space, functions, module_function
from brickwork.compose.types import CType, ListOf, abstract
from brickwork.errors import PlanError
from brickwork.modules import atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class Task:
    """A task: typed input, typed output, data files (Samples: ``x`` [+ ``x_mask``], ``y``).

    Attributes:
        name: used in registry names (letters, digits, ``_``, ``-``).
        input: the input type (a neural type or a ``ListOf``).
        output: the output type (a vector neural type).
        train, val: Samples files (set by the caller or the task file).
        tests: name → Samples file, scored for the winner.
    """

    name: str
    input: CType
    output: CType
    train: str = ""
    val: str = ""
    tests: dict[str, str] = field(default_factory=dict)

    @property
    def signature_text(self) -> str:
        return f"{self.input!r} -> {self.output!r}"


@dataclass
class SolveConfig:
    """Search and training budget of :func:`solve`.

    Attributes:
        size_bound: largest program size enumerated.
        max_holes: most new modules per program (≤ 2).
        rank_limit: most candidates with new modules given the cheap ranking (the
            simplest first: fewer new modules, then smaller, then more reuse), plus
            the simplest member of every :func:`map_fold_group` not among them.
        rank_steps: optimizer steps of the cheap ranking's short training.
        rank_val: validation samples the cheap ranking scores on (the first ones).
        top_k: candidates with new modules fully trained (≤ 10); programs without new
            modules are scored exactly and need no training.
        structured_k: of the ``top_k``, up to this many slots go to map-then-fold
            programs (``fold(step) ∘ map(g)``, ``step`` a library or registry
            function): the best-ranked one for each step, set of registry modules
            ``g`` reads and value domains ``g``'s new modules produce
            (:func:`map_fold_group`), those that read registry modules first, then
            those of new modules only.
            This is type-directed: for a list → scalar task, applying a per-element
            function and aggregating exactly is the structure that extrapolates, and a
            30-step ranking misranks a small readout of a registry module against a new
            network (its Spearman correlation with the final score is weak).
        reuse_k: then up to this many of the best-ranked candidates that read registry
            modules (any structure); the remaining slots go to the best-ranked overall.
        fit: FitConfig fields of the full training, plus ``min_steps`` (a small
            training set gets enough epochs for that many optimizer steps),
            ``pos_weight`` (a ``Bool`` output's BCE weights its positive samples:
            ``"balanced"``, the default, by negatives ÷ positives of the training
            targets; a number; or ``None``) and ``augment_shift`` (training images,
            list items too, moved by up to that many pixels; default 0) and
            ``ensemble`` (K: a trained module is the ensemble of K independent fits,
            logits averaged; default 1; the cheap ranking always fits once) with
            ``ensemble_scope``: ``"all"`` (the default) — every full training fits K
            copies, so selection compares ensembles; ``"winner"`` — candidates are
            fully trained and selected as single fits, then only the winner's new
            modules are refitted K − 1 more times from other seeds and become their
            ensembles (first fit included) before the test scores and registration,
            at K − 1 extra fits of the winner only (none when it has no new module):
            see :func:`brickwork.compose.run_candidate` and
            :func:`brickwork.compose.jobs.run_ensemble`.
        tolerance, relative_tolerance: candidates whose validation score is within
            ``tolerance`` of the best (accuracy), or within ``max(tolerance,
            relative_tolerance * best RMSE)`` (value outputs), count as tied.
        noise_z: a candidate also counts as tied with the best when the best is not
            better by more than ``noise_z`` standard errors of the paired per-sample
            difference of their validation losses (0/1 errors, squared errors): the
            validation set's noise. 3 is a one-sided test at about 0.1 %, or 1 %
            Bonferroni-corrected over the ≤ 10 trained candidates: the best of several
            candidates on one validation set is optimistically biased (the winner's
            curse). Of the tied, the least complex class wins (:func:`select`) — reuse
            beats a new network unless validation shows the network is clearly
            better.
        select_split: the share of the validation samples (the last ones) that only
            selection scores: the full training's keep-best sees the others, so a
            trained candidate's selection score is as unbiased as that of a program
            without new modules (scored once). 0: keep-best and selection share them.
        seed: seeds every new module and every fit.
    """

    size_bound: int = 10
    max_holes: int = 2
    rank_limit: int = 32
    rank_steps: int = 40
    rank_val: int = 100
    top_k: int = 7
    structured_k: int = 4
    reuse_k: int = 1
    fit: dict[str, Any] = field(
        default_factory=lambda: {
            "epochs": 15,
            "batch_size": 32,
            "lr": 3e-3,
            "keep_best": "val_loss",
            "max_time": 60.0,
            "min_steps": 100,
            "pos_weight": "balanced",
        }
    )
    tolerance: float = 0.01
    relative_tolerance: float = 0.1
    noise_z: float = 3.0
    select_split: float = 0.5
    seed: int = 0


@dataclass
class Candidate:
    term: Any
    holes: int
    size: int
    cheap: float | None = None
    final: float | None = None
    result: dict[str, Any] | None = None
    stage: str = "enumerated"

    @property
    def text(self) -> str:
        return term_str(self.term)


@dataclass
class Solution:
    """What :func:`solve` returns: the winner, every candidate tried, the counts."""

    task: Task
    winner: Candidate
    candidates: list[Candidate]
    counts: dict[str, int]
    ranking_spearman: float | None
    registered: list[str]
    program: Any  # the winner's term with its new modules replaced by their registry refs
    seconds: float
    functions: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The candidates tried: cheap score, final score, stage."""
        rows = [c for c in self.candidates if c.cheap is not None]
        rows.sort(key=lambda c: -(c.final if c.final is not None else (c.cheap or -1e9)))
        lines = [f"{'#':>3} {'holes':>5} {'size':>4} {'cheap':>8} {'final':>8}  program"]
        for i, c in enumerate(rows):
            mark = "*" if c is self.winner else " "
            fin = f"{c.final:8.3f}" if c.final is not None else f"{'-':>8}"
            lines.append(f"{i:>3}{mark}{c.holes:>5} {c.size:>4} {c.cheap:8.3f} {fin}  {c.text}")
        return "\n".join(lines)


def registry_functions(registry: Any, task: Task, rounds: int = 2) -> list[Function]:
    """Registry modules usable in programs for ``task``, found by signature search.

    Starting from the task's input (its items for a list) and the library's types, each
    round searches the registry for single-input modules these types can feed
    (``Registry.search``) and adds their outputs to the types; then it searches fold
    steps (``state``, ``item``) over the types found.
    """
    if registry is None:
        return []
    lib = functions(standard_library())
    types: list[CType] = []
    for t in [task.input, task.output] + [x for f in lib for x in (*f.inputs, f.output)]:
        for u in (
            t.item if isinstance(t, ListOf) else t,
            ListOf(t) if not isinstance(t, ListOf) else t,
        ):
            if u not in types:
                types.append(u)
    found: dict[str, Function] = {}
    for _ in range(rounds):
        for t in list(types):
            if isinstance(t, ListOf):
                if isinstance(t.item, ListOf):
                    continue  # list-taking modules are new list holes: (items, mask) ports
                port = {"items": t.item.with_axes(t.padded_axes)}
                cards = [
                    c
                    for c in registry.search(inputs=port, kind="compose.hole")
                    if c.config.get("arch") == "rnn"
                ]
            else:
                cards = registry.search(inputs={"x": t})
            for card in cards:
                if card.config.get("arch") == "rnn":
                    out = _signature(card).outputs
                    f = Function(("reg", card.ref), (t,), next(iter(out.values())))
                    if card.ref not in found:
                        found[card.ref] = f
                    continue
                mf = module_function(("reg", card.ref), _signature(card))
                if mf is None or mf.step or card.ref in found:
                    continue
                f = Function(mf.term, (t,), mf.output)  # found because t feeds it
                found[card.ref] = f
                if f.output not in types:
                    types.append(f.output)
                    if not isinstance(f.output, ListOf):
                        types.append(ListOf(f.output))
    for s in [t for t in types if not isinstance(t, ListOf)]:
        for i in [t for t in types if not isinstance(t, ListOf)]:
            for card in registry.search(inputs={"state": s, "item": i}, outputs={"y": s}):
                mf = module_function(("reg", card.ref), _signature(card))
                if mf is not None and mf.step and card.ref not in found:
                    found[card.ref] = Function(mf.term, (s, i), s)
    return list(found.values())


def _signature(card: Any) -> Any:
    from brickwork.modules import Signature

    return Signature.from_json(card.signature)


def count_space(task: Task, fns: list[Function], size_bound: int, max_holes: int) -> dict[str, int]:
    """Programs at the same bound: typed, shape-only (HOUDINI's tensor types), untyped."""
    return {
        mode: Space.build(task.input, task.output, fns, mode).count(size_bound, max_holes)
        for mode in ("typed", "shape_only", "untyped")
    }


def closest_signatures(registry: Any, output: CType, limit: int = 3) -> list[str]:
    """Registry entries whose output is most like ``output`` (same kind, then shape)."""
    if registry is None:
        return []
    scored = []
    for card in registry.cards():
        sig = _signature(card)
        outs = list(sig.outputs.values())
        if not outs:
            continue
        o = outs[0]
        s = (getattr(o, "kind", "") == getattr(output, "kind", "")) * 2 + (
            abstract(o, "shape_only") == abstract(output, "shape_only")
        )
        scored.append((-s, card.name, f"{card.name}: {sig}"))
    return [text for _, _, text in sorted(scored)[:limit]]


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None with < 3 pairs.

    Example:
        >>> spearman([1, 2, 3, 4], [10, 20, 30, 25])
        0.8
    """
    if len(a) < 3:
        return None

    def ranks(x: Sequence[float]) -> list[float]:
        order = sorted(range(len(x)), key=lambda i: x[i])
        r = [0.0] * len(x)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    ra, rb = ranks(a), ranks(b)
    ma, mb = sum(ra) / len(ra), sum(rb) / len(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = math.sqrt(sum((x - ma) ** 2 for x in ra))
    vb = math.sqrt(sum((y - mb) ** 2 for y in rb))
    if va == 0 or vb == 0:
        return None
    return round(cov / (va * vb), 6)


def _map(
    executor: Any, jobs: list[dict[str, Any]], desc: str, fn: Callable[..., Any] = run_candidate
) -> list[dict[str, Any]]:
    if not jobs:
        return []
    if executor is None:
        return [fn(j) for j in jobs]
    result: list[dict[str, Any]] = executor.map(fn, jobs, desc=desc)
    return result


def solve(
    task: Task,
    registry: Any,
    *,
    workdir: str | Path,
    executor: Any = None,
    config: SolveConfig | None = None,
    register: bool = True,
    progress: Callable[[str], None] | None = None,
    device: str = "cpu",
) -> Solution:
    """Solve ``task`` by composition over ``registry`` (None or an empty one: holes only).

    Enumerates typed programs up to ``config.size_bound`` (≤ ``max_holes`` new modules),
    scores hole-free programs directly and ranks the others by a short training, fully
    trains the ``top_k`` best with :func:`brickwork.training.fit` on ``executor`` (a
    ``LocalExecutor``; None runs in this process), selects on validation, and registers
    the winner's new modules as ``<task>.new<k>`` with lineage (the reused modules'
    fingerprints, the program, the task, the data digest). Every candidate trains and is
    scored on ``device`` (``cpu``, ``cuda``, ``cuda:N`` …); new modules are saved from
    the CPU.

    Raises:
        PlanError: no program produces the task's output type (the message names the type
            and the closest registry signatures).
    """

    config = config if config is not None else SolveConfig()
    start = time.perf_counter()
    say = progress or (lambda text: log.info("%s", text))
    members, scope = ensemble_options(config.fit)  # checked before any work
    # with scope "winner", selection compares single fits; the winner is ensembled below
    full_fit = {**config.fit, "ensemble": 1} if scope == "winner" else config.fit
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reg_fns = registry_functions(registry, task)
    fns = functions(standard_library()) + reg_fns
    space = Space.build(task.input, task.output, fns, "typed")
    terms = space.programs(config.size_bound, min(config.max_holes, 2))
    counts = count_space(task, fns, config.size_bound, min(config.max_holes, 2))
    say(
        f"task {task.name}: {task.signature_text}; {len(reg_fns)} registry functions; "
        f"{counts['typed']} typed programs (shape-only {counts['shape_only']}, untyped "
        f"{counts['untyped']})"
    )
    if not terms:
        close = closest_signatures(registry, task.output)
        raise PlanError(
            f"task {task.name!r}: no program of size <= {config.size_bound} produces "
            f"{task.output!r} from {task.input!r}; closest registry signatures: "
            f"{'; '.join(close) if close else 'none (the registry is empty)'}"
        )
    cands = [Candidate(t, len(term_holes(t)), term_size(t)) for t in terms]
    base = {
        "registry": str(registry.root) if registry is not None else "",
        "train": task.train,
        "val": task.val,
        "seed": config.seed,
        "device": str(device),
        "select_split": config.select_split,
    }
    free = [c for c in cands if c.holes == 0]
    order = sorted(
        (c for c in cands if c.holes),
        key=lambda c: (c.holes, c.size, -len(term_refs(c.term))),
    )
    holed = order[: config.rank_limit]
    # every map-then-fold group is ranked (its simplest member), even past rank_limit:
    # the short list keeps a slot per group, so a group cut here could never be trained
    seen = {map_fold_group(c.term) for c in holed}
    for c in order[config.rank_limit :]:
        key = map_fold_group(c.term)
        if key is not None and key not in seen:
            seen.add(key)
            holed.append(c)
    # 1. cheap ranking: hole-free programs are scored exactly, the others after a short fit
    quick_fit = {
        **config.fit,
        "epochs": 1000,
        "max_steps": config.rank_steps,
        "keep_best": None,
        "ensemble": 1,  # the ranking's short training is one fit, ensemble or not
    }
    say(f"ranking {len(free)} programs without new modules and {len(holed)} with")
    # hole-free programs: scored in a few jobs that load the registry modules once
    workers = max(1, int(getattr(executor, "workers", 1)))
    chunks = [free[i::workers] for i in range(workers) if free[i::workers]]
    scored = _map(
        executor,
        [{**base, "terms": [c.term for c in chunk]} for chunk in chunks],
        "score",
        score_programs,
    )
    for chunk, res in zip(chunks, scored):
        for c, r in zip(chunk, res["results"]):
            c.cheap = c.final = r["val"]["score"]
            c.result, c.stage = r, "scored"
    t_scored = time.perf_counter()
    jobs = [{**base, "term": c.term, "fit": quick_fit, "val_limit": config.rank_val} for c in holed]
    for c, r in zip(holed, _map(executor, jobs, "rank")):
        c.cheap = r["val"]["score"]
        c.stage = "ranked"
    t_ranked = time.perf_counter()
    # 2. full training of the best-ranked candidates with new modules
    ranked = sorted(holed, key=lambda c: -(c.cheap if c.cheap is not None else -1e9))
    short = shortlist(ranked, config)
    say(f"training {len(short)} candidates fully")
    jobs = [
        {
            **base,
            "term": c.term,
            "fit": full_fit,
            "tests": task.tests,
            "out": str(workdir / f"cand{i}"),
        }
        for i, c in enumerate(short)
    ]
    for c, r in zip(short, _map(executor, jobs, "train")):
        c.final, c.result, c.stage = r["val"]["score"], r, "trained"
    t_trained = time.perf_counter()
    say(
        f"seconds: enumerate+score {t_scored - start:.1f}, rank {t_ranked - t_scored:.1f}, "
        f"train {t_trained - t_ranked:.1f}"
    )
    # 3. selection on validation: the simplest of those tied with the best
    winner = select(cands, config)
    if winner.holes == 0 and task.tests:  # score the reused program on the test sets
        winner.result = _map(None, [{**base, "term": winner.term, "tests": task.tests}], "test")[0]
    rho = spearman([c.cheap for c in short], [c.final for c in short])  # type: ignore[misc]
    say(f"winner {winner.text} (validation score {winner.final:.4f})")
    if scope == "winner" and members > 1 and winner.holes and winner.result is not None:
        more = members - 1
        say(f"ensembling the winner's new modules: {more} more fit{'s' if more > 1 else ''}")
        winner.result = _ensemble_winner(
            winner, members, base, full_fit, task.tests, workdir, executor
        )
        say(f"winner's ensemble of {members}: validation score {winner.result['val']['score']:.4f}")
    registered: list[str] = []
    program = winner.term
    if register and registry is not None and winner.holes:
        program, registered = _register(task, registry, winner, config)
        say("registered " + ", ".join(registered))
    sol = Solution(
        task,
        winner,
        cands,
        counts,
        rho,
        registered,
        program,
        time.perf_counter() - start,
        [term_str(f.term) for f in reg_fns],
    )
    atomic_write_json(workdir / "solution.json", {**solution_json(sol), "config": asdict(config)})
    return sol


def _ensemble_winner(
    winner: Candidate,
    members: int,
    base: dict[str, Any],
    fit: dict[str, Any],
    tests: dict[str, str],
    workdir: Path,
    executor: Any = None,
) -> dict[str, Any]:
    """The winner's result with its new modules made ensembles of ``members`` fits: its
    own (single) fit is member 0; members 1 … K − 1 are fitted on ``executor`` exactly as
    :func:`brickwork.compose.run_candidate` with ``ensemble=K`` fits them (job seed +
    m × ``ENSEMBLE_SEED_STEP``), then :func:`brickwork.compose.jobs.run_ensemble` combines
    the copies (logits averaged), scores them on validation's selection part and the
    tests, and saves them in ``workdir/winner-ensemble``. The result keeps the first fit's
    scores under ``first_fit``."""
    first = winner.result or {}
    seed = int(base.get("seed", 0))

    def member_fit(m: int) -> dict[str, Any]:
        # a fit's own seed, when it sets one, moves apart as run_candidate's members' does
        own = {"seed": int(fit["seed"]) + ENSEMBLE_SEED_STEP * m} if "seed" in fit else {}
        return {**fit, "ensemble": 1, **own}

    jobs = [
        {
            **base,
            "term": winner.term,
            "fit": member_fit(m),
            "seed": seed + ENSEMBLE_SEED_STEP * m,
            "member": m,
            "out": str(workdir / f"winner-member{m}"),
        }
        for m in range(1, members)
    ]
    others = _map(executor, jobs, "ensemble")
    combine = {
        **base,
        "term": winner.term,
        "tests": tests,
        "members": [first.get("saved", [])] + [r.get("saved", []) for r in others],
        "out": str(workdir / "winner-ensemble"),
    }
    result = _map(executor, [combine], "ensemble", run_ensemble)[0]
    result["steps"] = int(first.get("steps", 0)) + sum(int(r.get("steps", 0)) for r in others)
    result["first_fit"] = {
        "val": first.get("val"),
        "tests": first.get("tests", {}),
        "parameters": first.get("parameters"),
        "saved": first.get("saved", []),
    }
    return result


def map_fold_refs(term: Any) -> tuple[str, ...] | None:
    """The registry modules the per-element function of a map-then-fold program reads
    (``fold(step) ∘ map(g)``, ``step`` not a new module), then the step; None for other
    programs.

    Example:
        >>> map_fold_refs(["compose", ["map", ["reg", "r@1"]], ["fold", ["lib", "add"]]])
        ('r@1', 'add')
    """
    if (
        isinstance(term, list)
        and len(term) == 3
        and term[0] == "compose"
        and term[1][0] == "map"
        and term[2][0] == "fold"
        and term[2][1][0] != "hole"
    ):
        return (*sorted(set(term_refs(term[1]))), str(term[2][1][1]))
    return None


def map_fold_group(term: Any) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The short list's group of a map-then-fold program: :func:`map_fold_refs` and the
    value domains the new modules of its per-element function produce (None for other
    programs). A readout of a registry module into ``Bool`` (an indicator, summed as a
    count) and one into ``Count`` (an unbounded amount) are different hypotheses, so
    each gets its own slot.

    Example:
        >>> from brickwork.compose.program import hole_term
        >>> from brickwork.types import Bool, Probs
        >>> g = ["compose", ["reg", "c@1"], hole_term({"x": Probs("b 10")}, Bool("b 1"))]
        >>> map_fold_group(["compose", ["map", g], ["fold", ["lib", "add"]]])
        (('c@1', 'add'), ('Bool',))
    """
    refs = map_fold_refs(term)
    if refs is None:
        return None
    kinds = sorted({str(json.loads(h[2]).get("kind", "")) for h in term_holes(term[1])})
    return refs, tuple(kinds)


def shortlist(ranked: list[Candidate], config: SolveConfig) -> list[Candidate]:
    """The candidates to train fully, from those ranked best first: the map-then-fold
    slots (``structured_k``: the best-ranked of each :func:`map_fold_group`), the reuse
    slots (``reuse_k``), then the best-ranked, at most ``min(top_k, 10)`` in all (see
    :class:`SolveConfig`)."""
    k = min(config.top_k, 10)
    groups: dict[tuple[tuple[str, ...], tuple[str, ...]], Candidate] = {}
    for c in ranked:
        key = map_fold_group(c.term)
        if key is not None and key not in groups:
            groups[key] = c
    structured = [c for key, c in groups.items() if len(key[0]) > 1]  # reads registry
    structured += [c for key, c in groups.items() if len(key[0]) == 1]
    short = structured[: min(config.structured_k, k)]
    short += [c for c in ranked if term_refs(c.term) and c not in short][: config.reuse_k]
    short = short[:k]
    short += [c for c in ranked if c not in short][: k - len(short)]
    short.sort(key=lambda c: -(c.cheap if c.cheap is not None else -1e9))
    return short


def _paired_gap(worse: Candidate, best: Candidate) -> tuple[float, float] | None:
    """Mean and standard error of the per-sample validation-loss difference (None when
    either candidate lacks per-sample losses)."""
    a = (worse.result or {}).get("val_errors")
    b = (best.result or {}).get("val_errors")
    if not a or not b or len(a) != len(b):
        return None
    d = [x - y for x, y in zip(a, b)]
    mean = sum(d) / len(d)
    var = sum((x - mean) ** 2 for x in d) / max(1, len(d) - 1)
    return mean, math.sqrt(var / len(d))


#: how much a new module's architecture adds to a program's complexity (see :func:`select`)
ARCH_COST = {"mlp": 1, "step": 1, "cnn": 2, "rnn": 3}


def complexity(term: Any) -> tuple[int, int]:
    """``(new modules, architecture cost)`` of a program: a readout or fold step (MLP) costs
    1, an image network (CNN) 2, a list network (RNN) 3.

    Example:
        >>> from brickwork.compose.program import hole_term
        >>> from brickwork.types import Bool, Features
        >>> cnn = hole_term({"x": Features("b 1 8 8")}, Bool("b 1"))
        >>> complexity(["compose", cnn, ["lib", "not"]])
        (1, 2)
    """
    from brickwork.compose.holes import hole_arch
    from brickwork.compose.types import ctype_from_json

    cost = 0
    holes = term_holes(term)
    for h in holes:
        ins = {k: ctype_from_json(v) for k, v in json.loads(h[1]).items()}
        arch = hole_arch(ins, ctype_from_json(json.loads(h[2])))
        cost += ARCH_COST.get(arch or "", 3)
    return len(holes), cost


def select(cands: list[Candidate], config: SolveConfig) -> Candidate:
    """The winner among the candidates with a final validation score.

    1. *Tied* with the best: within the tolerance, or not worse by more than
       ``noise_z`` standard errors of the paired per-sample loss difference.
    2. Of the tied, the least complex class (:func:`complexity`: fewest new modules,
       then the cheapest architectures) — reuse before a new readout, a readout before a
       new image network, an image network before a list network.
    3. In that class, the simplest (fewest new parameters, then smallest) of those within
       the tolerance of the class's best.
    """
    done = [c for c in cands if c.final is not None]

    def margin(best: float) -> float:  # accuracy: absolute; RMSE (score = -RMSE): relative too
        return (
            max(config.tolerance, config.relative_tolerance * abs(best))
            if best < 0
            else config.tolerance
        )

    top = max(done, key=lambda c: float(c.final or 0.0))
    best = float(top.final or 0.0)

    def tied(c: Candidate) -> bool:
        if float(c.final or 0.0) >= best - margin(best):
            return True
        gap = _paired_gap(c, top)
        return gap is not None and gap[0] <= config.noise_z * gap[1]

    pool = [c for c in done if tied(c)]
    least = min(complexity(c.term) for c in pool)
    pool = [c for c in pool if complexity(c.term) == least]
    class_best = max(float(c.final or 0.0) for c in pool)
    pool = [c for c in pool if float(c.final or 0.0) >= class_best - margin(class_best)]
    return min(
        pool,
        key=lambda c: ((c.result or {}).get("parameters", 0), c.size, -(c.final or 0)),
    )


def _register(
    task: Task, registry: Any, winner: Candidate, config: SolveConfig
) -> tuple[Any, list[str]]:
    from brickwork.modules import load_module
    from brickwork.training import Samples

    assert winner.result is not None
    reused = {ref: registry.card(ref).fingerprint for ref in term_refs(winner.term)}
    digest = Samples.load(task.train).digest()
    refs = []
    for k, folder in enumerate(winner.result.get("saved", [])):
        module = load_module(folder)
        card = registry.put(
            f"{task.name}.new{k}",
            module,
            mode="compose",
            hyperparameters={**config.fit, "seed": config.seed},
            metrics={k2: v for k2, v in winner.result["val"].items()},
            lineage={
                "task": task.name,
                "signature": task.signature_text,
                "program": term_str(winner.term),
                "term": json.dumps(winner.term),
                "reused": reused,
            },
            data_digest=digest,
        )
        refs.append(card.ref)
    it = iter(refs)

    def swap(t: Any) -> Any:
        if t[0] == "hole":
            return ["reg", next(it)]
        if t[0] in ("compose", "map", "fold", "conv"):
            return [t[0], *[swap(x) for x in t[1:]]]
        return t

    return swap(winner.term), refs


def solution_json(sol: Solution) -> dict[str, Any]:
    """The JSON record of a solution (with the package version and the data digests).

    ``validation_score`` is the score selection compared (with
    ``fit.ensemble_scope="winner"``, the winner's first, single fit); ``tests`` and
    ``members`` are those of the winner as registered (the ensemble of ``members`` fits
    of each new module; 1: single fits or no new module). A winner ensembled after
    selection also records ``ensemble_validation_score`` (its ensemble's, on the same
    held-out validation part) and ``first_fit_tests``.
    """
    from brickwork._version import __version__
    from brickwork.training import Samples

    digests = {
        name: Samples.load(path).digest()
        for name, path in (("train", sol.task.train), ("val", sol.task.val))
        if path
    }
    result = sol.winner.result or {}
    first_fit = result.get("first_fit")
    ensembled = (
        {
            "ensemble_validation_score": result["val"]["score"],
            "first_fit_tests": first_fit.get("tests", {}),
        }
        if first_fit is not None
        else {}
    )
    return {
        "task": sol.task.name,
        "signature": sol.task.signature_text,
        "version": __version__,
        "data_digest": digests,
        "winner": sol.winner.text,
        "winner_term": sol.winner.term,
        "program": sol.program,
        "validation_score": sol.winner.final,
        "members": int(result.get("members", 1)),
        "tests": result.get("tests", {}),
        **ensembled,
        "counts": sol.counts,
        "ranking_spearman": sol.ranking_spearman,
        "registered": sol.registered,
        "seconds": sol.seconds,
        "registry_functions": sol.functions,
        "candidates": [
            {
                "program": c.text,
                "holes": c.holes,
                "size": c.size,
                "cheap": c.cheap,
                "final": c.final,
                "stage": c.stage,
            }
            for c in sol.candidates
            if c.cheap is not None
        ],
    }


def standalone_term(term: Any, registry: Any) -> Any:
    """The same program with every registry module replaced by a new module of the same
    type (the "standalone, same architecture" baseline)."""
    if term[0] == "reg":
        f = module_function(("reg", term[1]), _signature(registry.card(term[1])))
        assert f is not None
        ins = {"state": f.inputs[0], "item": f.inputs[1]} if f.step else {"x": f.inputs[0]}
        return hole_term(ins, f.output)
    if term[0] in ("compose", "map", "fold", "conv"):
        return [term[0], *[standalone_term(x, registry) for x in term[1:]]]
    return term
