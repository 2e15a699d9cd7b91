"""Running many jobs: sequentially, in a local process pool (default), or on Ray.

Every worker calls the same module-level :func:`sim.runner.job.run_job` on a small picklable job and writes the
scenario's result file itself; the run's tables are built afterwards from those files in token order, so the
results do not depend on the worker kind, the number of workers or the completion order.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterator, Sequence

from sim.errors import DataError

WORKERS = ("sequential", "pool", "ray")
#: Modules the process pool's fork server imports once for all workers. The metrics (scipy.signal: ~1 s) are
#: left out so the first simulated step is not delayed; each worker imports them after its first rollout.
PRELOAD = ("numpy", "shapely", "sim.runner.job", "sim.runner.simulation", "sim.runner.results",
           "sim.nuplan_db.reader", "sim.nuplan_map.loader", "sim.dynamics.controller", "sim.agents.idm",
           "sim.agents.log_replay", "hydra.utils")


def default_num_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _sequential(fn: Callable, jobs: Sequence) -> Iterator[dict]:
    for job in jobs:
        yield fn(job)


def _pool_context(module: str = "sim.runner.job") -> mp.context.BaseContext:
    # forkserver/spawn: workers start from a clean interpreter (no inherited threads, locks or big arrays).
    # The fork server imports the simulator once, so each worker forks ready to run instead of importing anew.
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(dict.fromkeys([*PRELOAD, module])))
        return ctx
    return mp.get_context("spawn")


def prestart(worker: str) -> None:
    """Start the pool's fork server now (it imports the simulator in the background while the caller lists
    scenarios), so the first job starts sooner. No-op for other workers."""
    if worker == "pool" and "forkserver" in mp.get_all_start_methods():
        from multiprocessing import forkserver

        _pool_context()
        forkserver.ensure_running()


def _pool(fn: Callable, jobs: Sequence, num_workers: int) -> Iterator[dict]:
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = _pool_context(getattr(fn, "__module__", "sim.runner.job"))
    with ProcessPoolExecutor(max_workers=num_workers, mp_context=ctx) as ex:
        futures = [ex.submit(fn, job) for job in jobs]
        for f in as_completed(futures):
            yield f.result()


def _ray(fn: Callable, jobs: Sequence, num_workers: int, ray_address: str | None) -> Iterator[dict]:
    try:
        import ray
    except ImportError as err:
        raise DataError(None, "worker=ray needs the 'ray' package", "pip install 'distiplan[ray]'") from err
    started = not ray.is_initialized()
    if started:
        if ray_address:
            ray.init(address=ray_address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
    try:
        remote = ray.remote(num_cpus=1)(fn)
        pending = [remote.remote(job) for job in jobs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def map_jobs(fn: Callable, jobs: Sequence, worker: str = "pool", num_workers: int | None = None,
             progress: bool = True, description: str = "simulating", ray_address: str | None = None) -> list[dict]:
    """Run ``fn(job)`` for every job with the chosen worker; returns the results in completion order.

    ``fn`` must be a module-level function (picklable by reference). ``num_workers``: processes / Ray CPUs
    (default: the usable cores). A pool or Ray with one job or one worker still uses that worker kind.
    """
    if worker not in WORKERS:
        raise DataError(None, f"unknown worker '{worker}'", f"one of {', '.join(WORKERS)}")
    n = max(1, int(num_workers or default_num_workers()))
    if len(jobs) == 0:
        return []
    if worker == "sequential":
        it = _sequential(fn, jobs)
    elif worker == "pool":
        it = _pool(fn, jobs, min(n, len(jobs)))
    else:
        it = _ray(fn, jobs, n, ray_address)
    results: list[dict] = []
    if not progress:
        return list(it)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.fields[last]}"))
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=len(jobs), last="")
        for r in it:
            results.append(r)
            last = f"{r.get('token', '')} {r.get('status', '')}" if isinstance(r, dict) else ""
            bar.update(task, advance=1, last=last)
    return results
