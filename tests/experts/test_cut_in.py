"""Cut-in anticipation on hand-built scenes: who counts as cutting in, and where the forecast puts them."""

from __future__ import annotations

import numpy as np

from experts.cut_in import cut_in_forecast, cutting_in
from experts.proposals import forecast
from experts.route import Path
from sim.categories import Category
from sim.scenario import Tracks


def _straight_path(length: int = 200) -> Path:
    s = np.arange(length, dtype=np.float64)
    xy = np.stack([s, np.zeros(length)], -1)
    return Path(xy, np.zeros(length), s, np.zeros(length, np.int64), np.full(length, 15.0))


def _tracks(rows: list[tuple[str, float, float, float, float, float, int]]) -> Tracks:
    """``(token, x, y, heading, vx, vy, category)`` per object, one time step."""
    n = len(rows)
    pose = np.array([[r[1], r[2], r[3]] for r in rows], float).reshape(n, 1, 3)
    vel = np.array([[r[4], r[5]] for r in rows], float).reshape(n, 1, 2)
    return Tracks(np.array([r[0] for r in rows], dtype="<U16"), np.array([r[6] for r in rows], np.int8),
                  np.tile([4.6, 1.9, 1.6], (n, 1)), pose, vel, np.ones((n, 1), bool))


V = int(Category.VEHICLE)
SCENE = [
    ("cutter", 30.0, -3.4, 0.08, 12.0, 0.9, V),  # next lane on the right, moving left into ego's lane
    ("leaving", 30.0, -3.4, -0.08, 12.0, -0.9, V),  # next lane, moving away
    ("steady", 30.0, 3.5, 0.0, 12.0, 0.02, V),  # next lane, keeping it (noise-level drift)
    ("crossing", 40.0, -4.0, 1.57, 0.0, 8.0, V),  # cross traffic: heading far from the path's
    ("far_behind", -20.0, -3.4, 0.08, 15.0, 0.9, V),  # cutting in behind ego
    ("in_lane", 25.0, 0.3, 0.0, 10.0, 0.5, V),  # already in ego's lane
    ("ped", 20.0, -3.0, 1.57, 0.0, 1.4, int(Category.PEDESTRIAN)),  # walking towards the lane: not a vehicle
    ("parked", 50.0, -3.0, 0.0, 0.0, 0.0, V),
]


def test_only_vehicles_moving_into_the_lane_ahead_count() -> None:
    tracks = _tracks(SCENE)
    fc = forecast(tracks, 21, 0.2)
    flagged, lat, v_lat = cutting_in(fc, _straight_path(), s_ego=0.0)
    assert list(tracks.token[flagged]) == ["cutter"]
    np.testing.assert_allclose(lat[:2], [-3.4, -3.4])
    np.testing.assert_allclose(v_lat[:2], [0.9, -0.9])


def test_the_cutter_is_put_on_the_lane_centre_keeping_its_progress_others_untouched() -> None:
    tracks = _tracks(SCENE)
    fc = forecast(tracks, 21, 0.2)
    out = cut_in_forecast(fc, _straight_path(), s_ego=0.0)
    np.testing.assert_array_equal(out.center[1:], fc.center[1:])
    np.testing.assert_allclose(out.center[0, :, 1], 0.0, atol=1e-9)  # on ego's lane centre from now on
    np.testing.assert_allclose(out.center[0, :, 0], fc.center[0, :, 0])  # same progress as its own forecast
    np.testing.assert_allclose(out.center[0, :, 2], 0.0, atol=1e-9)
    assert out.velocity is fc.velocity and out.corners is fc.corners  # only the forecast positions change


def test_nothing_to_anticipate_returns_the_same_forecast() -> None:
    tracks = _tracks([r for r in SCENE if r[0] != "cutter"])
    fc = forecast(tracks, 21, 0.2)
    assert cut_in_forecast(fc, _straight_path(), s_ego=0.0) is fc
    empty = forecast(_tracks([]), 21, 0.2)
    assert cut_in_forecast(empty, _straight_path(), s_ego=0.0) is empty
