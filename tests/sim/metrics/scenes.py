"""Test helpers: nuplan-devkit metric fixture loading, rollout builders and a small hand-built map.

The fixtures are read at test time from ``shared/reference/nuplan_metric_fixtures`` beside the repository (or
``$NUPLAN_METRIC_FIXTURES``); they are never copied into the repository.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import shapely

from sim.categories import Category
from sim.nuplan_map.layers import FeatureTable, MapLayers
from sim.scenario import EgoStates, Tracks
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA


def fixtures_dir() -> Path | None:
    env = os.environ.get("NUPLAN_METRIC_FIXTURES")
    candidates = [Path(env)] if env else []
    root = Path(__file__).resolve().parents[3]
    candidates += [root.parent / "shared" / "reference" / "nuplan_metric_fixtures",
                   Path("/work/shared/reference/nuplan_metric_fixtures")]
    return next((c for c in candidates if c.is_dir()), None)


def fixture(rel: str) -> dict:
    """Parsed fixture JSON, or skip the test with a clear message when the fixtures are absent."""
    base = fixtures_dir()
    if base is None or not (base / rel).is_file():
        pytest.skip(f"nuplan-devkit metric fixture {rel} not found (expected under "
                    "../shared/reference/nuplan_metric_fixtures or $NUPLAN_METRIC_FIXTURES)")
    return json.loads((base / rel).read_text())


def expected_stats(scene: dict, group: int = 0) -> list[tuple[str, float]]:
    exp = scene["expected"]
    exp = exp[group] if isinstance(exp, list) else exp
    return [(t, float(v)) for t, v in exp["statistics"]]


def ego_from_states(states: list[dict]) -> EgoStates:
    """EgoStates from fixture ego dicts (rear-axle pose, body-frame velocity / acceleration, time_us)."""
    n = len(states)
    return EgoStates(
        time_s=np.array([s["time_us"] for s in states], np.float64) * 1e-6,
        pose=np.array([s["pose"] for s in states], np.float64).reshape(n, 3),
        velocity=np.array([s["velocity"] for s in states], np.float64).reshape(n, 2),
        acceleration=np.array([s["acceleration"] for s in states], np.float64).reshape(n, 2),
        steering_angle=np.zeros(n), yaw_rate=np.zeros(n))


_LABELS = {"vehicles": Category.VEHICLE, "bicycles": Category.BICYCLE, "pedestrians": Category.PEDESTRIAN}


def tracks_from_worlds(worlds: list[dict]) -> Tracks:
    """Tracks (N, T) from fixture world frames; velocity = speed along the box heading."""
    ids: dict[str, int] = {}
    cats: list[int] = []
    sizes: list[list[float]] = []
    for w in worlds:
        for label, cat in _LABELS.items():
            for obj in w.get(label, []):
                key = str(obj["id"])
                if key not in ids:
                    ids[key] = len(ids)
                    cats.append(int(cat))
                    width, length = obj["box"]["size"]
                    sizes.append([length, width, 1.5])
    n, t = len(ids), len(worlds)
    pose = np.full((n, t, 3), np.nan)
    vel = np.zeros((n, t, 2))
    valid = np.zeros((n, t), bool)
    for k, w in enumerate(worlds):
        for label in _LABELS:
            for obj in w.get(label, []):
                i = ids[str(obj["id"])]
                pose[i, k] = obj["box"]["pose"]
                h = obj["box"]["pose"][2]
                vel[i, k] = obj["speed"] * np.array([np.cos(h), np.sin(h)])
                valid[i, k] = True
    return Tracks(np.array(list(ids), dtype="<U16"), np.array(cats, np.int8),
                  np.array(sizes, np.float64).reshape(n, 3), pose, vel, valid)


@dataclass(frozen=True)
class Rollout:
    ego: EgoStates
    tracks: Tracks
    expert: EgoStates | None


def rollout_from_scene(scene: dict) -> Rollout:
    ego = ego_from_states([scene["ego"]] + list(scene.get("ego_future_states", [])))
    tracks = tracks_from_worlds([scene["world"]] + list(scene.get("world_future_states", [])))
    expert = ego_from_states(scene["expert_ego_states"]) if scene.get("expert_ego_states") else None
    return Rollout(ego, tracks, expert)


def simple_planner(ego: EgoStates, i: int, horizon_s: float = 10.0, dt: float = 1.0,
                   max_speed: float = 5.0) -> Trajectory:
    """The plan nuplan-devkit's metric tests use: its kinematic-bicycle 'SimplePlanner' (zero steering, zero
    commanded acceleration, speed capped by an acceleration command that persists; forward Euler)."""
    x, y, h = ego.pose[i]
    vx, vy = ego.velocity[i]
    ax = 0.0
    times, poses = [ego.time_s[i]], [(x, y, h)]
    for k in range(int(round(horizon_s / dt))):
        if np.hypot(vx, vy) > max_speed:
            ax = max_speed - np.hypot(vx, vy)
        x, y = x + vx * np.cos(h) * dt, y + vx * np.sin(h) * dt
        vx, vy = vx + ax * dt, 0.0
        times.append(ego.time_s[i] + (k + 1) * dt)
        poses.append((x, y, h))
    return Trajectory(np.array(times), np.array(poses))


# ---------------------------------------------------------------------------------------------- builders
def make_ego(x, y, heading, speed, dt: float = 0.1, accel=None, yaw_rate=None) -> EgoStates:
    """EgoStates from per-sample arrays (broadcast); body-frame velocity ``(speed, 0)``."""
    x, y, heading, speed = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, np.float64))
                                                 for v in (x, y, heading, speed)))
    n = len(x)
    acc = np.zeros((n, 2)) if accel is None else np.column_stack([np.broadcast_to(accel, n), np.zeros(n)])
    return EgoStates(np.arange(n) * dt, np.column_stack([x, y, heading]), np.column_stack([speed, np.zeros(n)]),
                     acc, np.zeros(n), np.zeros(n) if yaw_rate is None else np.broadcast_to(yaw_rate, n).copy())


def ego_at_center(cx, cy, heading, speed, dt: float = 0.1) -> EgoStates:
    """Ego whose box centre is at (cx, cy): the rear axle sits 1.461 m behind it."""
    cx, cy, heading = (np.atleast_1d(np.asarray(v, np.float64)) for v in (cx, cy, heading))
    d = PACIFICA.rear_axle_to_center
    return make_ego(cx - d * np.cos(heading), cy - d * np.sin(heading), heading, speed, dt)


def make_tracks(poses, speeds, categories, sizes=((4.0, 2.0),)) -> Tracks:
    """Tracks from poses ``(N, T, 3)`` (box centres), speeds ``(N,)`` or ``(N, T)`` along the heading."""
    p = np.asarray(poses, np.float64)
    n, t = p.shape[:2]
    if n == 0:
        return Tracks.empty(t)
    s = np.broadcast_to(np.asarray(speeds, np.float64).reshape(n, -1), (n, t))
    vel = s[..., None] * np.stack([np.cos(p[..., 2]), np.sin(p[..., 2])], -1)
    sz = np.broadcast_to(np.asarray(sizes, np.float64), (n, 2))
    return Tracks(np.array([f"{i:016x}" for i in range(n)]), np.asarray(categories, np.int8),
                  np.column_stack([sz, np.full(n, 1.5)]), p, vel, np.ones((n, t), bool))


def _table(fids, geoms, **cols) -> FeatureTable:
    return FeatureTable(np.asarray(fids, np.int64), np.array(geoms, dtype=object),
                        {k: np.asarray(v) for k, v in cols.items()})


def _line(x0, x1, y, n=21):
    return shapely.LineString([(x, y) for x in np.linspace(x0, x1, n)])


def town_layers() -> MapLayers:
    """A small map (metres):

    - roadblock 100: eastbound lanes 1 (y in [0, 3.5], index 0) and 2 (y in [-3.5, 0], index 1), x in [0, 100],
      speed limit 10 m/s; baselines at y = 1.75 / -1.75 running +x.
    - roadblock 110: westbound lane 5 (y in [3.5, 7]), x in [0, 100], baseline at y = 5.25 running -x.
    - intersection x in [100, 120], y in [-3.5, 7]; roadblock connector 200 with connector 11 (lane 1 -> lane 3,
      y in [0, 3.5]) and connector 12 (lane 2 -> lane 4), speed limit 8 m/s.
    - roadblock 300: eastbound lanes 3 (index 0) and 4 (index 1), x in [120, 220], speed limit 15 m/s.
    - drivable area = the roads and the intersection (x in [0, 220], y in [-3.5, 7]).
    """
    lanes = [shapely.box(0, 0, 100, 3.5), shapely.box(0, -3.5, 100, 0), shapely.box(120, 0, 220, 3.5),
             shapely.box(120, -3.5, 220, 0), shapely.box(0, 3.5, 100, 7)]
    baselines = [_line(0, 100, 1.75), _line(0, 100, -1.75), _line(120, 220, 1.75), _line(120, 220, -1.75),
                 _line(100, 0, 5.25)]
    conn_lines = [_line(100, 120, 1.75, 11), _line(100, 120, -1.75, 11)]
    conn_polys = [shapely.box(100, 0, 120, 3.5), shapely.box(100, -3.5, 120, 0)]
    layers = {
        "lanes_polygons": _table([1, 2, 3, 4, 5], lanes, lane_fid=[1, 2, 3, 4, 5],
                                 lane_group_fid=[100, 100, 300, 300, 110], lane_index=[0, 1, 0, 1, 0],
                                 left_boundary_fid=[-1] * 5, right_boundary_fid=[-1] * 5,
                                 speed_limit_mps=[10.0, 10.0, 15.0, 15.0, 10.0]),
        "lane_connectors": _table([11, 12], conn_lines, exit_lane_fid=[1, 2], entry_lane_fid=[3, 4],
                                  lane_group_connector_fid=[200, 200], speed_limit_mps=[8.0, 8.0],
                                  traffic_light_stop_line_fids=np.array(["", ""], dtype=object),
                                  intersection_fid=[500, 500]),
        "gen_lane_connectors_scaled_width_polygons": _table([1, 2], conn_polys, lane_connector_fid=[11, 12],
                                                            left_boundary_fid=[-1, -1], right_boundary_fid=[-1, -1]),
        "lane_groups_polygons": _table([100, 300, 110], [shapely.box(0, -3.5, 100, 3.5),
                                                         shapely.box(120, -3.5, 220, 3.5),
                                                         shapely.box(0, 3.5, 100, 7)]),
        "lane_group_connectors": _table([200], [shapely.box(100, -3.5, 120, 3.5)], from_lane_group_fid=[100],
                                        to_lane_group_fid=[300], intersection_fid=[500]),
        "baseline_paths": _table([1, 2, 3, 4, 5, 6, 7], baselines + conn_lines,
                                 lane_fid=[1, 2, 3, 4, 5, -1, -1], lane_connector_fid=[-1, -1, -1, -1, -1, 11, 12]),
        "boundaries": _table([], []),
        "intersections": _table([500], [shapely.box(100, -3.5, 120, 7)]),
        "crosswalks": _table([], []),
        "walkways": _table([], []),
        "stop_polygons": _table([], [], stop_polygon_type_fid=np.zeros(0, np.int64)),
        "carpark_areas": _table([], []),
        "generic_drivable_areas": _table([], []),
        "road_segments": _table([800, 801], [shapely.box(0, -3.5, 100, 7), shapely.box(120, -3.5, 220, 3.5)]),
    }
    return MapLayers("test-town", "1.0", "+proj=utm +zone=11 +datum=WGS84 +units=m +no_defs", layers)
