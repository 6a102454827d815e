"""``Module``: a ``torch.nn.Module`` with declared, typed input and output ports, and the
optional ``forward_instances`` protocol that runs many instances of a kind in one call."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from brickwork.errors import PortError, TypeMismatch
from brickwork.modules.checking import checking_enabled
from brickwork.modules.signature import Signature, name_mismatch
from brickwork.types import AxisBindings, NeuralType


def _jsonable(value: Any, where: str) -> Any:
    try:
        json.dumps(value, sort_keys=True)
    except TypeError:
        raise PortError(
            f"{where}: config value {value!r} is not JSON-serialisable; modules are "
            "rebuilt from their config, so pass numbers, strings, lists or dicts"
        ) from None
    return value


def forward_params(fn: Any) -> tuple[list[str], bool]:
    """The named parameters of ``forward`` (without self) and whether it takes ``**kwargs``."""
    sig = inspect.signature(fn)
    names, var_kw = [], False
    for p in sig.parameters.values():
        if p.name == "self":
            continue
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind is p.VAR_POSITIONAL:
            var_kw = True
        else:
            names.append(p.name)
    return names, var_kw


def check_forward_ports(owner: str, fn: Any, inputs: Mapping[str, NeuralType]) -> None:
    """Raise :class:`PortError` when ``forward``'s parameters do not match the input ports."""
    names, var = forward_params(fn)
    declared = list(inputs)
    if var:
        return
    if problem := name_mismatch(
        declared, names, missing="missing parameters", unknown="undeclared"
    ):
        raise PortError(
            f"{owner}: forward({', '.join(names)}) does not match the declared input ports "
            f"({', '.join(declared)}); {problem}. "
            "Rename forward's parameters or the ports so they agree"
        )


