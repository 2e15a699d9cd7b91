"""The run folder: what a simulation run leaves on disk, and how it is read back.

```
RUN_DIR/
  config.yaml            the resolved configuration
  run.json               git sha, package versions, seed, hardware, start / end times, counts
  scenarios/<token>.npz  one per scenario, written atomically (temp file + os.replace): the rollout arrays,
                         the metric names / values and a JSON ``meta`` (status, error, log, type, latency)
  metrics.parquet        one row per scenario and metric (see :data:`ROW_COLUMNS`)
  aggregate.parquet/.csv nuPlan's weighted-average table (per type + final_score)
```

A scenario is done when its ``.npz`` exists: the file only appears complete (``os.replace`` is atomic), so a run
killed at any moment resumes by skipping those files; leftover ``*.tmp`` files are ignored and removed.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from sim.errors import DataError
from sim.scenario import EgoStates, Tracks, TrafficLights

SCENARIO_DIR = "scenarios"
TMP_SUFFIX = ".tmp"
#: Columns of ``metrics.parquet`` (one row per scenario and metric).
#: ``scenario`` is the scenario token; the names are those :func:`sim.metrics.aggregate` reads.
ROW_COLUMNS = ("scenario", "log_name", "scenario_type", "planner_name", "agents", "challenge", "metric", "score",
               "status", "error", "latency_mean_s", "latency_p90_s", "latency_max_s", "num_samples",
               "metrics_version")

_EGO_FIELDS = ("time_s", "pose", "velocity", "acceleration", "steering_angle", "yaw_rate")
_TRACK_FIELDS = ("token", "category", "size", "pose", "velocity", "valid")


def scenario_path(run_dir: str | Path, token: str) -> Path:
    return Path(run_dir) / SCENARIO_DIR / f"{token}.npz"


def is_complete(run_dir: str | Path, token: str) -> bool:
    """True when the scenario's result file exists (it is written atomically, so existing means whole)."""
    return scenario_path(run_dir, token).is_file()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def latency_stats(latency_s: np.ndarray | None) -> dict[str, float]:
    lat = np.asarray([] if latency_s is None else latency_s, np.float64)
    lat = lat[np.isfinite(lat)]
    if len(lat) == 0:
        return {"latency_mean_s": float("nan"), "latency_p90_s": float("nan"), "latency_max_s": float("nan")}
    return {"latency_mean_s": float(lat.mean()), "latency_p90_s": float(np.percentile(lat, 90)),
            "latency_max_s": float(lat.max())}


def save_scenario_result(run_dir: str | Path, meta: dict, rollout: object | None = None,
                         metrics: dict[str, float] | None = None) -> Path:
    """Write one scenario's rollout (a :class:`sim.runner.simulation.Rollout` or None), metrics and ``meta``.

    ``meta`` must hold ``scenario_token``; status / error / log / type / latency stats are added from the rollout.
    """
    meta = dict(meta)
    arrays: dict[str, np.ndarray] = {}
    if rollout is not None:
        ego, tracks, lights = rollout.ego, rollout.tracks, rollout.traffic_lights
        for f in _EGO_FIELDS:
            arrays[f"ego_{f}"] = np.asarray(getattr(ego, f))
        for f in _TRACK_FIELDS:
            arrays[f"tracks_{f}"] = np.asarray(getattr(tracks, f))
        arrays["tl_lane_connector_id"] = lights.lane_connector_id
        arrays["tl_status"] = lights.status
        arrays["plan_time_s"] = rollout.plan_time_s
        arrays["plan_pose"] = rollout.plan_pose
        arrays["latency_s"] = rollout.latency_s
        meta.setdefault("planner", rollout.planner_name)
        meta.update(status=rollout.status, error=rollout.error, agents=rollout.agents,
                    log_name=rollout.log_name, scenario_type=rollout.scenario_type,
                    num_iterations=rollout.num_iterations, num_samples=rollout.num_samples)
        meta.update(latency_stats(rollout.latency_s))
    names = sorted((metrics or {}).keys())
    arrays["metric_names"] = np.array(names, dtype=str)
    arrays["metric_values"] = np.array([float(metrics[n]) for n in names], np.float64)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True, default=_json_default))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path = scenario_path(run_dir, meta["scenario_token"])
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_scenario_result(path: str | Path) -> tuple[dict, dict[str, float], object | None]:
    """``(meta, metrics, rollout or None)`` from a scenario ``.npz``."""
    from sim.runner.simulation import Rollout

    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise DataError(path, f"unreadable scenario result ({err})", "an .npz written by the runner") from err
    meta = json.loads(str(data["meta"]))
    metrics = {str(n): float(v) for n, v in zip(data["metric_names"], data["metric_values"], strict=True)}
    rollout = None
    if "ego_pose" in data:
        ego = EgoStates(*(data[f"ego_{f}"] for f in _EGO_FIELDS))
        tracks = Tracks(*(data[f"tracks_{f}"] for f in _TRACK_FIELDS))
        lights = TrafficLights(data["tl_lane_connector_id"], data["tl_status"])
        rollout = Rollout(meta["scenario_token"], meta["log_name"], meta["scenario_type"], meta["planner"],
                          meta["agents"], int(meta["num_iterations"]), ego, tracks, lights, data["plan_time_s"],
                          data["plan_pose"], data["latency_s"], meta["status"], meta["error"])
    return meta, metrics, rollout


