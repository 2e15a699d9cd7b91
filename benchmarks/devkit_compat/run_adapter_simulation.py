"""Closed-loop simulation of distiplan planners in nuplan-devkit's own loop, through ``DevkitPlannerAdapter``.

Runs ONLY inside the devkit venv (README.md). For each scenario: devkit's ``Simulation`` (step time controller,
``TracksObservation`` = non-reactive log replay agents, two-stage LQR + kinematic bicycle controller, 2 s history
buffer) drives (a) distiplan planners wrapped in the adapter and (b) devkit's own IDM planner as a reference;
devkit's closed-loop metrics (``simulation_closed_loop_nonreactive_agents`` set) then score every run, and the
nuPlan CLS score is printed per run.

    /work/nuplan-venv/bin/python benchmarks/devkit_compat/run_adapter_simulation.py \
        --db /tmp/devkit_compat/synth/data/nuplan-v1.1/splits/mini --maps-root /tmp/devkit_compat/synth/maps \
        --distiplan .
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

#: nuPlan's closed-loop score: multiplier metrics and weighted metrics (weight).
MULTIPLIERS = ("no_ego_at_fault_collisions", "drivable_area_compliance", "ego_is_making_progress",
               "driving_direction_compliance")
WEIGHTED = {"ego_progress_along_expert_route": 5.0, "time_to_collision_within_bound": 5.0,
            "speed_limit_compliance": 4.0, "ego_is_comfortable": 2.0}


def build_metrics(devkit_root: Path) -> list:
    """Devkit's closed-loop non-reactive metric set, instantiated from devkit's own yaml files."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg_dir = devkit_root / "planning/script/config/common/simulation_metric"
    top = OmegaConf.load(cfg_dir / "simulation_closed_loop_nonreactive_agents.yaml")
    groups = {k: v for d in top.defaults for k, v in d.items()}
    built: dict[str, Any] = {}
    for group in ("low_level", "high_level"):
        for name in groups[group]:
            cfg = OmegaConf.load(cfg_dir / group / f"{name}.yaml")[name]
            OmegaConf.set_struct(cfg, False)
            required = cfg.pop("required_metrics", {}) or {}
            built[name] = instantiate(cfg, **{param: built[dep] for param, dep in required.items()})
    return list(built.values())


def cls_score(results: dict[str, list]) -> tuple[float, dict[str, float]]:
    scores = {name: float(stats[0].metric_score) for name, stats in results.items()
              if stats and stats[0].metric_score is not None}
    mult = 1.0
    for name in MULTIPLIERS:
        mult *= scores.get(name, 1.0)
    weighted = sum(w * scores.get(n, 0.0) for n, w in WEIGHTED.items()) / sum(WEIGHTED.values())
    return mult * weighted, scores


def simulate(scenario: Any, planner: Any, metrics: list) -> tuple[float, dict[str, float], float, int]:
    from nuplan.common.actor_state.vehicle_parameters import get_pacifica_parameters
    from nuplan.planning.metrics.metric_engine import MetricsEngine
    from nuplan.planning.simulation.controller.motion_model.kinematic_bicycle import KinematicBicycleModel
    from nuplan.planning.simulation.controller.tracker.lqr import LQRTracker
    from nuplan.planning.simulation.controller.two_stage_controller import TwoStageController
    from nuplan.planning.simulation.observation.tracks_observation import TracksObservation
    from nuplan.planning.simulation.runner.simulations_runner import SimulationRunner
    from nuplan.planning.simulation.simulation import Simulation
    from nuplan.planning.simulation.simulation_setup import SimulationSetup
    from nuplan.planning.simulation.simulation_time_controller.step_simulation_time_controller import (
        StepSimulationTimeController,
    )

    tracker = LQRTracker(q_longitudinal=[10.0], r_longitudinal=[1.0], q_lateral=[1.0, 10.0, 0.0], r_lateral=[1.0],
                         discretization_time=0.1, tracking_horizon=10, jerk_penalty=1e-4,
                         curvature_rate_penalty=1e-2, stopping_proportional_gain=0.5, stopping_velocity=0.2)
    controller = TwoStageController(scenario, tracker, KinematicBicycleModel(get_pacifica_parameters()))
    setup = SimulationSetup(time_controller=StepSimulationTimeController(scenario),
                            observations=TracksObservation(scenario), ego_controller=controller, scenario=scenario)
    sim = Simulation(setup, simulation_history_buffer_duration=2.0)
    t0 = time.perf_counter()
    report = SimulationRunner(sim, planner).run()
    wall = time.perf_counter() - t0
    if not report.succeeded:
        raise RuntimeError(report.error_message)
    engine = MetricsEngine(main_save_path=Path("/tmp"))
    for m in metrics:
        engine.add_metric(m)
    score, parts = cls_score(engine.compute_metric_results(sim.history, scenario))
    return score, parts, wall, len(sim.history)


