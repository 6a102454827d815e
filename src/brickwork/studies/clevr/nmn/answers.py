"""Answer module kinds of the NMN study: exist/count, query, comparisons, question encoder.

All answer modules output logits over the whole answer set (``Logits[b k]``, k = 28),
with the answers they cannot give pinned to a very low logit, so that layouts of
every question type stack into one batch. ``exist`` and ``count`` are
permutation-invariant (sum of the attention plus its top-k sorted values, then an MLP):
a flattened-mask MLP never leaves the majority baseline (calibration notes).

Example:
    >>> import torch
    >>> count = Measure(function="count", interface="typed")
    >>> out = count(torch.rand(3, 1, 4, 6))
    >>> out.shape, int((out[0] > -20).sum())
    (torch.Size([3, 28]), 11)
"""

from __future__ import annotations

import torch
from torch import nn

from brickwork.errors import LoadError
from brickwork.modules import Module, attend, register_kind, stack_param
from brickwork.studies.clevr.data import ATTRIBUTES
from brickwork.studies.clevr.nmn.modules import mask_type
from brickwork.studies.clevr.nmn.vocab import COUNT_INDEX, NO, OFF, YES, K, valid_answers
from brickwork.types import Features, Logits

ANSWER = Logits(f"b {K}")
_SIZES = {"b": 2, "c": 8, "h": 4, "w": 6, "t": 5}


def _restrict(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, logits, torch.full_like(logits, OFF))


class _AnswerMLP(Module):
    """Abstract: ``x [b d] -> hidden -> K`` logits with per-instance weights and answer range."""

    manual_config = True
    valid: torch.Tensor  # buffer: the answers this function can give

    def _init_mlp(self, function: str, d: int, hidden: int) -> None:
        self.w1 = nn.Parameter(torch.randn(hidden, d) / d**0.5)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.randn(K, hidden) / hidden**0.5 * 0.1)
        self.b2 = nn.Parameter(torch.zeros(K))
        self.register_buffer("valid", valid_answers(function))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x @ self.w1.T + self.b1)
        return _restrict(h @ self.w2.T + self.b2, self.valid)

    @classmethod
    def mlps(cls, modules, instance, x):
        w1, b1, w2, b2, valid = (
            stack_param(modules, k, instance) for k in ("w1", "b1", "w2", "b2", "valid")
        )
        h = torch.relu(torch.einsum("nd,nhd->nh", x, w1) + b1)
        return _restrict(torch.einsum("nh,nkh->nk", h, w2) + b2, valid)


@register_kind("nmn_measure", example_config={"function": "count"}, sizes=_SIZES)
class Measure(_AnswerMLP):
    """``exist`` / ``count``: an attention to an answer, permutation-invariant."""

    def __init__(
        self, function: str = "count", interface: str = "typed", top_k: int = 12, hidden: int = 64
    ):
        super().__init__()
        if function not in ("exist", "count"):
            raise LoadError(f"Measure: function must be 'exist' or 'count', got {function!r}")
        self._bw_config = {
            "function": function,
            "interface": interface,
            "top_k": top_k,
            "hidden": hidden,
        }
        self.interface, self.top_k = interface, top_k
        self.inputs = {"mask": mask_type(interface)}
        self.outputs = {"answer": ANSWER}
        self._init_mlp(function, top_k + 1, hidden)

    @staticmethod
    def summary(mask: torch.Tensor, top_k: int) -> torch.Tensor:
        flat = mask.flatten(1)
        k = min(top_k, flat.shape[1])
        top = flat.topk(k, dim=1).values
        if k < top_k:
            top = torch.cat([top, top.new_zeros(flat.shape[0], top_k - k)], 1)
        return torch.cat([flat.sum(1, keepdim=True) / 4.0, top], 1)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.summary(mask, self.top_k))

    @classmethod
    def forward_instances(cls, modules, instance, mask):
        return cls.mlps(modules, instance, cls.summary(mask, modules[0].top_k))


