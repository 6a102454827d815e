"""Recorded attentions (thesis §4.1, §4.3.2): the frozen find/scene outputs as an
intermediate dataset, read back by the downstream layouts.

Find and scene modules read the image features only (decoupled input), so once they are
trained and frozen their outputs depend on the image alone. :func:`record_finds` runs them
once over every image of a question set's split and stores the masks as an
:class:`~brickwork.training.IntermediateDataset`, keyed by the modules' fingerprints, their
kind + config, the study data digest and the split. :class:`RecordedFinds` then runs the
downstream layouts with each ``scene`` / ``find[v]`` node replaced by a parameter-free
``recorded[v]`` node that picks the recorded mask of the row's image: the downstream
modules share their weights with the model, and the frozen modules are not run.

Example:
    >>> import torch
    >>> rec = Recorded(index=1, channels=3, interface="typed")
    >>> masks = torch.rand(2, 3, 4, 6)
    >>> bool(torch.equal(rec(masks), masks[:, 1:2]))
    True
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, final

import torch

from brickwork.errors import DataError
from brickwork.layouts import Kinds, Layout, Runner, from_program, module_argument
from brickwork.modules import Module, module_device
from brickwork.studies.clevr.data import Program
from brickwork.studies.clevr.nmn.data import StudyData
from brickwork.studies.clevr.nmn.layouts import NMN, layout_program, merge_prior
from brickwork.studies.clevr.nmn.modules import mask_type
from brickwork.training import CacheKey, IntermediateDataset, Samples
from brickwork.types import Features, Heatmap, NeuralType, SoftMask

#: external input of the downstream layouts: one recorded mask per frozen module
RECORDED = "recorded"


def stacked_mask_type(interface: str) -> NeuralType:
    """The type of the recorded masks, ``[b, n, h, w]`` (one channel per frozen module)."""
    return SoftMask("b n h w") if interface == "typed" else Heatmap("b n h w")


@final
class Recorded(Module):
    """``recorded[v]``: channel ``index`` of the recorded masks (no parameters).

    Stands where the frozen ``find[v]`` (or ``scene``) node stood in a downstream layout.
    """

    manual_config = True

    def __init__(self, index: int, channels: int, interface: str):
        super().__init__()
        if not 0 <= index < channels:
            raise DataError(f"recorded mask {index}: out of range for {channels} recorded modules")
        self._bw_config = {"index": index, "channels": channels, "interface": interface}
        self.index = index
        self.inputs = {RECORDED: stacked_mask_type(interface)}
        self.outputs = {"mask": mask_type(interface)}

    def forward(self, recorded: torch.Tensor) -> torch.Tensor:
        return recorded[:, self.index : self.index + 1]

    @classmethod
    def forward_instances(
        cls, modules: Sequence[Recorded], instance: torch.Tensor, recorded: torch.Tensor
    ) -> torch.Tensor:
        """Every instance in one gather: row ``i`` takes its instance's channel."""
        index = torch.tensor([m.index for m in modules], dtype=torch.long, device=recorded.device)[
            instance
        ]
        return recorded[torch.arange(len(recorded), device=recorded.device), index].unsqueeze(1)


def _recorded_name(module_name: str) -> str:
    return (
        "recorded[scene]" if module_name == "scene" else f"recorded[{module_argument(module_name)}]"
    )


def record_key(model: NMN, names: Sequence[str], data: StudyData, split: str) -> CacheKey:
    """The declared inputs of the recording of ``names`` over the images of ``split``."""
    modules = {n: model.kinds.module(n) for n in names}
    return CacheKey(
        upstream={n: m.fingerprint() for n, m in modules.items()},
        producers={n: {"kind": m.kind, "config": m.config} for n, m in modules.items()},
        data_digest=f"{data.digest}:{split}",
        dtype=str(data.features[split].dtype).removeprefix("torch."),
        content={
            "study": "clevr-nmn",
            "split": split,
            "order": list(names),
            "port": "mask",
            "interface": model.interface,
        },
    )


