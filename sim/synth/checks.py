"""Checks that a logged ego drove like a competent human: no collision, on the drivable area, no red light run,
within nuPlan's comfort bounds. Used by the generator (to reject a bad draw) and by the tests (on scenarios read
back from the files). Inputs are a :class:`LogView` (a whole recording at 20 Hz or a loaded scenario at 10 Hz)
and the map's :class:`MapLayers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from scipy.signal import savgol_filter

from sim.categories import TrafficLightStatus
from sim.geometry import box_corners, boxes_overlap, rear_axle_to_center
from sim.nuplan_db.recording import LogRecording
from sim.nuplan_map.layers import MapLayers
from sim.scenario import EgoStates, Scenario, Tracks, TrafficLights
from sim.vehicle import PACIFICA


@dataclass(frozen=True)
class LogView:
    """What the checks read: ego, tracks, lights over ``F`` samples ``dt`` s apart, the route, the tagged sample
    index and the index of the tagged agent in ``tracks`` (-1 none)."""

    ego: EgoStates
    tracks: Tracks
    lights: TrafficLights
    route: tuple[int, ...]
    tag: int
    tag_agent: int
    dt: float

    @property
    def num_frames(self) -> int:
        return len(self.ego.time_s)

    def steps(self, seconds: float) -> int:
        return int(round(seconds / self.dt))

    @staticmethod
    def from_recording(rec: LogView) -> LogView:
        route = tuple(dict.fromkeys(int(r) for rbs in rec.scene_roadblock_ids for r in rbs))
        return LogView(rec.ego, rec.tracks, rec.traffic_lights, route, int(rec.tag_frame[0]),
                       int(rec.tag_agent[0]), 0.05)

    @staticmethod
    def from_scenario(scenario: Scenario, tag_agent_token: str | None = None) -> LogView:
        """A scenario loaded around its tag (iteration 0 is 3 s before the tagged sample)."""
        tokens = [str(t) for t in scenario.tracks.token]
        agent = tokens.index(tag_agent_token) if tag_agent_token in tokens else -1
        return LogView(scenario.ego, scenario.tracks, scenario.traffic_lights, tuple(scenario.route_roadblock_ids),
                       scenario.index(30), agent, scenario.interval_s)

#: nuPlan's ``ego_is_comfortable`` bounds (metric: (low, high)).
COMFORT_BOUNDS = {"lon_acceleration": (-4.05, 2.40), "lat_acceleration": (-4.89, 4.89), "jerk": (-8.37, 8.37),
                  "lon_jerk": (-4.13, 4.13), "yaw_rate": (-0.95, 0.95), "yaw_acceleration": (-1.93, 1.93)}


def ego_corners(rec: LogView) -> npt.NDArray[np.float64]:
    """``(F, 4, 2)`` corners of the ego box."""
    center = rear_axle_to_center(rec.ego.pose, PACIFICA.rear_axle_to_center)
    return box_corners(center, PACIFICA.length, PACIFICA.width)


def ego_collisions(rec: LogView) -> list[tuple[int, int]]:
    """``(frame, track index)`` of every overlap between the ego box and an observed object box."""
    ego = ego_corners(rec)  # (F, 4, 2)
    tr = rec.tracks
    if len(tr) == 0:
        return []
    pose = np.nan_to_num(tr.pose)
    corners = box_corners(pose, tr.size[:, None, 0], tr.size[:, None, 1])  # (N, F, 4, 2)
    hit = boxes_overlap(ego[None], corners) & tr.valid
    n, f = np.nonzero(hit)
    return sorted(zip(f.tolist(), n.tolist(), strict=True))


def drivable_area(layers: MapLayers) -> object:
    parts = []
    for name in ("road_segments", "intersections", "generic_drivable_areas", "carpark_areas"):
        if name in layers.layers:
            parts += [g for g in layers.layers[name].geometry if g is not None]
    return shapely.union_all(parts)


def off_drivable_frames(rec: LogView, layers: MapLayers, tolerance: float = 0.1) -> npt.NDArray[np.int64]:
    """Frames where some ego corner lies outside the drivable area (grown by ``tolerance`` m)."""
    area = drivable_area(layers).buffer(tolerance)
    shapely.prepare(area)
    c = ego_corners(rec)
    inside = shapely.contains_xy(area, c[..., 0], c[..., 1])
    return np.flatnonzero(~inside.all(-1))


def red_light_entries(rec: LogView, layers: MapLayers) -> list[tuple[int, int]]:
    """``(frame, connector fid)`` where the ego's front bumper crossed into a traffic-light stop polygon of a
    connector on its route while that connector's light was red."""
    conns = layers.layers["lane_connectors"]
    stops = layers.layers["stop_polygons"]
    stop_geom = {int(f): g for f, g in zip(stops.fid, stops.geometry, strict=True)}
    route = set(rec.route)
    lights = rec.lights
    col = {int(c): i for i, c in enumerate(lights.lane_connector_id)}
    pose = rec.ego.pose
    front = pose[:, :2] + PACIFICA.front_length * np.stack([np.cos(pose[:, 2]), np.sin(pose[:, 2])], -1)
    out = []
    for fid, text, rb in zip(conns.fid, conns.columns["traffic_light_stop_line_fids"],
                             conns.columns["lane_group_connector_fid"], strict=True):
        if not text or int(rb) not in route or int(fid) not in col:
            continue
        for stop_fid in str(text).split(","):
            poly = stop_geom.get(int(stop_fid))
            if poly is None:
                continue
            inside = shapely.contains_xy(poly, front[:, 0], front[:, 1])
            entries = np.flatnonzero(inside & ~np.concatenate([[False], inside[:-1]]))
            for f in entries:
                if lights.status[f, col[int(fid)]] == TrafficLightStatus.RED:
                    out.append((int(f), int(fid)))
    return out