@register_kind("nmn_query", example_config={"channels": 8, "attribute": "color"}, sizes=_SIZES)
class Query(_AnswerMLP):
    """``query[color]``: the attended object's attribute value, from attended features."""

    def __init__(
        self,
        channels: int = 32,
        attribute: str = "color",
        interface: str = "typed",
        hidden: int = 64,
    ):
        super().__init__()
        if attribute not in ATTRIBUTES:
            raise LoadError(
                f"Query: unknown attribute {attribute!r}; expected one of {sorted(ATTRIBUTES)}"
            )
        self._bw_config = {
            "channels": channels,
            "attribute": attribute,
            "interface": interface,
            "hidden": hidden,
        }
        self.inputs = {"features": Features(f"b {channels} h w"), "mask": mask_type(interface)}
        self.outputs = {"answer": ANSWER}
        self._init_mlp(attribute, channels, hidden)

    def forward(self, mask: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(attend(mask, features))

    @classmethod
    def forward_instances(cls, modules, instance, mask, features):
        return cls.mlps(modules, instance, attend(mask, features))


COMPARISONS = (
    "equal_color",
    "equal_shape",
    "equal_size",
    "equal_material",
    "equal_integer",
    "less_than",
    "greater_than",
)


@register_kind("nmn_compare", example_config={"function": "less_than"}, sizes=_SIZES)
class Compare(Module):
    """``equal_*`` / ``less_than`` / ``greater_than``: two answers to yes/no.

    Typed: the answers are read as distributions (softmax) and the module computes the
    probability of the relation exactly, then a learned affine map of its log-odds.
    Classic: an MLP over the two raw logit vectors (as the original NMN's ``compare``).
    """

    manual_config = True
    valid: torch.Tensor  # buffers: the answers it gives, the answers it compares
    arg_valid: torch.Tensor

    def __init__(self, function: str = "equal_color", interface: str = "typed", hidden: int = 64):
        super().__init__()
        if function not in COMPARISONS:
            raise LoadError(
                f"Compare: unknown function {function!r}; expected one of {COMPARISONS}"
            )
        self._bw_config = {"function": function, "interface": interface, "hidden": hidden}
        self.function, self.interface = function, interface
        self.inputs = {"a": ANSWER, "b": ANSWER}
        self.outputs = {"answer": ANSWER}
        self.register_buffer("valid", valid_answers(function))
        arg = (
            "count"
            if function in ("equal_integer", "less_than", "greater_than")
            else function.split("_", 1)[1]
        )
        self.register_buffer("arg_valid", valid_answers(arg))
        if interface == "typed":
            self.scale = nn.Parameter(torch.tensor([1.0]))
            self.bias = nn.Parameter(torch.tensor([0.0]))
        else:
            self.net = nn.Sequential(nn.Linear(2 * K, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.interface == "typed":
            off = torch.full_like(a, OFF)
            pa = torch.softmax(torch.where(self.arg_valid, a, off), -1)
            pb = torch.softmax(torch.where(self.arg_valid, b, off), -1)
            if self.function.startswith("equal_"):
                p = (pa * pb).sum(-1)
            else:
                ca, cb = pa[:, COUNT_INDEX], pb[:, COUNT_INDEX]
                below = torch.cumsum(cb, -1) - cb  # P(b < i)
                above = cb.flip(-1).cumsum(-1).flip(-1) - cb  # P(b > i)
                p = (ca * (above if self.function == "less_than" else below)).sum(-1)
            p = p.clamp(1e-5, 1 - 1e-5)
            yes = self.scale * (torch.log(p) - torch.log1p(-p)) + self.bias
            two = torch.stack([yes, -yes], -1) / 2
        else:
            two = self.net(torch.cat([a, b], -1))
        out = torch.full_like(a, OFF)
        return out.index_copy(1, torch.tensor([YES, NO], device=out.device), two)


@register_kind("nmn_question_encoder", example_config={"vocab": 10}, sizes=_SIZES)
class QuestionEncoder(Module):
    """LSTM over the question's words to an answer prior (logits over the answer set)."""

    manual_config = True

    def __init__(self, vocab: int = 100, embed: int = 32, hidden: int = 64):
        super().__init__()
        self._bw_config = {"vocab": vocab, "embed": embed, "hidden": hidden}
        self.inputs = {"tokens": Features("b t", dtype=torch.long)}
        self.outputs = {"answer": ANSWER}
        self.embed = nn.Embedding(vocab, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, K)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens.long().clamp(0, self.embed.num_embeddings - 1)
        h, _ = self.lstm(self.embed(tokens))
        length = (tokens > 0).sum(1).clamp(min=1) - 1
        last = h[torch.arange(h.shape[0], device=h.device), length]
        return self.out(last)
