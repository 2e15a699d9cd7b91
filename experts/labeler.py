"""Teacher labels: for sampled timesteps of training scenarios, what the network sees and what it must learn.

Per sample (one scenario iteration, every ``sample_interval_s``):

- inputs: the current ego state (global pose, velocities, steering), the ego history (2 s at 0.1 s, ego frame),
  the tracked boxes now (ego frame: pose, size, velocity, category, token), the traffic lights now, the route,
  the map location / version (the feature builder rasterises the map and simulates the LiDAR from these);
- imitation targets: the logged future (8 s at 0.1 s, ego frame, with a validity mask) and the PDM expert's
  trajectory (8 s at 0.1 s, ego frame);
- distillation targets: the per-rule scores ``(V, R)`` of every vocabulary trajectory (float16) and the PDM
  score ``(V,)``, from the shared scorer with the *logged* future of the other agents (non-reactive, as
  NAVSIM), plus the same scores of the two references (logged future, expert) scored in the same batch.

Cache layout (``<out>/labels-<config hash>/``): ``config.json``; ``shards/shard-00000.npz`` … one per
``shard_size`` scenarios, each written to a temporary name and renamed (atomic); ``manifest.parquet``
(sample token -> shard, row); ``failures.csv`` (every failed scenario / sample with its error). A run that is
killed resumes where it stopped: finished shards are skipped, and the shards of a resumed run are the same
bytes as those of an uninterrupted run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from experts.vocabulary import Vocabulary, VocabularyConfig, build_vocabulary, collect_futures, vocabulary_path
from sim.errors import DataError
from sim.geometry import to_global, to_local
from sim.nuplan_db.filter import ScenarioFilter, ScenarioRef
from sim.planning import Observation, PlannerInitialization, PlannerInput
from sim.scenario import Scenario

F64 = npt.NDArray[np.float64]

#: Bump when the sample content changes: caches of another version get another directory.
LABEL_VERSION = 1
#: Ego history kept per sample (0.1 s steps, current included).
HISTORY_STEPS = 21
#: Imitation horizon (0.1 s steps after the current one).
FUTURE_STEPS = 80


@dataclass(frozen=True)
class LabelConfig:
    """Everything that determines the cache content (and its hash), plus run options that do not."""

    data_root: str
    maps_root: str
    split: str = "train"
    out: str = "cache"
    sample_interval_s: float = 1.0
    shard_size: int = 8  # scenarios per shard
    vocabulary: VocabularyConfig = field(default_factory=VocabularyConfig)
    vocabulary_file: str | None = None
    expert: bool = True
    scenario_filter: dict = field(default_factory=dict)
    include_untagged: bool = False
    # run options (not hashed)
    worker: str = "pool"
    num_workers: int | None = None
    max_failure_rate: float = 0.1
    progress: bool = True
    map_cache_root: str | None = None

    def content_key(self, vocabulary_digest: str) -> dict:
        from sim.metrics.pdm_score import RULES

        return {"version": LABEL_VERSION, "split": self.split, "sample_interval_s": self.sample_interval_s,
                "shard_size": self.shard_size, "vocabulary": vocabulary_digest, "expert": self.expert,
                "scenario_filter": self.scenario_filter, "include_untagged": self.include_untagged,
                "rules": list(RULES),
                "data_root": str(Path(self.data_root).resolve())}


def config_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- vocabulary
def ensure_vocabulary(cfg: LabelConfig, refs: list[ScenarioRef]) -> tuple[Vocabulary, Path]:
    """The configured vocabulary file, or the one built from the split's logged futures (built and saved
    under ``<out>/vocabulary/`` when missing). Returns the vocabulary and its file."""
    if cfg.vocabulary_file:
        return Vocabulary.load(cfg.vocabulary_file), Path(cfg.vocabulary_file)
    from sim.nuplan_db.reader import load_scenario

    tag = hashlib.sha256("|".join(sorted(r.token for r in refs)).encode()).hexdigest()[:10]
    path = vocabulary_path(Path(cfg.out) / "vocabulary", cfg.vocabulary, f"{cfg.split}-{tag}")
    if path.is_file():
        voc = Vocabulary.load(path)
        if voc.config == cfg.vocabulary:
            return voc, path
    futures = collect_futures((load_scenario(r) for r in refs), cfg.vocabulary)
    voc = build_vocabulary(futures, cfg.vocabulary)
    voc.save(path)
    return voc, path


# ---------------------------------------------------------------------------------------------- one sample
def sample_iterations(scenario: Scenario, interval_s: float, horizon_steps: int) -> list[int]:
    """Iterations 0, k, 2k, … (k = interval / 0.1 s) whose scoring horizon lies inside the scenario."""
    step = max(int(round(interval_s / 0.1)), 1)
    last = scenario.num_iterations - 1 - horizon_steps
    return list(range(0, last + 1, step))


def planner_input(scenario: Scenario, iteration: int, history_steps: int = HISTORY_STEPS) -> PlannerInput:
    """The input a planner would get at ``iteration`` if it had driven exactly as the log."""
    idx = scenario.index(iteration)
    lo = max(idx - history_steps + 1, 0)
    obs = tuple(Observation(scenario.tracks.at(k)) for k in range(lo, idx + 1))
    lights = scenario.traffic_lights.at(idx) if scenario.traffic_lights.status.shape[0] > idx else {}
    return PlannerInput(iteration, float(scenario.ego.time_s[idx]), scenario.ego.slice(lo, idx + 1), obs,
                        {k: v for k, v in lights.items() if v != 3})


def _local_velocity(vel: F64, heading: float) -> F64:
    c, s = np.cos(heading), np.sin(heading)
    return np.stack([c * vel[..., 0] + s * vel[..., 1], -s * vel[..., 0] + c * vel[..., 1]], -1)


def vocabulary_poses(vocab: Vocabulary, origin: F64) -> F64:
    """Vocabulary ``(V, T, 3)`` in the global frame at 0.1 s steps (interpolated if sampled coarser)."""
    traj = vocab.trajectories.astype(np.float64)
    step = int(round(vocab.config.interval_s / 0.1))
    if step > 1:
        t_src = np.arange(0, traj.shape[1] + 1) * step
        full = np.concatenate([np.zeros((len(traj), 1, 3)), traj], 1)
        full[..., 2] = np.unwrap(full[..., 2], axis=1)
        t_dst = np.arange(1, traj.shape[1] * step + 1)
        traj = np.stack([np.stack([np.interp(t_dst, t_src, f[:, c]) for c in range(3)], -1) for f in full])
    return to_global(traj, origin)


def score_candidates(scenario: Scenario, iteration: int, map_api: object, poses: F64) -> tuple[F64, F64]:
    """Per-rule scores ``(K, R)`` and PDM scores ``(K,)`` of global trajectories ``(K, T, 3)`` at 0.1 s after
    the current time, simulated with LQR + bicycle from the logged ego state, scored against the logged
    future of the other objects (non-reactive)."""
    from sim.dynamics.controller import simulate_trajectories
    from sim.metrics.pdm_score import build_scoring_world, score_trajectories

    idx = scenario.index(iteration)
    ego = scenario.ego.slice(idx, idx + 1)
    num = poses.shape[1]
    rollout = simulate_trajectories(ego, poses, 0.1)
    lights = planner_input_lights(scenario, idx)
    world = build_scoring_world(map_api, scenario.route_roadblock_ids, ego,
                                scenario.tracks.time_slice(idx, idx + num + 10), lights,
                                0.1 * np.arange(num + 1), forecast="given")
    scores = score_trajectories(rollout, world)
    return np.asarray(scores.scores, np.float64), np.asarray(scores.pdm_score, np.float64)


def planner_input_lights(scenario: Scenario, idx: int) -> dict[int, int]:
    if scenario.traffic_lights.status.shape[0] <= idx:
        return {}
    return {k: v for k, v in scenario.traffic_lights.at(idx).items() if v != 3}


def label_sample(scenario: Scenario, iteration: int, map_api: object, vocab: Vocabulary,
                 expert: object | None) -> dict[str, np.ndarray]:
    """All arrays of one sample (see the module docstring); ragged parts as per-sample arrays."""
    idx = scenario.index(iteration)
    origin = scenario.ego.pose[idx].copy()
    ego = scenario.ego
    hist_idx = np.clip(np.arange(idx - HISTORY_STEPS + 1, idx + 1), 0, None)
    fut_idx = np.arange(idx + 1, idx + FUTURE_STEPS + 1)
    fut_valid = fut_idx < len(ego)
    fut = to_local(ego.pose[np.minimum(fut_idx, len(ego) - 1)], origin)
    fut[~fut_valid] = np.nan

    now = scenario.tracks.at(idx)
    agents_pose = to_local(now.pose[:, 0], origin) if len(now) else np.zeros((0, 3))
    agents_vel = _local_velocity(np.nan_to_num(now.velocity[:, 0]), origin[2]) if len(now) else np.zeros((0, 2))
    lights = planner_input_lights(scenario, idx)

    vocab_global = vocabulary_poses(vocab, origin)
    n_steps = vocab_global.shape[1]
    refs = [to_global(np.nan_to_num(fut[:n_steps]), origin)]
    expert_local = np.full((FUTURE_STEPS, 3), np.nan)
    if expert is not None:
        expert.initialize(PlannerInitialization(scenario.route_roadblock_ids, scenario.mission_goal, map_api))
        traj = expert.compute_trajectory(planner_input(scenario, iteration))
        t_q = scenario.ego.time_s[idx] + 0.1 * np.arange(1, FUTURE_STEPS + 1)
        expert_global = traj.at(t_q)
        expert_local = to_local(expert_global, origin)
        refs.append(expert_global[:n_steps])
    else:
        refs.append(refs[0])
    rules, pdm = score_candidates(scenario, iteration, map_api, np.concatenate([vocab_global, np.stack(refs)]))
    v = len(vocab)
    return {
        "token": np.array(f"{scenario.token}-{iteration:03d}"),
        "scenario_token": np.array(scenario.token),
        "log_name": np.array(scenario.log_name),
        "map_location": np.array(scenario.map_location),
        "map_version": np.array(scenario.map_version),
        "scenario_type": np.array(scenario.scenario_type),
        "iteration": np.array(iteration, np.int32),
        "time_us": np.array(scenario.time_us[idx], np.int64),
        "ego_pose": origin,
        "ego_velocity": ego.velocity[idx].copy(),
        "ego_acceleration": ego.acceleration[idx].copy(),
        "ego_steering_angle": np.array(ego.steering_angle[idx]),
        "ego_yaw_rate": np.array(ego.yaw_rate[idx]),
        "ego_history": to_local(ego.pose[hist_idx], origin).astype(np.float32),
        "logged_future": fut.astype(np.float32),
        "logged_future_valid": fut_valid,
        "expert_trajectory": expert_local.astype(np.float32),
        "scores": rules[:v].astype(np.float16),
        "pdm_score": pdm[:v].astype(np.float16),
        "reference_scores": rules[v:].astype(np.float16),
        "reference_pdm_score": pdm[v:].astype(np.float16),
        # ragged per sample
        "agent_pose": agents_pose.astype(np.float32),
        "agent_size": now.size.astype(np.float32),
        "agent_velocity": agents_vel.astype(np.float32),
        "agent_category": now.category.astype(np.int8),
        "agent_token": now.token.astype("<U16"),
        "light_connector_id": np.array(sorted(lights), np.int64),
        "light_status": np.array([lights[k] for k in sorted(lights)], np.int8),
        "route_roadblock_ids": np.array(scenario.route_roadblock_ids, np.int64),
    }


#: Keys stored concatenated over samples with ``<group>_offsets`` (n+1,) per ragged group.
RAGGED = {"agent": ("agent_pose", "agent_size", "agent_velocity", "agent_category", "agent_token"),
          "light": ("light_connector_id", "light_status"), "route": ("route_roadblock_ids",)}


def stack_samples(samples: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack per-sample arrays into shard arrays (ragged groups concatenated with offsets)."""
    out: dict[str, np.ndarray] = {}
    ragged = {k for keys in RAGGED.values() for k in keys}
    if not samples:
        return out
    for key in samples[0]:
        if key not in ragged:
            out[key] = np.stack([s[key] for s in samples])
    for group, keys in RAGGED.items():
        lengths = [len(s[keys[0]]) for s in samples]
        out[f"{group}_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        for key in keys:
            out[key] = np.concatenate([s[key] for s in samples])
    return out


def sample_from_shard(shard: dict[str, np.ndarray], row: int) -> dict[str, np.ndarray]:
    """Row ``row`` of a loaded shard, ragged groups cut back out."""
    ragged = {k: g for g, keys in RAGGED.items() for k in keys}
    out = {}
    for key, arr in shard.items():
        if key.endswith("_offsets") or key.startswith(("failed_", "shard_")):  # shard-level arrays
            continue
        if key in ragged:
            off = shard[f"{ragged[key]}_offsets"]
            out[key] = arr[off[row]:off[row + 1]]
        else:
            out[key] = arr[row]
    return out


def load_shard(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------------------------------------- one shard
@dataclass(frozen=True)
class ShardJob:
    """One unit of work: the scenarios of one shard (picklable, small)."""

    shard: int
    refs: tuple[ScenarioRef, ...]
    cache_dir: str
    maps_root: str
    vocabulary_file: str
    sample_interval_s: float
    expert: bool
    map_cache_root: str | None = None


_VOCAB: dict[str, Vocabulary] = {}


def shard_path(cache_dir: str | Path, shard: int) -> Path:
    return Path(cache_dir) / "shards" / f"shard-{shard:05d}.npz"


def label_shard(job: ShardJob) -> dict:
    """Label every sample of the job's scenarios and write the shard atomically. Never raises for bad data:
    failures are recorded in the shard (``failed_token``, ``failed_error``)."""
    from experts.pdm import PDMExpert
    from sim.nuplan_db.reader import load_scenario
    from sim.nuplan_map.loader import load_map

    t0 = time.perf_counter()
    target = shard_path(job.cache_dir, job.shard)
    if target.is_file():
        return {"shard": job.shard, "status": "skipped", "samples": 0, "failures": 0, "seconds": 0.0}
    vocab = _VOCAB.get(job.vocabulary_file)
    if vocab is None:
        vocab = _VOCAB[job.vocabulary_file] = Vocabulary.load(job.vocabulary_file)
    samples, failed_token, failed_error = [], [], []
    horizon = vocab.config.num_poses * int(round(vocab.config.interval_s / 0.1))
    for ref in job.refs:
        try:
            scenario = load_scenario(ref)
            map_api = load_map(job.maps_root, scenario.map_location, scenario.map_version or None,
                               cache_root=job.map_cache_root)
            iterations = sample_iterations(scenario, job.sample_interval_s, horizon)
        except Exception as err:  # noqa: BLE001 — recorded, the run goes on
            failed_token.append(ref.token)
            failed_error.append(_describe(err))
            continue
        for it in iterations:
            try:
                expert = PDMExpert() if job.expert else None
                samples.append(label_sample(scenario, it, map_api, vocab, expert))
            except Exception as err:  # noqa: BLE001
                failed_token.append(f"{scenario.token}-{it:03d}")
                failed_error.append(_describe(err))
    arrays = stack_samples(samples)
    arrays["failed_token"] = np.array(failed_token, dtype="<U64")
    arrays["failed_error"] = np.array(failed_error, dtype="<U400")
    arrays["shard_scenarios"] = np.array([r.token for r in job.refs], dtype="<U16")
    _write_npz_atomic(target, arrays)
    return {"shard": job.shard, "status": "ok", "samples": len(samples), "failures": len(failed_token),
            "seconds": time.perf_counter() - t0, "token": f"shard {job.shard}"}


def _describe(err: BaseException) -> str:
    tb = traceback.extract_tb(err.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}{where}"[:400]


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Deterministic compressed npz (fixed member order and timestamps) via temp file + rename."""
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class LabelReport:
    cache_dir: Path
    num_shards: int
    num_skipped: int
    num_samples: int
    num_failures: int
    seconds: float


def list_split(cfg: LabelConfig) -> list[ScenarioRef]:
    from sim.layout import split_dbs
    from sim.nuplan_db.reader import list_scenarios

    flt = ScenarioFilter.from_mapping(dict(cfg.scenario_filter)) if cfg.scenario_filter else None
    refs = list_scenarios(split_dbs(cfg.data_root, cfg.split), flt)
    if not cfg.include_untagged:  # untagged lidar_pcs: one 'unknown' scenario every 0.05 s of every log
        from sim.nuplan_db.filter import DEFAULT_SCENARIO_TYPE

        refs = [r for r in refs if r.scenario_type != DEFAULT_SCENARIO_TYPE]
    return refs


def run_labeling(cfg: LabelConfig) -> LabelReport:
    """Label the split into ``<out>/labels-<hash>/``; resumes a previous run with the same configuration."""
    from sim.runner.workers import map_jobs

    t0 = time.perf_counter()
    refs = list_split(cfg)
    if not refs:
        raise DataError(Path(cfg.data_root), f"split '{cfg.split}' has no scenario to label",
                        "logs with tagged scenarios (check scenario_filter)")
    vocab, voc_file = ensure_vocabulary(cfg, refs)
    key = cfg.content_key(vocab.digest)
    cache_dir = Path(cfg.out) / f"labels-{config_hash(key)}"
    (cache_dir / "shards").mkdir(parents=True, exist_ok=True)
    for stale in (cache_dir / "shards").glob(".*.tmp*"):  # left by a killed run: never a finished shard
        stale.unlink(missing_ok=True)
    _write_text_atomic(cache_dir / "config.json", json.dumps(
        {**key, "vocabulary_file": str(voc_file.resolve()), "vocabulary_config": asdict(vocab.config),
         "num_scenarios": len(refs)}, indent=2, sort_keys=True, default=str))

    jobs = [ShardJob(i, tuple(refs[a:a + cfg.shard_size]), str(cache_dir), cfg.maps_root, str(voc_file.resolve()),
                     cfg.sample_interval_s, cfg.expert, cfg.map_cache_root)
            for i, a in enumerate(range(0, len(refs), cfg.shard_size))]
    todo = [j for j in jobs if not shard_path(cache_dir, j.shard).is_file()]
    results = map_jobs(label_shard, todo, cfg.worker, cfg.num_workers, cfg.progress, "labeling") if todo else []
    manifest = write_manifest(cache_dir, len(jobs))
    failures = write_failures(cache_dir, len(jobs))
    attempted = len(manifest["token"]) + failures
    if attempted and failures / attempted > cfg.max_failure_rate:
        raise DataError(cache_dir / "failures.csv", f"{failures} of {attempted} samples/scenarios failed",
                        f"a failure rate <= max_failure_rate={cfg.max_failure_rate}")
    del results  # shard files are the results; the tables are rebuilt from them in shard order
    return LabelReport(cache_dir, len(jobs), len(jobs) - len(todo), len(manifest["token"]), failures,
                       time.perf_counter() - t0)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_manifest(cache_dir: Path, num_shards: int) -> dict[str, np.ndarray]:
    """``manifest.parquet``: one row per sample (token, scenario token, log, iteration, shard, row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: dict[str, list] = {"token": [], "scenario_token": [], "log_name": [], "map_location": [],
                             "iteration": [], "shard": [], "row": []}
    for shard in range(num_shards):
        path = shard_path(cache_dir, shard)
        if not path.is_file():
            continue
        with np.load(path) as z:
            if "token" not in z.files:
                continue
            tokens = z["token"]
            cols["token"] += tokens.tolist()
            cols["scenario_token"] += z["scenario_token"].tolist()
            cols["log_name"] += z["log_name"].tolist()
            cols["map_location"] += z["map_location"].tolist()
            cols["iteration"] += z["iteration"].tolist()
            cols["shard"] += [shard] * len(tokens)
            cols["row"] += list(range(len(tokens)))
    table = pa.table({k: pa.array(v, type=pa.int32() if k in ("iteration", "shard", "row") else pa.string())
                      for k, v in cols.items()})
    tmp = cache_dir / ".manifest.parquet.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, cache_dir / "manifest.parquet")
    return {k: np.asarray(v) for k, v in cols.items()}


def write_failures(cache_dir: Path, num_shards: int) -> int:
    """``failures.csv`` (shard, token, error) gathered from the shards; returns the number of failures."""
    rows = []
    for shard in range(num_shards):
        path = shard_path(cache_dir, shard)
        if path.is_file():
            with np.load(path) as z:
                rows += [(shard, t, e) for t, e in zip(z["failed_token"].tolist(), z["failed_error"].tolist(),
                                                       strict=True)]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["shard", "token", "error"])
    w.writerows(rows)
    _write_text_atomic(cache_dir / "failures.csv", buf.getvalue())
    return len(rows)


def read_manifest(cache_dir: str | Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    path = Path(cache_dir) / "manifest.parquet"
    if not path.is_file():
        raise DataError(path, "label cache has no manifest", "a cache written by `distiplan label`")
    t = pq.read_table(path)
    return {name: t.column(name).to_numpy(zero_copy_only=False) for name in t.column_names}


class LabelCache:
    """Read access to a finished label cache: ``len(cache)`` samples, ``cache[i]`` one sample's arrays (see
    :func:`label_sample`), in manifest order (shard, row). Shards are loaded lazily, the last few kept.

    ``cache.config`` is the cache's ``config.json`` (vocabulary file, rules, sampling, ...).
    """

    def __init__(self, cache_dir: str | Path, keep_shards: int = 2) -> None:
        self.cache_dir = Path(cache_dir)
        self.manifest = read_manifest(self.cache_dir)
        self.config = json.loads((self.cache_dir / "config.json").read_text())
        self._keep = max(int(keep_shards), 1)
        self._shards: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.manifest["token"])

    def vocabulary(self) -> Vocabulary:
        return Vocabulary.load(self.config["vocabulary_file"])

    def shard(self, shard: int) -> dict[str, np.ndarray]:
        if shard not in self._shards:
            if len(self._shards) >= self._keep:
                self._shards.pop(next(iter(self._shards)))
            self._shards[shard] = load_shard(shard_path(self.cache_dir, shard))
        return self._shards[shard]

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} of a label cache with {len(self)} samples")
        return sample_from_shard(self.shard(int(self.manifest["shard"][i])), int(self.manifest["row"][i]))
