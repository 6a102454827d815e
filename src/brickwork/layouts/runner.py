"""``Runner``: execute a batch of *different* layouts in one pass (autobatching)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from brickwork.errors import LayoutError, TypeMismatch
from brickwork.layouts.kinds import Kinds
from brickwork.layouts.layout import Layout, stack_names
from brickwork.layouts.schedule import Gather, Schedule, Step, compile_schedule
from brickwork.modules import Module, checking_enabled


def call_group(
    modules: Sequence[Module],
    counts: Sequence[int],
    instance: torch.Tensor | None,
    inputs: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Run one group: rows ordered by instance, ``counts[k]`` rows for ``modules[k]``.

    A single instance is one call. A kind that overrides
    :meth:`brickwork.modules.Module.forward_instances` runs all instances in one
    vectorised call with per-instance weights. Otherwise each instance gets one call on
    its contiguous slice (what the default ``forward_instances`` does, without the
    index bookkeeping since the rows are already grouped).
    """
    first = modules[0]
    if len(modules) == 1:
        return first.outputs_as_dict(first(**inputs))
    kind = type(first)
    if instance is not None and kind.defines_forward_instances():
        return first.outputs_as_dict(kind.forward_instances(list(modules), instance, **inputs))
    parts: list[dict[str, torch.Tensor]] = []
    start = 0
    for m, c in zip(modules, counts):
        sl = {k: v[start : start + c] for k, v in inputs.items()}
        parts.append(m.outputs_as_dict(m(**sl)))
        start += c
    return {p: torch.cat([d[p] for d in parts]) for p in parts[0]}


class Runner:
    """Run many different layouts as one batch, grouping module calls by kind.

    Row ``i`` of every external input belongs to ``layouts[i]``. Returns the outputs the
    layouts share, stacked over the batch. ``Runner.per_sample`` is the naive reference
    (one call per node per sample); both agree to float precision, gradients included.

    Index tensors (gathers, instance ids) are made on the device of the inputs, or on
    ``device`` when given (inputs on another device are moved there); nothing is
    created on the CPU implicitly. The modules must live on that device too
    (``kinds.to(device)``).

    Args:
        kinds: the module vocabulary (its instances hold the weights).
        device: where to run (default: the inputs' device).
        cache_size: compiled schedules kept for repeated batches (0 disables); a
            schedule is compiled per device.

    Example:
        >>> import torch
        >>> from brickwork.modules import And
        >>> from brickwork.layouts import Kinds, LayoutBuilder
        >>> kinds = Kinds(And=lambda: And.min("b n"))
        >>> def lay(depth):
        ...     b = LayoutBuilder(kinds, name=f"d{depth}")
        ...     x = b.input("x")
        ...     for _ in range(depth):
        ...         x = b.add("And", a=x, b=b.input("y")).source()
        ...     return b.build()
        >>> batch = [lay(1), lay(3)]
        >>> x, y = torch.rand(2, 4), torch.rand(2, 4)
        >>> out = Runner(kinds)(batch, {"x": x, "y": y})
        >>> torch.allclose(out["out"], torch.minimum(x, y))
        True
    """

    def __init__(
        self, kinds: Kinds, device: str | torch.device | None = None, *, cache_size: int = 32
    ):
        self.kinds = kinds
        self.device = _as_device(device, "Runner(device=...)") if device is not None else None
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[Any, ...], tuple[tuple[Layout, ...], Schedule]] = (
            OrderedDict()
        )
        self.last_schedule: Schedule | None = None

    def compile(
        self,
        layouts: Sequence[Layout],
        inputs: Sequence[str],
        outputs: Sequence[str],
        device: str | torch.device | None = None,
    ) -> Schedule:
        """The schedule of this batch on ``device`` (cached by layouts, names and device)."""
        dev = torch.device(device) if device is not None else None
        key = (tuple(id(lay) for lay in layouts), tuple(sorted(inputs)), tuple(outputs), str(dev))
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit[1]
        sched = compile_schedule(layouts, list(inputs), list(outputs), dev)
        if self.cache_size:
            self._cache[key] = (tuple(layouts), sched)  # keeps layouts alive: ids stay valid
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return sched

    def __call__(
        self,
        layouts: Sequence[Layout],
        inputs: Mapping[str, torch.Tensor],
        outputs: Sequence[str] | None = None,
    ) -> dict[str, torch.Tensor]:
        layouts = list(layouts)
        inputs, device = _on_device(inputs, self.device)
        _check_batch(layouts, inputs)
        names = list(outputs) if outputs is not None else stack_names(layouts)
        sched = self.compile(layouts, list(inputs), names, device)
        self.last_schedule = sched
        check = checking_enabled()
        values: dict[tuple[Any, ...], torch.Tensor] = {("ext", k): v for k, v in inputs.items()}
        for idx, step in enumerate(sched.steps):
            args = {p: _gather(values, g) for p, g in step.gathers.items()}
            result = call_group(step.modules, step.counts, step.instance, args)
            if check:
                _check_outputs(step, result)
            for p in step.out_ports:
                values[("slot", idx, p)] = result[p]
        return {name: _gather(values, g) for name, g in sched.outputs.items()}

    @staticmethod
    def per_sample(
        layouts: Sequence[Layout],
        inputs: Mapping[str, torch.Tensor],
        outputs: Sequence[str] | None = None,
        *,
        device: str | torch.device | None = None,
    ) -> dict[str, torch.Tensor]:
        """The reference: every sample alone, every node one call, then stacked.

        Runs on the inputs' device (or ``device``: inputs are moved there).
        """
        layouts = list(layouts)
        inputs, _ = _on_device(
            inputs, _as_device(device, "per_sample(device=...)") if device is not None else None
        )
        _check_batch(layouts, inputs)
        names = list(outputs) if outputs is not None else stack_names(layouts)
        results: dict[str, list[torch.Tensor]] = {n: [] for n in names}
        for i, lay in enumerate(layouts):
            vals: dict[tuple[str | None, str], torch.Tensor] = {
                (None, k): v[i : i + 1] for k, v in inputs.items()
            }
            for node in lay.nodes:
                module = lay.kinds.module(node.module)
                args = {p: vals[(s.node, s.port)] for p, s in node.inputs.items()}
                for p, t in module.outputs_as_dict(module(**args)).items():
                    vals[(node.id, p)] = t
            for n in names:
                src = lay.outputs[n]
                results[n].append(vals[(src.node, src.port)])
        return {n: torch.cat(v) for n, v in results.items()}


