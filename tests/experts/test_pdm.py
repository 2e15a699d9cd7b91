"""The PDM expert in closed loop on the hand-built two-lane map (tests/sim/map_fixtures.py).

The loop is the simulator's: every 0.1 s the expert plans, and the ego moves one step with the LQR + bicycle
controller (:func:`sim.dynamics.controller.two_stage_step`). Objects are static boxes.
"""

from __future__ import annotations

import numpy as np
import pytest

from experts.pdm import PDMExpert
from experts.route import blend_paths, lane_sequence, on_route_mask, path_from_segments, starting_segment
from sim.categories import Category, TrafficLightStatus
from sim.dynamics.controller import two_stage_step
from sim.geometry import box_corners, boxes_overlap
from sim.nuplan_map.map_api import MapAPI
from sim.planning import Observation, PlannerInitialization, PlannerInput
from sim.scenario import EgoStates, Tracks
from sim.vehicle import PACIFICA
from tests.sim.map_fixtures import two_lane_junction_layers

RIGHT, LEFT = -1.75, 1.75  # lane centre lines (y) of lane 2 / lane 1


@pytest.fixture(scope="module")
def town() -> MapAPI:
    return MapAPI.from_layers(two_lane_junction_layers())


def ego_at(x: float, y: float, speed: float) -> EgoStates:
    return EgoStates(np.array([0.0]), np.array([[x, y, 0.0]]), np.array([[speed, 0.0]]), np.zeros((1, 2)),
                     np.zeros(1), np.zeros(1))


def parked(*xy: tuple[float, float], category: Category = Category.VEHICLE) -> Tracks:
    """Stationary boxes 4.5 m x 2.0 m heading east at the given centres."""
    n = len(xy)
    pose = np.array([[x, y, 0.0] for x, y in xy]).reshape(n, 1, 3)
    return Tracks(np.array([f"{i:016x}" for i in range(n)]), np.full(n, category, np.int8),
                  np.tile([4.5, 2.0, 1.6], (n, 1)), pose, np.zeros((n, 1, 2)), np.ones((n, 1), bool))


def drive(town: MapAPI, ego: EgoStates, tracks: Tracks, steps: int, lights: dict[int, int] | None = None,
          expert: PDMExpert | None = None) -> tuple[EgoStates, PDMExpert, bool]:
    """Closed loop for ``steps`` steps; returns the ego trace, the expert and whether ego touched a box."""
    expert = expert or PDMExpert()
    expert.initialize(PlannerInitialization((100, 200, 300), None, town))
    trace = [ego]
    boxes = box_corners(tracks.pose[:, 0], tracks.size[:, 0], tracks.size[:, 1])
    hit = False
    for i in range(steps):
        now = trace[-1]
        inp = PlannerInput(i, float(now.time_s[-1]), now, (Observation(tracks),), lights or {})
        traj = expert.compute_trajectory(inp)
        nxt = two_stage_step(now, traj, 0.1)
        trace.append(nxt)
        ego_box = box_corners(nxt.center()[0], PACIFICA.length, PACIFICA.width)
        hit |= bool(len(boxes) and boxes_overlap(ego_box[None], boxes).any())
    return EgoStates.concatenate(trace), expert, hit


def plan(town: MapAPI, ego: EgoStates, tracks: Tracks, lights: dict[int, int] | None = None,
         expert: PDMExpert | None = None) -> tuple[np.ndarray, PDMExpert]:
    """One planning step: the returned poses ``(81, 3)`` and the expert (``last_plan`` set)."""
    expert = expert or PDMExpert()
    expert.initialize(PlannerInitialization((100, 200, 300), None, town))
    traj = expert.compute_trajectory(PlannerInput(0, 0.0, ego, (Observation(tracks),), lights or {}))
    assert len(traj) == 81 and traj.time_s[-1] == pytest.approx(8.0)
    return traj.pose, expert


