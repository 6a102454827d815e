"""Worker processes for the sorting study's jobs (spawn, one torch thread each), with futures so
that finished jobs can submit more.

The library's :class:`brickwork.training.LocalExecutor` runs a fixed list of jobs
(``map``); the study submits extra training and evaluations as units finish, hence its
own futures until the executor offers ``submit``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
from collections.abc import Callable
from typing import Any

import torch


def _init_worker() -> None:
    torch.set_num_threads(1)
    logging.getLogger("brickwork").setLevel(logging.WARNING)


def _call(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)


class Pool:
    """Local worker processes (spawn, one torch thread each); in-process with 1 worker.

    Example:
        >>> with Pool(1) as pool:
        ...     pool.submit(dict, a=1).result()
        {'a': 1}
    """

    def __init__(self, workers: int):
        self.workers = max(1, int(workers))
        self._ex: cf.Executor | None = None

    def __enter__(self) -> Pool:
        if self.workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self._ex = cf.ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ex is not None:
            self._ex.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn: Callable[..., Any], **kwargs: Any) -> cf.Future:
        if self._ex is not None:
            return self._ex.submit(_call, fn, kwargs)
        fut: cf.Future = cf.Future()
        try:
            fut.set_result(fn(**kwargs))
        except BaseException as exc:  # surfaced by .result()
            fut.set_exception(exc)
        return fut


__all__ = ["Pool"]
