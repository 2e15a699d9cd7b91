"""Map-dependent CLS metrics on ``scenes.town_layers`` (see its docstring for the layout), values derived on paper.

Ego box half-width 1.1485 m, half-length 2.588 m; sample interval 0.1 s unless stated.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.metrics.common import ego_center, ego_corners, time_us
from sim.metrics.direction import baseline_progress, driving_direction_metric
from sim.metrics.drivable import drivable_area_metric
from sim.metrics.progress import progress_metric
from sim.metrics.route import center_route, corner_routes, simplified_route
from sim.metrics.speed_limit import overspeed, route_speed_limit, speed_limit_metric
from sim.nuplan_map.map_api import MapAPI
from tests.sim.metrics.scenes import ego_at_center, town_layers


@pytest.fixture(scope="module")
def town() -> MapAPI:
    return MapAPI.from_layers(town_layers())


def _drivable(town, ego):
    c = ego_center(ego)
    corners = ego_corners(ego)
    return drivable_area_metric(town, corners, corner_routes(town, corners), center_route(town, c[:, :2]))


@pytest.mark.parametrize(("y", "score", "corners_inside"), [
    (-2.0, 1.0, 1.0),   # lowest corner y = -3.1485: inside the road (y >= -3.5)
    (-2.5, 1.0, 0.0),   # lowest corner -3.6485: 0.1485 m outside, < 0.3 m -> tolerated
    (-3.0, 0.0, 0.0),   # lowest corner -4.1485: 0.6485 m outside, from lane 2 and from the road -> far
    (-8.0, 0.0, 0.0),   # the whole box off the road
])
def test_drivable_area(town, y, score, corners_inside):
    ego = ego_at_center([30, 31], y, 0.0, 10.0)
    out = _drivable(town, ego)
    assert out["drivable_area_compliance"] == score
    assert out["drivable_area_compliance.corners_in_drivable_area"] == corners_inside


@pytest.mark.parametrize(("speed", "score", "min_progress"), [
    (1.0, 1.0, -1.1), (3.0, 0.5, -3.3), (5.0, 0.5, -5.5), (6.0, 0.0, -6.6)])
def test_driving_against_traffic(town, speed, score, min_progress):
    """Ego drives east in lane 5, whose baseline runs west: every 0.1 s step is -0.1*speed m along the
    baseline (0 at the first sample). A window holds samples i-10..i (11 values), so once full it sums to
    -1.1 * speed m: |-1.1| < 2 -> 1; 2 <= 3.3, 5.5 < 6 -> 0.5; 6.6 >= 6 -> 0."""
    t = np.arange(21) * 0.1
    ego = ego_at_center(30 + speed * t, 5.25, 0.0, speed)
    c = ego_center(ego)
    progress = baseline_progress(town, c, center_route(town, c[:, :2]))
    np.testing.assert_allclose(progress[1:], -0.1 * speed, atol=1e-9)
    out = driving_direction_metric(progress, float(np.mean(np.diff(time_us(ego)))))
    assert out["driving_direction_compliance"] == score
    assert out["driving_direction_compliance.min_progress"] == pytest.approx(min_progress)


def test_driving_with_traffic_is_compliant(town):
    ego = ego_at_center(30 + 10 * np.arange(21) * 0.1, 1.75, 0.0, 10.0)
    c = ego_center(ego)
    progress = baseline_progress(town, c, center_route(town, c[:, :2]))
    np.testing.assert_allclose(progress[1:], 1.0, atol=1e-9)
    assert driving_direction_metric(progress, 1e5)["driving_direction_compliance"] == 1.0


def test_speed_limit_violation_formula(town):
    """11 samples in lane 1 (limit 10 m/s): 12 m/s for the first 5, then 10 m/s. Depth 2 m/s x 5 samples
    = 10; score = 1 - 10 * 0.1 / (2.23 * 1.0) = 0.55157. One run: max = min = mean = 2."""
    speed = np.array([12.0] * 5 + [10.0] * 6)
    ego = ego_at_center(20 + np.arange(11) * 1.0, 1.75, 0.0, speed)
    limits = np.array([route_speed_limit(town, r) for r in center_route(town, ego_center(ego)[:, :2])])
    np.testing.assert_allclose(limits, 10.0)
    out = speed_limit_metric(overspeed(ego.speed, limits), time_us(ego))
    assert out["speed_limit_compliance"] == pytest.approx(1 - 10 * 0.1 / (2.23 * 1.0))
    assert out["speed_limit_compliance.count"] == 1
    assert out["speed_limit_compliance.max"] == pytest.approx(2.0)
    assert out["speed_limit_compliance.mean"] == pytest.approx(2.0)


def test_connector_speed_limit_is_max_of_adjacent_lanes(town):
    """In connector 11 (own limit 8 m/s) nuPlan uses the max over the lanes it joins: lane 1 (10) and
    lane 3 (15) -> 15 m/s. 14 m/s is compliant, 16 m/s violates by 1."""
    ego = ego_at_center([108, 109], 1.75, 0.0, [14.0, 16.0])
    routes = center_route(town, ego_center(ego)[:, :2])
    assert all(town.seg_is_connector[r[0]] for r in routes)
    limits = np.array([route_speed_limit(town, r) for r in routes])
    np.testing.assert_allclose(limits, 15.0)
    np.testing.assert_allclose(overspeed(ego.speed, limits), [0.0, 1.0])


def test_no_speed_limit_off_road(town):
    ego = ego_at_center([30, 31], -20.0, 0.0, 40.0)
    limits = [route_speed_limit(town, r) for r in center_route(town, ego_center(ego)[:, :2])]
    assert speed_limit_metric(overspeed(ego.speed, np.array(limits)), time_us(ego))["speed_limit_compliance"] == 1


def _progress(town, ego_x, expert_x, y=1.75):
    ego = ego_at_center(np.asarray(ego_x, float), y, 0.0, 5.0)
    expert = ego_at_center(np.asarray(expert_x, float), y, 0.0, 5.0)
    return progress_metric(town, ego_center(ego), ego_center(expert))


def test_progress_ratio_along_one_roadblock(town):
    """Expert from x = 10 to 60 in lane 1 (50 m), ego from 10 to 20 (10 m): ratio 10/50 = 0.2 -> making
    progress (>= 0.2); ego to 19: 9/50 = 0.18 -> not making progress."""
    out = _progress(town, np.linspace(10, 20, 11), np.linspace(10, 60, 11))
    assert out["ego_progress_along_expert_route"] == pytest.approx(0.2)
    assert out["ego_is_making_progress"] == 1.0
    out = _progress(town, np.linspace(10, 19, 11), np.linspace(10, 60, 11))
    assert out["ego_progress_along_expert_route"] == pytest.approx(0.18)
    assert out["ego_is_making_progress"] == 0.0


def test_progress_across_roadblocks(town):
    """Expert from x = 80 (lane 1) through connector 11 to x = 140 (lane 3): roadblocks 100 -> 200 -> 300,
    contiguous baselines -> 60 m. Ego reaches x = 110 (30 m): ratio 0.5. A standing ego: max(0, 2)/60."""
    expert_x = np.linspace(80, 140, 61)
    route = simplified_route(center_route(town, np.column_stack([expert_x, np.full(61, 1.75)])))
    assert [int(town.seg_roadblock_id[r[0]]) for r in route] == [100, 200, 300]
    out = _progress(town, np.linspace(80, 110, 61), expert_x)
    assert out["ego_progress_along_expert_route.expert_progress"] == pytest.approx(60.0)
    assert out["ego_progress_along_expert_route"] == pytest.approx(0.5)
    out = _progress(town, np.full(61, 80.0), expert_x)
    assert out["ego_progress_along_expert_route"] == pytest.approx(2.0 / 60.0)


def test_progress_skipping_a_roadblock(town):
    """Ego jumps from lane 1 (x = 95) straight into lane 3 (x = 125) in one sample, skipping connector
    roadblock 200: 5 m rest of lane 1 + 20 m credited for the connector + 5 m into lane 3 = 30 m."""
    out = _progress(town, [95.0, 125.0], np.linspace(95, 140, 10))
    assert out["ego_progress_along_expert_route.ego_progress"] == pytest.approx(30.0)


def test_backwards_and_routeless_progress(town):
    """Ego reversing 3 m (< -2 m) -> ratio 0. An expert that never touches a lane (off-road) -> ratio 1."""
    out = _progress(town, np.linspace(50, 47, 11), np.linspace(50, 60, 11))
    assert out["ego_progress_along_expert_route"] == 0.0
    out = _progress(town, np.linspace(50, 50, 11), np.linspace(50, 60, 11), y=-20.0)
    assert out["ego_progress_along_expert_route"] == 1.0
