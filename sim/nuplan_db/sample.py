"""A small, fully synthetic :class:`LogRecording` for tests, benchmarks and examples (not a driving model).

The ego drives a gentle S-curve; agents of every category move near it (some appear late, leave early or
vanish for a while); a few lane connectors cycle through traffic-light states; scenes split the log evenly and
a handful of frames carry scenario tags.
"""

from __future__ import annotations

import numpy as np

from sim.categories import Category, TrafficLightStatus
from sim.nuplan_db.recording import LogRecording
from sim.scenario import EgoStates, Tracks, TrafficLights

#: Categories given to agents in turn: mostly vehicles, every kind present once there are >= 9 agents.
_CATEGORY_CYCLE = (Category.VEHICLE, Category.PEDESTRIAN, Category.VEHICLE, Category.BICYCLE, Category.TRAFFIC_CONE,
                   Category.VEHICLE, Category.BARRIER, Category.CZONE_SIGN, Category.GENERIC_OBJECT, Category.VEHICLE)
_SIZES = {Category.VEHICLE: (4.8, 2.0, 1.6), Category.PEDESTRIAN: (0.7, 0.7, 1.8), Category.BICYCLE: (1.8, 0.6, 1.7),
          Category.TRAFFIC_CONE: (0.4, 0.4, 0.7), Category.BARRIER: (2.0, 0.5, 1.0),
          Category.CZONE_SIGN: (0.8, 0.3, 1.5), Category.GENERIC_OBJECT: (1.0, 1.0, 1.0)}

#: Default tags: (time s, type). Two tags on one frame test MAX(type); 5 s apart tests timestamp thresholds.
DEFAULT_TAGS = ((20.0, "following_lane_with_lead"), (20.0, "changing_lane"), (24.0, "following_lane_with_lead"),
                (26.0, "stationary_in_traffic"), (30.0, "high_magnitude_speed"), (33.0, "near_multiple_vehicles"),
                (2.0, "high_magnitude_speed"), (58.0, "stationary_in_traffic"))


def sample_recording(duration_s: float = 60.0, num_agents: int = 10, num_lights: int = 3, num_scenes: int = 8,
                     seed: int = 0, log_name: str = "2021.06.07.12.54.00_veh-35_01843_02314",
                     map_location: str = "us-nv-las-vegas-strip",
                     tags: tuple[tuple[float, str], ...] = DEFAULT_TAGS) -> LogRecording:
    """A ``duration_s`` drive at 20 Hz with ``num_agents`` tracks, ``num_lights`` signalled connectors and
    ``num_scenes`` equal scenes. Deterministic for a given ``seed``; scene ``s`` has roadblocks
    ``(1000 + s, 1001 + s, 1002 + s)`` and its goal at the next scene's end (the last scene has none)."""
    rng = np.random.default_rng(seed)
    f = int(round(duration_s * 20))
    dt = 0.05
    t = np.arange(f) * dt
    timestamp_us = 1_623_070_440_000_000 + np.arange(f, dtype=np.int64) * 50_000

    # Ego: speed and heading are smooth closed forms, position is their integral (so the curve is consistent).
    speed = 8.0 + 2.0 * np.sin(0.1 * t)
    accel = 0.2 * np.cos(0.1 * t)
    heading = 3.0 + 0.4 * np.sin(0.05 * t)  # crosses +pi: exercises angle wrapping
    yaw_rate = 0.02 * np.cos(0.05 * t)
    xy = np.array([664_400.0, 3_999_400.0]) + np.cumsum(
        np.column_stack([speed * np.cos(heading), speed * np.sin(heading)]) * dt, axis=0)
    ego = EgoStates(time_s=timestamp_us * 1e-6, pose=np.column_stack([xy, heading]),
                    velocity=np.column_stack([speed, np.zeros(f)]),
                    acceleration=np.column_stack([accel, speed * yaw_rate]), steering_angle=np.zeros(f),
                    yaw_rate=yaw_rate)

    # Agents: offsets around the ego, each moving with its own constant velocity relative to the ego path;
    # static categories stand still.
    cats = np.array([_CATEGORY_CYCLE[i % len(_CATEGORY_CYCLE)] for i in range(num_agents)], dtype=np.int8)
    size = np.array([_SIZES[Category(c)] for c in cats])
    static = np.isin(cats, [Category.TRAFFIC_CONE, Category.BARRIER, Category.CZONE_SIGN, Category.GENERIC_OBJECT])
    offset = rng.uniform(-40.0, 40.0, (num_agents, 2))
    rel_speed = rng.uniform(-1.5, 1.5, num_agents)
    moving_xy = xy[None] + offset[:, None] + (rel_speed[:, None, None] * t[None, :, None]
                                              * np.array([np.cos(heading), np.sin(heading)]).T[None])
    fixed_xy = np.broadcast_to(xy[f // 2][None, None] + offset[:, None], (num_agents, f, 2))
    pos = np.where(static[:, None, None], fixed_xy, moving_xy)
    vel = np.gradient(pos, dt, axis=1)
    vel[static] = 0.0
    yaw = np.where(static[:, None], rng.uniform(-np.pi, np.pi, num_agents)[:, None], heading[None])
    pose = np.concatenate([pos, yaw[..., None]], axis=-1)
    valid = np.ones((num_agents, f), bool)
    for i in range(num_agents):  # visibility patterns: full, late start, early end, a gap
        kind = i % 4
        if kind == 1:
            valid[i, : int(rng.integers(f // 8, f // 2))] = False
        elif kind == 2:
            valid[i, int(rng.integers(f // 2, f - f // 8)):] = False
        elif kind == 3:
            a = int(rng.integers(f // 4, f // 2))
            valid[i, a: a + int(rng.integers(10, 60))] = False
    pose[~valid] = np.nan
    vel[~valid] = 0.0
    tokens = np.array([rng.bytes(8).hex() for _ in range(num_agents)], dtype="<U16")
    tracks = Tracks(token=tokens, category=cats, size=size, pose=pose, velocity=vel, valid=valid)

    # Traffic lights: each connector cycles green 8 s / yellow 2 s / red 8 s / unreported 2 s, phase-shifted.
    phase = (t[:, None] + 5.0 * np.arange(num_lights)[None]) % 20.0
    status = np.select([phase < 8, phase < 10, phase < 18],
                       [TrafficLightStatus.GREEN, TrafficLightStatus.YELLOW, TrafficLightStatus.RED],
                       TrafficLightStatus.UNKNOWN).astype(np.int8)
    lights = TrafficLights(lane_connector_id=np.arange(num_lights, dtype=np.int64) + 52_000, status=status)

    scene_start = (np.arange(num_scenes) * f) // num_scenes
    scene_end = np.r_[scene_start[1:], f]
    goal = np.r_[scene_end[1:] - 1, -1]
    keep = [(tm, ty) for tm, ty in tags if 0 <= tm < duration_s]
    return LogRecording(
        log_name=log_name, map_location=map_location, vehicle_name="veh-35", date="2021-06-07",
        timestamp_us=timestamp_us, ego=ego, tracks=tracks, traffic_lights=lights,
        scene_start=scene_start.astype(np.int64),
        scene_roadblock_ids=tuple((1000 + s, 1001 + s, 1002 + s) for s in range(num_scenes)),
        scene_goal_frame=goal.astype(np.int64),
        tag_frame=np.array([int(round(tm * 20)) for tm, _ in keep], dtype=np.int64),
        tag_type=np.array([ty for _, ty in keep], dtype=np.str_),
        tag_agent=np.array([k % max(num_agents, 1) if num_agents else -1 for k in range(len(keep))], dtype=np.int64),
    )
