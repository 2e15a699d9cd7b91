"""One unit of work: load a scenario and its map, build the planner, simulate, score, write the result file.

A :class:`SimulationJob` holds only small, picklable things (the scenario reference = DB path + token, the
planner config, options), so process-pool and Ray workers receive a few hundred bytes and load everything
themselves. :func:`run_job` never raises for a bad scenario or planner: it records a failed result instead.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass, field

import numpy as np

from sim.errors import DataError
from sim.nuplan_db.filter import ScenarioRef


@dataclass(frozen=True)
class SimulationJob:
    """Everything one worker needs for one scenario.

    ``planner``: a Hydra-style mapping with ``_target_`` (instantiated with ``hydra.utils.instantiate``) and an
    optional ``name`` (removed before instantiation).
    """

    ref: ScenarioRef
    planner: dict
    run_dir: str
    maps_root: str
    map_cache_root: str | None = None
    agents: str = "log_replay"
    replay_tagged: bool = False
    ego_controller: str = "two_stage"
    num_iterations: int | None = None
    history_s: float = 2.0
    step_time_budget_s: float | None = None
    point_cloud: bool = False
    seed: int = 0
    extra_meta: dict = field(default_factory=dict)


def scenario_seed(seed: int, token: str) -> int:
    """A per-scenario seed independent of which worker runs it (so every worker gives the same results)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{token}".encode()).digest()[:4], "little")


def build_planner(cfg: dict):
    """Instantiate a planner config (``_target_`` + arguments; the ``name`` key is not an argument)."""
    from hydra.utils import instantiate

    args = {k: v for k, v in dict(cfg).items() if k != "name"}
    if "_target_" not in args:
        raise DataError(None, f"planner config {sorted(args)} has no _target_", "a _target_ class path")
    return instantiate(args, _convert_="all")


def planner_name(cfg: dict) -> str:
    return str(cfg.get("name") or str(cfg.get("_target_", "planner")).rsplit(".", 1)[-1])


def run_job(job: SimulationJob) -> dict:
    """Simulate and score one scenario, write ``scenarios/<token>.npz``; returns a small summary dict."""
    from sim.runner.results import save_scenario_result
    from sim.runner.scoring import challenge_for, score_rollout

    start = time.perf_counter()
    ref = job.ref
    challenge = challenge_for(job.agents, job.ego_controller)
    meta = {"scenario_token": ref.token, "log_name": ref.log_name, "scenario_type": ref.scenario_type,
            "planner": planner_name(job.planner), "agents": job.agents, "challenge": challenge,
            "replay_tagged": job.replay_tagged and job.agents != "log_replay",
            "ego_controller": job.ego_controller, "db_path": str(ref.db_path), **job.extra_meta}
    rollout, metrics = None, {}
    s = scenario_seed(job.seed, ref.token)
    random.seed(s)
    np.random.seed(s)
    try:
        from sim.nuplan_db.reader import load_scenario
        from sim.nuplan_map.loader import load_map
        from sim.runner.simulation import run_scenario

        scenario = load_scenario(ref, history_s=job.history_s)
        map_api = load_map(job.maps_root, scenario.map_location, scenario.map_version or None, job.map_cache_root)
        planner = build_planner(job.planner)
        rollout = run_scenario(scenario, map_api, planner, agents=job.agents, num_iterations=job.num_iterations,
                               history_s=job.history_s, step_time_budget_s=job.step_time_budget_s,
                               point_cloud=job.point_cloud, ego_controller=job.ego_controller,
                               replay_tagged=job.replay_tagged)
        metrics = score_rollout(rollout, scenario, map_api, challenge)
        from sim.metrics.common import METRICS_VERSION

        meta["metrics_version"] = METRICS_VERSION
    except Exception as err:  # noqa: BLE001 - one bad scenario must not stop the run
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        meta.update(status="failed", error=f"{type(err).__name__}: {text}" if text else type(err).__name__)
        if rollout is not None:  # simulated, but scoring failed: keep the rollout, mark the scenario failed
            from dataclasses import replace

            rollout = replace(rollout, status="failed", error=f"metrics: {meta['error']}")
        metrics = {}
    meta["wall_s"] = time.perf_counter() - start
    save_scenario_result(job.run_dir, meta, rollout, metrics)
    status = rollout.status if rollout is not None else meta.get("status", "failed")
    error = rollout.error if rollout is not None else meta.get("error", "")
    return {"token": ref.token, "status": status, "error": error, "wall_s": meta["wall_s"]}
