"""IDM agents on a small map: following, stopping at s0, red lights, open-loop objects, removal, snapping."""

from __future__ import annotations

import numpy as np
import pytest

from sim.agents.idm import IDMAgents
from sim.categories import Category, TrafficLightStatus
from sim.vehicle import PACIFICA
from tests.sim.agents.world import ego_states, scenario, town, tracks

GREEN, RED = TrafficLightStatus.GREEN, TrafficLightStatus.RED


@pytest.fixture(scope="module")
def town_map():
    return town()


def _run(model: IDMAgents, sc, steps: int, lights=None) -> list:
    """Advance ``steps`` times with the logged ego; returns the observations after each step."""
    out = [model.observe()]
    for i in range(steps):
        light = {11: int(sc.traffic_lights.status[min(i + 1, len(sc.time_us) - 1), 0])} if lights is None else lights
        model.advance(i, sc.ego.pose[i], float(np.hypot(*sc.ego.velocity[i])), light)
        out.append(model.observe())
    return out


def _by_token(obs, token):
    k = int(np.flatnonzero(obs.token == token)[0])
    return obs.pose[k, 0], obs.velocity[k, 0]


def test_agent_stops_behind_a_stopped_ego_at_min_gap(town_map) -> None:
    steps = 300
    ego = ego_states(np.tile([40.0, 1.75, 0.0], (steps + 1, 1)))  # ego parked in lane 1
    objs = tracks([{"token": "a1", "pose": (10.0, 1.95, 0.05), "velocity": (8.0, 0.0)}], steps + 1)
    sc = scenario(ego, objs)
    model = IDMAgents()
    model.reset(sc, town_map)
    obs = _run(model, sc, steps)
    pose0, _ = _by_token(obs[0], "a1")
    assert pose0[1] == pytest.approx(1.75) and pose0[2] == pytest.approx(0.0)  # snapped to the baseline
    pose, vel = _by_token(obs[-1], "a1")
    assert np.hypot(*vel) < 0.05
    ego_rear_bumper = 40.0 - PACIFICA.rear_length
    gap = ego_rear_bumper - (pose[0] + 4.5 / 2)
    assert gap == pytest.approx(1.0, abs=0.3)  # IDM's s0
    xs = [_by_token(o, "a1")[0][0] for o in obs]
    assert np.all(np.diff(xs) >= -1e-9)  # never reverses


def test_follower_stops_behind_static_object_and_speeds_up_on_free_road(town_map) -> None:
    steps = 200
    ego = ego_states(np.tile([5.0, -1.75, 0.0], (steps + 1, 1)))  # ego in the other lane, behind
    objs = tracks([
        {"token": "car", "pose": (15.0, 1.75, 0.0), "velocity": (5.0, 0.0)},
        {"token": "cone", "pose": (45.0, 1.75, 0.0), "category": Category.GENERIC_OBJECT, "size": (1.0, 1.0, 1.0)},
        {"token": "free", "pose": (20.0, -1.75, 0.0), "velocity": (5.0, 0.0)},
    ], steps + 1)
    model = IDMAgents()
    sc = scenario(ego, objs)
    model.reset(sc, town_map)
    obs = _run(model, sc, steps)
    pose, vel = _by_token(obs[-1], "car")
    assert np.hypot(*vel) < 0.05
    assert (45.0 - 0.5) - (pose[0] + 2.25) == pytest.approx(1.0, abs=0.3)
    # The cone is replayed from the log; the free agent went on through the junction into lane 4.
    cone, _ = _by_token(obs[-1], "cone")
    np.testing.assert_allclose(cone, [45.0, 1.75, 0.0])
    free_pose = [_by_token(o, "free")[0] for o in obs if "free" in o.token]
    assert free_pose[-1][0] > 60.0 and free_pose[-1][1] == pytest.approx(-1.75, abs=1e-6)
    speeds = [np.hypot(*_by_token(o, "free")[1]) for o in obs if "free" in o.token]
    assert max(speeds) > 7.0


def test_agent_stops_at_red_light_stop_line(town_map) -> None:
    steps = 250
    lights = [GREEN] * 5 + [RED] * (steps + 1 - 5)  # green while it plans through the junction, then red
    ego = ego_states(np.tile([0.0, -1.75, 0.0], (steps + 1, 1)))
    objs = tracks([{"token": "a1", "pose": (20.0, 1.75, 0.0), "velocity": (6.0, 0.0)}], steps + 1)
    sc = scenario(ego, objs, lights)
    model = IDMAgents()
    model.reset(sc, town_map)
    obs = _run(model, sc, steps)
    assert model.routes[0][-1] != model.routes[0][0]  # it extended its route into connector 11 while green
    pose, vel = _by_token(obs[-1], "a1")
    assert np.hypot(*vel) < 0.05
    front = pose[0] + 2.25
    assert front == pytest.approx(49.0 - 1.0, abs=0.3)  # s0 before the stop line at x = 49