def test_plan_stops_behind_a_stopped_vehicle_and_at_a_red_light(town: MapAPI) -> None:
    poses, _ = plan(town, ego_at(5.0, RIGHT, 8.0), parked((38.0, RIGHT), (36.0, LEFT)))
    assert poses[-1, 0] + PACIFICA.front_length < 38.0 - 2.25  # stops short of the vehicle's rear
    assert np.hypot(*(poses[-1, :2] - poses[-2, :2])) < 0.05  # at rest at the end
    poses, _ = plan(town, ego_at(15.0, LEFT, 8.0), Tracks.empty(1), {11: int(TrafficLightStatus.RED)})
    assert (poses[:, 0] + PACIFICA.front_length).max() < 50.0
    poses, _ = plan(town, ego_at(15.0, LEFT, 8.0), Tracks.empty(1), {11: int(TrafficLightStatus.GREEN)})
    assert poses[-1, 0] > 60.0


def test_plan_changes_lane_around_a_blocking_vehicle(town: MapAPI) -> None:
    poses, expert = plan(town, ego_at(5.0, RIGHT, 8.0), parked((38.0, RIGHT)))
    assert expert.last_plan.kind[expert.last_plan.best] == 1
    assert poses[-1, 0] > 45.0 and poses[-1, 1] > 0.5
    poses, expert = plan(town, ego_at(5.0, RIGHT, 8.0), parked((38.0, RIGHT)), expert=PDMExpert(lane_changes=False))
    assert expert.last_plan.kind[expert.last_plan.best] == 0 and poses[-1, 0] < 38.0


def test_route_centerline_follows_the_lanes(town: MapAPI) -> None:
    on_route = on_route_mask(town, (100, 200, 300))
    start = starting_segment(town, np.array([5.0, RIGHT, 0.0]), on_route)
    assert town.seg_id[start] == 2
    seq = lane_sequence(town, start, on_route, (100, 200, 300))
    assert [int(town.seg_id[s]) for s in seq] == [2, 12, 4]
    path = path_from_segments(town, seq)
    assert path.length == pytest.approx(110.0, abs=0.5)
    np.testing.assert_allclose(path.xy[:, 1], RIGHT, atol=1e-9)
    s, lat, _ = path.project(np.array([[30.0, RIGHT + 0.5]]))
    assert s[0] == pytest.approx(30.0, abs=1e-6) and lat[0] == pytest.approx(0.5, abs=1e-6)
    # a lane change ends on the neighbour's centre line
    other = path_from_segments(town, lane_sequence(town, town.segment_index(1, False), on_route, (100, 200, 300)))
    lc = blend_paths(path, 5.0, other, 5.0, 0.0, 20.0)
    assert lc.xy[0, 1] == pytest.approx(RIGHT) and lc.xy[30, 1] == pytest.approx(LEFT)


@pytest.mark.slow
def test_follows_the_lane(town: MapAPI) -> None:
    trace, expert, hit = drive(town, ego_at(5.0, RIGHT, 5.0), Tracks.empty(1), 50)
    assert not hit
    assert trace.pose[-1, 0] > 30.0  # made progress (5 s at >= 5 m/s)
    assert np.abs(trace.pose[:, 1] - RIGHT).max() < 0.3  # stayed in its lane
    assert np.abs(trace.pose[:, 2]).max() < 0.05
    assert trace.velocity[-1, 0] <= 15.0 + 0.5  # lane speed limit 15 m/s


@pytest.mark.slow
def test_stops_behind_a_stopped_vehicle_when_it_cannot_pass(town: MapAPI) -> None:
    # both lanes blocked: the expert must stop behind the vehicle in its lane
    blockers = parked((38.0, RIGHT), (36.0, LEFT))
    trace, expert, hit = drive(town, ego_at(5.0, RIGHT, 8.0), blockers, 70)
    assert not hit
    front = trace.pose[-1, 0] + PACIFICA.front_length
    assert front < 38.0 - 2.25 and front > 20.0
    assert abs(trace.velocity[-1, 0]) < 0.3
    assert np.abs(trace.pose[:, 1] - RIGHT).max() < 1.2


