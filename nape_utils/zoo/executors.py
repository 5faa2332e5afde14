"""Where work runs: in this process, in local worker processes, or on a dask.distributed cluster.

``execute(fn, items, ...)`` yields ``fn(item)`` for every item as each finishes (any order). The
same function serves the zoo build and notebook sweeps, so both scale out the same way.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import threading
from functools import partial
from typing import Any, Callable, Iterable, Iterator


#: seconds to wait for a dask scheduler's handshake before giving up
CONNECT_TIMEOUT = 20.0


def connect(scheduler: str, timeout: float | None = None):
    """A dask ``Client`` for ``scheduler``, or a ValueError that names the address within ``timeout`` s.

    ``Client(…, timeout=…)`` bounds the TCP connect only: a socket that accepts and never answers (an
    HTTP server, the dashboard port) hangs it forever, so the handshake runs in a daemon thread that is
    abandoned when it overruns."""
    from distributed import Client

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    outcome: dict[str, Any] = {}

    lock = threading.Lock()

    def handshake() -> None:
        try:
            # not the default client: an abandoned handshake must not reroute dask work elsewhere (xarray's)
            client = Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
        except BaseException as err:  # noqa: BLE001 - any failure is reported with the address below
            outcome["error"] = err
            return
        with lock:
            if outcome.get("abandoned"):
                client.close()  # answered after the caller gave up: leave nothing running
            else:
                outcome["client"] = client

    thread = threading.Thread(target=handshake, daemon=True, name="nape-dask-connect")
    thread.start()
    wait = timeout + min(timeout, 5.0)  # a little longer than Client's own timeout, so its error comes first
    thread.join(wait)
    with lock:
        if "client" in outcome:
            return outcome["client"]
        outcome["abandoned"] = True
    error = outcome.get("error")
    reason = f"{type(error).__name__}: {error}" if error else f"no dask handshake within {wait:.0f} s"
    raise ValueError(f"cannot reach a dask scheduler at {scheduler} ({reason}); start one with `dask scheduler` "
                     "and give the address it prints, e.g. tcp://10.0.0.5:8786 (the scheduler's port, not the "
                     "dashboard's 8787)")


def execute(fn: Callable[..., Any], items: Iterable[Any], *, workers: int = 1, scheduler: str | None = None,
            **kwargs) -> Iterator[Any]:
    """``fn(item, **kwargs)`` for each item; ``scheduler`` is a dask scheduler address
    (``tcp://host:port``), else ``workers`` local processes (1: this process)."""
    items = list(items)
    call = partial(fn, **kwargs)
    if scheduler:
        try:
            from distributed import as_completed
        except ImportError:
            raise ValueError("--scheduler needs dask.distributed: pip install 'nape[dask]'") from None
        with connect(scheduler) as client:
            futures = client.map(call, items, pure=False)
            for future in as_completed(futures, loop=client.loop):  # this client's, not a default one
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
