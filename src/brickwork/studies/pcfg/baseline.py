"""The baseline: a Transformer encoder-decoder trained end to end on composed examples
(inputs with ≤ 8 functions), with brickwork's ``fit`` under a wall-time budget, decoded
greedily.

Example:
    >>> from brickwork.studies.pcfg.baseline import Seq2SeqTransformer, tokenize
    >>> model = Seq2SeqTransformer(d_model=32, heads=2, layers=1)
    >>> tokenize("copy A1 , B2")[:3]
    [523, 3, 533]
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brickwork.studies.pcfg.data import FUNCTIONS, SYMBOLS, Example
from brickwork.training import FitConfig, Samples, fit

PAD, BOS, EOS = 0, 1, 2
#: token ids: 0 pad, 1 bos, 2 eos, 3.. symbols, then the functions, then ','
VOCAB: dict[str, int] = {s: 3 + i for i, s in enumerate(SYMBOLS)}
VOCAB.update({f: 3 + len(SYMBOLS) + i for i, f in enumerate(FUNCTIONS)})
VOCAB[","] = 3 + len(SYMBOLS) + len(FUNCTIONS)
VOCAB_SIZE = len(VOCAB) + 3


def tokenize(text: str) -> list[int]:
    """Token ids of a source or target line."""
    return [VOCAB[t] for t in text.split()]


def _sinusoid(n: int, d: int, device: torch.device) -> torch.Tensor:
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(
        torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d)
    )
    pe = torch.zeros(n, d, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class Seq2SeqTransformer(nn.Module):
    """A small Transformer encoder-decoder with sinusoidal positions (any length).

    Example:
        >>> import torch
        >>> m = Seq2SeqTransformer(d_model=32, heads=2, layers=1, ff=64).eval()
        >>> m(torch.tensor([tokenize("copy A1")]), torch.tensor([[BOS]])).shape[-1] == VOCAB_SIZE
        True
    """

    def __init__(
        self,
        d_model: int = 128,
        heads: int = 4,
        layers: int = 2,
        ff: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.d = d_model
        self.embed = nn.Embedding(VOCAB_SIZE, d_model, padding_idx=PAD)
        self.net = nn.Transformer(d_model, heads, layers, layers, ff, dropout, batch_first=True)
        self.head = nn.Linear(d_model, VOCAB_SIZE)

    def _emb(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids) * math.sqrt(self.d) + _sinusoid(ids.shape[1], self.d, ids.device)

    def encode(self, src: torch.Tensor) -> torch.Tensor:
        return self.net.encoder(self._emb(src), src_key_padding_mask=src == PAD)

    def decode(self, memory: torch.Tensor, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        n = tgt_in.shape[1]
        causal = torch.triu(torch.full((n, n), float("-inf"), device=tgt_in.device), 1)
        h = self.net.decoder(
            self._emb(tgt_in),
            memory,
            tgt_mask=causal,
            tgt_key_padding_mask=tgt_in == PAD,
            memory_key_padding_mask=src == PAD,
        )
        return self.head(h)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(src), src, tgt_in)


def _pad(rows: Sequence[list[int]], width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def baseline_samples(examples: Sequence[Example]) -> Samples:
    """Token tensors: ``src``, ``tgt_in`` (BOS + target), ``tgt_out`` (target + EOS)."""
    src = [tokenize(e.source) for e in examples]
    tgt = [tokenize(e.target) for e in examples]
    ls, lt = max(map(len, src)), max(map(len, tgt)) + 1
    return Samples(
        {
            "src": _pad(src, ls),
            "tgt_in": _pad([[BOS] + t for t in tgt], lt),
            "tgt_out": _pad([t + [EOS] for t in tgt], lt),
        }
    )


def _loss(model: Seq2SeqTransformer, batch: Any) -> torch.Tensor:
    # trim the batch's padding columns (rows are padded to the longest of the whole set)
    ns = int((batch["src"] != PAD).sum(1).max())
    nt = int((batch["tgt_out"] != PAD).sum(1).max())
    logits = model(batch["src"][:, :ns], batch["tgt_in"][:, :nt])
    return nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB_SIZE), batch["tgt_out"][:, :nt].reshape(-1), ignore_index=PAD
    )


def train_baseline(
    examples: Sequence[Example],
    *,
    seconds: float,
    seed: int = 0,
    threads: int = 1,
    max_tokens: int = 64,
    lr: float = 1e-3,
    batch_size: int = 32,
    **model_config: Any,
) -> tuple[Seq2SeqTransformer, dict[str, Any]]:
    """Train the baseline on ``examples`` for at most ``seconds`` of wall time.

    Examples whose source or target exceeds ``max_tokens`` are left out of training (a
    CPU step on a batch of 600-symbol targets costs seconds; the budget buys more steps
    on the short ones). One torch thread (house rule: ~10x faster than two here).
    """
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = Seq2SeqTransformer(**model_config)
    kept = [
        e
        for e in examples
        if len(e.source.split()) <= max_tokens and len(e.target.split()) <= max_tokens
    ]
    data = baseline_samples(kept or list(examples))
    start = time.perf_counter()
    config = FitConfig(
        epochs=10**6, batch_size=batch_size, lr=lr, seed=seed, max_time=seconds, grad_clip=1.0
    )
    result = fit(model, _loss, data, config=config)
    return model.eval(), {
        "seconds": time.perf_counter() - start,
        "steps": result.steps,
        "epochs": result.epochs,
        "stop_reason": result.stop_reason,
        "final_loss": result.history[-1]["train_loss"] if result.history else None,
        "examples": len(kept),
        "max_tokens": max_tokens,
        "lr": lr,
        "config": dict(model_config),
    }


def predict_baseline(
    model: Seq2SeqTransformer, examples: Sequence[Example], *, batch_size: int = 64
) -> list[list[str]]:
    """Greedy decoding. A row stops as soon as it emits EOS or a token that differs from
    its target (it cannot be an exact match any more; the report's first-mismatch
    position is kept), so scoring needs no decoding past the first error."""
    inv = {v: k for k, v in VOCAB.items()}
    out: list[list[str]] = []
    with torch.no_grad():
        for s in range(0, len(examples), batch_size):
            chunk = examples[s : s + batch_size]
            src = _pad(
                [tokenize(e.source) for e in chunk], max(len(e.source.split()) for e in chunk)
            )
            targets = [tokenize(e.target) + [EOS] for e in chunk]
            memory = model.encode(src)
            seqs = torch.full((len(chunk), 1), BOS, dtype=torch.long)
            alive = torch.ones(len(chunk), dtype=torch.bool)
            preds: list[list[int]] = [[] for _ in chunk]
            for t in range(max(map(len, targets))):
                idx = alive.nonzero().flatten()
                if idx.numel() == 0:
                    break
                logits = model.decode(memory[idx], src[idx], seqs[idx])[:, -1]
                nxt = logits.argmax(-1)
                step = torch.full((len(chunk), 1), PAD, dtype=torch.long)
                step[idx, 0] = nxt
                seqs = torch.cat([seqs, step], 1)
                for k, tok in zip(idx.tolist(), nxt.tolist()):
                    if tok == EOS or t >= len(targets[k]) or tok != targets[k][t]:
                        alive[k] = False
                    if tok != EOS:
                        preds[k].append(tok)
            out.extend([[inv.get(t, "?") for t in p] for p in preds])
    return out