@pytest.mark.slow
def test_passes_a_blocking_vehicle_when_the_adjacent_lane_is_free(town: MapAPI) -> None:
    trace, expert, hit = drive(town, ego_at(5.0, RIGHT, 8.0), parked((38.0, RIGHT)), 70)
    assert not hit
    assert trace.pose[-1, 0] > 45.0  # beyond the blocker
    assert trace.pose[-1, 1] > 0.0  # in the left lane
    # the same without lane changes: stuck behind it
    trace2, _, hit2 = drive(town, ego_at(5.0, RIGHT, 8.0), parked((38.0, RIGHT)), 70,
                            expert=PDMExpert(lane_changes=False))
    assert not hit2 and trace2.pose[-1, 0] + PACIFICA.front_length < 38.0 - 2.25


@pytest.mark.slow
def test_stops_at_a_red_light_and_goes_on_green(town: MapAPI) -> None:
    red = {11: int(TrafficLightStatus.RED)}
    trace, expert, hit = drive(town, ego_at(15.0, LEFT, 8.0), Tracks.empty(1), 80, lights=red)
    front = trace.pose[:, 0] + PACIFICA.front_length
    assert front.max() < 50.0  # never entered the connector (no lane change around the light either)
    assert front[-1] > 45.0 and abs(trace.velocity[-1, 0]) < 0.5  # creeping up to the stop line
    assert np.abs(trace.pose[:, 1] - LEFT).max() < 0.3
    green = {11: int(TrafficLightStatus.GREEN)}
    trace2, _, _ = drive(town, ego_at(15.0, LEFT, 8.0), Tracks.empty(1), 70, lights=green)
    assert trace2.pose[-1, 0] > 60.0


def test_emergency_brake_when_nothing_is_safe(town: MapAPI) -> None:
    expert = PDMExpert()
    expert.initialize(PlannerInitialization((100, 200, 300), None, town))
    ego = ego_at(20.0, RIGHT, 14.0)
    inp = PlannerInput(0, 0.0, ego, (Observation(parked((33.0, RIGHT), (31.0, LEFT))),), {})
    traj = expert.compute_trajectory(inp)
    plan = expert.last_plan
    assert plan.emergency and plan.kind[plan.best] == 2
    speed = np.hypot(*np.diff(traj.pose[:, :2], axis=0).T) / 0.1
    assert speed[-1] < 0.1 and np.all(np.diff(speed) <= 1e-6)  # braking to a stop
    assert len(traj) == 81 and traj.time_s[-1] == pytest.approx(8.0)


def test_slows_down_beside_a_vehicle_that_hides_the_sidewalk(town: MapAPI) -> None:
    # a vehicle parked on the kerb side (beside the corridor, not in it): pedestrians may step out behind it
    occluder = parked((40.0, -4.4))
    expert = PDMExpert()
    expert.initialize(PlannerInitialization((100, 200, 300), None, town))
    ego = ego_at(5.0, RIGHT, 12.0)
    traj = expert.compute_trajectory(PlannerInput(0, 0.0, ego, (Observation(occluder),), {}))
    x = traj.pose[:, 0]
    speed = np.concatenate([[12.0], np.hypot(*np.diff(traj.pose[:, :2], axis=0).T) / 0.1])
    near = (x > 36.0) & (x < 44.0)
    assert near.any() and speed[near].max() < expert.occluder_speed + 1.0
    # without caution it keeps its speed there
    bold = PDMExpert(caution=False)
    bold.initialize(PlannerInitialization((100, 200, 300), None, town))
    traj2 = bold.compute_trajectory(PlannerInput(0, 0.0, ego, (Observation(occluder),), {}))
    speed2 = np.concatenate([[12.0], np.hypot(*np.diff(traj2.pose[:, :2], axis=0).T) / 0.1])
    near2 = (traj2.pose[:, 0] > 36.0) & (traj2.pose[:, 0] < 44.0)
    assert speed2[near2].min() > 10.0


def walker(x: float, y: float, vx: float, vy: float) -> Tracks:
    return Tracks(np.array(["p" * 16]), np.array([Category.PEDESTRIAN], np.int8), np.array([[0.6, 0.6, 1.7]]),
                  np.array([[[x, y, 0.0]]]), np.array([[[vx, vy]]]), np.ones((1, 1), bool))