def speeding_samples(rec: LogView, layers: MapLayers, tolerance: float = 0.5) -> npt.NDArray[np.int64]:
    """Samples where the ego is faster than every speed limit of the lanes / connectors under its rear axle
    (plus ``tolerance`` m/s). Samples off every lane (none known) never count."""
    xy = rec.ego.pose[:, :2]
    limit = np.full(len(xy), -np.inf)
    lanes = layers.layers["lanes_polygons"]
    polys = list(lanes.geometry)
    limits = list(lanes.columns["speed_limit_mps"])
    conns = layers.layers["lane_connectors"]
    by_fid = dict(zip(conns.fid.tolist(), conns.columns["speed_limit_mps"], strict=True))
    gen = layers.layers["gen_lane_connectors_scaled_width_polygons"]
    for fid, poly in zip(gen.columns["lane_connector_fid"], gen.geometry, strict=True):
        polys.append(poly)
        limits.append(by_fid.get(int(fid), np.nan))
    for poly, lim in zip(polys, limits, strict=True):
        inside = shapely.contains_xy(poly, xy[:, 0], xy[:, 1])
        limit[inside] = np.maximum(limit[inside], np.nan_to_num(lim, nan=np.inf))
    known = np.isfinite(limit) & (limit > 0)
    return np.flatnonzero(known & (rec.ego.speed > limit + tolerance))


def comfort_signals(rec: LogView) -> dict[str, npt.NDArray[np.float64]]:
    """nuPlan-style comfort signals at 10 Hz (every other 20 Hz frame), Savitzky-Golay filtered."""
    ego = rec.ego
    sl = slice(0, None, max(1, rec.steps(0.1)))
    t = ego.time_s[sl]
    dt = float(np.mean(np.diff(t)))
    yaw_rate = ego.yaw_rate[sl]
    heading = np.unwrap(ego.pose[sl, 2])
    yaw_acc = np.gradient(yaw_rate, dt)
    lever = PACIFICA.rear_axle_to_center
    lon = ego.acceleration[sl, 0] - yaw_rate**2 * lever
    lat = ego.acceleration[sl, 1] + yaw_acc * lever
    w8 = min(7, len(t) - (1 - len(t) % 2))
    lon_f = savgol_filter(lon, w8, 2)
    lat_f = savgol_filter(lat, w8, 2)
    mag = savgol_filter(np.hypot(ego.acceleration[sl, 0], ego.acceleration[sl, 1]), w8, 2)
    w15 = min(15, len(t) - (1 - len(t) % 2))
    return {
        "lon_acceleration": lon_f, "lat_acceleration": lat_f,
        "jerk": savgol_filter(mag, w15, 2, deriv=1, delta=dt),
        "lon_jerk": savgol_filter(lon_f, w15, 2, deriv=1, delta=dt),
        "yaw_rate": savgol_filter(heading, 5, 2, deriv=1, delta=dt),
        "yaw_acceleration": savgol_filter(heading, 5, 3, deriv=2, delta=dt),
    }


