"""Where work runs: in this process, in local worker processes, or on a dask.distributed cluster.

``execute(fn, items, ...)`` yields ``fn(item)`` for every item as each finishes (any order). The
same function serves the zoo build and notebook sweeps, so both scale out the same way.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from functools import partial
from typing import Any, Callable, Iterable, Iterator


def execute(fn: Callable[..., Any], items: Iterable[Any], *, workers: int = 1, scheduler: str | None = None,
            **kwargs) -> Iterator[Any]:
    """``fn(item, **kwargs)`` for each item; ``scheduler`` is a dask scheduler address
    (``tcp://host:port``), else ``workers`` local processes (1: this process)."""
    items = list(items)
    call = partial(fn, **kwargs)
    if scheduler:
        try:
            from distributed import Client, as_completed
        except ImportError:
            raise ValueError("--scheduler needs dask.distributed: pip install 'nape[dask]'") from None
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as err:
            raise ValueError(f"cannot reach the dask scheduler at {scheduler} ({err}); start one with "
                             "`dask scheduler` and give the address it prints, e.g. tcp://10.0.0.5:8786") from err
        with client:
            futures = client.map(call, items, pure=False)
            for future in as_completed(futures):
                yield future.result()
    elif workers <= 1:
        for item in items:
            yield call(item)
    else:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(call, item) for item in items]
            for future in cf.as_completed(futures):
                yield future.result()
