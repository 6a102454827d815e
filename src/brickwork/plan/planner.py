"""Derive a :class:`TrainingPlan` from a family of layouts (thesis §4.1, §4.3.2).

For every trainable module (parameter-free ops are transparent):

* **decoupled / dependent input** — do all its inputs trace back, through ops only, to
  inputs the dataset provides? Otherwise it depends on the modules found on the way.
* **direct / indirect supervision** — does its output reach a supervised layout output
  through ops only (or does the data supervise it by name)? Otherwise the gradient
  would come through other modules: a surrogate gradient module is needed.
* **codependent gradient** — does its output meet another module's output in a merge
  whose ``codependent`` property is true (product, min, max)? Sums are fine.

Codependent modules are trained the way the thesis's case study trains its finds
(§4.2.3, §4.3): each through its own surrogate gradient module towards the nearest
target (``codependent="surrogate"``, the default), the merge ops between its output and
the SGM kept, with the partner modules' trained outputs as context in a second round
(:func:`brickwork.training.train_plan`). ``codependent="joint"`` (or a per-kind
``policy``) instead trains them as one joint group, as §4.1 suggests for strongly
coupled gradients; a joint group takes along every not yet trained module between it
and its targets (they train with it and not again). A module the data supervises by
name (``module_targets``) is never put in a joint group by a merge. Stages follow the
dependency order (a module trains after every module it depends on); dependent modules
read an intermediate dataset recorded before their stage. A cycle between modules, an input nothing
provides, or a module whose output never reaches any target is refused with a
:class:`PlanError`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from brickwork.errors import BrickworkError, PlanError
from brickwork.layouts import Layout, Source
from brickwork.modules import Module
from brickwork.plan.data_spec import DataSpec
from brickwork.plan.training_plan import IntermediatePlan, ModulePlan, TrainingPlan
from brickwork.registry import module_name_to_tag

log = logging.getLogger("brickwork.plan")

#: how a codependent module trains: through its own SGM, or in a joint group
CodependentPolicy = Literal["surrogate", "joint"]
CODEPENDENT_POLICIES = ("surrogate", "joint")


def is_trainable(module: Module) -> bool:
    """A module with parameters (ops like And/Or/Sum/Adapter have none)."""
    return any(p.numel() for p in module.parameters())


def merge_is_codependent(module: Module) -> bool:
    """Whether a parameter-free op couples the gradients of its inputs.

    Ops say so with a ``codependent`` property (``And.min``/``And.product``/``Or.max``:
    True, ``Or.sum``: False), or with ``additive = True`` (``Sum``: its gradient reaches
    each input unchanged); single-input ops merge nothing. Any other op with several
    inputs is assumed codependent.

    Example:
        >>> from brickwork.modules import And, Sum
        >>> merge_is_codependent(And.min()), merge_is_codependent(Sum())
        (True, False)
    """
    flag = getattr(module, "codependent", None)
    if flag is not None:
        return bool(flag)
    if len(module.inputs) < 2 or getattr(module, "additive", False):
        return False
    return True


class _Analysis:
    def __init__(self, family: Sequence[Layout], data: DataSpec):
        self.family = list(family)
        self.data = data
        self.modules: dict[str, Module] = {}
        self.kind: dict[str, str] = {}
        self.uses: dict[str, int] = {}
        self.upstream: dict[str, set[str]] = {}
        self.dep_where: dict[tuple[str, str], str] = {}
        self.decoupled: dict[str, bool] = {}
        self.direct_targets: dict[str, set[str]] = {}
        self.any_targets: dict[str, set[str]] = {}
        self.context: dict[str, set[str]] = {}
        self.fed_ports: dict[str, set[str]] = {}
        self.codep_pairs: list[tuple[str, str, str]] = []
        self.self_loops: dict[str, str] = {}

    def run(self) -> None:
        for lay in self.family:
            self._layout(lay)

    def _layout(self, lay: Layout) -> None:
        for ext, _t in lay.inputs.items():
            if not self.data.provides(ext):
                readers = [
                    f"node '{n.id}', port '{p}'"
                    for n in lay.nodes
                    for p, s in n.inputs.items()
                    if s.node is None and s.port == ext
                ]
                raise PlanError(
                    f"layout '{lay.name}', {readers[0] if readers else 'an output'}: "
                    f"reads external input '{ext}', which the data does not provide (data inputs: "
                    f"{sorted(self.data.inputs)}). Add '{ext}' to the data spec's inputs, or feed "
                    "the port from a module"
                )
        modules = {n.id: lay.kinds.module(n.module) for n in lay.nodes}
        trainable = {nid: is_trainable(m) for nid, m in modules.items()}
        by_id = {n.id: n for n in lay.nodes}
        memo_back: dict[tuple[str | None, str], frozenset[tuple[str, str]]] = {}

        def back(src: Source) -> frozenset[tuple[str, str]]:
            """('module', name) or ('input', port) reached going up through ops only."""
            key = (src.node, src.port)
            if key in memo_back:
                return memo_back[key]
            if src.node is None:
                out = frozenset({("input", src.port)})
            elif trainable[src.node]:
                out = frozenset({("module", by_id[src.node].module)})
            else:
                out = (
                    frozenset().union(*[back(s) for s in by_id[src.node].inputs.values()])
                    if by_id[src.node].inputs
                    else frozenset()
                )
            memo_back[key] = out
            return out

        outputs_of: dict[str, set[str]] = {}
        for out_name, src in lay.outputs.items():
            if src.node is not None:
                outputs_of.setdefault(src.node, set()).add(out_name)
        consumers: dict[str, list[tuple[str, str]]] = {}
        for src, dst, port in lay.edges():
            if src.node is not None:
                consumers.setdefault(src.node, []).append((dst, port))

        def forward(nid: str, through_modules: bool, seen: set[str]) -> set[str]:
            if nid in seen:
                return set()
            seen.add(nid)
            found = set(outputs_of.get(nid, ()))
            for dst, _port in consumers.get(nid, []):
                if trainable[dst] and not through_modules:
                    continue
                found |= forward(dst, through_modules, seen)
            return found

        for node in lay.nodes:
            m = modules[node.id]
            if not trainable[node.id]:
                if merge_is_codependent(m) and len(node.inputs) >= 2:
                    per_port = [
                        {name for tag, name in back(s) if tag == "module"}
                        for s in node.inputs.values()
                    ]
                    everyone = set().union(*per_port)
                    if len(everyone) >= 2:
                        first = sorted(everyone)
                        for other in first[1:]:
                            self.codep_pairs.append(
                                (first[0], other, f"layout '{lay.name}', node '{node.id}'")
                            )
                continue
            name = node.module
            if name in self.modules and self.modules[name] is not m:
                raise PlanError(
                    f"module name '{name}' names two different instances across the "
                    "family; build every layout with the same Kinds"
                )
            self.modules[name] = m
            self.kind.setdefault(name, node.kind)
            self.uses[name] = self.uses.get(name, 0) + 1
            ups: set[str] = set()
            for port, src in node.inputs.items():
                found = back(src)
                mods = {n for tag, n in found if tag == "module"}
                if mods:
                    self.fed_ports.setdefault(name, set()).add(port)
                for u in mods:
                    self.dep_where.setdefault(
                        (u, name), f"layout '{lay.name}', node '{node.id}', port '{port}'"
                    )
                    if u == name:
                        self.self_loops.setdefault(name, self.dep_where[(u, name)])
                ups |= mods
            self.upstream.setdefault(name, set()).update(ups)
            self.decoupled[name] = self.decoupled.get(name, True) and not ups
            supervised = {o for o in forward(node.id, False, set()) if self.data.supervises(o)}
            self.direct_targets.setdefault(name, set()).update(supervised)
            reach = {o for o in forward(node.id, True, set()) if self.data.supervises(o)}
            self.any_targets.setdefault(name, set()).update(reach)
            ctx = self.context.setdefault(name, set())
            for dst, _ in consumers.get(node.id, []):
                ctx |= {s.port for s in by_id[dst].inputs.values() if s.node is None}


class _UnionFind:
    def __init__(self, items: Iterable[str]):
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _sccs(nodes: Sequence[str], edges: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on, stack, out = set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    return out


#: the tag a module registers under (``find[red]`` → ``red``): the registry's one rule
registry_tag = module_name_to_tag


def _find_reusable(registry: Any, name: str, module: Module) -> str | None:
    tag = registry_tag(name)
    try:
        cards = registry.search(
            inputs=module.signature.inputs, outputs=module.signature.outputs, kind=module.kind
        )
    except BrickworkError as exc:
        log.warning("registry search for %s failed: %s", name, exc)
        return None
    fits = [
        c
        for c in cards
        if c.name.split(".", 1)[1] == tag or c.name.split(".", 1)[1].startswith(tag + "-")
    ]
    if not fits:
        return None
    best = sorted(fits, key=lambda c: (c.created, c.name, getattr(c, "version", 0)))[-1]
    return str(getattr(best, "ref", None) or best.name)  # pinned to the version found


def _policy_of(name: str, kind: str, codependent: str, policy: Mapping[str, str]) -> str:
    return policy.get(name) or policy.get(kind) or codependent


def make_plan(
    family: Sequence[Layout],
    data: DataSpec,
    *,
    registry: Any = None,
    reuse: bool = False,
    cycles: str = "error",
    codependent: CodependentPolicy = "surrogate",
    policy: Mapping[str, CodependentPolicy] | None = None,
) -> TrainingPlan:
    """Classify every module of ``family`` and order their training.

    Args:
        family: the layouts (e.g. every program of the training set), built with one
            :class:`~brickwork.layouts.Kinds`.
        data: what the dataset provides.
        registry: a :class:`~brickwork.registry.Registry` to reuse modules from.
        reuse: reuse registry entries whose kind, tag (``find[red]`` → ``find.red…``)
            and signature fit, instead of training those modules.
        cycles: ``"error"`` (default) refuses modules that depend on each other;
            ``"joint"`` trains each cycle as one joint group.
        codependent: how modules whose outputs meet in a codependent merge train:
            ``"surrogate"`` (default, the thesis's case study, §4.2.3/§4.3): each on its
            own through a surrogate gradient module towards the nearest target;
            ``"joint"``: together, as one joint group (with the not yet trained modules
            between the group and its targets).
        policy: per kind or module name (a name wins over its kind), ``"surrogate"`` or
            ``"joint"``, overriding ``codependent``. A merge joins two modules in a group
            only when both are ``"joint"``; a module with ``module_targets`` is never
            joined.

    Raises:
        PlanError: an empty family, an input the data does not provide, a dependency
            cycle, a module whose output reaches no target, an unknown policy.

    Example:
        >>> from brickwork.training.fixtures import nmn_kinds, nmn_family
        >>> kinds = nmn_kinds()
        >>> plan = make_plan(nmn_family(kinds), DataSpec({"features", "question"}, {"answer"}))
        >>> plan.module("find[0]").mode, plan.module("describe[what]").mode
        ('surrogate', 'cached')
        >>> [list(s) for s in plan.stages]
        [['encoder', 'find[0]', 'find[1]'], ['describe[what]', 'measure[count]']]
    """
    if cycles not in ("error", "joint"):
        raise PlanError(f"cycles must be 'error' or 'joint', got {cycles!r}")
    policy = dict(policy or {})
    for where, value in [("codependent", codependent)] + [
        (f"policy[{k!r}]", v) for k, v in policy.items()
    ]:
        if value not in CODEPENDENT_POLICIES:
            raise PlanError(
                f"make_plan: {where} is {value!r}, expected one of "
                f"{list(CODEPENDENT_POLICIES)} ('surrogate': one SGM per module, "
                "'joint': train the codependent modules together)"
            )
    family = list(family)
    if not family:
        raise PlanError("the layout family is empty; give at least one layout")
    if reuse and registry is None:
        raise PlanError("reuse=True needs a registry (pass registry=Registry(path) or --registry)")
    an = _Analysis(family, data)
    try:
        an.run()
    except PlanError:
        raise
    except BrickworkError as exc:
        raise PlanError(f"cannot analyse the family: {exc}") from None
    names = sorted(an.modules)
    unknown = sorted(set(policy) - set(names) - set(an.kind.values()))
    if unknown:
        raise PlanError(
            f"make_plan: policy names {unknown}, which are neither modules nor kinds "
            f"of the family (kinds: {sorted(set(an.kind.values()))})"
        )
    notes: list[str] = []
    own_target = {n: data.module_targets[n] for n in names if n in data.module_targets}
    for name in names:
        if not an.direct_targets[name] and not an.any_targets[name] and name not in own_target:
            raise PlanError(
                f"module '{name}': its output never reaches a supervised output "
                f"(data targets: {sorted(data.targets)}); give the data a target "
                f"for it (module_targets={{'{name}': column}}) or remove it"
            )
    rule = {n: _policy_of(n, an.kind[n], codependent, policy) for n in names}
    # codependent groups
    uf = _UnionFind(names)
    codep: set[str] = set()
    sgm_codep: set[str] = set()
    for a, b, where in an.codep_pairs:
        codep |= {a, b}
        if all(rule[m] == "joint" and m not in own_target for m in (a, b)):
            uf.union(a, b)
            notes.append(f"{a} and {b} meet in a codependent merge at {where}: trained jointly")
        else:
            sgm_codep |= {m for m in (a, b) if m not in own_target}
            notes.append(f"{a} and {b} meet in a codependent merge at {where}")
    # cycles
    edges = {n: set(an.upstream[n]) for n in names}  # n depends on edges[n]
    for comp in _sccs(names, edges):
        if len(comp) > 1 or comp[0] in an.self_loops:
            cycle_at = (
                an.self_loops.get(comp[0])
                if len(comp) == 1
                else an.dep_where.get((comp[1], comp[0])) or an.dep_where.get((comp[0], comp[1]))
            )
            if cycles == "error":
                path = " -> ".join(comp + [comp[0]])
                raise PlanError(
                    f"modules depend on each other in a cycle: {path} (e.g. at {cycle_at}); "
                    "independent training needs an order. Train the cycle jointly "
                    "(make_plan(..., cycles='joint'), `brickwork plan --cycles joint`), or give "
                    "one of these modules its own targets (module_targets)"
                )
            for other in comp[1:]:
                uf.union(comp[0], other)
            notes.append(f"dependency cycle {', '.join(comp)} trained jointly")
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(uf.find(n), []).append(n)
    joint_units = {
        u
        for u, members in groups.items()
        if len(members) > 1 or any(m in an.self_loops for m in members)
    }
    # a joint group learns only if what lies between it and its targets learns with it:
    # it takes along every module downstream of it that has no target of its own
    downstream: dict[str, set[str]] = {n: set() for n in names}
    for n in names:
        for u in an.upstream[n]:
            downstream[u].add(n)
    for u in sorted(joint_units):
        todo = [d for m in groups[u] for d in downstream[m]]
        taken: list[str] = []
        while todo:
            d = todo.pop()
            if d in own_target or uf.find(d) == uf.find(u):
                continue
            uf.union(u, d)
            taken.append(d)
            todo.extend(downstream[d])
        if taken:
            notes.append(
                f"joint group {', '.join(groups[u])} trains with its downstream "
                f"module(s) {', '.join(sorted(taken))}"
            )
    groups = {}
    for n in names:
        groups.setdefault(uf.find(n), []).append(n)
    unit_of = {n: uf.find(n) for n in names}
    joint_units = {unit_of[m] for u in joint_units for m in [u]}
    if sgm_codep:
        notes.append(
            f"codependent, trained through one surrogate gradient module each: "
            f"{', '.join(sorted(sgm_codep - {m for u in joint_units for m in groups[u]}))}"
            " (codependent='surrogate')"
        )
    # reuse
    reused: dict[str, str] = {}
    if reuse:
        for u, members in groups.items():
            if u in joint_units:
                continue
            entry = _find_reusable(registry, members[0], an.modules[members[0]])
            if entry is not None:
                reused[members[0]] = entry
    # stages over units
    stage: dict[str, int] = {}

    def unit_stage(u: str, visiting: set[str]) -> int:
        if u in stage:
            return stage[u]
        if all(m in reused for m in groups[u]):
            stage[u] = 0
            return 0
        visiting.add(u)
        deps = {unit_of[p] for m in groups[u] for p in an.upstream[m]} - {u}
        s = 1 + max((unit_stage(d, visiting) for d in deps if d not in visiting), default=0)
        visiting.discard(u)
        stage[u] = s
        return s

    for u in groups:
        unit_stage(u, set())
    modules: dict[str, ModulePlan] = {}
    intermediates: list[IntermediatePlan] = []
    for n in names:
        u = unit_of[n]
        decoupled = an.decoupled[n]
        direct = bool(an.direct_targets[n]) or n in own_target
        if n in reused:
            mode = "reuse"
        elif u in joint_units:
            mode = "joint"
        elif n in own_target or (direct and n not in sgm_codep):
            mode = "direct" if decoupled else "cached"
        else:
            mode = "surrogate"
        reads = None
        if not decoupled and mode in ("cached", "surrogate"):
            reads = f"inputs[{n}]"
            ancestors: set[str] = set()
            todo = list(an.upstream[n])
            while todo:
                a = todo.pop()
                if a not in ancestors:
                    ancestors.add(a)
                    todo.extend(an.upstream[a])
            intermediates.append(
                IntermediatePlan(
                    reads,
                    n,
                    tuple(sorted(ancestors)),
                    tuple(sorted(an.fed_ports.get(n, ()))),
                    stage[u],
                )
            )
        targets = an.direct_targets[n] if an.direct_targets[n] else an.any_targets[n]
        modules[n] = ModulePlan(
            name=n,
            kind=an.kind[n],
            decoupled=decoupled,
            direct=direct,
            codependent=n in codep,
            mode=mode,
            stage=stage[u],
            group=tuple(groups[u]) if u in joint_units else (),
            upstream=tuple(sorted(an.upstream[n])),
            targets=tuple(sorted(targets)),
            context=tuple(sorted(an.context.get(n, ()))),
            reads=reads,
            registry_entry=reused.get(n),
            uses=an.uses[n],
            module_target=own_target.get(n),
            policy=rule[n] if n in codep else "",
        )
    top = max((m.stage for m in modules.values()), default=0)
    stages = [
        tuple(sorted(n for n, m in modules.items() if m.stage == s)) for s in range(1, top + 1)
    ]
    stages = [s for s in stages if s]
    if any(m.stage == 0 for m in modules.values()):
        notes.append(
            "reused from the registry: "
            + ", ".join(
                f"{n} ← {m.registry_entry}" for n, m in modules.items() if m.mode == "reuse"
            )
        )
    return TrainingPlan(
        modules=modules,
        stages=stages,
        intermediates=tuple(intermediates),
        groups=tuple(tuple(groups[u]) for u in sorted(joint_units)),
        data=data.to_json(),
        notes=tuple(notes),
    )
