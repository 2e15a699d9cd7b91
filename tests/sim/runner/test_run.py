"""A whole run through the CLI and the workers: run folder, tables, faults, resume, identical results per worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts.cli import main
from sim.nuplan_db.filter import ScenarioFilter
from sim.nuplan_db.reader import list_scenarios
from sim.runner.job import SimulationJob, run_job
from sim.runner.results import ROW_COLUMNS, load_scenario_result, scenario_path
from sim.runner.workers import map_jobs
from tests.sim.runner.conftest import TYPES_OVERRIDE

#: Columns that differ between runs by nature (wall-clock latency).
TIMING = ["latency_mean_s", "latency_p90_s", "latency_max_s"]


def simulate(root: Path, out: Path, *extra: str) -> int:
    return main(["simulate", f"data_root={root}", f"out={out}", f"cache_root={out.parent / 'cache'}",
                 TYPES_OVERRIDE, "progress=false",
                 "print_table=false", *extra])


def table(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "metrics.parquet").drop(columns=TIMING)


def test_cli_writes_the_run_folder(tiny_dataset: Path, tmp_path: Path, capsys):
    out = tmp_path / "run"
    code = main(["simulate", f"data_root={tiny_dataset}", f"out={out}", f"cache_root={tmp_path / 'cache'}",
                 "split=corner_cases", "planner=idm", "agents=log_replay", "worker=sequential", "progress=false",
                 "num_iterations=61"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "closed_loop_nonreactive_agents score = " in printed and "final_score" in printed
    df = pd.read_parquet(out / "metrics.parquet")
    assert tuple(df.columns) == ROW_COLUMNS
    n = df["scenario"].nunique()
    assert n >= 4 and (df["status"] == "ok").all() and set(df["planner_name"]) == {"idm"}
    assert df["scenario_type"].str.startswith("corner_").all()
    scores = df[df["metric"] == "no_ego_at_fault_collisions"]["score"]
    assert len(scores) == n and scores.isin([0.0, 0.5, 1.0]).all()
    agg = pd.read_parquet(out / "aggregate.parquet")
    final = agg[agg["scenario"] == "final_score"]
    assert len(final) == 1 and 0.0 <= float(final["score"].iloc[0]) <= 1.0
    assert int(final["num_scenarios"].iloc[0]) == n
    assert (out / "aggregate.csv").is_file() and (out / "config.yaml").is_file()
    info = json.loads((out / "run.json").read_text())
    assert {"git_sha", "packages", "hardware", "seed", "start_time", "end_time"} <= set(info)
    for token in df["scenario"].unique():
        meta, metrics, rollout = load_scenario_result(scenario_path(out, token))
        assert meta["status"] == "ok" and int(meta["num_iterations"]) == 61
        assert rollout.num_samples == 60 == rollout.tracks.num_steps
        row = df[(df["scenario"] == token) & (df["metric"] == "ego_progress_along_expert_route")]
        assert metrics["ego_progress_along_expert_route"] == pytest.approx(float(row["score"].iloc[0]))


def test_resume_skips_finished_scenarios(junction_dataset: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = ("planner=constant_velocity", "agents=log_replay", "worker=sequential", "num_iterations=31")
    assert simulate(junction_dataset, out, *args) == 0
    first = table(out)
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "scenarios").glob("*.npz")}
    victim = sorted(stamps)[0]
    (out / "scenarios" / victim).unlink()
    (out / "scenarios" / "leftover.npz.123.tmp").write_bytes(b"partial")
    assert simulate(junction_dataset, out, *args, "resume=true") == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "scenarios").glob("*.npz")}
    assert set(after) == set(stamps)
    assert all(after[n] == stamps[n] for n in stamps if n != victim)  # untouched
    assert not list((out / "scenarios").glob("*.tmp"))
    pd.testing.assert_frame_equal(table(out), first)
    # resuming with another configuration is refused
    assert simulate(junction_dataset, out, "planner=idm", "agents=log_replay", "worker=sequential",
                    "num_iterations=31", "resume=true") == 2


@pytest.mark.slow
def test_pool_gives_the_sequential_results(junction_dataset: Path, tmp_path: Path):
    args = ("planner=idm", "agents=reactive", "num_iterations=21")
    assert simulate(junction_dataset, tmp_path / "seq", *args, "worker=sequential") == 0
    assert simulate(junction_dataset, tmp_path / "pool", *args, "worker=pool", "worker.num_workers=2") == 0
    pd.testing.assert_frame_equal(table(tmp_path / "seq"), table(tmp_path / "pool"))


@pytest.mark.slow
def test_sequential_pool_and_ray_give_the_same_corner_case_table(tiny_dataset: Path, tmp_path: Path):
    pytest.importorskip("ray")
    args = ("split=corner_cases", "planner=idm", "agents=reactive", "num_iterations=41", "progress=false",
            "print_table=false", f"data_root={tiny_dataset}", f"cache_root={tmp_path / 'cache'}")
    tables = {}
    for worker in ("sequential", "pool", "ray"):
        out = tmp_path / worker
        assert main(["simulate", f"out={out}", f"worker={worker}", "worker.num_workers=2", *args]) == 0
        tables[worker] = table(out)
    assert tables["sequential"]["scenario"].nunique() >= 4
    pd.testing.assert_frame_equal(tables["sequential"], tables["pool"])
    pd.testing.assert_frame_equal(tables["sequential"], tables["ray"])


def test_a_failing_planner_is_recorded_and_the_run_goes_on(junction_dataset: Path, tmp_path: Path):
    refs = list_scenarios(junction_dataset / "nuplan-v1.1" / "splits" / "corner_cases",
                          ScenarioFilter(scenario_types=("following_lane_with_lead", "stopping_with_lead")))
    common = dict(run_dir=str(tmp_path), maps_root=str(junction_dataset / "maps"), agents="log_replay",
                  num_iterations=21)
    bad = {"name": "faulty", "_target_": "tests.sim.runner.test_simulation.Faulty", "kind": "nan", "at": 2}
    good = {"name": "cv", "_target_": "experts.baselines.ConstantVelocityPlanner"}
    jobs = [SimulationJob(ref=refs[0], planner=bad, **common), SimulationJob(ref=refs[1], planner=good, **common),
            SimulationJob(ref=refs[2], planner={"name": "x", "_target_": "no.such.Planner"}, **common)]
    results = {r["token"]: r for r in map_jobs(run_job, jobs, worker="sequential", progress=False)}
    assert results[refs[0].token]["status"] == "failed"
    assert "iteration 2: trajectory has 1 non-finite" in results[refs[0].token]["error"]
    assert results[refs[1].token]["status"] == "ok"
    assert results[refs[2].token]["status"] == "failed" and "no.such.Planner" in results[refs[2].token]["error"]
    meta, metrics, rollout = load_scenario_result(scenario_path(tmp_path, refs[0].token))
    assert meta["status"] == "failed" and metrics == {} and rollout.num_samples == 3
    meta, metrics, rollout = load_scenario_result(scenario_path(tmp_path, refs[2].token))
    assert meta["status"] == "failed" and rollout is None


def test_rollout_round_trip(junction_dataset: Path, tmp_path: Path):
    refs = list_scenarios(junction_dataset / "nuplan-v1.1" / "splits" / "corner_cases",
                          ScenarioFilter(scenario_types=("stopping_with_lead",)))
    job = SimulationJob(ref=refs[0], planner={"_target_": "experts.idm_planner.IDMPlanner"}, run_dir=str(tmp_path),
                        maps_root=str(junction_dataset / "maps"), agents="log_replay", num_iterations=31)
    assert run_job(job)["status"] == "ok"
    meta, metrics, rollout = load_scenario_result(scenario_path(tmp_path, refs[0].token))
    assert meta["planner"] == "IDMPlanner" and meta["challenge"] == "closed_loop_nonreactive_agents"
    assert rollout.ego.pose.shape == (30, 3) and rollout.plan_pose.shape == (30, 10, 3)
    plans = rollout.planned_trajectories()
    assert len(plans) == 30 and all(np.all(np.diff(p.time_s) > 0) for p in plans)
    assert set(metrics) >= {"no_ego_at_fault_collisions", "ego_progress_along_expert_route"}
