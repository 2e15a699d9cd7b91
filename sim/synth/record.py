"""Turn a simulated world (0.1 s history) into a 20 Hz :class:`LogRecording` cut into scenes around the tag.

Scene layout (``plan``): two lead-in scenes, enough *valid* scenes to hold the 15 s scenario window
``[tag - 3 s, tag + 12 s]`` (with a margin on both sides), two lead-out scenes; every scene ``scene_s`` long
(8-10 s). nuPlan drops the first two and last two scenes of a log, so the window lies in valid scenes and has
more than 2 s of history before it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from sim.categories import TrafficLightStatus
from sim.geometry import interpolate_poses, wrap_angle
from sim.nuplan_db.recording import LogRecording
from sim.scenario import EgoStates, Tracks, TrafficLights
from sim.synth.town import Town
from sim.synth.world import DT, World
from sim.vehicle import PACIFICA

FRAME_US = 50_000
PERCEPTION_RANGE = 100.0  # objects farther than this from the ego are not in the log (m)
EPOCH_US = 1_735_689_600_000_000  # 2025-01-01T00:00:00Z


@dataclass(frozen=True)
class ScenePlan:
    """Scene length (s, a multiple of 0.1 s) and the margin (s) between the first valid scene and the window."""

    scene_s: float
    margin_s: float

    @staticmethod
    def draw(rng: np.random.Generator) -> ScenePlan:
        return ScenePlan(round(float(rng.uniform(8.0, 10.0)), 1), round(float(rng.uniform(0.5, 1.5)), 1))

    @property
    def n_valid(self) -> int:
        return int(np.ceil((15.0 + self.margin_s + 0.5) / self.scene_s))

    @property
    def before_tag(self) -> float:
        """Seconds of log before the tagged frame."""
        return 2 * self.scene_s + self.margin_s + 3.0

    @property
    def after_tag(self) -> float:
        return (4 + self.n_valid) * self.scene_s - self.before_tag


def track_token(log_name: str, index: int) -> str:
    return hashlib.blake2b(f"{log_name}/track/{index}".encode(), digest_size=8).hexdigest()


def build_recording(world: World, log_name: str, plan: ScenePlan, tag_time: float, tag_type: str,
                    tag_track: int, log_index: int) -> LogRecording:
    """The 20 Hz log of ``world``'s history from ``tag_time - plan.before_tag`` to ``+ plan.after_tag``."""
    hist = world.history
    times = np.array([h["t"] for h in hist])
    k0 = int(round((tag_time - plan.before_tag) / DT))
    k1 = int(round((tag_time + plan.after_tag) / DT))
    if k0 < 0 or k1 >= len(hist):
        raise ValueError(f"{log_name}: history {times[0]:.1f}..{times[-1]:.1f} s does not cover the log window")
    ks = np.arange(k0, k1 + 1)
    n10 = len(ks)
    f = 2 * n10 - 1  # 20 Hz frames: samples and midpoints
    t10 = times[ks]
    t20 = np.linspace(t10[0], t10[-1], f)

    # Ego (vehicle 0): rear-axle pose, speed, acceleration, curvature at 10 Hz, then 20 Hz.
    ego10 = [hist[k]["veh"][0] for k in ks]
    pose10 = np.array([e[0] for e in ego10])
    v10 = np.array([e[1] for e in ego10])
    a10 = np.array([e[2] for e in ego10])
    kap10 = np.array([e[3] for e in ego10])
    pose = interpolate_poses(t10, pose10, t20)
    v = np.interp(t20, t10, v10)
    a = np.interp(t20, t10, a10)
    kap = np.interp(t20, t10, kap10)
    start_us = EPOCH_US + log_index * 3_600_000_000
    ts = start_us + np.arange(f, dtype=np.int64) * FRAME_US
    ego = EgoStates(time_s=ts * 1e-6, pose=pose, velocity=np.stack([v, np.zeros(f)], -1),
                    acceleration=np.stack([a, v * v * kap], -1),
                    steering_angle=np.arctan(PACIFICA.wheel_base * kap), yaw_rate=v * kap)

    tracks, kept = _tracks(world, hist, ks, f, pose, log_name)
    tag_index = int(np.searchsorted(kept, tag_track)) if tag_track >= 0 and tag_track in kept else -1
    lights = _lights(world, hist, ks, f)

    n_scenes = 4 + plan.n_valid
    step = int(round(plan.scene_s / 0.05))
    scene_start = np.arange(n_scenes, dtype=np.int64) * step
    ego_route = extend_route(world.town, [int(r) for r in world.ego.route])
    seg_rb = [world.town.segments[hist[k]["veh"][0][4]].roadblock for k in ks]
    scene_rbs = []
    for st in scene_start:
        rb = seg_rb[min(st // 2, n10 - 1)]
        idx = ego_route.index(rb) if rb in ego_route else 0
        scene_rbs.append(tuple(ego_route[max(0, min(idx, len(ego_route) - 2)):]))  # >= 2 roadblocks
    goal = np.full(n_scenes, f - 1, np.int64)
    tag_frame = int(round((tag_time - t10[0]) / 0.05))
    return LogRecording(
        log_name=log_name, map_location=world.town.location, vehicle_name="synth-ego",
        date=_date(start_us), timestamp_us=ts, ego=ego, tracks=tracks, traffic_lights=lights,
        scene_start=scene_start, scene_roadblock_ids=tuple(scene_rbs), scene_goal_frame=goal,
        tag_frame=np.array([tag_frame], np.int64), tag_type=np.array([tag_type]),
        tag_agent=np.array([tag_index], np.int64))


def _date(us: int) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(us * 1e-6, tz=_dt.timezone.utc).strftime("%Y-%m-%d")


def _tracks(world: World, hist: list[dict], ks: np.ndarray, f: int, ego_pose: np.ndarray,
            log_name: str) -> tuple[Tracks, np.ndarray]:
    n = world._n_tracks
    n10 = len(ks)
    pose10 = np.full((n, n10, 3), np.nan)
    speed10 = np.zeros((n, n10))
    size = np.zeros((n, 3))
    cat = np.zeros(n, np.int8)
    for veh in world.vehicles:
        if veh.track < 0:
            continue
        size[veh.track], cat[veh.track] = veh.size, veh.category
        for i, k in enumerate(ks):
            e = hist[k]["veh"][veh.vid] if veh.vid < len(hist[k]["veh"]) else None
            if e is not None:
                pose10[veh.track, i] = e[5]
                speed10[veh.track, i] = e[1]
    for ped in world.peds:
        size[ped.track], cat[ped.track] = ped.size, ped.category
        for i, k in enumerate(ks):
            e = hist[k]["ped"][ped.pid] if ped.pid < len(hist[k]["ped"]) else None
            if e is not None:
                pose10[ped.track, i] = (*e[0], e[1])
                speed10[ped.track, i] = e[2]
    for st in world.statics:
        size[st.track], cat[st.track] = st.size, st.category
        pose10[st.track] = st.pose
    # 20 Hz: samples at even frames, midpoints (valid where both ends are) at odd frames.
    pose = np.full((n, f, 3), np.nan)
    speed = np.zeros((n, f))
    pose[:, 0::2], speed[:, 0::2] = pose10, speed10
    mid = 0.5 * (pose10[:, :-1] + pose10[:, 1:])
    mid[..., 2] = wrap_angle(pose10[:, :-1, 2] + 0.5 * wrap_angle(pose10[:, 1:, 2] - pose10[:, :-1, 2]))
    pose[:, 1::2], speed[:, 1::2] = mid, 0.5 * (speed10[:, :-1] + speed10[:, 1:])
    valid = np.all(np.isfinite(pose), -1)
    dist = np.hypot(pose[..., 0] - ego_pose[None, :, 0], pose[..., 1] - ego_pose[None, :, 1])
    valid &= np.nan_to_num(dist, nan=np.inf) < PERCEPTION_RANGE
    keep = valid.any(1)
    pose[~valid] = np.nan
    vel = np.stack([speed * np.cos(pose[..., 2]), speed * np.sin(pose[..., 2])], -1)
    vel[~valid] = np.nan
    idx = np.flatnonzero(keep)
    tokens = np.array([track_token(log_name, int(i)) for i in idx], dtype="<U16")
    return Tracks(tokens, cat[idx], size[idx], pose[idx], vel[idx], valid[idx]), idx


def _lights(world: World, hist: list[dict], ks: np.ndarray, f: int) -> TrafficLights:
    conns = world.signals.connectors
    ids = np.array([world.town.segments[int(c)].fid for c in conns], np.int64)
    st10 = np.stack([hist[k]["lights"] for k in ks]) if len(conns) else np.zeros((len(ks), 0), np.int8)
    status = np.full((f, len(conns)), int(TrafficLightStatus.UNKNOWN), np.int8)
    status[0::2] = st10
    status[1::2] = st10[:-1]
    return TrafficLights(ids, status)


def track_index_map(world: World, rec: LogRecording, log_name: str) -> dict[int, int]:
    """World track id -> index into ``rec.tracks`` (objects never in range are not in the log)."""
    pos = {str(t): i for i, t in enumerate(rec.tracks.token)}
    return {k: pos[track_token(log_name, k)] for k in range(world._n_tracks) if track_token(log_name, k) in pos}


def extend_route(town: Town, route: list[int], beyond: int = 3) -> list[int]:
    """The ego's roadblock route continued ``beyond`` roadblocks past its end, straight ahead where possible.

    nuPlan's planners (and its IDM planner in particular) need routes of at least two roadblocks, and a route
    that stops where the log stops leaves a planner nowhere to go in the last seconds.
    """
    out = list(route)
    for _ in range(beyond):
        last = town.roadblocks.get(out[-1])
        if last is None:
            break
        options = [town.segments[j] for s in last.segments for j in town.segments[s].succ]
        options = [o for o in options if o.roadblock not in out]
        if not options:
            break
        best = max(options, key=lambda o: (o.priority, -o.idx))  # straight first, then right, then left
        out.append(int(best.roadblock))
    if len(out) < 2:  # a dead end: start the route one roadblock earlier instead
        first = town.roadblocks.get(out[0])
        before = [town.segments[j] for s in (first.segments if first else []) for j in town.segments[s].pred]
        if before:
            out.insert(0, int(max(before, key=lambda o: (o.priority, -o.idx)).roadblock))
    return out
