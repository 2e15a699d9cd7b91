"""``distiplan simulate planner=idm agents=reactive split=corner_cases worker=pool [resume=true] [video=true]``.

Lists the split's scenarios (nuPlan's scenario filter), simulates each with the planner (one job per scenario on
the chosen worker), writes the run folder (see :mod:`sim.runner.results`) and prints the aggregate table.
Imports are lazy so the first step starts quickly.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.errors import DataError, NotFoundError
from sim.layout import split_dir
from sim.runner.results import prepare_run_dir

#: Config keys that may change between a run and its resumption.
_RESUME_FREE = ("resume", "progress", "print_table", "video", "video_scenarios", "worker")


def _settings(resolved: dict) -> dict:
    """What decides a run's results (resume-free keys such as ``progress`` or ``worker`` left out)."""
    return {k: v for k, v in resolved.items() if k not in _RESUME_FREE}


def _scenario_filter(cfg: DictConfig):
    from sim.nuplan_db.filter import ScenarioFilter

    raw = OmegaConf.to_container(cfg.scenario_filter, resolve=True) or {}
    return ScenarioFilter.from_mapping({k: v for k, v in raw.items() if v is not None})


def _split_dir(cfg: DictConfig) -> Path:
    return split_dir(cfg.paths.data_root, str(cfg.split))


def run(cfg: DictConfig) -> int:
    t_start = time.perf_counter()
    from sim.runner.workers import map_jobs, prestart

    prestart(str(cfg.worker.kind))
    from sim.runner.job import SimulationJob, planner_name, run_job
    from sim.runner.results import (
        collect_rows,
        is_complete,
        utc_now,
        write_aggregate,
        write_metrics_table,
        write_run_info,
    )
    from sim.runner.scoring import SCORE_METRICS, challenge_for

    started = utc_now()
    resolved = OmegaConf.to_container(cfg, resolve=True)
    planner_cfg = resolved["planner"]
    worker = resolved["worker"]
    run_dir = Path(cfg.out)
    if str(cfg.agents) not in ("reactive", "log_replay"):
        raise DataError(None, f"agents={cfg.agents}", "agents=reactive or agents=log_replay")

    from sim.nuplan_db.reader import list_scenarios

    refs = list_scenarios(_split_dir(cfg), _scenario_filter(cfg))
    if not cfg.include_untagged:
        from sim.nuplan_db.filter import DEFAULT_SCENARIO_TYPE

        refs = [r for r in refs if r.scenario_type != DEFAULT_SCENARIO_TYPE]
    if not refs:
        raise NotFoundError(_split_dir(cfg), "no scenario matches the scenario filter", "at least one scenario")
    prepare_run_dir(run_dir, _settings(resolved), bool(cfg.resume), config=resolved)
    challenge = challenge_for(str(cfg.agents), str(cfg.ego_controller))
    map_cache = str(Path(cfg.paths.cache_root) / "maps")
    jobs = [SimulationJob(ref=r, planner=planner_cfg, run_dir=str(run_dir), maps_root=str(cfg.paths.maps_root),
                          map_cache_root=map_cache, agents=str(cfg.agents), ego_controller=str(cfg.ego_controller),
                          replay_tagged=bool(cfg.replay_tagged),
                          num_iterations=cfg.num_iterations, history_s=float(cfg.history_s),
                          step_time_budget_s=cfg.step_time_budget_s, point_cloud=bool(cfg.point_cloud),
                          seed=int(cfg.seed))
            for r in refs]
    todo = [j for j in jobs if not (cfg.resume and is_complete(run_dir, j.ref.token))]
    name = planner_name(planner_cfg)
    print(f"simulate: {len(refs)} scenarios ({len(refs) - len(todo)} already done) | planner {name} | "
          f"agents {cfg.agents} | {challenge} | worker {worker['kind']} -> {run_dir}")
    summaries = map_jobs(run_job, todo, worker=worker["kind"], num_workers=worker.get("num_workers"),
                         progress=bool(cfg.progress), ray_address=worker.get("address"))

    tokens = sorted(r.token for r in refs)
    rows = collect_rows(run_dir, tokens, SCORE_METRICS[challenge])
    df = write_metrics_table(run_dir, rows)
    from sim.metrics.aggregate import aggregate, final_score

    table = aggregate(df, challenge)
    write_aggregate(run_dir, table)
    failed = list(table.attrs.get("failed_scenarios", []))
    write_run_info(run_dir, {"seed": int(cfg.seed), "start_time": started, "end_time": utc_now(),
                             "wall_s": time.perf_counter() - t_start, "num_scenarios": len(refs),
                             "num_simulated_now": len(summaries), "num_failed": len(failed), "challenge": challenge,
                             "planner": name, "agents": str(cfg.agents), "worker": worker})
    if cfg.print_table:
        _print_table(table, challenge, name)
    for f in failed:
        err = df.loc[df["scenario"] == f, "error"].iloc[0]
        print(f"failed: {f}: {err}")
    print(f"{challenge} score = {final_score(table):.4f} ({len(refs)} scenarios, {len(failed)} failed) -> "
          f"{run_dir / 'metrics.parquet'}")
    if cfg.video:
        _write_videos(cfg, run_dir, refs[: int(cfg.video_scenarios)])
    return 0