def test_red_light_from_the_start_keeps_agent_on_its_lane(town_map) -> None:
    steps = 250
    ego = ego_states(np.tile([0.0, -1.75, 0.0], (steps + 1, 1)))
    objs = tracks([{"token": "a1", "pose": (20.0, 1.75, 0.0), "velocity": (6.0, 0.0)}], steps + 1)
    sc = scenario(ego, objs, [RED] * (steps + 1))
    model = IDMAgents()
    model.reset(sc, town_map)
    obs = _run(model, sc, steps)
    assert len(model.routes[0]) == 1  # never entered the red connector
    pose, vel = _by_token(obs[-1], "a1")
    assert np.hypot(*vel) < 0.05 and pose[0] + 2.25 < 50.0


def test_queue_of_agents_at_red_light(town_map) -> None:
    steps = 300
    ego = ego_states(np.tile([0.0, -1.75, 0.0], (steps + 1, 1)))
    objs = tracks([{"token": "lead", "pose": (25.0, 1.75, 0.0), "velocity": (6.0, 0.0)},
                   {"token": "follow", "pose": (12.0, 1.75, 0.0), "velocity": (6.0, 0.0)}], steps + 1)
    sc = scenario(ego, objs, [RED] * (steps + 1))
    model = IDMAgents()
    model.reset(sc, town_map)
    obs = _run(model, sc, steps)
    lead, v1 = _by_token(obs[-1], "lead")
    follow, v2 = _by_token(obs[-1], "follow")
    assert np.hypot(*v1) < 0.05 and np.hypot(*v2) < 0.05
    assert (lead[0] - 2.25) - (follow[0] + 2.25) == pytest.approx(1.0, abs=0.3)


def test_only_vehicles_present_at_start_become_agents(town_map) -> None:
    steps = 20
    late = np.zeros(steps + 1, bool)
    late[5:] = True
    ego = ego_states(np.tile([30.0, -1.75, 0.0], (steps + 1, 1)))
    objs = tracks([
        {"token": "ped", "pose": np.column_stack([np.full(steps + 1, 40.0), np.linspace(-3, 3, steps + 1),
                                                  np.full(steps + 1, 1.57)]),
         "category": Category.PEDESTRIAN, "size": (0.5, 0.5, 1.8)},
        {"token": "bike", "pose": (10.0, 1.75, 0.0), "category": Category.BICYCLE, "size": (1.8, 0.6, 1.5)},
        {"token": "late", "pose": (5.0, 1.75, 0.0), "valid": late},
        {"token": "offroad", "pose": (30.0, 30.0, 0.0)},
        {"token": "on_ego", "pose": (31.0, -1.75, 0.0)},  # overlaps the ego: skipped
    ], steps + 1)
    sc = scenario(ego, objs)
    model = IDMAgents()
    model.reset(sc, town_map)
    assert len(model.token) == 0
    obs = _run(model, sc, steps)
    assert list(obs[0].token) == ["ped"]
    assert all(list(o.token) == ["ped"] for o in obs)
    np.testing.assert_allclose(obs[7].pose[0, 0], objs.pose[0, 7])  # replayed from the log


def test_agents_far_from_ego_are_removed_for_good(town_map) -> None:
    steps = 10
    poses = np.tile([0.0, -1.75, 0.0], (steps + 1, 1))
    poses[3:6, 0] = -200.0  # the ego jumps away for a moment
    ego = ego_states(poses)
    objs = tracks([{"token": "a1", "pose": (30.0, 1.75, 0.0), "velocity": (3.0, 0.0)}], steps + 1)
    sc = scenario(ego, objs)
    model = IDMAgents()
    model.reset(sc, town_map)
    obs = _run(model, sc, steps)
    assert ["a1" in o.token for o in obs] == [True] * 4 + [False] * 7


def test_connector_start_inside_intersection(town_map) -> None:
    steps = 30
    ego = ego_states(np.tile([0.0, -1.75, 0.0], (steps + 1, 1)))
    objs = tracks([{"token": "a1", "pose": (55.0, 1.9, 0.1), "velocity": (5.0, 0.0)}], steps + 1)
    sc = scenario(ego, objs)
    model = IDMAgents()
    model.reset(sc, town_map)
    assert town_map.seg_is_connector[model.routes[0][0]]
    assert model.target_velocity[0] == 12.0  # the connector's speed limit
    _run(model, sc, steps)
    assert model.pose[0, 0] > 65.0  # continued into lane 3...
    assert model.target_velocity[0] == 10.0  # ...whose speed limit it now follows


