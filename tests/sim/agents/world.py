"""Tiny scenarios on the two-lane junction test map (tests/sim/map_fixtures.py) for agent tests."""

from __future__ import annotations

import numpy as np

from sim.categories import Category, TrafficLightStatus
from sim.nuplan_map.map_api import MapAPI
from sim.scenario import EgoStates, Scenario, Tracks, TrafficLights
from tests.sim.map_fixtures import two_lane_junction_layers

DT = 0.1


def town() -> MapAPI:
    return MapAPI.from_layers(two_lane_junction_layers())


def ego_states(rear_poses: np.ndarray, speed: float = 0.0) -> EgoStates:
    n = len(rear_poses)
    v = np.zeros((n, 2))
    v[:, 0] = speed
    return EgoStates(np.arange(n) * DT, np.asarray(rear_poses, float), v, np.zeros((n, 2)), np.zeros(n), np.zeros(n))


def tracks(objects: list[dict], steps: int) -> Tracks:
    """``objects``: dicts with token, category, pose (3,) or (steps, 3), velocity (2,), size (3,)."""
    n = len(objects)
    pose = np.zeros((n, steps, 3))
    vel = np.zeros((n, steps, 2))
    for i, o in enumerate(objects):
        pose[i] = np.broadcast_to(np.asarray(o["pose"], float), (steps, 3))
        vel[i] = np.broadcast_to(np.asarray(o.get("velocity", (0.0, 0.0)), float), (steps, 2))
    valid = np.ones((n, steps), bool)
    for i, o in enumerate(objects):
        if "valid" in o:
            valid[i] = o["valid"]
    return Tracks(np.array([o["token"] for o in objects], dtype="<U16"),
                  np.array([o.get("category", Category.VEHICLE) for o in objects], np.int8),
                  np.array([o.get("size", (4.5, 2.0, 1.6)) for o in objects], float), pose, vel, valid)


def scenario(ego: EgoStates, objs: Tracks, light_11: list[int] | None = None) -> Scenario:
    steps = len(ego)
    status = np.full((steps, 1), TrafficLightStatus.GREEN, np.int8)
    if light_11 is not None:
        status[:, 0] = light_11
    return Scenario("a" * 16, "test-log", "test-town", "test", (np.arange(steps) * 100_000).astype(np.int64), ego,
                    objs, TrafficLights(np.array([11], np.int64), status), (100, 200, 300), None, history_steps=0)
