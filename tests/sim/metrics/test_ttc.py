"""Time to collision on hand-built scenes.

Ego box: length 5.176, width 2.297, front bumper 2.588 m ahead of the box centre; objects 4 m x 2 m.
TTC steps are ``arange(0.1, 3.0, 0.1)``; the metric passes iff every TTC > 0.95 s.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.categories import Category
from sim.metrics.collisions import find_collisions
from sim.metrics.common import ego_corners
from sim.metrics.route import in_single_lane
from sim.metrics.ttc import time_to_collision, ttc_metric
from sim.nuplan_map.map_api import MapAPI
from tests.sim.metrics.scenes import ego_at_center, make_ego, make_tracks, town_layers


@pytest.fixture(scope="module")
def town() -> MapAPI:
    return MapAPI.from_layers(town_layers())


def _ttc(town, ego, tracks):
    corners = ego_corners(ego)
    lane = in_single_lane(town, corners)
    inter = town.in_layer("intersections", ego.pose[:, :2]) >= 0
    found = find_collisions(ego, tracks, lane)
    return time_to_collision(ego, tracks, found, lane, inter)


@pytest.mark.parametrize(("gap", "expected_ttc", "score"), [(8.5, 0.9, 0.0), (9.5, 1.0, 1.0)])
def test_stopped_vehicle_ahead(town, gap, expected_ttc, score):
    """Ego at 10 m/s (1 m per 0.1 s step) with a parked vehicle ``gap`` m ahead of its bumper: the boxes first
    touch after ceil(gap / 1 m) steps -> 0.9 s (<= 0.95: fail) for 8.5 m, 1.0 s (pass) for 9.5 m.
    At the second sample ego has stopped (speed 0 -> TTC inf)."""
    ego = ego_at_center([20, 20], 1.75, 0.0, [10.0, 0.0])
    front = 20 + 2.588
    tracks = make_tracks(np.broadcast_to([[[front + gap + 2.0, 1.75, 0.0]]], (1, 2, 3)), [0.0], [Category.VEHICLE])
    series = _ttc(town, ego, tracks)
    assert series[0] == pytest.approx(expected_ttc)
    assert series[1] == np.inf
    assert ttc_metric(series)["time_to_collision_within_bound"] == score


def _crossing_scene(rear_x: float):
    """Ego rear axle at (rear_x, 1.75) heading east at 10 m/s; a vehicle heading north at 5 m/s with its centre
    5 m ahead and 3.5 m right of the rear axle (35 deg off the heading: neither ahead (< 30) nor behind)."""
    ego = make_ego([rear_x, rear_x + 1.0], 1.75, 0.0, [10.0, 0.0])
    tracks = make_tracks(np.broadcast_to([[[rear_x + 5.0, -1.75, np.pi / 2]]], (1, 2, 3)), [5.0], [Category.VEHICLE])
    return ego, tracks


def test_lateral_track_counts_in_intersection(town):
    """Rear axle at x = 105 (inside the intersection): the 35 deg track is a candidate. Ego box x in
    [103.873 + 10 t, 109.049 + 10 t], y in [0.6015, 2.8985]; the track box x in [109, 111], top edge
    y = 0.25 + 5 t. At t = 0.1: top 0.75 >= 0.6015 and x ranges overlap -> TTC 0.1 s -> score 0."""
    ego, tracks = _crossing_scene(105.0)
    series = _ttc(town, ego, tracks)
    assert series[0] == pytest.approx(0.1)
    assert ttc_metric(series)["time_to_collision_within_bound"] == 0.0


def test_lateral_track_ignored_inside_a_lane(town):
    """The same scene 60 m earlier (rear axle at x = 45, ego inside lane 1, not in the intersection): tracks
    between 30 and 150 deg are not candidates -> TTC inf, score 1."""
    ego, tracks = _crossing_scene(45.0)
    series = _ttc(town, ego, tracks)
    assert np.all(np.isinf(series))
    assert ttc_metric(series)["time_to_collision_within_bound"] == 1.0


def test_at_fault_collision_sample_has_zero_ttc(town):
    """Ego overlapping a parked vehicle (stopped-track collision, at fault) at sample 0 -> TTC 0 there; the
    collided track is excluded afterwards -> inf at sample 1."""
    ego = ego_at_center([20, 20.2], 1.75, 0.0, 5.0)
    tracks = make_tracks(np.broadcast_to([[[24.0, 1.75, 0.0]]], (1, 2, 3)), [0.0], [Category.VEHICLE])
    series = _ttc(town, ego, tracks)
    assert series.tolist() == [0.0, np.inf]
