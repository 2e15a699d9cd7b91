"""Scenario listing and loading from a realistic-size nuPlan log: indexed reads vs reading whole tables.

Writes (once, cached) a 20-minute log at 20 Hz with ~100+ boxes per frame, then times ``list_scenarios`` and
``load_scenario`` (median over several scenarios) against a naive loader that reads the lidar_pc, ego_pose and
lidar_box tables whole and selects the window in memory.

    .venv/bin/python benchmarks/bench_scenario_load.py [--minutes 20] [--agents 140] [--cache DIR] [--scenarios 15]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sim.nuplan_db.filter import MAPPED_SCENARIO_TYPES, ScenarioFilter
from sim.nuplan_db.reader import list_scenarios, load_scenario
from sim.nuplan_db.sample import sample_recording
from sim.nuplan_db.writer import write_log

TYPES = ("following_lane_with_lead", "stationary_in_traffic", "changing_lane", "high_magnitude_speed",
         "near_multiple_vehicles", "starting_left_turn")


def build_log(cache: Path, minutes: float, agents: int) -> Path:
    name = f"2021.06.07.12.54.00_veh-35_bench_{int(minutes)}min_{agents}agents"
    path = cache / f"{name}.db"
    if path.exists():
        return path
    duration = minutes * 60.0
    tags = tuple((float(t), TYPES[i % len(TYPES)]) for i, t in enumerate(np.arange(5.0, duration - 5.0, 7.0)))
    t0 = time.perf_counter()
    rec = sample_recording(duration_s=duration, num_agents=agents, num_lights=8,
                           num_scenes=int(duration // 20), seed=7, log_name=name, tags=tags)
    t1 = time.perf_counter()
    write_log(rec, path)
    t2 = time.perf_counter()
    print(f"built recording in {t1 - t0:.1f} s, wrote {path.name} in {t2 - t1:.1f} s")
    return path


def naive_load(path: Path, token: str) -> tuple[int, int]:
    """Reference: read whole tables, then select the scenario window in memory (what not to do)."""
    con = sqlite3.connect(path)
    pcs = con.execute("SELECT token, timestamp, ego_pose_token FROM lidar_pc").fetchall()
    poses = {r[0]: r[1:] for r in con.execute("SELECT token, x, y, qw, qz, vx, vy FROM ego_pose")}
    boxes = con.execute("SELECT lidar_pc_token, track_token, x, y, yaw, vx, vy FROM lidar_box").fetchall()
    con.close()
    pcs.sort(key=lambda r: r[1])
    ts = np.array([r[1] for r in pcs])
    anchor = int(ts[[r[0].hex() for r in pcs].index(token)])
    window = np.flatnonzero((ts >= anchor - 3_000_000) & (ts <= anchor + 12_000_000))
    sel = np.arange(max(window[0] - 40, window[0] % 2), window[-1] + 1, 2)  # + 2 s history, as the reader
    wanted = {pcs[i][0] for i in sel}
    ego = [poses[pcs[i][2]] for i in sel]
    window_boxes = [b for b in boxes if b[0] in wanted]
    return len(ego), len(window_boxes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--agents", type=int, default=140)
    ap.add_argument("--scenarios", type=int, default=15)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "distiplan_bench_logs")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    path = build_log(args.cache, args.minutes, args.agents)

    con = sqlite3.connect(path)
    n_pc, n_box = (con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("lidar_pc", "lidar_box"))
    con.close()
    print(f"log: {path}  size {path.stat().st_size / 2**20:.0f} MiB, {n_pc} lidar_pc rows "
          f"({n_pc / 20 / 60:.1f} min at 20 Hz), {n_box} lidar_box rows ({n_box / n_pc:.0f} boxes per frame)")

    t = time.perf_counter()
    everything = list_scenarios(path)
    t_all = time.perf_counter() - t
    t = time.perf_counter()
    typed = list_scenarios(path, ScenarioFilter(scenario_types=tuple(sorted(MAPPED_SCENARIO_TYPES))))
    t_typed = time.perf_counter() - t
    print(f"list_scenarios: all rows {len(everything)} scenarios in {t_all * 1e3:.0f} ms; "
          f"tagged types {len(typed)} scenarios in {t_typed * 1e3:.0f} ms")

    picks = [typed[i] for i in np.linspace(0, len(typed) - 1, args.scenarios).astype(int)]
    load_scenario(picks[0])  # open / page-cache warm-up, not counted
    times, sizes = [], []
    for ref in picks:
        t = time.perf_counter()
        sc = load_scenario(ref)
        times.append(time.perf_counter() - t)
        sizes.append((len(sc.time_us), len(sc.tracks), int(sc.tracks.valid.sum())))
    med = statistics.median(times)
    print(f"load_scenario (indexed): median {med * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms over {len(picks)} "
          f"scenarios; each {sizes[0][0]} samples, {np.mean([s[1] for s in sizes]):.0f} tracks, "
          f"{np.mean([s[2] for s in sizes]):.0f} boxes")

    t = time.perf_counter()
    n_ego, n_boxes = naive_load(path, picks[0].token)
    t_naive = time.perf_counter() - t
    print(f"naive whole-table load of one scenario: {t_naive:.2f} s ({n_ego} samples, {n_boxes} boxes) "
          f"-> indexed is {t_naive / med:.0f}x faster")


if __name__ == "__main__":
    main()
