"""``model_card_markdown``: the README.md of a saved or exported module (Hugging Face style).

YAML front matter (``library_name: brickwork``, tags, license, the type signature,
metrics, lineage, kind and defining module) and a "Use" section whose snippet loads the
module in a fresh interpreter. Values are written as JSON scalars, which YAML reads
as they are, so the front matter needs no YAML library to write or to read back.

Example:
    >>> text = model_card_markdown(name="find.red", kind="toy_find",
    ...                            module_path="brickwork_toykinds.kinds",
    ...                            signature_text="(x: Features['b c']) -> (m: SoftMask['b 1'])",
    ...                            metrics={"accuracy": 0.9})
    >>> text.splitlines()[:2]
    ['---', 'library_name: brickwork']
    >>> "Module.from_pretrained" in text
    True
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any


def _scalar(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    except TypeError:
        return json.dumps(str(value), ensure_ascii=False)


def _block(key: str, mapping: Mapping[str, Any] | None) -> list[str]:
    if not mapping:
        return [f"{key}: {{}}"]
    return [f"{key}:"] + [f"  {_scalar(str(k))}: {_scalar(v)}" for k, v in sorted(mapping.items())]


def _bullets(mapping: Mapping[str, Any] | None) -> list[str]:
    return [f"- {k}: `{v}`" for k, v in sorted((mapping or {}).items())] or ["- (none)"]


def model_card_markdown(
    *,
    name: str,
    kind: str,
    module_path: str,
    signature_text: str,
    metrics: Mapping[str, Any] | None = None,
    lineage: Mapping[str, Any] | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    license: str = "mit",
    tags: Iterable[str] = (),  # noqa: A002
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A Markdown model card with YAML front matter and a runnable "Use" snippet.

    Args:
        name: the module's name (a registry ``kind.tag`` or the kind).
        kind: the registered kind.
        module_path: the importable module that defines the kind.
        signature_text: ``str(module.signature)``.
        metrics, lineage, hyperparameters: shown in the front matter and the body.
        license: an SPDX identifier for the front matter.
        tags: extra tags (``brickwork`` and ``safetensors`` are always there).
        extra: more front-matter fields (JSON values), e.g. ``{"version": 3}``.

    Example:
        >>> card = model_card_markdown(
        ...     name="And",
        ...     kind="And",
        ...     module_path="brickwork.modules.ops",
        ...     signature_text="(a: SoftMask['b n']) -> (out: SoftMask['b n'])",
        ... )
        >>> card.count("---")
        2
    """
    tag_list = ["brickwork", "pytorch", "safetensors"]
    for t in tags:
        if str(t) not in tag_list:
            tag_list.append(str(t))
    front = ["---", "library_name: brickwork", f"license: {_scalar(license)}", "tags:"]
    front += [f"- {_scalar(t)}" for t in tag_list]
    front += [
        f"model_name: {_scalar(name)}",
        f"kind: {_scalar(kind)}",
        f"module: {_scalar(module_path)}",
        f"signature: {_scalar(signature_text)}",
    ]
    front += _block("metrics", metrics) + _block("lineage", lineage)
    front += _block("hyperparameters", hyperparameters)
    for k, v in sorted((extra or {}).items()):
        if isinstance(v, Mapping):
            front += _block(str(k), v)
        else:
            front.append(f"{_scalar(str(k))}: {_scalar(v)}")
    front.append("---")
    own = module_path == "brickwork" or module_path.startswith("brickwork.")
    body = [
        "",
        f"# {name}",
        "",
        f"A [brickwork](https://pypi.org/project/brickwork/) module of kind `{kind}`, "
        f"defined in `{module_path}`.",
        "",
        "## Signature",
        "",
        f"`{signature_text}`",
        "",
        "## Use",
        "",
        "In the folder that holds this file (or pass its path):",
        "",
        "```python",
        "from brickwork.modules import Module",
        "",
        'module = Module.from_pretrained(".")',
        "print(module.signature)",
        "```",
        "",
    ]
    if not own:
        body += [
            f"The kind comes from `{module_path}`: install its package. If the package "
            "declares no `brickwork.kinds` entry point, name the module yourself: "
            f'`Module.from_pretrained(".", imports=["{module_path}"])` (Python) or '
            f"`--import {module_path}` (CLI). brickwork never imports a module just "
            "because a downloaded file names it.",
            "",
        ]
    body += ["## Metrics", ""] + _bullets(metrics) + [""]
    body += ["## Hyperparameters", ""] + _bullets(hyperparameters) + [""]
    body += ["## Lineage", ""] + _bullets(lineage) + [""]
    return "\n".join(front + body)
