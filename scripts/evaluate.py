"""``distiplan evaluate [planners=[idm,pdm]] [modes=[reactive]] [split=corner_cases] [resume=true]``.

Every planner x agent mode (log_replay = CLS-NR, reactive = CLS-R) on the split's scenarios, all jobs in one
worker map; one run folder per planner x mode (``OUT/<planner>-<mode>``, the layout of ``distiplan simulate``),
then the summary over all of them:

```
OUT/
  <planner>-<mode>/      config.yaml, run.json, scenarios/*.npz, metrics.parquet, aggregate.parquet/.csv
  scenarios.parquet      one row per planner, mode and scenario: score, status, error, metric values
  summary.parquet/.csv   per planner, mode and family (+ 'all'): n, n_failed, score, per-metric means
  run.json               git sha, hardware, packages, times, counts
  report.html            the self-contained report (tables, failures, animations)
```
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from sim.errors import DataError, NotFoundError
from sim.layout import split_dir
from sim.runner.results import prepare_run_dir

MODES = ("log_replay", "reactive")
#: Settings a scenario's result depends on (a resumed run folder must have been made with the same ones).
_RESULT_KEYS = ("split", "planner", "agents", "ego_controller", "seed", "num_iterations", "history_s",
                "step_time_budget_s", "point_cloud", "replay_tagged")


def _planner_config(entry: object) -> dict:
    """A planner given by name (``configs/planner/<name>.yaml``) or inline (a mapping with ``_target_``)."""
    if isinstance(entry, dict):
        if "_target_" not in entry:
            raise DataError(None, f"planner entry {entry} has no _target_", "a planner name or a _target_ mapping")
        return dict(entry)
    import configs

    folder = Path(configs.__file__).parent / "planner"
    path = folder / f"{entry}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in folder.glob("*.yaml"))
        raise NotFoundError(path, f"unknown planner '{entry}'", f"one of {have}")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    cfg.setdefault("name", str(entry))
    return cfg


def _split_dir(cfg: DictConfig) -> Path:
    return split_dir(cfg.paths.data_root, str(cfg.split))


def _list_refs(cfg: DictConfig) -> list:
    from sim.nuplan_db.filter import DEFAULT_SCENARIO_TYPE, ScenarioFilter
    from sim.nuplan_db.reader import list_scenarios

    raw = OmegaConf.to_container(cfg.scenario_filter, resolve=True) or {}
    refs = list_scenarios(_split_dir(cfg), ScenarioFilter.from_mapping({k: v for k, v in raw.items()
                                                                        if v is not None}))
    if not cfg.include_untagged:
        refs = [r for r in refs if r.scenario_type != DEFAULT_SCENARIO_TYPE]
    if not refs:
        raise NotFoundError(_split_dir(cfg), "no scenario matches the scenario filter", "at least one scenario")
    return refs


def _as_list(value: object) -> list:
    """``planners=idm`` means ``planners=[idm]``."""
    if value is None:
        return []
    return [value] if isinstance(value, (str, dict)) else list(value)


def _families() -> dict[str, str]:
    """Scenario type (the generator's tag) -> family name, when the synthetic generator is installed."""
    try:
        from sim.synth.families import FAMILIES
    except ImportError:
        return {}
    return {f.tag: name for name, f in FAMILIES.items()}


def run(cfg: DictConfig) -> int:
    t_start = time.perf_counter()
    from sim.runner.workers import map_jobs, prestart

    resolved = OmegaConf.to_container(cfg, resolve=True)
    worker = resolved["worker"]
    prestart(str(worker["kind"]))
    from sim.runner.job import SimulationJob, planner_name, run_job
    from sim.runner.results import utc_now

    started = utc_now()
    planners = [_planner_config(p) for p in _as_list(resolved["planners"])]
    names = [planner_name(p) for p in planners]
    if len(set(names)) != len(names):
        raise DataError(None, f"planners={names} names a planner twice", "distinct planner names")
    modes = [str(m) for m in _as_list(resolved["modes"])]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes or not planners:
        raise DataError(None, f"planners={names} modes={modes}", f"at least one planner and modes from {MODES}")
    refs = _list_refs(cfg)
    out = Path(cfg.out)
    map_cache = str(Path(cfg.paths.cache_root) / "maps")
    runs = []  # (planner name, agents, run dir)
    jobs = []
    for planner, name in zip(planners, names, strict=True):
        for agents in modes:
            run_dir = out / f"{name}-{agents}"
            settings = {"split": str(cfg.split), "planner": planner, "agents": agents,
                        **{k: resolved[k] for k in _RESULT_KEYS if k not in ("split", "planner", "agents")}}
            extra = {"scenario_filter": resolved["scenario_filter"], "paths": resolved["paths"]}
            prepare_run_dir(run_dir, settings, bool(cfg.resume), config={"command": "evaluate", **settings, **extra})
            runs.append((name, agents, run_dir))
            jobs += [SimulationJob(ref=r, planner=planner, run_dir=str(run_dir), maps_root=str(cfg.paths.maps_root),
                                   map_cache_root=map_cache, agents=agents, ego_controller=str(cfg.ego_controller),
                                   replay_tagged=bool(cfg.replay_tagged),
                                   num_iterations=cfg.num_iterations, history_s=float(cfg.history_s),
                                   step_time_budget_s=cfg.step_time_budget_s, point_cloud=bool(cfg.point_cloud),
                                   seed=int(cfg.seed)) for r in refs]
    from sim.runner.results import is_complete

    todo = [j for j in jobs if not (cfg.resume and is_complete(j.run_dir, j.ref.token))]
    print(f"evaluate: {len(refs)} scenarios x {len(names)} planners x {len(modes)} modes = {len(jobs)} runs "
          f"({len(jobs) - len(todo)} already done) | worker {worker['kind']} -> {out}")
    summaries = map_jobs(run_job, todo, worker=str(worker["kind"]), num_workers=worker.get("num_workers"),
                         progress=bool(cfg.progress), description="evaluating", ray_address=worker.get("address"))

    metrics = _write_run_tables(cfg, runs, refs, started)
    from sim.report.summary import scenario_scores, summarize

    scenarios = scenario_scores(metrics, _families())
    summary = summarize(scenarios, planners=names)
    _write_tables(out, scenarios, summary)
    if cfg.print_table:
        _print_table(summary)
    n_failed = int((scenarios["status"] != "ok").sum())
    for r in scenarios[scenarios["status"] != "ok"].head(20).itertuples():
        print(f"failed: {r.planner} {r.mode} {r.scenario} ({r.family}): {r.error}")
    from sim.runner.results import write_run_info

    info = {"command": "evaluate", "split": str(cfg.split), "planners": names, "modes": modes, "seed": int(cfg.seed),
            "start_time": started, "num_scenarios": len(refs), "num_runs": len(jobs),
            "num_simulated_now": len(summaries), "num_failed": n_failed, "worker": worker}
    if cfg.report.html:
        animations = _animations(cfg, scenarios, runs, refs, worker) if cfg.report.animations else []
        info.update(end_time=utc_now(), wall_s=time.perf_counter() - t_start)
        write_run_info(out, info)
        path = _write_report(cfg, out, summary, scenarios, animations, resolved)
        print(f"report: {path} ({path.stat().st_size / 1e6:.2f} MB)")
    else:
        info.update(end_time=utc_now(), wall_s=time.perf_counter() - t_start)
        write_run_info(out, info)
    print(f"summary: {out / 'summary.parquet'} ({len(jobs)} runs, {n_failed} failed, "
          f"{time.perf_counter() - t_start:.1f} s)")
    return 0


def _write_run_tables(cfg: DictConfig, runs: list, refs: list, started: str):
    """Each run folder's metrics.parquet, aggregate and run.json (as ``distiplan simulate`` writes them);
    returns all metric rows."""
    import pandas as pd

    from sim.metrics.aggregate import aggregate
    from sim.runner.results import collect_rows, utc_now, write_aggregate, write_metrics_table, write_run_info
    from sim.runner.scoring import SCORE_METRICS, challenge_for

    tokens = sorted(r.token for r in refs)
    frames = []
    for name, agents, run_dir in runs:
        challenge = challenge_for(agents, str(cfg.ego_controller))
        df = write_metrics_table(run_dir, collect_rows(run_dir, tokens, SCORE_METRICS[challenge]))
        table = aggregate(df, challenge)
        write_aggregate(run_dir, table)
        write_run_info(run_dir, {"command": "evaluate", "seed": int(cfg.seed), "start_time": started,
                                 "end_time": utc_now(), "num_scenarios": len(tokens),
                                 "num_failed": len(table.attrs.get("failed_scenarios", [])),
                                 "challenge": challenge, "planner": name, "agents": agents})
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _write_tables(out: Path, scenarios, summary) -> None:
    import io

    from sim.runner.results import atomic_write_bytes

    for df, name in ((scenarios, "scenarios"), (summary, "summary")):
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(out / f"{name}.parquet", buf.getvalue())
    atomic_write_bytes(out / "summary.csv", summary.to_csv(index=False).encode())


def _print_table(summary) -> None:
    """Score per family (rows) and planner x mode (columns); the best of each mode in bold."""
    from rich.console import Console
    from rich.table import Table

    from sim.report.summary import ALL, family_table

    table = family_table(summary)
    n = family_table(summary, "n")
    t = Table(title="evaluate: score per family")
    t.add_column("family", justify="left")
    t.add_column("n", justify="right")
    for mode, planner in table.columns:
        t.add_column(f"{mode}\n{planner}", justify="right", min_width=max(6, len(str(planner))))
    for family, row in table.iterrows():
        cells = []
        for mode, planner in table.columns:
            v = row[(mode, planner)]
            top = row[mode].max()
            text = "-" if v != v else f"{v:.3f}"
            cells.append(f"[bold]{text}[/bold]" if v == top and row[mode].notna().sum() > 1 else text)
        count = n.loc[family].max()
        t.add_row(str(family), "-" if count != count else str(int(count)), *cells,
                  style="bold" if family == ALL else None,
                  end_section=len(table) > 1 and family == table.index[-2])
    width = 16 + max(len(str(f)) for f in table.index) + sum(3 + max(6, len(str(p))) for _, p in table.columns)
    Console(width=max(100, width)).print(t)


def _animations(cfg: DictConfig, scenarios, runs: list, refs: list, worker: dict) -> list:
    """GIFs of the best and the worst planner of each family (drawn in the workers)."""
    from sim.report.animation import GifJob, render_gif_job
    from sim.report.html import Animation
    from sim.report.summary import pick_showcase, shortfalls
    from sim.runner.scoring import challenge_for
    from sim.runner.workers import map_jobs

    picks = pick_showcase(scenarios, mode=str(cfg.report.animation_mode), exclude=_as_list(cfg.report.exclude))
    if picks.empty:
        return []
    from sim.report.summary import mode_label

    run_dir = {(name, mode_label(challenge_for(agents, str(cfg.ego_controller)))): d for name, agents, d in runs}
    by_token = {r.token: r for r in refs}
    wanted, jobs = [], []
    r = cfg.report
    for p in picks.itertuples():
        for role, planner, score in (("best", p.best, p.best_score), ("worst", p.worst, p.worst_score)):
            if planner is None or planner != planner:
                continue
            key = (p.family, role)
            details = shortfalls(scenarios, planner, p.mode, p.scenario)
            wanted.append((key, Animation(p.family, p.mode, p.scenario, planner, role, float(score),
                                          details=details)))
            jobs.append(GifJob(by_token[p.scenario], str(run_dir[(planner, p.mode)]), str(cfg.paths.maps_root),
                               str(Path(cfg.paths.cache_root) / "maps"), float(cfg.history_s), int(r.every),
                               float(r.fps), int(r.size_px), float(r.radius), key))
    results = {res["key"]: res for res in map_jobs(render_gif_job, jobs, worker=str(worker["kind"]),
                                                   num_workers=worker.get("num_workers"), progress=False,
                                                   ray_address=worker.get("address"))}
    from dataclasses import replace

    out = []
    for key, anim in wanted:
        res = results.get(tuple(key), {})
        out.append(replace(anim, gif=res.get("gif"), note=res.get("note", "not drawn")))
    return out


def _write_report(cfg: DictConfig, out: Path, summary, scenarios, animations: list, resolved: dict) -> Path:
    from sim.report.collect import read_run_info
    from sim.report.html import write_report

    info = read_run_info(out)
    hw = info.get("hardware", {})
    meta = {"split": str(cfg.split), "date (UTC)": info.get("start_time"), "git sha": info.get("git_sha") or "?",
            "planners": info.get("planners"), "modes": [{"log_replay": "CLS-NR", "reactive": "CLS-R"}.get(m, m)
                                                        for m in info.get("modes", [])],
            "CLS-R tagged agents": "log replay (the corner case's hazard stays scripted)" if cfg.replay_tagged
            else "IDM agents (nuPlan's CLS-R)",
            "scenarios": info.get("num_scenarios"), "scenario runs": info.get("num_runs"),
            "failed runs": info.get("num_failed"), "wall time": f"{info.get('wall_s', 0.0):.1f} s",
            "worker": info.get("worker"), "hardware": hw, "packages": info.get("packages"), "output": str(out)}
    config_text = OmegaConf.to_yaml(OmegaConf.create(resolved))
    return write_report(out / "report.html", summary, scenarios, title=f"distiplan evaluation — {cfg.split}",
                        meta=meta, config_text=config_text, animations=animations)