#: Short column titles for the printed table.
_SHORT = {"no_ego_at_fault_collisions": "collisions", "drivable_area_compliance": "drivable",
          "driving_direction_compliance": "direction", "ego_is_making_progress": "making prog.",
          "ego_progress_along_expert_route": "progress", "time_to_collision_within_bound": "TTC",
          "speed_limit_compliance": "speed lim.", "ego_is_comfortable": "comfort",
          "planner_expert_average_l2_error_within_bound": "ADE", "planner_expert_final_l2_error_within_bound": "FDE",
          "planner_expert_average_heading_error_within_bound": "AHE",
          "planner_expert_final_heading_error_within_bound": "FHE", "planner_miss_rate_within_bound": "miss rate"}


def _print_table(table, challenge: str, planner: str) -> None:
    """Per scenario type and final row: score and the mean of each metric."""
    from rich.console import Console
    from rich.table import Table

    rows = table[table["scenario"] == table["scenario_type"]]  # per type + final_score
    metric_cols = [c for c in table.columns if c in _SHORT]
    t = Table(title=f"{planner} | {challenge}")
    for name, justify in [("scenario type", "left"), ("n", "right"), ("score", "right")]:
        t.add_column(name, justify=justify)
    for m in metric_cols:
        t.add_column(_SHORT[m], justify="right")
    for _, r in rows.iterrows():
        n = max(int(r["num_scenarios"]), 1)
        is_final = r["scenario"] == "final_score"
        vals = [f"{(r[m] if is_final else r[m] / n):.3f}" if r[m] == r[m] else "-" for m in metric_cols]
        t.add_row(str(r["scenario"]), str(int(r["num_scenarios"])), f"{r['score']:.4f}", *vals,
                  style="bold" if is_final else None)
    Console(width=max(120, 40 + 12 * len(metric_cols))).print(t)


def _write_videos(cfg: DictConfig, run_dir: Path, refs) -> None:
    from sim.nuplan_db.reader import load_scenario
    from sim.nuplan_map.loader import load_map
    from sim.runner.results import load_scenario_result, scenario_path
    from sim.runner.video import write_rollout_video

    for ref in refs:
        _, _, rollout = load_scenario_result(scenario_path(run_dir, ref.token))
        if rollout is None:
            continue
        scenario = load_scenario(ref, history_s=float(cfg.history_s))
        map_api = load_map(cfg.paths.maps_root, scenario.map_location, scenario.map_version or None,
                           Path(cfg.paths.cache_root) / "maps")
        out = write_rollout_video(scenario, map_api, rollout, run_dir / "videos" / f"{ref.token}.mp4")
        print(f"video: {out}")