class Module(nn.Module):
    """Abstract base of typed modules: declare ``inputs`` and ``outputs`` (name → type).

    ``forward`` takes one parameter per input port and returns a tensor (one output
    port), a tuple in port order, or a dict by port name. The constructor's keyword
    arguments are recorded as the module's ``config`` (JSON-serialisable) so it can be
    rebuilt from a saved folder.

    Optional: a kind whose instances differ only in weights (``find[red]``,
    ``find[blue]``) overrides the classmethod :meth:`forward_instances` to run them all
    in one vectorised call inside the autobatched runner; ``additive = True`` marks a
    merge whose output is the sum of its inputs.

    Example:
        >>> import torch
        >>> from brickwork.types import Features, SoftMask
        >>> class Find(Module):
        ...     inputs = {"features": Features("b c h w")}
        ...     outputs = {"mask": SoftMask("b 1 h w")}
        ...     def __init__(self, channels: int = 4):
        ...         super().__init__()
        ...         self.conv = torch.nn.Conv2d(channels, 1, 1)
        ...     def forward(self, features):
        ...         return torch.sigmoid(self.conv(features))
        >>> Find(channels=4)(torch.zeros(2, 4, 3, 3)).shape
        torch.Size([2, 1, 3, 3])
        >>> Find(channels=4).config
        {'channels': 4}
    """

    #: port types, declared on the class; a kind whose ports depend on its config
    #: (``Typed``, ``Sum``, ``Attend`` …) sets them per instance in ``__init__``
    inputs: Mapping[str, NeuralType] = {}
    outputs: Mapping[str, NeuralType] = {}
    kind_name: ClassVar[str] = ""
    #: set True in a subclass that records ``_bw_config`` itself
    manual_config: ClassVar[bool] = False
    #: True for a merge whose output is the sum of its inputs (``Sum``, ``Or.sum``): the
    #: inputs' gradients do not couple, so the plan never groups its producers. A class
    #: attribute; an op whose mode decides sets it on the instance.
    additive: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__ and cls.__dict__.get("inputs"):
            check_forward_ports(cls.__name__, cls.__dict__["forward"], cls.inputs)
        init = cls.__dict__.get("__init__")
        if init is not None and not cls.__dict__.get("manual_config", False):

            @functools.wraps(init)
            def wrapped(self: Module, *args: Any, **kw: Any) -> None:
                outer = not getattr(self, "_bw_init_started", False)
                if outer:
                    object.__setattr__(self, "_bw_init_started", True)
                init(self, *args, **kw)
                if outer:
                    bound = inspect.signature(init).bind(self, *args, **kw)
                    bound.apply_defaults()
                    cfg = {k: v for k, v in bound.arguments.items() if k != "self"}
                    for name, p in inspect.signature(init).parameters.items():
                        if p.kind is p.VAR_KEYWORD and name in cfg:
                            cfg.update(cfg.pop(name))
                        elif p.kind is p.VAR_POSITIONAL and name in cfg:
                            cfg.pop(name)
                    self._bw_config = {
                        k: _jsonable(v, f"{type(self).__name__}.{k}") for k, v in cfg.items()
                    }
                    self._check_instance_ports()

            cls.__init__ = wrapped  # type: ignore[method-assign]

    def __init__(self) -> None:
        super().__init__()
        if not hasattr(self, "_bw_config"):
            self._bw_config: dict[str, Any] = {}

    def _check_instance_ports(self) -> None:
        """Ports set on the instance (they depend on a constructor argument) get the same
        check against ``forward`` as class ports, when construction ends."""
        if "inputs" not in self.__dict__:
            return
        inputs = self.__dict__["inputs"]
        if not isinstance(inputs, Mapping):
            raise PortError(
                f"{type(self).__name__}: inputs set on the instance must map port "
                f"names to types, got {type(inputs).__name__}"
            )
        check_forward_ports(
            f"{type(self).__name__} (input ports set in __init__)", type(self).forward, inputs
        )

    # ----- identity ------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments this module can be rebuilt from."""
        return dict(getattr(self, "_bw_config", {}))

    @property
    def kind(self) -> str:
        """The registered kind name (or the class name when unregistered)."""
        return type(self).kind_name or type(self).__name__

    @property
    def signature(self) -> Signature:
        """The module's ports as a :class:`Signature`."""
        return Signature(dict(self.inputs), dict(self.outputs))

    def fingerprint(self) -> str:
        """Digest of kind, config, signature and every weight and buffer (hex sha256)."""
        h = hashlib.sha256()
        h.update(self.kind.encode())
        h.update(json.dumps(self.config, sort_keys=True).encode())
        h.update(self.signature.digest_text().encode())
        for name, t in sorted(self.state_dict().items()):
            t = t.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    # ----- portable folders (Hugging Face conventions) --------------------------------
    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Save to ``folder``: ``model.safetensors``, ``config.json`` and a ``README.md``
        model card (YAML front matter, a "Use" snippet); returns the folder.

        Example:
            >>> import tempfile
            >>> from brickwork.modules import And
            >>> folder = And.min("b n").save_pretrained(tempfile.mkdtemp())
            >>> sorted(p.name for p in folder.iterdir())
            ['README.md', 'config.json', 'model.safetensors']
        """
        from brickwork.modules.io import save_pretrained

        return save_pretrained(self, folder)

    @classmethod
    def from_pretrained(
        cls,
        folder_or_registry_name: str | os.PathLike[str],
        *,
        registry: str | os.PathLike[str] | None = None,
        imports: Sequence[str] = (),
        map_location: str | torch.device | None = None,
    ) -> Module:
        """Load a module from a saved folder, or from a registry by name.

        An existing folder is loaded with :func:`brickwork.modules.load_module`; anything
        else is a registry reference (``kind.tag``, ``kind.tag@3``) looked up in
        ``brickwork.registry.Registry(registry)``. The kind's defining module is imported
        only when allowed (``imports``, or a ``brickwork.kinds`` entry point).

        Raises:
            LoadError: the folder cannot be loaded, or the module is not a ``cls``.

        Example:
            >>> import tempfile
            >>> from brickwork.modules import And
            >>> folder = And.min("b n").save_pretrained(tempfile.mkdtemp())
            >>> Module.from_pretrained(folder).mode
            'min'
        """
        from brickwork.errors import LoadError
        from brickwork.modules.io import load_module

        ref = folder_or_registry_name
        if Path(ref).is_dir():
            module = load_module(ref, map_location=map_location, imports=imports)
        elif isinstance(ref, os.PathLike) or "/" in str(ref) or "\\" in str(ref):
            raise LoadError(
                f"{ref}: no such folder; from_pretrained takes a folder written by "
                "save_pretrained / registry export, or a registry name 'kind.tag'"
            )
        else:
            from brickwork.registry import Registry

            module = Registry(registry).load(str(ref), imports=imports, map_location=map_location)
        if not isinstance(module, cls):
            raise LoadError(
                f"{ref}: holds a {type(module).__name__} (kind {module.kind!r}), "
                f"not a {cls.__name__}; call Module.from_pretrained to take any kind"
            )
        return module

    # ----- many instances in one call (optional) -------------------------------------------
    @classmethod
    def forward_instances(
        cls, modules: Sequence[Any], instance: torch.Tensor, *args: Any, **inputs: Any
    ) -> Any:
        """Run several instances of this kind on one batch, each row with its own weights.

        An optional, vectorised fast path for the autobatched
        :class:`~brickwork.layouts.Runner`: when a batch applies ``find[red]``,
        ``find[blue]`` … (instances of one kind, different weights) at the same level,
        the runner makes **one** call ``cls.forward_instances(modules, instance,
        **inputs)`` instead of one call per instance. Override it as a ``classmethod``
        (or ``staticmethod`` taking the same arguments) in a kind whose instances share
        their structure and differ only in weights; :func:`stack_param` gathers each
        row's weights.

        Contract (checked for every registered kind that overrides it by
        ``tests/core/test_contract.py``): the result equals calling
        ``modules[instance[i]]`` on row ``i`` alone, outputs *and* gradients, for any
        mix and order of instances; it returns what ``forward`` returns (a tensor, a
        tuple in port order or a dict by port name).

        Args:
            modules: the instances, all of this class (``len >= 1``).
            instance: ``[n]`` long tensor: row ``i`` belongs to ``modules[instance[i]]``.
            *args: input tensors in port order (an override names them like ``forward``:
                ``forward_instances(cls, modules, instance, mask, features)``; the
                runner passes them by name).
            **inputs: one ``[n, ...]`` tensor per input port.

        The default runs each instance on its own rows and scatters the results back.

        Example:
            >>> import torch
            >>> from brickwork.types import Features, Logits
            >>> class Scale(Module):
            ...     inputs = {"x": Features("b n")}
            ...     outputs = {"y": Logits("b n")}
            ...     def __init__(self, n: int = 2):
            ...         super().__init__()
            ...         self.w = torch.nn.Parameter(torch.randn(n))
            ...     def forward(self, x):
            ...         return x * self.w
            ...     @classmethod
            ...     def forward_instances(cls, modules, instance, x):
            ...         return x * stack_param(modules, "w", instance)
            >>> a, b = Scale(), Scale()
            >>> x, inst = torch.randn(3, 2), torch.tensor([1, 0, 1])
            >>> fast = Scale.forward_instances([a, b], inst, x=x)
            >>> torch.allclose(fast, torch.cat([b(x[0:1]), a(x[1:2]), b(x[2:3])]))
            True
            >>> Scale.defines_forward_instances()
            True
        """
        inputs.update(zip(modules[0].inputs, args))
        names = list(modules[0].outputs)
        results: dict[str, torch.Tensor] = {}
        n = instance.shape[0]
        for k, m in enumerate(modules):
            rows = (instance == k).nonzero().flatten()
            if rows.numel() == 0:
                continue
            part = m.outputs_as_dict(m(**{p: v.index_select(0, rows) for p, v in inputs.items()}))
            for p, t in part.items():
                if p not in results:
                    results[p] = t.new_zeros((n, *t.shape[1:]))
                results[p] = results[p].index_copy(0, rows, t)
        if len(names) == 1:
            return results[names[0]]
        return results

    @classmethod
    def defines_forward_instances(cls) -> bool:
        """Whether this kind overrides :meth:`forward_instances` with its own fast path.

        Example:
            >>> from brickwork.modules import And
            >>> And.defines_forward_instances()
            False
        """
        own = inspect.getattr_static(cls, "forward_instances")
        base = Module.__dict__["forward_instances"]
        return own is not base

    # ----- calling ---------------------------------------------------------------------
    def outputs_as_dict(self, result: Any) -> dict[str, torch.Tensor]:
        """Normalise what ``forward`` returned into ``{port: tensor}``."""
        names = list(self.outputs)
        if isinstance(result, Mapping):
            missing = [n for n in names if n not in result]
            if missing:
                raise PortError(
                    f"{self.kind}: forward returned {sorted(result)}, "
                    f"missing output ports {missing}"
                )
            return {n: result[n] for n in names}
        if isinstance(result, tuple):
            if len(result) != len(names):
                raise PortError(
                    f"{self.kind}: forward returned {len(result)} values for "
                    f"{len(names)} output ports {names}"
                )
            return dict(zip(names, result))
        if len(names) != 1:
            raise PortError(
                f"{self.kind}: forward returned one tensor but the module "
                f"declares {len(names)} output ports {names}; return a dict"
            )
        return {names[0]: result}

    def call_ports(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Call with inputs by port name; returns outputs by port name."""
        return self.outputs_as_dict(self(**inputs))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not checking_enabled():
            return super().__call__(*args, **kwargs)
        names = list(self.inputs)
        given = dict(zip(names, args))
        given.update({k: v for k, v in kwargs.items() if k in self.inputs})
        bindings = AxisBindings()
        for name, t in self.inputs.items():
            if name in given:
                reason = t.check(given[name], bindings)
                if reason:
                    raise TypeMismatch(
                        f"module {self.kind}, input port '{name}': {reason}; expected {t!r}"
                    )
        result = super().__call__(*args, **kwargs)
        for name, value in self.outputs_as_dict(result).items():
            t = self.outputs[name]
            reason = t.check(value, bindings)
            if reason:
                raise TypeMismatch(
                    f"module {self.kind}, output port '{name}': {reason}; "
                    f"expected {t!r}. Project outputs onto the type "
                    f"(t.project(x)) or fix the module's last layer"
                )
        return result


def stack_param(modules: Sequence[nn.Module], name: str, instance: torch.Tensor) -> torch.Tensor:
    """Per-row weights for :meth:`Module.forward_instances`: parameter (or buffer)
    ``name`` of every instance, stacked and indexed by ``instance`` → ``[n, *shape]``.

    Gradients flow back to each instance's own parameter.

    Example:
        >>> import torch
        >>> mods = [torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)]
        >>> stack_param(mods, "bias", torch.tensor([1, 1, 0])).shape
        torch.Size([3, 1])
    """
    return torch.stack([getattr(m, name) for m in modules]).index_select(0, instance)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (else first buffer, else the CPU).

    Example:
        >>> module_device(torch.nn.Linear(2, 1)), module_device(torch.nn.ReLU())
        (device(type='cpu'), device(type='cpu'))
    """
    first: torch.Tensor | None = next(iter(module.parameters()), None)
    if first is None:
        first = next(iter(module.buffers()), None)
    return first.device if first is not None else torch.device("cpu")
