"""An in-memory scenario on the hand-built two-lane junction map (tests/sim/map_fixtures.py), for runner tests.

The logged ego drives east in the left lane (y = 1.75) at ``speed`` m/s through the junction; a lead vehicle
drives ``lead_gap`` m ahead at the same speed; a parked vehicle stands in the right lane; the traffic light of
connector 11 is green.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from sim.categories import Category, TrafficLightStatus
from sim.nuplan_map.map_api import MapAPI
from sim.scenario import EgoStates, Scenario, Tracks, TrafficLights
from tests.sim.map_fixtures import two_lane_junction_layers

DT = 0.1
HISTORY = 20


@lru_cache(maxsize=1)
def junction_map() -> MapAPI:
    return MapAPI.from_layers(two_lane_junction_layers())


def straight_scenario(num_iterations: int = 151, speed: float = 5.0, lead_gap: float | None = 20.0,
                      token: str = "00000000000000aa", x0: float = 2.0, accel: float = 0.0,
                      lead_speed: float | None = None, light: int = TrafficLightStatus.GREEN) -> Scenario:
    """``accel``: the logged ego's constant acceleration after iteration 0 (m/s²); ``lead_speed``: default = ego's."""
    t_count = HISTORY + num_iterations
    k = np.arange(t_count)
    time_us = 1_600_000_000_000_000 + k * 100_000
    t = np.maximum(k - HISTORY, 0) * DT
    v = speed + accel * t
    x = x0 + speed * DT * np.minimum(k, HISTORY) + speed * t + 0.5 * accel * t**2
    pose = np.stack([x, np.full(t_count, 1.75), np.zeros(t_count)], -1)
    acc = np.where(k >= HISTORY, accel, 0.0)
    ego = EgoStates(time_us * 1e-6, pose, np.stack([v, np.zeros(t_count)], -1),
                    np.stack([acc, np.zeros(t_count)], -1), np.zeros(t_count), np.zeros(t_count))
    lead_speed = speed if lead_speed is None else lead_speed
    tokens, cats, sizes, poses, vels = [], [], [], [], []
    if lead_gap is not None:
        tokens.append("1000000000000001")
        cats.append(Category.VEHICLE)
        sizes.append([4.5, 2.0, 1.6])
        lead_x = x0 + 4.049 + lead_gap + 4.5 / 2 + lead_speed * DT * k
        poses.append(np.stack([lead_x, np.full(t_count, 1.75), np.zeros(t_count)], -1))
        vels.append(np.tile([lead_speed, 0.0], (t_count, 1)))
    tokens.append("1000000000000002")
    cats.append(Category.VEHICLE)
    sizes.append([4.5, 2.0, 1.6])
    poses.append(np.tile([30.0, -1.75, 0.0], (t_count, 1)))
    vels.append(np.zeros((t_count, 2)))
    valid = np.ones((len(tokens), t_count), bool)
    tracks = Tracks(np.array(tokens), np.array(cats, np.int8), np.array(sizes, float), np.stack(poses),
                    np.stack(vels), valid)
    lights = TrafficLights(np.array([11], np.int64), np.full((t_count, 1), light, np.int8))
    return Scenario(token=token, log_name="test-log", map_location="test-town", scenario_type="lane_follow",
                    time_us=time_us.astype(np.int64), ego=ego, tracks=tracks, traffic_lights=lights,
                    route_roadblock_ids=(100, 200, 300), mission_goal=np.array([105.0, 1.75, 0.0]),
                    history_steps=HISTORY)


class ReplayAgents:
    """Log replay of the scenario's tracks (stand-in while ``sim.agents`` is not importable)."""

    def reset(self, scenario: Scenario, map_api: object, start_iteration: int = 0) -> None:
        self.scenario, self.i = scenario, start_iteration

    def observe(self) -> Tracks:
        return self.scenario.tracks.at(self.scenario.index(self.i))

    def advance(self, iteration: int, ego_pose_rear, ego_speed, traffic_lights) -> None:
        self.i = iteration + 1


def log_replay_agents():
    """H4's log-replay model when present, else :class:`ReplayAgents`."""
    try:
        from sim.runner.simulation import make_agent_model

        return make_agent_model("log_replay")
    except ImportError:
        return ReplayAgents()
