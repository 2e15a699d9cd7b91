"""nuPlan's IDM planner in closed loop on the junction map: free road, stopped lead, red light, moving lead."""

from __future__ import annotations

import numpy as np
import pytest

from experts.idm_planner import IDMPlanner, idm_acceleration
from sim.categories import TrafficLightStatus
from sim.runner.simulation import run_scenario
from tests.sim.runner.world import junction_map, straight_scenario

FRONT = 4.049  # rear axle -> front bumper (Pacifica)


def test_idm_law():
    # free road below the target speed: accelerate; at the target: no acceleration
    assert idm_acceleration(5.0, 10.0, np.inf, 0.0, 1.0, 1.5, 1.0, 3.0) == pytest.approx(1.0 * (1 - 0.5**4))
    assert idm_acceleration(10.0, 10.0, np.inf, 0.0, 1.0, 1.5, 1.0, 3.0) == pytest.approx(0.0)
    # standing at the minimum gap behind a stopped leader: hold still
    assert idm_acceleration(0.0, 10.0, 1.0, 0.0, 1.0, 1.5, 1.0, 3.0) == pytest.approx(0.0)
    # closing fast on a stopped leader: brake, clipped at decel_max
    assert idm_acceleration(10.0, 10.0, 5.0, 0.0, 1.0, 1.5, 1.0, 3.0) == pytest.approx(-3.0)


def _run(**kw):
    sc = straight_scenario(**kw)
    return sc, run_scenario(sc, junction_map(), IDMPlanner(), agents="log_replay")


def test_free_road_speeds_up_toward_the_limit_and_stays_in_lane():
    sc, r = _run(speed=5.0, lead_gap=None, x0=-20.0)
    assert r.status == "ok"
    assert r.ego.velocity[:, 0].max() > 7.0  # the lane allows 15 m/s; a = 1 m/s² for ~10 s
    assert np.abs(r.ego.pose[:, 1] - 1.75).max() < 0.05
    assert np.all(np.diff(r.ego.pose[:, 0]) >= 0)


def test_stops_behind_a_stopped_vehicle():
    sc, r = _run(speed=5.0, lead_gap=25.0, lead_speed=0.0)
    lead_rear = sc.tracks.pose[0, 0, 0] - sc.tracks.size[0, 0] / 2
    front = r.ego.pose[:, 0] + FRONT
    assert front.max() < lead_rear  # never touches it
    assert r.ego.velocity[-1, 0] < 0.1 and lead_rear - front[-1] < 3.0  # and waits close behind


def test_stops_at_a_red_light_and_goes_on_green():
    _, red = _run(speed=5.0, lead_gap=None, light=TrafficLightStatus.RED)
    assert red.ego.velocity[-1, 0] < 0.1
    assert red.ego.pose[:, 0].max() < 50.0  # the rear axle never enters the junction (stop line at x = 50)
    _, green = _run(speed=5.0, lead_gap=None, light=TrafficLightStatus.GREEN)
    assert green.ego.pose[-1, 0] > 60.0


def test_follows_a_moving_lead_at_a_safe_distance():
    sc, r = _run(speed=5.0, lead_gap=20.0)
    lead_rear = sc.tracks.pose[0, sc.index(0):sc.index(0) + len(r.ego), 0] - 2.25
    gap = lead_rear - (r.ego.pose[:, 0] + FRONT)
    assert gap.min() > 5.0
    assert r.ego.velocity[-40:, 0].mean() == pytest.approx(5.0, abs=1.0)