def test_agents_go_straight_through_a_real_shaped_junction() -> None:
    from sim.nuplan_map.map_api import MapAPI
    from sim.nuplan_map.toy import DEFAULT_ORIGIN, junction_layers
    from sim.scenario import Scenario, TrafficLights
    from tests.sim.agents.world import DT

    m = MapAPI.from_layers(junction_layers())
    ox, oy = DEFAULT_ORIGIN
    # Inbound lanes of the west arm: lanes heading east (+x) west of the junction.
    starts = []
    for s in np.flatnonzero(~m.seg_is_connector):
        b = m.baseline(int(s))
        if abs(wrap(b[0, 2])) < 0.1 and b[-1, 0] < ox - 5.0 and len(m.successors(int(s))) >= 2:
            starts.append(b[len(b) // 2])
    assert len(starts) == 2
    steps = 150
    ego = ego_states(np.tile([ox - 40.0, oy + 40.0, 0.0], (steps + 1, 1)))  # off the road, out of the way
    objs = tracks([{"token": f"a{k}", "pose": tuple(p), "velocity": (6.0, 0.0)} for k, p in enumerate(starts)],
                  steps + 1)
    conns = np.flatnonzero(m.seg_has_traffic_light)
    lights = TrafficLights(m.seg_id[conns], np.full((steps + 1, len(conns)), GREEN, np.int8))
    sc = Scenario("b" * 16, "l", "t", "x", (np.arange(steps + 1) * int(DT * 1e6)).astype(np.int64), ego, objs,
                  lights, (), None, history_steps=0)
    model = IDMAgents()
    model.reset(sc, m)
    assert len(model.token) == 2
    _run(model, sc, 100, lights={int(c): int(GREEN) for c in m.seg_id[conns]})
    for i in range(2):
        assert model.pose[i, 0] > ox + 12.0  # crossed the junction...
        assert abs(wrap(model.pose[i, 2])) < 0.05  # ...straight on
        assert abs(model.pose[i, 1] - starts[i][1]) < 0.2  # in the same lane position
        assert m.is_drivable(model.pose[i : i + 1, :2])[0]


def wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


def test_replay_tagged_keeps_the_tagged_vehicle_on_its_logged_path(town_map) -> None:
    """The tagged vehicle (a cut-in logged as a lateral move) is replayed; untagged vehicles still become IDM
    agents, and a tagged vehicle appearing later is shown once it appears (IDM agents only come from the start)."""
    from dataclasses import replace

    steps = 20
    ego = ego_states(np.tile([0.0, -1.75, 0.0], (steps + 1, 1)))
    cut = np.column_stack([np.linspace(20.0, 40.0, steps + 1), np.linspace(1.75, -1.75, steps + 1),
                           np.full(steps + 1, -0.17)])
    late = np.zeros(steps + 1, bool)
    late[8:] = True
    objs = tracks([
        {"token": "cutter", "pose": cut, "velocity": (10.0, -1.75)},
        {"token": "other", "pose": (45.0, 1.75, 0.0), "velocity": (5.0, 0.0)},
        {"token": "runner", "pose": (25.0, 5.0, -1.57), "velocity": (0.0, -8.0), "valid": late},
    ], steps + 1)
    sc = replace(scenario(ego, objs), tagged_track_tokens=("cutter", "runner"))

    plain = IDMAgents()
    plain.reset(sc, town_map)
    assert sorted(plain.token) == ["cutter", "other"]  # nuPlan: both IDM agents, the late runner never shows
    obs_plain = _run(plain, sc, steps)
    assert abs(_by_token(obs_plain[-1], "cutter")[0][1] - 1.75) < 0.3  # keeps its lane: no cut-in
    assert all("runner" not in o.token for o in obs_plain)

    model = IDMAgents(replay_tagged=True)
    model.reset(sc, town_map)
    assert list(model.token) == ["other"]
    obs = _run(model, sc, steps)
    np.testing.assert_allclose(_by_token(obs[-1], "cutter")[0], cut[-1])  # the logged cut-in
    assert ["runner" in o.token for o in obs] == [False] * 8 + [True] * 13
    assert _by_token(obs[-1], "other")[0][0] > 45.0 + 5.0  # still an IDM agent, moving on its lane