def metric_rows(meta: dict, metrics: dict[str, float], score_metrics: Sequence[str]) -> list[dict]:
    """Rows of ``metrics.parquet`` for one scenario.

    Every computed metric (scores and statistics) gets a row. A failed scenario gets a row per scoring metric of
    its challenge with score NaN, so it stays visible and the aggregate can count it.
    """
    base = {"scenario": meta["scenario_token"], "planner_name": meta.get("planner"),
            "metrics_version": meta.get("metrics_version", "")}
    base.update({k: meta.get(k) for k in ("log_name", "scenario_type", "agents", "challenge", "status", "error")})
    base.update({k: meta.get(k, float("nan")) for k in ("latency_mean_s", "latency_p90_s", "latency_max_s")})
    base["num_samples"] = int(meta.get("num_samples", 0))
    if meta.get("status") == "ok" and metrics:
        items = sorted(metrics.items())
    else:
        items = [(m, float("nan")) for m in score_metrics]
    return [{**base, "metric": name, "score": float(value)} for name, value in items]


def collect_rows(run_dir: str | Path, tokens: Iterable[str], score_metrics: Sequence[str]) -> list[dict]:
    rows: list[dict] = []
    for token in tokens:
        meta, metrics, _ = load_scenario_result(scenario_path(run_dir, token))
        rows += metric_rows(meta, metrics, score_metrics)
    return rows


def write_metrics_table(run_dir: str | Path, rows: list[dict]):
    """``metrics.parquet`` from the rows (sorted by token, then metric); returns the DataFrame."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(ROW_COLUMNS))
    df = df.sort_values(["scenario", "metric"], kind="stable").reset_index(drop=True)
    _atomic_parquet(df, Path(run_dir) / "metrics.parquet")
    return df


def _atomic_parquet(df, path: Path) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def write_aggregate(run_dir: str | Path, table) -> None:
    """``aggregate.parquet`` and ``aggregate.csv`` (the weighted-average table)."""
    _atomic_parquet(table, Path(run_dir) / "aggregate.parquet")
    atomic_write_bytes(Path(run_dir) / "aggregate.csv", table.to_csv(index=False).encode())


def clean_temp_files(run_dir: str | Path) -> int:
    """Remove ``*.tmp`` leftovers of a killed run; returns how many."""
    n = 0
    for p in (Path(run_dir) / SCENARIO_DIR).glob(f"*{TMP_SUFFIX}"):
        p.unlink(missing_ok=True)
        n += 1
    return n


def clear_results(run_dir: str | Path) -> None:
    """Forget a previous run in ``run_dir`` (scenario files and tables), for a fresh, non-resumed run."""
    d = Path(run_dir)
    for p in list((d / SCENARIO_DIR).glob("*.npz")) + list((d / SCENARIO_DIR).glob(f"*{TMP_SUFFIX}")):
        p.unlink(missing_ok=True)
    for name in ("metrics.parquet", "aggregate.parquet", "aggregate.csv", "run.json"):
        (d / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------- run description

def git_sha(repo: str | Path | None = None) -> str | None:
    root = Path(repo) if repo is not None else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions(names: Iterable[str] = ("numpy", "scipy", "shapely", "pyarrow", "pandas", "hydra-core",
                                              "omegaconf", "ray", "distiplan")) -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = None
    return out


def hardware() -> dict[str, object]:
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def write_run_info(run_dir: str | Path, info: dict) -> None:
    """``run.json``: ``info`` plus git sha, package versions and hardware."""
    full = {"git_sha": git_sha(), "packages": package_versions(), "hardware": hardware(), **info}
    atomic_write_bytes(Path(run_dir) / "run.json",
                       json.dumps(full, indent=2, sort_keys=True, default=_json_default).encode())


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def prepare_run_dir(run_dir: str | Path, settings: dict, resume: bool, config: dict | None = None) -> None:
    """Create ``run_dir`` for a run with ``settings`` (what decides its results) and write ``config.yaml``.

    The settings' digest is stamped into the folder. With ``resume`` a folder made with other settings is refused
    (a :class:`DataError`) and leftover temp files are dropped; without it earlier results are cleared.
    ``config`` (default: ``settings``) is what ``config.yaml`` shows.
    """
    import hashlib
    import json

    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    stamp = run_dir / ".config_hash"
    if resume and stamp.is_file() and stamp.read_text().strip() != digest:
        raise DataError(run_dir / "config.yaml", "resume=true with simulation settings that differ from the run's",
                        "the same planner / simulation settings as the interrupted run (or resume=false)")
    if resume:
        clean_temp_files(run_dir)
    else:
        clear_results(run_dir)
    text = OmegaConf.to_yaml(OmegaConf.create(settings if config is None else config))
    atomic_write_bytes(run_dir / "config.yaml", text.encode())
    atomic_write_bytes(stamp, digest.encode())