def _as_device(device: str | torch.device, where: str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise LayoutError(
            f"{where}: {device!r} is not a device ({exc}); use 'cpu', 'cuda', "
            "'cuda:N', 'mps' or 'meta'"
        ) from None


def _on_device(
    inputs: Mapping[str, torch.Tensor], device: torch.device | None
) -> tuple[dict[str, torch.Tensor], torch.device | None]:
    """The inputs on one device (``device``, else theirs) and that device."""
    for k, v in inputs.items():
        if not isinstance(v, torch.Tensor):
            raise LayoutError(f"Runner: input '{k}' is a {type(v).__name__}, expected a tensor")
    if device is not None:
        return {k: v.to(device) for k, v in inputs.items()}, device
    devices = {k: v.device for k, v in inputs.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"'{k}' on {d}" for k, d in devices.items())
        raise LayoutError(
            f"Runner: inputs on different devices ({listing}); move them to "
            "one device or pass Runner(kinds, device=...)"
        )
    return dict(inputs), next(iter(devices.values()), None)


def _gather(values: Mapping[tuple[Any, ...], torch.Tensor], g: Gather) -> torch.Tensor:
    if len(g.sources) == 1:
        src = values[g.sources[0]]
        return src if g.index is None else src.index_select(0, g.index)
    return torch.cat([values[k] for k in g.sources]).index_select(0, g.index)  # type: ignore[arg-type]


def _check_batch(layouts: Sequence[Layout], inputs: Mapping[str, torch.Tensor]) -> None:
    if not layouts:
        raise LayoutError("Runner: empty batch of layouts")
    for k, v in inputs.items():
        if v.shape[0] != len(layouts):
            raise LayoutError(
                f"Runner: input '{k}' has {v.shape[0]} rows for {len(layouts)} "
                "layouts; row i of every input belongs to layout i"
            )


def _check_outputs(step: Step, result: Mapping[str, torch.Tensor]) -> None:
    for p, t in step.modules[0].outputs.items():
        reason = t.check(result[p])
        if reason:
            raise TypeMismatch(
                f"kind '{step.kind}' (level {step.level}), output port '{p}': "
                f"{reason}; expected {t!r}"
            )
