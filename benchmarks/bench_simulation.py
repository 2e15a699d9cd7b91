"""Closed-loop simulator speed: overhead per scenario, command-to-first-step latency, 1 -> 2 worker scaling.

Figures (planner time excluded: a trivial planner runs and its measured time is subtracted):
1. simulator overhead (CPU time) of a whole scenario (150 steps) with log-replay and with IDM agents, incl. all
   CLS metrics, on one core -> steps per second per core; target < 0.1 s per scenario with reactive agents + metrics.
   Reference in the same run: the parts (controller, agents, metrics, the loop itself) timed separately.
2. time from ``distiplan simulate`` start (a fresh Python process) to the first simulated step; target < 2 s.
3. the same N scenarios on the process pool with 1 and 2 workers (wall time, speed-up).

Data: the tiny synthetic dataset when ``--data`` points at one, else the junction test dataset (written to a
temporary folder).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_simulation.py [--data DIR] [--split corner_cases]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experts.baselines import LogReplayPlanner  # noqa: E402
from sim.planning import PlannerInput  # noqa: E402
from sim.trajectory import Trajectory  # noqa: E402

TARGET_SCENARIO_S = 0.1
TARGET_FIRST_STEP_S = 2.0
#: nuplan-devkit on a comparable 15 s scenario (measured once on this project's machine, not re-run here: the
#: devkit is not installed): simulation 1.64 s + metrics 0.21 s per scenario.
DEVKIT_SIM_S, DEVKIT_METRICS_S = 1.64, 0.21


class FirstStepStamp(LogReplayPlanner):
    """Log replay that writes the wall-clock time of its first call to ``stamp_file`` (for figure 2)."""

    def __init__(self, stamp_file: str, horizon_s: float = 8.0) -> None:
        super().__init__(horizon_s)
        self.stamp_file = stamp_file

    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        if current_input.iteration == 0 and not os.path.exists(self.stamp_file):
            with open(self.stamp_file, "w") as f:
                f.write(repr(time.time()))
        return super().compute_trajectory(current_input)


def dataset(args: argparse.Namespace, tmp: Path) -> tuple[Path, list[str]]:
    """(data root, scenario-filter overrides)."""
    if args.data:
        return Path(args.data), []
    from tests.sim.runner.disk_world import write_junction_dataset

    return write_junction_dataset(tmp / "data"), [
        "scenario_filter.scenario_types=[following_lane_with_lead,stopping_with_lead]"]


def refs_of(data: Path, split: str, overrides: list[str]):
    from sim.nuplan_db.filter import ScenarioFilter
    from sim.nuplan_db.reader import list_scenarios

    types = None
    for o in overrides:
        if o.startswith("scenario_filter.scenario_types="):
            types = tuple(o.split("=", 1)[1].strip("[]").split(","))
    refs = list_scenarios(data / "nuplan-v1.1" / "splits" / split, ScenarioFilter(scenario_types=types))
    return [r for r in refs if r.scenario_type != "unknown"]  # as `distiplan simulate` (include_untagged=false)


def overhead(refs, maps_root: Path, agents: str, repeats: int) -> dict[str, float]:
    """Median per-scenario CPU seconds (process time: stable on a shared machine): whole (sim + metrics -
    planner) and its parts."""
    from sim.dynamics.controller import two_stage_step
    from sim.nuplan_db.reader import load_scenario
    from sim.nuplan_map.loader import load_map
    from sim.runner.scoring import challenge_for, score_rollout
    from sim.runner.simulation import make_agent_model, run_scenario

    challenge = challenge_for(agents)
    rows = []
    for ref in refs:
        sc = load_scenario(ref)
        m = load_map(maps_root, sc.map_location)
        run_scenario(sc, m, LogReplayPlanner(), agents=agents, num_iterations=3)  # warm caches
        score_rollout(run_scenario(sc, m, LogReplayPlanner(), agents=agents), sc, m, challenge)
        for _ in range(repeats):
            t0 = time.process_time()
            r = run_scenario(sc, m, LogReplayPlanner(), agents=agents)
            t1 = time.process_time()
            score_rollout(r, sc, m, challenge)
            t2 = time.process_time()
            planner = float(np.nansum(r.latency_s))
            # parts: controller alone, agents alone (same ego as the rollout)
            plan = LogReplayPlanner()
            from sim.planning import PlannerInitialization

            plan.initialize(PlannerInitialization(sc.route_roadblock_ids, None, m, sc))
            base = sc.index(0)
            t3 = time.process_time()
            for i in range(r.num_samples - 1):
                traj = Trajectory(r.plan_time_s[i][np.isfinite(r.plan_time_s[i])],
                                  r.plan_pose[i][np.isfinite(r.plan_time_s[i])])
                two_stage_step(r.ego.slice(i, i + 1), traj, 0.1)
            t4 = time.process_time()
            model = make_agent_model(agents)
            model.reset(sc, m, 0)
            for i in range(r.num_samples - 1):
                model.observe()
                model.advance(i, r.ego.pose[i], float(r.ego.speed[i]), sc.traffic_lights.at(base + i + 1))
            t5 = time.process_time()
            rows.append({"sim": t1 - t0 - planner, "planner": planner, "metrics": t2 - t1, "controller": t4 - t3,
                         "agents": t5 - t4, "steps": r.num_samples})
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    med["total"] = med["sim"] + med["metrics"]
    med["loop"] = med["sim"] - med["controller"] - med["agents"]
    return med


def first_step_latency(data: Path, overrides: list[str], tmp: Path, worker: str) -> float:
    stamp = tmp / f"stamp-{worker}.txt"
    stamp.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "scripts.cli", "simulate", f"data_root={data}", f"out={tmp / ('run-' + worker)}",
           f"cache_root={tmp / 'cache'}",
           f"worker={worker}", "agents=log_replay", "progress=false", "print_table=false", "num_iterations=6",
           "planner=log_replay", "+planner.stamp_file=" + str(stamp),
           "planner._target_=benchmarks.bench_simulation.FirstStepStamp",
           *overrides]
    start = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return float(stamp.read_text()) - start


def scaling(refs, data: Path, tmp: Path, workers: int) -> float:
    from sim.runner.job import SimulationJob, run_job
    from sim.runner.workers import map_jobs

    jobs = [SimulationJob(ref=r, planner={"_target_": "experts.baselines.LogReplayPlanner"},
                          run_dir=str(tmp / f"scale-{workers}"), maps_root=str(data / "maps"), agents="reactive")
            for r in refs]
    start = time.perf_counter()
    map_jobs(run_job, jobs, worker="pool", num_workers=workers, progress=False)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None, help="dataset root (default: the junction test dataset)")
    p.add_argument("--split", default="corner_cases")
    p.add_argument("--scenarios", type=int, default=4, help="scenarios for figure 1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale-scenarios", type=int, default=8)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data, overrides = dataset(args, tmp)
        refs = refs_of(data, args.split, overrides)
        print(f"data: {data} ({len(refs)} scenarios)")
        for agents in ("log_replay", "reactive"):
            med = overhead(refs[: args.scenarios], data / "maps", agents, args.repeats)
            ok = "OK" if med["total"] < TARGET_SCENARIO_S else "over target"
            print(f"[1] {agents:10s} per scenario ({med['steps']:.0f} steps, CPU time): "
                  f"simulator {med['sim'] * 1e3:6.1f} ms + metrics {med['metrics'] * 1e3:5.1f} ms"
                  f" = {med['total'] * 1e3:6.1f} ms "
                  f"(target {TARGET_SCENARIO_S * 1e3:.0f} ms: {ok}); {med['steps'] / med['total']:6.0f} steps/s/core")
            print(f"    split: controller {med['controller'] * 1e3:5.1f} ms, agents {med['agents'] * 1e3:5.1f} ms,"
                  f" loop {med['loop'] * 1e3:5.1f} ms, metrics {med['metrics'] * 1e3:5.1f} ms"
                  f" | planner (excluded) {med['planner'] * 1e3:5.1f} ms")
        devkit = DEVKIT_SIM_S + DEVKIT_METRICS_S
        print(f"    reference: nuplan-devkit {DEVKIT_SIM_S:.2f} s + metrics {DEVKIT_METRICS_S:.2f} s = {devkit:.2f} s "
              f"per scenario ({150 / devkit:.0f} steps/s; earlier measurement, not re-run)")
        for worker in ("sequential", "pool"):
            lat = first_step_latency(data, overrides, tmp, worker)
            ok = "OK" if lat < TARGET_FIRST_STEP_S else "over target"
            print(f"[2] command -> first step ({worker}): {lat:5.2f} s (target {TARGET_FIRST_STEP_S:.0f} s: {ok})")
        many = refs[: args.scale_scenarios]
        t1 = scaling(many, data, tmp, 1)
        t2 = scaling(many, data, tmp, 2)
        print(f"[3] pool, {len(many)} scenarios (reactive, log-replay planner, metrics): 1 worker {t1:5.2f} s, "
              f"2 workers {t2:5.2f} s, speed-up x{t1 / t2:4.2f} (usable cores: {len(os.sched_getaffinity(0))})")


if __name__ == "__main__":
    main()
