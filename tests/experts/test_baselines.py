"""Log replay (oracle) and constant velocity planners."""

from __future__ import annotations

import numpy as np
import pytest

from experts.baselines import ConstantVelocityPlanner, LogReplayPlanner
from sim.errors import DataError
from sim.planning import Observation, PlannerInitialization, PlannerInput
from sim.scenario import EgoStates
from tests.sim.runner.world import junction_map, straight_scenario


def _input(scenario, iteration: int, velocity=(5.0, 0.0), heading: float = 0.0) -> PlannerInput:
    k = scenario.index(iteration)
    ego = scenario.ego.slice(k, k + 1)
    ego = EgoStates(ego.time_s, np.array([[ego.pose[0, 0], ego.pose[0, 1], heading]]), np.array([velocity]),
                    ego.acceleration, ego.steering_angle, ego.yaw_rate)
    obs = Observation(scenario.tracks.at(k))
    return PlannerInput(iteration, float(ego.time_s[0]), ego, (obs,), {})


def test_log_replay_returns_the_logged_future():
    sc = straight_scenario(speed=3.0, accel=0.4)
    planner = LogReplayPlanner()
    assert planner.requires_scenario
    planner.initialize(PlannerInitialization(sc.route_roadblock_ids, sc.mission_goal, junction_map(), sc))
    traj = planner.compute_trajectory(_input(sc, 10))
    k = sc.index(10)
    assert len(traj) == 81  # 8 s at 0.1 s, current pose included
    np.testing.assert_allclose(traj.pose, sc.ego.pose[k:k + 81])
    np.testing.assert_allclose(traj.time_s, sc.time_us[k:k + 81] * 1e-6)
    last = planner.compute_trajectory(_input(sc, sc.num_iterations - 2))
    assert len(last) == 2  # the log ends: what is left


def test_log_replay_needs_the_scenario():
    sc = straight_scenario()
    with pytest.raises(DataError, match="no scenario"):
        LogReplayPlanner().initialize(PlannerInitialization(sc.route_roadblock_ids, None, junction_map()))


@pytest.mark.parametrize(("velocity", "heading"), [((5.0, 0.0), 0.0), ((4.0, 0.5), 1.2), ((0.0, 0.0), -2.0)])
def test_constant_velocity_is_a_straight_line(velocity, heading):
    sc = straight_scenario()
    planner = ConstantVelocityPlanner(horizon_s=8.0, interval_s=0.5)
    planner.initialize(PlannerInitialization(sc.route_roadblock_ids, None, junction_map()))
    inp = _input(sc, 0, velocity, heading)
    traj = planner.compute_trajectory(inp)
    assert len(traj) == 17 and traj.start_s == pytest.approx(inp.time_s) and traj.end_s == pytest.approx(inp.time_s + 8)
    start = inp.current_ego.pose[0]
    speed = np.hypot(*velocity)
    np.testing.assert_allclose(np.hypot(*(traj.pose[-1, :2] - start[:2])), speed * 8.0, atol=1e-9)
    np.testing.assert_allclose(traj.pose[:, 2], heading)
    if speed > 0:
        direction = np.arctan2(*(traj.pose[-1, :2] - start[:2])[::-1])
        assert direction == pytest.approx(heading + np.arctan2(velocity[1], velocity[0]))
