"""Write a synthetic dataset in nuPlan's layout.

::

    out/maps/nuplan-maps-v1.0.json
    out/maps/<location>/<version>/map.gpkg              one per generated town (synth-town-<seed>)
    out/nuplan-v1.1/splits/train/<log>.db               nominal driving, corner cases at ``corner_case_share``
    out/nuplan-v1.1/splits/val/<log>.db                 same mix, other seeds
    out/nuplan-v1.1/splits/corner_cases/<log>.db        every corner family, several seeds (disjoint)
    out/manifest.json                                   logs, families, tags, seeds, family counts per split
    out/timings.csv                                     generation time and attempts per log

The same ``seed`` (and options) writes the same bytes for every map, log and ``manifest.json``
(``timings.csv`` holds wall-clock times and differs from run to run).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from sim.nuplan_db.writer import write_log
from sim.nuplan_map.gpkg import write_gpkg
from sim.nuplan_map.maps_index import MapEntry, add_devkit_placeholders, gpkg_path, write_maps_index
from sim.synth.families import FAMILIES, corner_families, nominal_families
from sim.synth.generate import GenerationError, LogInfo, generate_log
from sim.synth.layers import town_layers
from sim.synth.town import MAP_VERSION, Town, build_town

SPLITS_DIR = Path("nuplan-v1.1") / "splits"
MAPS_DIR = "maps"


@dataclass(frozen=True)
class Preset:
    n_train: int
    n_val: int
    corner_seeds: int  # logs per corner family in the corner_cases split
    n_towns: int


PRESETS = {
    "tiny": Preset(n_train=4, n_val=2, corner_seeds=1, n_towns=1),
    "default": Preset(n_train=120, n_val=24, corner_seeds=5, n_towns=2),
}


@dataclass(frozen=True)
class Job:
    split: str
    index: int
    family: str
    seed: int
    town_seed: int

    @property
    def log_name(self) -> str:
        return f"synth-{self.split}-{self.index:04d}-{self.family}-{self.seed}"


@lru_cache(maxsize=8)
def _town(town_seed: int) -> tuple[Town, object]:
    town = build_town(town_seed)
    return town, town_layers(town)


def plan_jobs(seed: int, preset: Preset, corner_case_share: float) -> list[Job]:
    """Every log of the dataset: split, family, seed and town (deterministic, seeds disjoint across splits)."""
    towns = [seed * 100 + k for k in range(preset.n_towns)]
    nominal, corner = nominal_families(), corner_families()
    jobs = []
    for split, n, base in (("train", preset.n_train, 0), ("val", preset.n_val, 100_000)):
        n_corner = int(round(n * corner_case_share))
        fams = [corner[i % len(corner)] for i in range(n_corner)]
        fams += [nominal[i % len(nominal)] for i in range(n - n_corner)]
        for i, fam in enumerate(fams):
            jobs.append(Job(split, i, fam, seed * 1_000_000 + base + i, towns[i % len(towns)]))
    i = 0
    for _ in range(preset.corner_seeds):
        for fam in corner:
            jobs.append(Job("corner_cases", i, fam, seed * 1_000_000 + 500_000 + i, towns[i % len(towns)]))
            i += 1
    return jobs


def _run(job: Job, out_dir: str, log_index: int) -> dict:
    town, layers = _town(job.town_seed)
    t0 = time.perf_counter()
    last: GenerationError | None = None
    for retry in range(3):  # a family seed that keeps failing its checks is re-drawn (deterministically)
        try:
            rec, info = generate_log(job.family, job.seed + retry * 7_777_777, town, layers, job.log_name, log_index)
            break
        except GenerationError as err:
            last = err
    else:
        raise last  # type: ignore[misc]
    path = Path(out_dir) / SPLITS_DIR / job.split / f"{job.log_name}.db"
    write_log(rec, path)
    info.seconds = time.perf_counter() - t0
    return {"job": asdict(job), "info": asdict(info), "location": town.location, "frames": rec.num_frames,
            "tracks": len(rec.tracks)}


def write_dataset(out_dir: str | Path, seed: int = 0, preset: str = "tiny", corner_case_share: float = 0.05,
                  workers: int | None = None, progress: bool = True, n_train: int | None = None,
                  n_val: int | None = None, corner_seeds: int | None = None, n_towns: int | None = None) -> dict:
    """Write maps, logs and the manifest under ``out_dir``; returns the manifest (also in ``manifest.json``).

    ``preset`` sets the sizes (``tiny``: seconds, for tests; ``default``: a few minutes); ``n_train``, ``n_val``,
    ``corner_seeds`` (logs per corner family) and ``n_towns`` override them. ``workers`` > 1 uses processes
    (default: up to 4, one per CPU); the output does not depend on it.
    """
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (expected one of {sorted(PRESETS)})")
    base = PRESETS[preset]
    p = Preset(n_train if n_train is not None else base.n_train, n_val if n_val is not None else base.n_val,
               corner_seeds if corner_seeds is not None else base.corner_seeds,
               n_towns if n_towns is not None else base.n_towns)
    out = Path(out_dir)
    jobs = plan_jobs(seed, p, corner_case_share)

    maps_root = out / MAPS_DIR
    entries = []
    for town_seed in sorted({j.town_seed for j in jobs}):
        town, layers = _town(town_seed)
        write_gpkg(layers, gpkg_path(maps_root, town.location, MAP_VERSION))
        entries.append(MapEntry(town.location, MAP_VERSION, {}))
    write_maps_index(maps_root, entries)
    # nuplan-devkit opens all four nuPlan locations when it starts: empty stand-ins let it open this maps root.
    add_devkit_placeholders(maps_root)

    results: list[dict] = [None] * len(jobs)  # type: ignore[list-item]
    bar = _progress(len(jobs), progress)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(_run, job, str(out), i): i for i, job in enumerate(jobs)}
            for fut in _as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
    else:
        for i, job in enumerate(jobs):
            results[i] = _run(job, str(out), i)
            bar.update(1)
    bar.close()

    manifest = _manifest(seed, preset, p, corner_case_share, results)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with open(out / "timings.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["log_name", "split", "family", "seconds", "attempts"])
        for r in results:
            writer.writerow([r["info"]["log_name"], r["job"]["split"], r["job"]["family"],
                             f"{r['info']['seconds']:.3f}", r["info"]["attempts"]])
    return manifest


def _manifest(seed: int, preset: str, p: Preset, share: float, results: list[dict]) -> dict:
    counts: dict[str, Counter] = {}
    logs = []
    for r in results:
        job, info = r["job"], r["info"]
        counts.setdefault(job["split"], Counter())[job["family"]] += 1
        logs.append({"log_name": info["log_name"], "split": job["split"], "family": job["family"],
                     "scenario_type": info["tag"], "corner_case": FAMILIES[job["family"]].corner,
                     "seed": info["seed"], "location": r["location"], "attempts": info["attempts"],
                     "tag_time_s": round(info["tag_time"], 3), "frames": r["frames"], "tracks": r["tracks"]})
    return {"seed": seed, "preset": preset, "sizes": asdict(p), "corner_case_share": share,
            "families": {n: {"scenario_type": f.tag, "corner_case": f.corner, "description": f.description}
                         for n, f in FAMILIES.items()},
            "family_counts": {s: dict(sorted(c.items())) for s, c in sorted(counts.items())},
            "logs": logs}


def _as_completed(futures):
    from concurrent.futures import as_completed

    return as_completed(futures)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="synth logs", unit="log")


def read_manifest(root: str | Path) -> dict:
    return json.loads((Path(root) / "manifest.json").read_text())


def info_from_dict(d: dict) -> LogInfo:
    return LogInfo(**d)