def test_slows_for_a_pedestrian_heading_for_the_road_not_for_one_walking_along_it(town: MapAPI) -> None:
    def speed_near(tracks: Tracks) -> float:
        poses, _ = plan(town, ego_at(5.0, LEFT, 10.0), tracks)
        speed = np.hypot(*np.diff(poses[:, :2], axis=0).T) / 0.1
        x_front = poses[1:, 0] + PACIFICA.front_length
        return float(speed[(x_front > 37.0) & (x_front < 40.0)].max(initial=0.0))

    assert speed_near(walker(40.0, 4.2, 0.0, -0.5)) < 5.0  # about to step onto the road
    assert speed_near(walker(40.0, 5.0, 1.2, 0.0)) > 8.0  # strolling along the walkway


@pytest.mark.parametrize("max_jerk", [None, 1.0])
def test_scalar_tail_continues_the_batched_unroll_exactly(max_jerk: float | None) -> None:
    from experts.proposals import ProposalSet, idm_tail, unroll_idm

    rng = np.random.default_rng(2)
    k, c, j, m = 12, 3, 41, 5
    s_min = np.where(rng.random((c, j, m)) < 0.6, rng.uniform(15.0, 120.0, (c, j, m)), np.inf)
    s_min += np.arange(j)[None, :, None] * rng.uniform(0.0, 1.0, (c, 1, m))  # obstacles moving on
    s_max = np.where(np.isfinite(s_min), s_min + 4.5, -np.inf)
    speed = rng.uniform(0.0, 8.0, (c, j, m))
    caps = np.tile(np.concatenate([np.full(60, 14.0), np.full(80, 6.0), np.full(60, 11.0)]), (2, 1))
    props = ProposalSet(rng.integers(0, 2, k), np.zeros(k), rng.uniform(3.0, 15.0, k), rng.integers(0, c, k))
    s0 = rng.uniform(0.0, 5.0, k)
    full_s, full_v = unroll_idm(s0, 9.0, props, s_min, s_max, speed, caps, 80, a0=-0.5, max_jerk=max_jerk)
    head_s, head_v, acc = unroll_idm(s0, 9.0, props, s_min, s_max, speed, caps, 40, a0=-0.5, max_jerk=max_jerk,
                                     return_accel=True)
    assert np.array_equal(head_s, full_s[:, :41])
    for i in range(k):
        co = props.combo[i]
        ts, tv = idm_tail(head_s[i, -1], head_v[i, -1], acc[i], 40, 40, props.target_speed[i], s_min[co], s_max[co],
                          speed[co], caps[props.path[i]], max_jerk=max_jerk)
        np.testing.assert_allclose(ts, full_s[i, 41:], rtol=0, atol=1e-9)
        np.testing.assert_allclose(tv, full_v[i, 41:], rtol=0, atol=1e-9)
    assert np.ptp(full_v[:, -1]) > 1.0  # the proposals do differ


def test_opens_a_gap_when_a_car_starts_to_cut_in(town: MapAPI) -> None:
    # a car 12 m ahead in the left lane, as fast as ego, just starting to move over into ego's lane
    cutter = Tracks(np.array(["c" * 16]), np.full(1, Category.VEHICLE, np.int8), np.array([[4.6, 1.9, 1.6]]),
                    np.array([[[12.0 + 20.0, LEFT, -0.033]]]), np.array([[[12.0, -0.4]]]), np.ones((1, 1), bool))
    ego = ego_at(20.0 - PACIFICA.rear_axle_to_center, RIGHT, 12.0)
    speed_at = {}
    for anticipate in (False, True):
        poses, _ = plan(town, ego, cutter, expert=PDMExpert(anticipate_cut_ins=anticipate))
        speed = np.hypot(*np.diff(poses[:, :2], axis=0).T) / 0.1
        speed_at[anticipate] = speed[19]  # after 2 s
    assert speed_at[False] > 12.0  # constant velocity: the car drifts over slowly, nothing to brake for yet
    assert speed_at[True] < 10.0  # it follows the car from the start of the move
