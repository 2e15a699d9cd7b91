"""Collision detection, classification and scores on hand-built scenes (map: ``scenes.town_layers``).

Ego (Pacifica) box: length 5.176, width 2.297, centre 1.461 m ahead of the rear axle. All scenes place the ego
box centre at (20, 1.75) heading east (lane 1, y in [0, 3.5]) unless stated: box x in [17.412, 22.588],
y in [0.6015, 2.8985] — all four corners inside lane 1, so ego is "in a single lane".
Objects are 4 m x 2 m unless stated.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.categories import Category
from sim.metrics.collisions import CollisionType, collision_metric, find_collisions
from sim.metrics.common import ego_corners
from sim.metrics.route import in_single_lane
from sim.nuplan_map.map_api import MapAPI
from tests.sim.metrics.scenes import ego_at_center, make_tracks, town_layers

CT = CollisionType


@pytest.fixture(scope="module")
def town() -> MapAPI:
    return MapAPI.from_layers(town_layers())


def _run(town, ego, tracks):
    lane = in_single_lane(town, ego_corners(ego))
    found = find_collisions(ego, tracks, lane)
    return found, collision_metric(found), lane


def _one_object(pose, speed, category, t=2, size=(4.0, 2.0)):
    return make_tracks(np.broadcast_to(np.asarray(pose, float), (1, t, 3)), [speed], [category], sizes=[size])


def test_stopped_ego_is_never_at_fault(town):
    """Ego stopped at (20, 1.75); a vehicle at 8 m/s overlaps its rear (centre (16, 1.75)). Type 0, not at fault:
    score 1, no at-fault count."""
    ego = ego_at_center([20, 20], 1.75, 0.0, 0.0)
    found, out, _ = _run(town, ego, _one_object((16.0, 1.75, 0.0), 8.0, Category.VEHICLE))
    assert found.kind.tolist() == [CT.STOPPED_EGO_COLLISION]
    assert out["no_ego_at_fault_collisions"] == 1.0 and out["no_ego_at_fault_collisions.count"] == 0


def test_stopped_track_vehicle_scores_zero_with_energy(town):
    """Ego at 5 m/s into a parked vehicle (centre (24, 1.75), overlapping the front by 0.588 m): type 1, at fault,
    vehicle group -> score 0. Energy = 0.5 * sqrt(5^2 + 0 - 0) = 2.5."""
    ego = ego_at_center([20, 20.5], 1.75, 0.0, 5.0)
    found, out, _ = _run(town, ego, _one_object((24.0, 1.75, 0.0), 0.0, Category.VEHICLE))
    assert found.kind.tolist() == [CT.STOPPED_TRACK_COLLISION]
    assert found.step.tolist() == [0]  # counted once, at the first overlapping sample
    assert out["no_ego_at_fault_collisions"] == 0.0
    assert out["no_ego_at_fault_collisions.vehicle"] == 1
    assert out["no_ego_at_fault_collisions.vehicle_energy_max"] == pytest.approx(2.5)


def test_static_objects_score_half_then_zero(town):
    """One traffic cone hit (static -> stopped track, object group threshold 1): score 1 - 1/2 = 0.5.
    Two cones: 1 - 2/2 = 0."""
    ego = ego_at_center([20, 20], 1.75, 0.0, 5.0)
    one = _one_object((22.5, 1.75, 0.0), 0.0, Category.TRAFFIC_CONE, size=(0.5, 0.5))
    _, out, _ = _run(town, ego, one)
    assert out["no_ego_at_fault_collisions"] == 0.5
    two = make_tracks(np.broadcast_to(np.array([[[22.5, 1.75, 0.0]], [[22.5, 2.5, 0.0]]]), (2, 2, 3)),
                      [0.0, 0.0], [Category.TRAFFIC_CONE, Category.BARRIER], sizes=[(0.5, 0.5), (0.5, 0.5)])
    _, out, _ = _run(town, ego, two)
    assert out["no_ego_at_fault_collisions"] == 0.0 and out["no_ego_at_fault_collisions.object"] == 2


def test_active_front_collision_with_pedestrian_scores_zero(town):
    """Ego at 10 m/s; a pedestrian (0.8 x 0.8) walking north at 1.5 m/s straddles the front bumper line x=22.588
    (centre (22.7, 1.75)): angle from the rear axle ~0 deg (not behind), bumper segment FL-FR crosses its box ->
    type 2, at fault, VRU -> 0. Energy = 0.5 * sqrt(100 + 2.25 - 2*10*1.5*cos(-pi/2)) = 0.5 * sqrt(102.25)."""
    ego = ego_at_center([20, 21], 1.75, 0.0, 10.0)
    found, out, _ = _run(town, ego, _one_object((22.7, 1.75, np.pi / 2), 1.5, Category.PEDESTRIAN,
                                                size=(0.8, 0.8)))
    assert found.kind.tolist() == [CT.ACTIVE_FRONT_COLLISION]
    assert out["no_ego_at_fault_collisions"] == 0.0 and out["no_ego_at_fault_collisions.vru"] == 1
    assert out["no_ego_at_fault_collisions.vru_energy_mean"] == pytest.approx(0.5 * np.sqrt(102.25))


def test_active_rear_collision_is_not_at_fault(town):
    """A faster vehicle (12 m/s) rams ego (8 m/s) from behind: its centre (15.7, 1.75) is 180 deg from the
    rear-axle heading (> 150 deg) -> type 3, never at fault -> score 1."""
    ego = ego_at_center([20, 20.8], 1.75, 0.0, 8.0)
    found, out, _ = _run(town, ego, _one_object((15.7, 1.75, 0.0), 12.0, Category.VEHICLE))
    assert found.kind.tolist() == [CT.ACTIVE_REAR_COLLISION]
    assert out["no_ego_at_fault_collisions"] == 1.0


def test_active_lateral_inside_lane_is_not_at_fault(town):
    """A vehicle (5 m/s) beside ego from lane 2, centre (20, -0.2): its box y in [-1.2, 0.8] overlaps ego's right
    side (y >= 0.6015), angle from the rear axle = atan2(-1.95, 1.461) ~ 53 deg (not behind), the bumper segment
    at x = 22.588 misses its box (x in [18, 22]) -> type 4. All ego corners in lane 1 -> not at fault -> 1."""
    ego = ego_at_center([20, 20.5], 1.75, 0.0, 5.0)
    found, out, lane = _run(town, ego, _one_object((20.0, -0.2, 0.0), 5.0, Category.VEHICLE))
    assert lane.all()
    assert found.kind.tolist() == [CT.ACTIVE_LATERAL_COLLISION]
    assert out["no_ego_at_fault_collisions"] == 1.0


def test_active_lateral_while_straddling_lanes_is_at_fault(town):
    """Same side-swipe with ego centred on the lane divider (y = 0): left corners in lane 1, right corners in
    lane 2, neither common nor connected -> not in a single lane -> the lateral collision is at fault -> 0."""
    ego = ego_at_center([20, 20.5], 0.0, 0.0, 5.0)
    found, out, lane = _run(town, ego, _one_object((20.0, -1.95, 0.0), 5.0, Category.VEHICLE))
    assert not lane.any()
    assert found.kind.tolist() == [CT.ACTIVE_LATERAL_COLLISION]
    assert out["no_ego_at_fault_collisions"] == 0.0


def test_each_track_counts_once_and_far_tracks_never(town):
    """A parked vehicle overlapped at samples 1..4 counts once (first at sample 1); a vehicle 30 m away never."""
    ego = ego_at_center([10, 15, 16, 16.5, 17], 1.75, 0.0, 5.0)
    tracks = make_tracks(np.broadcast_to(np.array([[[19.0, 1.75, 0.0]], [[50.0, 1.75, 0.0]]]), (2, 5, 3)),
                         [0.0, 0.0], [Category.VEHICLE, Category.VEHICLE])
    found, out, _ = _run(town, ego, tracks)
    assert found.track.tolist() == [0] and found.step.tolist() == [1]
    assert out["no_ego_at_fault_collisions.all_collisions"] == 1