def comfort_violations(rec: LogView) -> dict[str, float]:
    """Metric -> worst value, for each comfort metric that leaves its bounds somewhere in the log."""
    out = {}
    for name, sig in comfort_signals(rec).items():
        lo, hi = COMFORT_BOUNDS[name]
        if sig.min() <= lo or sig.max() >= hi:
            out[name] = float(sig[np.argmax(np.abs(sig))])
    return out


def ego_problems(rec: LogView, layers: MapLayers) -> list[str]:
    """Every way the logged ego fails the competent-driver checks (empty: it passes): collision, off the
    drivable area, red light, speed limit, comfort."""
    problems = []
    hits = ego_collisions(rec)
    if hits:
        problems.append(f"collision with track {hits[0][1]} at frame {hits[0][0]} ({len(hits)} frames)")
    off = off_drivable_frames(rec, layers)
    if len(off):
        problems.append(f"off the drivable area at {len(off)} frames (first {off[0]})")
    red = red_light_entries(rec, layers)
    if red:
        problems.append(f"entered connector {red[0][1]} on red at frame {red[0][0]}")
    fast = speeding_samples(rec, layers)
    if len(fast):
        problems.append(f"above the speed limit at {len(fast)} samples (first {fast[0]})")
    bad = comfort_violations(rec)
    if bad:
        problems.append("uncomfortable: " + ", ".join(f"{k}={v:.2f}" for k, v in bad.items()))
    return problems


def scenario_view(rec: LogRecording, history_s: float = 2.0) -> LogView:
    """The tagged scenario of ``rec`` as the reader loads it: 10 Hz samples from ``tag - 3 s - history_s`` to
    ``tag + 12 s`` (every other 20 Hz frame, aligned on the tagged frame)."""
    tag = int(rec.tag_frame[0])
    start = tag - 60 - int(round(history_s / 0.05))
    idx = np.arange(start, min(tag + 241, rec.num_frames), 2)
    idx = idx[idx >= 0]
    ego = rec.ego
    sub = EgoStates(ego.time_s[idx], ego.pose[idx], ego.velocity[idx], ego.acceleration[idx],
                    ego.steering_angle[idx], ego.yaw_rate[idx])
    tr = rec.tracks
    tracks = Tracks(tr.token, tr.category, tr.size, tr.pose[:, idx], tr.velocity[:, idx], tr.valid[:, idx])
    lights = TrafficLights(rec.traffic_lights.lane_connector_id, rec.traffic_lights.status[idx])
    route = tuple(dict.fromkeys(int(r) for rbs in rec.scene_roadblock_ids for r in rbs))
    return LogView(sub, tracks, lights, route, int(np.searchsorted(idx, tag)), int(rec.tag_agent[0]), 0.1)


def agent_overlaps(rec: LogView) -> list[tuple[int, int]]:
    """Pairs of moving agents (vehicles, cyclists, pedestrians) whose boxes overlap at some observed sample."""
    tr = rec.tracks
    movers = np.flatnonzero(np.isin(tr.category, [0, 1, 2]))
    if len(movers) < 2:
        return []
    xy = np.nan_to_num(tr.pose[movers, :, :2], nan=1e9)
    out = []
    for a in range(len(movers)):
        near = np.hypot(xy[a + 1:, :, 0] - xy[a, :, 0], xy[a + 1:, :, 1] - xy[a, :, 1]) < 8.0  # (n - a - 1, F)
        near &= tr.valid[movers[a]] & tr.valid[movers[a + 1:]]
        for k in np.flatnonzero(near.any(1)):
            b = a + 1 + k
            f = near[k]
            ca = box_corners(tr.pose[movers[a], f], tr.size[movers[a], 0], tr.size[movers[a], 1])
            cb = box_corners(tr.pose[movers[b], f], tr.size[movers[b], 0], tr.size[movers[b], 1])
            if boxes_overlap(ca, cb).any():
                out.append((int(movers[a]), int(movers[b])))
    return out
