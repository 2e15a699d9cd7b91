"""PDM expert latency per planning step (median / p95), from closed-loop runs on one core.

Runs the expert and, as the reference in the same run, nuPlan's IDM planner (experts.idm_planner) through the
closed-loop runner (LQR + bicycle ego, log-replay agents) on scenarios of a split, and prints the per-step
planner wall time. Target for the expert: < 10 ms median (PDM-Closed reports ~100 ms in Python).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_expert.py --data-root DATA [--split corner_cases]
        [--scenarios 8] [--iterations 151] [--profile]

Without --data-root a small synthetic dataset is written to a temporary folder first (sim.synth).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def synth_dataset(root: Path) -> Path:
    """A small corner-case dataset (sim.synth's tiny preset) under ``root``."""
    from sim.synth.dataset import write_dataset

    write_dataset(root, preset="tiny", seed=0)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--maps-root", type=Path, default=None)
    ap.add_argument("--split", default="corner_cases")
    ap.add_argument("--scenarios", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=None, help="scenario iterations (default all)")
    ap.add_argument("--agents", default="log_replay")
    ap.add_argument("--profile", action="store_true", help="cProfile the expert and print the top entries")
    args = ap.parse_args()

    from experts.idm_planner import IDMPlanner
    from experts.pdm import PDMExpert
    from sim.layout import split_dbs
    from sim.nuplan_db.reader import list_scenarios, load_scenario
    from sim.nuplan_map.loader import load_map
    from sim.runner.simulation import run_scenario

    tmp = None
    data_root = args.data_root
    if data_root is None:
        tmp = tempfile.TemporaryDirectory()
        data_root = synth_dataset(Path(tmp.name))
    maps_root = args.maps_root or Path(data_root) / "maps"
    from sim.nuplan_db.filter import DEFAULT_SCENARIO_TYPE

    refs = [r for r in list_scenarios(split_dbs(data_root, args.split)) if r.scenario_type != DEFAULT_SCENARIO_TYPE]
    refs = refs[: args.scenarios]
    print(f"{len(refs)} scenarios of split '{args.split}' from {data_root}, agents={args.agents}")

    def cpu_timed(cls: type) -> type:
        """The planner with the CPU time of every step recorded (wall times suffer on a shared machine)."""
        class Timed(cls):  # type: ignore[misc, valid-type]
            def compute_trajectory(self, current_input):  # noqa: ANN001, ANN202
                t0 = time.process_time()
                out = super().compute_trajectory(current_input)
                cpu[names[cls]].append(time.process_time() - t0)
                return out
        return Timed

    planners = {"pdm": PDMExpert, "idm (reference)": IDMPlanner}
    names = {cls: name for name, cls in planners.items()}
    cpu: dict[str, list[float]] = {k: [] for k in planners}
    planners = {name: cpu_timed(cls) for name, cls in planners.items()}
    latency: dict[str, list[float]] = {k: [] for k in planners}
    status: dict[str, list[str]] = {k: [] for k in planners}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    t0 = time.perf_counter()
    for ref in refs:
        scenario = load_scenario(ref)
        map_api = load_map(maps_root, scenario.map_location, scenario.map_version or None)
        for name, cls in planners.items():
            if profiler is not None and name == "pdm":
                profiler.enable()
            ro = run_scenario(scenario, map_api, cls(), agents=args.agents, num_iterations=args.iterations)
            if profiler is not None and name == "pdm":
                profiler.disable()
            latency[name] += [float(x) for x in ro.latency_s if np.isfinite(x)]
            status[name].append(ro.status)
    print(f"total wall time {time.perf_counter() - t0:.1f} s\n")
    print(f"{'planner':<18}{'steps':>8}{'median ms':>12}{'p95 ms':>10}{'max ms':>10}{'failed':>8}")
    for name, lat in latency.items():
        a = np.asarray(lat) * 1e3
        failed = sum(s != "ok" for s in status[name])
        if len(a):
            print(f"{name:<18}{len(a):>8}{np.median(a):>12.2f}{np.percentile(a, 95):>10.2f}{a.max():>10.1f}"
                  f"{failed:>8}")
    print("\nCPU time per step (process_time; robust to other processes on the machine):")
    for name, lat in cpu.items():
        a = np.asarray(lat[1:]) * 1e3  # the first step builds the per-map caches (drivable union)
        if len(a):
            print(f"{name:<18}{len(a):>8}{np.median(a):>12.2f}{np.percentile(a, 95):>10.2f}{a.max():>10.1f}")
    med = float(np.median(latency["pdm"])) * 1e3 if latency["pdm"] else float("nan")
    print(f"\nexpert target < 10 ms median: {'met' if med < 10.0 else 'NOT met'} ({med:.1f} ms)")
    if profiler is not None:
        import pstats

        pstats.Stats(profiler).sort_stats("cumtime").print_stats(25)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
