"""Fixtures: small registered module kinds and a toy NMN-style family, for docs, tests
and benches (not examples of how to use the library: see docs/).

``brickwork.training.fixtures`` is the old name of this module, kept as an alias.

The family mirrors the thesis's NMN setup (§4.3, Table 4.1): a question encoder gives an
answer prior, ``find[x]`` turns image features into an attention, ``describe[x]`` reads
features under the attention, ``measure[x]`` reads the attention alone; the prior and
the evidence are added (``Sum`` of logits).

Example:
    >>> from brickwork.training.fixtures import nmn_kinds, nmn_family
    >>> kinds = nmn_kinds()
    >>> family = nmn_family(kinds)
    >>> sorted({n.kind for lay in family for n in lay.nodes})
    ['Sum', 'describe', 'encoder', 'find', 'measure']
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brickwork.layouts import Kinds, Layout, LayoutBuilder
from brickwork.modules import Module, Sum, register_kind
from brickwork.training.samples import Samples
from brickwork.types import Features, Heatmap, Logits, Probs, SoftMask


@register_kind(
    "toy_classifier", example_config={"dim": 4, "classes": 3}, sizes={"b": 2, "d": 4, "k": 3}
)
class ToyClassifier(Module):
    """An MLP from features ``[b d]`` to class probabilities ``[b k]``."""

    manual_config = True

    def __init__(self, dim: int = 4, classes: int = 3, hidden: int = 32, layers: int = 1):
        super().__init__()
        self._bw_config = {"dim": dim, "classes": classes, "hidden": hidden, "layers": layers}
        self.inputs = {"x": Features(f"b {dim}")}
        self.outputs = {"probs": Probs(f"b {classes}")}
        parts: list[nn.Module] = [nn.Linear(dim, hidden), nn.ReLU()]
        for _ in range(layers - 1):
            parts += [nn.Linear(hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*parts, nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


@register_kind("toy_encoder", example_config={"vocab": 6, "answers": 5}, sizes={"b": 2})
class ToyEncoder(Module):
    """Question encoder: a bag of words ``[b v]`` to answer-prior logits ``[b k]``."""

    manual_config = True

    def __init__(self, vocab: int = 6, answers: int = 5, hidden: int = 16):
        super().__init__()
        self._bw_config = {"vocab": vocab, "answers": answers, "hidden": hidden}
        self.inputs = {"question": Features(f"b {vocab}")}
        self.outputs = {"answer": Logits(f"b {answers}")}
        self.net = nn.Sequential(nn.Linear(vocab, hidden), nn.ReLU(), nn.Linear(hidden, answers))

    def forward(self, question: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(question)
        return out


@register_kind("toy_find", example_config={"channels": 4}, sizes={"b": 2, "h": 3, "w": 3})
class ToyFind(Module):
    """Find: features ``[b c h w]`` to an attention ``[b 1 h w]`` (soft mask or heatmap)."""

    manual_config = True

    def __init__(self, channels: int = 4, out: str = "softmask", hidden: int = 8):
        super().__init__()
        self._bw_config = {"channels": channels, "out": out, "hidden": hidden}
        self.out = out
        self.inputs = {"features": Features(f"b {channels} h w")}
        t = SoftMask("b 1 h w") if out == "softmask" else Heatmap("b 1 h w")
        self.outputs = {"mask": t}
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, 1, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = self.net(features)
        return torch.sigmoid(z) if self.out == "softmask" else torch.relu(z)


@register_kind(
    "toy_describe", example_config={"channels": 4, "answers": 5}, sizes={"b": 2, "h": 3, "w": 3}
)
class ToyDescribe(Module):
    """Describe: features and an attention to answer logits (attended average → MLP)."""

    manual_config = True

    def __init__(self, channels: int = 4, answers: int = 5, hidden: int = 16):
        super().__init__()
        self._bw_config = {"channels": channels, "answers": answers, "hidden": hidden}
        self.inputs = {
            "features": Features(f"b {channels} h w"),
            "mask": Heatmap("b 1 h w"),
        }
        self.outputs = {"answer": Logits(f"b {answers}")}
        self.net = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, answers))

    def forward(self, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = mask.flatten(2)
        att = (w * features.flatten(2)).sum(-1) / (w.sum(-1) + 1e-6)
        out: torch.Tensor = self.net(att)
        return out


@register_kind("toy_measure", example_config={"answers": 5}, sizes={"b": 2, "h": 3, "w": 3})
class ToyMeasure(Module):
    """Measure: an attention alone to answer logits (permutation-invariant: sum + top-k)."""

    manual_config = True

    def __init__(self, answers: int = 5, hidden: int = 16, top: int = 3):
        super().__init__()
        self._bw_config = {"answers": answers, "hidden": hidden, "top": top}
        self.top = top
        self.inputs = {"mask": Heatmap("b 1 h w")}
        self.outputs = {"answer": Logits(f"b {answers}")}
        self.net = nn.Sequential(nn.Linear(1 + top, hidden), nn.ReLU(), nn.Linear(hidden, answers))

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        flat = mask.flatten(1)
        top = flat.topk(min(self.top, flat.shape[1]), dim=1).values
        if top.shape[1] < self.top:
            top = torch.nn.functional.pad(top, (0, self.top - top.shape[1]))
        out: torch.Tensor = self.net(torch.cat([flat.sum(1, keepdim=True), top], dim=1))
        return out


def toy_answer_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """A custom loss for plan files (``"brickwork.training.fixtures:toy_answer_loss"``):
    cross-entropy of answer logits, with label smoothing.

    Example:
        >>> float(toy_answer_loss(torch.zeros(2, 5), torch.tensor([0, 1]))) > 0
        True
    """
    return torch.nn.functional.cross_entropy(pred, target, label_smoothing=0.1)


def toy_answer_accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """A custom metric for plan files: accuracy of answer logits (higher is better).

    Example:
        >>> toy_answer_accuracy(torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        0.5
    """
    return float((pred.argmax(-1) == target).float().mean())


def nmn_kinds(
    channels: int = 4, answers: int = 5, vocab: int = 6, find_out: str = "softmask"
) -> Kinds:
    """The toy NMN vocabulary (every kind registered, so workers can rebuild them)."""
    return Kinds(
        encoder=lambda: ToyEncoder(vocab=vocab, answers=answers),
        find=lambda: ToyFind(channels=channels, out=find_out),
        describe=lambda: ToyDescribe(channels=channels, answers=answers),
        measure=lambda: ToyMeasure(answers=answers),
        Sum=lambda: Sum(f"b {answers}"),
    )


def nmn_layout(kinds: Kinds, root: str, find: str, name: str | None = None) -> Layout:
    """``Sum(encoder(question), root(find(features)))`` as one layout."""
    b = LayoutBuilder(kinds, name=name or f"{root}({find})")
    feats, question = b.input("features"), b.input("question")
    mask = b.add(f"find[{find}]", features=feats)
    if root.startswith("describe"):
        evidence = b.add(root, features=feats, mask=mask["mask"])
    else:
        evidence = b.add(root, mask=mask["mask"])
    prior = b.add("encoder", question=question)
    b.output("answer", b.add("Sum", a=prior["answer"], b=evidence["answer"]))
    return b.build()


def nmn_family(kinds: Kinds, finds: tuple[str, ...] = ("0", "1")) -> list[Layout]:
    """The thesis's VQA-style family: ``describe[what](find[x])`` and ``measure[how](find[x])``."""
    family = []
    for f in finds:
        family.append(nmn_layout(kinds, "describe[what]", f))
        family.append(nmn_layout(kinds, "measure[count]", f))
    return family


def nmn_data(
    n: int,
    family_size: int,
    *,
    channels: int = 4,
    answers: int = 5,
    vocab: int = 6,
    h: int = 3,
    w: int = 3,
    seed: int = 0,
) -> Samples:
    """Synthetic samples for :func:`nmn_family`: ``features``, ``question``, ``layout``
    (index into the family) and ``answer``."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, channels, h, w, generator=g)
    layout = torch.randint(0, family_size, (n,), generator=g)
    question = torch.nn.functional.one_hot(layout % vocab, vocab).float()
    find_ch = (layout // 2) % channels
    mask = (feats[torch.arange(n), find_ch] > 0).float()
    count = mask.flatten(1).sum(1).long().clamp(max=answers - 1)
    att = (mask.unsqueeze(1) * feats).flatten(2).sum(-1) / (
        mask.flatten(1).sum(1, keepdim=True) + 1e-6
    )
    what = att.argmax(1) % answers
    answer = torch.where(layout % 2 == 0, what, count)
    return Samples({"features": feats, "question": question, "layout": layout, "answer": answer})


def example_sizes() -> dict[str, Any]:
    """Sizes used by :func:`nmn_kinds` defaults (for docs)."""
    return {"channels": 4, "answers": 5, "vocab": 6}


def example_plan_json(
    answers: int = 5, channels: int = 4, vocab: int = 6, data_path: str = "data.safetensors"
) -> dict[str, Any]:
    """The toy NMN family as a plan file (see :mod:`brickwork.plan.spec_file`)."""
    layouts = []
    for f in ("0", "1"):
        for root in ("describe[what]", "measure[count]"):
            root_inputs = {"mask": "f.mask"}
            if root.startswith("describe"):
                root_inputs["features"] = "@features"
            layouts.append(
                {
                    "name": f"{root}({f})",
                    "nodes": [
                        {"id": "f", "module": f"find[{f}]", "inputs": {"features": "@features"}},
                        {"id": "r", "module": root, "inputs": root_inputs},
                        {"id": "e", "module": "encoder", "inputs": {"question": "@question"}},
                        {"id": "s", "module": "Sum", "inputs": {"a": "e.answer", "b": "r.answer"}},
                    ],
                    "outputs": {"answer": "s.out"},
                }
            )
    return {
        "name": "toy-nmn",
        "imports": ["brickwork.training.fixtures"],
        "kinds": {
            "encoder": {"kind": "toy_encoder", "config": {"vocab": vocab, "answers": answers}},
            "find": {"kind": "toy_find", "config": {"channels": channels}},
            "describe": {
                "kind": "toy_describe",
                "config": {"channels": channels, "answers": answers},
            },
            "measure": {"kind": "toy_measure", "config": {"answers": answers}},
            "Sum": {"kind": "Sum", "config": {"axes": f"b {answers}"}},
        },
        "layouts": layouts,
        "data": {"inputs": ["features", "question"], "targets": ["answer"], "path": data_path},
        "train": {
            "seed": 0,
            "workers": 2,
            "hparams": {
                "find": {"epochs": 3},
                "encoder": {"epochs": 5},
                "describe": {"epochs": 5},
                "measure": {"epochs": 5},
            },
        },
    }


def write_example_plan(folder: str, samples: int = 512, seed: int = 0) -> str:
    """Write ``plan.json`` and ``data.safetensors`` for the toy NMN into ``folder``."""
    import json
    import os

    os.makedirs(folder, exist_ok=True)
    spec = example_plan_json()
    nmn_data(samples, len(spec["layouts"]), seed=seed).save(
        os.path.join(folder, "data.safetensors")
    )
    path = os.path.join(folder, "plan.json")
    with open(path, "w") as fh:
        json.dump(spec, fh, indent=2)
    return path


def random_program_layout(
    kinds: Kinds,
    rng: random.Random,
    depth: int,
    name: str,
    *,
    filters: Sequence[str],
    relations: Sequence[str],
    queries: Sequence[str],
) -> Layout:
    """A random CLEVR-like program of exactly ``depth`` levels (longest chain).

    ``scene`` at the leaves, ``filter[...]`` / ``relate[...]`` chains, ``And`` / ``Or``
    merges and a ``query[...]`` root, over kinds named that way in ``kinds`` (the
    autobatching tests and benches draw their batches of different layouts from it;
    ``tests/core/test_runner.py`` shows a vocabulary for it).
    """
    b = LayoutBuilder(kinds, name)
    feats = b.input("features")

    def expr(d: int) -> Any:
        if d == 1:
            return b.add("scene", features=feats).source()
        r = rng.random()
        if r < 0.15 and d >= 3:
            left = expr(d - 1)
            right = expr(rng.randint(1, d - 1))
            return b.add(rng.choice(["And", "Or"]), a=left, b=right).source()
        if r < 0.5:
            return b.add(
                f"relate[{rng.choice(relations)}]", mask=expr(d - 1), features=feats
            ).source()
        return b.add(f"filter[{rng.choice(filters)}]", mask=expr(d - 1), features=feats).source()

    top = b.add(f"query[{rng.choice(queries)}]", mask=expr(depth - 1), features=feats)
    b.output("answer", top)
    return b.build()


__all__ = [
    "ToyClassifier",
    "ToyDescribe",
    "ToyEncoder",
    "ToyFind",
    "ToyMeasure",
    "example_plan_json",
    "example_sizes",
    "nmn_data",
    "nmn_family",
    "nmn_kinds",
    "nmn_layout",
    "random_program_layout",
    "toy_answer_accuracy",
    "toy_answer_loss",
    "write_example_plan",
]