def simulate_in_distiplan(scenario: Any, planner: Any, maps_root: Path) -> tuple[float, dict[str, float], float]:
    """The same scenario in distiplan's own closed loop (log-replay agents, two-stage controller) and metrics."""
    from sim.metrics.aggregate import scenario_score
    from sim.nuplan_db.reader import load_scenario
    from sim.nuplan_map.loader import load_map
    from sim.runner.scoring import CLS_NR, score_rollout
    from sim.runner.simulation import run_scenario

    sc = load_scenario((scenario._log_file, scenario.token))
    map_api = load_map(maps_root, sc.map_location)
    t0 = time.perf_counter()
    rollout = run_scenario(sc, map_api, planner, agents="log_replay", ego_controller="two_stage")
    wall = time.perf_counter() - t0
    if rollout.status != "ok":
        raise RuntimeError(f"distiplan rollout {rollout.status}")
    values = score_rollout(rollout, sc, map_api, CLS_NR)
    return scenario_score(values, CLS_NR), values, wall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", action="append", required=True)
    ap.add_argument("--maps-root", required=True, type=Path)
    ap.add_argument("--map-version", default="nuplan-maps-v1.0")
    ap.add_argument("--distiplan", required=True, help="path of the distiplan checkout (for the adapter)")
    ap.add_argument("--planners", nargs="*", default=["idm", "constant_velocity", "pdm"])
    ap.add_argument("--max-scenarios", type=int, default=4)
    ap.add_argument("--no-distiplan-loop", action="store_true",
                    help="skip running the same planners in distiplan's own simulator for comparison")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="invalid value encountered in cast", category=RuntimeWarning)
    sys.path.insert(0, str(Path(args.distiplan).resolve()))

    import nuplan
    from nuplan.planning.scenario_builder.nuplan_db.nuplan_scenario_builder import NuPlanScenarioBuilder
    from nuplan.planning.scenario_builder.nuplan_db.nuplan_scenario_utils import ScenarioMapping
    from nuplan.planning.scenario_builder.scenario_filter import ScenarioFilter
    from nuplan.planning.simulation.planner.idm_planner import IDMPlanner as DevkitIDM
    from nuplan.planning.utils.multithreading.worker_sequential import Sequential
    from omegaconf import OmegaConf

    from planner.nuplan_adapter import DevkitPlannerAdapter

    def distiplan_planner(name: str) -> Any:
        if name == "idm":
            from experts.idm_planner import IDMPlanner
            return IDMPlanner()
        if name == "constant_velocity":
            from experts.baselines import ConstantVelocityPlanner
            return ConstantVelocityPlanner()
        if name == "pdm":
            from experts.pdm import PDMExpert
            return PDMExpert()
        raise SystemExit(f"unknown planner {name}")

    devkit_root = Path(nuplan.__file__).parent
    dbs: list[Path] = []
    for d in args.db:
        p = Path(d)
        dbs += sorted(p.glob("*.db")) if p.is_dir() else [p]
    types: set[str] = set()
    for db in dbs:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        types |= {r[0] for r in con.execute("SELECT DISTINCT type FROM scenario_tag") if r[0]}
        con.close()
    mcfg = OmegaConf.to_container(OmegaConf.load(
        devkit_root / "planning/script/config/common/scenario_builder/scenario_mapping/"
        "nuplan_challenge_scenario_mapping.yaml"))
    mapping = ScenarioMapping({k: tuple(v) for k, v in mcfg["scenario_map"].items()}, mcfg["subsample_ratio_override"])
    builder = NuPlanScenarioBuilder(data_root=str(dbs[0].parent), map_root=str(args.maps_root),
                                    sensor_root=str(dbs[0].parent), db_files=[str(d) for d in dbs],
                                    map_version=args.map_version, verbose=False, scenario_mapping=mapping)
    flt = ScenarioFilter(scenario_types=sorted(types), scenario_tokens=None, log_names=None, map_names=None,
                         num_scenarios_per_type=None, limit_total_scenarios=args.max_scenarios,
                         timestamp_threshold_s=None, ego_displacement_minimum_m=None, expand_scenarios=False,
                         remove_invalid_goals=True, shuffle=False)
    scenarios = builder.get_scenarios(flt, Sequential())
    print(f"{len(scenarios)} scenarios; metrics: devkit closed_loop_nonreactive set; controller: LQR two-stage")
    metrics = build_metrics(devkit_root)
    failures = 0
    for sc in scenarios:
        runs = [(f"distiplan.{n}", lambda n=n: DevkitPlannerAdapter(distiplan_planner(n))) for n in args.planners]
        runs.append(("devkit.IDMPlanner", lambda: DevkitIDM(target_velocity=10, min_gap_to_lead_agent=1.0,
                                                             headway_time=1.5, accel_max=1.0, decel_max=3.0,
                                                             planned_trajectory_samples=16,
                                                             planned_trajectory_sample_interval=0.5,
                                                             occupancy_map_radius=40)))
        if not args.no_distiplan_loop:
            for n in args.planners:
                label = f"distiplan-loop.{n}"
                try:
                    score, parts, wall = simulate_in_distiplan(sc, distiplan_planner(n), args.maps_root)
                    short = {k[:12]: round(v, 2) for k, v in parts.items() if k in MULTIPLIERS or k in WEIGHTED}
                    print(f"OK    {sc.scenario_type:28s} {sc.token} {label:28s} CLS {score:.3f}  "
                          f"{wall:.1f} s  {short}", flush=True)
                except Exception as err:  # noqa: BLE001
                    failures += 1
                    print(f"FAIL  {sc.scenario_type:28s} {sc.token} {label:28s} {type(err).__name__}: {err}")
        for label, make in runs:
            try:
                score, parts, wall, steps = simulate(sc, make(), metrics)
                short = {k[:12]: round(v, 2) for k, v in parts.items() if k in MULTIPLIERS or k in WEIGHTED}
                print(f"OK    {sc.scenario_type:28s} {sc.token} {label:28s} CLS {score:.3f}  {steps} steps "
                      f"{wall:.1f} s  {short}", flush=True)
            except Exception as err:  # noqa: BLE001 - report and go on
                failures += 1
                tb = traceback.extract_tb(err.__traceback__)[-3:]
                where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb))
                print(f"FAIL  {sc.scenario_type:28s} {sc.token} {label:28s} {type(err).__name__}: "
                      f"{str(err)[:300]} [{where}]", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
