"""Per-item work spread over processes whose OpenBLAS runs on one thread each.

For many small, independent numeric jobs (one ARIMA fit per grid cell): BLAS threads
only spin and contend on tiny matrices, so each process keeps one.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

_OPENBLAS_THREAD_SETTERS = (
    "openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
)


def use_one_blas_thread(preload: tuple[str, ...] = ()) -> None:
    """Worker initializer: import ``preload``, then run every loaded OpenBLAS on one thread.

    A per-cell Kalman filter multiplies tiny matrices, so BLAS threads only spin and
    contend: on BikeNYC a cell's fit took ~8x the CPU time with OpenBLAS's default threads
    (3.9 s against 0.47 s). The modules are imported first because the OpenBLAS their code
    calls (scipy's, for statsmodels) loads with them. Where ``/proc`` is absent (not Linux)
    the workers keep the default.
    """
    for module in preload:
        importlib.import_module(module)
    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return
    for path in libraries:
        library = ctypes.CDLL(path)
        for setter in _OPENBLAS_THREAD_SETTERS:
            if hasattr(library, setter):
                getattr(library, setter)(1)


def map_in_processes(function: Callable[[Any], Any], items: Iterable[Any], count: int, workers: int,
                     preload: tuple[str, ...] = ()) -> list[Any]:
    """``[function(item) for item in items]`` (``count`` of them) over ``workers`` one-BLAS-thread processes."""
    workers = min(workers, count)
    # fork: workers need no re-import of the caller's main module (no __main__ guard needed)
    start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context,
                             initializer=partial(use_one_blas_thread, preload)) as pool:
        return list(pool.map(function, items, chunksize=max(1, count // (4 * workers))))