def record_finds(
    model: NMN,
    names: Sequence[str],
    data: StudyData,
    split: str,
    root: str | Path,
    *,
    chunk: int = 512,
) -> tuple[IntermediateDataset, bool]:
    """``(dataset, hit)``: the masks of the frozen ``names`` for every image of ``split``,
    column ``masks`` ``[n_images, len(names), h, w]``, ids = image rows."""
    feats = data.features[split]

    def produce() -> Iterator[Samples]:
        with torch.no_grad():
            for i in range(0, len(feats), chunk):
                f = feats[i : i + chunk]
                masks = torch.cat([model.kinds.module(n)(f) for n in names], 1)
                # stored on the CPU (the dataset's files), read back onto the model's device
                yield Samples({"masks": masks.cpu()}, ids=torch.arange(i, i + len(f)))

    return IntermediateDataset.get_or_build(root, record_key(model, names, data, split), produce)


@final
class RecordedFinds:
    """Runs the downstream part of the model's layouts on recorded find/scene masks.

    Args:
        model: the NMN whose downstream modules train (weights shared, not copied).
        names: the frozen modules recorded, in the dataset's channel order.
        datasets: split -> the recording (:func:`record_finds`) of that split's images.
    """

    def __init__(self, model: NMN, names: Sequence[str], datasets: dict[str, IntermediateDataset]):
        self.model, self.names = model, list(names)
        device = module_device(model)
        self.masks: dict[str, torch.Tensor] = {}
        self.digests: dict[str, str] = {}
        for split, ds in datasets.items():
            got = ds.manifest["key"].get("content", {}).get("order")
            if got != self.names:
                raise DataError(
                    f"intermediate dataset {ds.key_digest[:12]}…: records {got}, "
                    f"expected {self.names}; rebuild it with record_finds"
                )
            rows = ds.load()
            order = torch.argsort(rows.ids)
            self.masks[split] = rows["masks"][order].to(device)
            self.digests[split] = ds.key_digest
        channels = model.kinds.module("scene").config["channels"]
        self.kinds = Kinds()
        for j, n in enumerate(self.names):
            self.kinds.add(_recorded_name(n), Recorded(j, len(self.names), model.interface))
        self.runner = Runner(self.kinds, cache_size=0)
        self._externals = {
            "features": Features(f"b {channels} h w"),
            RECORDED: stacked_mask_type(model.interface),
        }
        self._layouts: dict[Program, Layout] = {}

    def layout(self, program: Program) -> Layout:
        """The downstream layout of ``program`` (frozen nodes read the recording)."""
        lay = self._layouts.get(program)
        if lay is not None:
            return lay
        nodes: list[dict[str, Any]] = []
        for node in layout_program(program):
            fn, values = node["function"], node["value_inputs"]
            if fn in ("scene", "find"):
                name = "scene" if fn == "scene" else f"find[{values[0]}]"
                if name not in self.names:
                    raise DataError(
                        f"program {program}: module {name!r} was not recorded "
                        f"(recorded: {self.names}); record it or run the full model"
                    )
                node = {**node, "function": RECORDED, "value_inputs": [_recorded_name(name)[9:-1]]}
            else:
                name = f"{fn}[{','.join(values)}]" if values else fn
                self.kinds.add(name, self.model.kinds.module(name))
            nodes.append(node)
        lay = from_program(
            nodes, self.kinds, name=f"r{len(self._layouts)}", externals=self._externals
        )
        self._layouts[program] = lay
        return lay

    def forward(
        self,
        split: str,
        programs: Sequence[Program],
        image: torch.Tensor,
        features: torch.Tensor,
        prior: torch.Tensor,
    ) -> torch.Tensor:
        """Answer log-probabilities, as the model gives them with its frozen modules run."""
        recorded = self.masks.get(split)
        if recorded is None:
            raise DataError(f"no recording of split {split!r} (have {sorted(self.masks)})")
        out = self.runner(
            [self.layout(p) for p in programs], {"features": features, RECORDED: recorded[image]}
        )["answer"]
        return merge_prior(self.model.interface, out, prior)
