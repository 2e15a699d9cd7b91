"""Simulated LiDAR: hits on the visible faces, heights within objects, occlusion, static occluders."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from sim.categories import Category
from sim.observation.lidar import simulate_lidar
from sim.scenario import Tracks


def _boxes(poses, sizes) -> Tracks:
    n = len(poses)
    return Tracks(np.array([f"{i:016x}" for i in range(n)], dtype="<U16"), np.full(n, Category.VEHICLE, np.int8),
                  np.asarray(sizes, float).reshape(n, 3), np.asarray(poses, float).reshape(n, 1, 3),
                  np.zeros((n, 1, 2)), np.ones((n, 1), bool))


def _inside(points: np.ndarray, centre, length, width, margin=1e-6) -> np.ndarray:
    dx, dy = points[:, 0] - centre[0], points[:, 1] - centre[1]
    c, s = np.cos(centre[2]), np.sin(centre[2])
    lon, lat = c * dx + s * dy, -s * dx + c * dy
    return (np.abs(lon) <= length / 2 + margin) & (np.abs(lat) <= width / 2 + margin)


def test_points_lie_on_the_visible_face_with_heights_inside_the_object() -> None:
    tracks = _boxes([(10.0, 0.0, 0.0)], [(4.0, 2.0, 1.5)])
    pts = simulate_lidar(np.zeros(3), tracks)
    assert len(pts) > 0
    np.testing.assert_allclose(pts[:, 0], 8.0, atol=1e-9)  # rear face of the box, x = 10 - 4/2
    assert np.all(np.abs(pts[:, 1]) <= 1.0 + 1e-9)
    assert pts[:, 2].min() >= 0.0 and pts[:, 2].max() <= 1.5
    assert len(np.unique(np.round(pts[:, 2], 6))) > 3  # several layers spread over the height


def test_object_behind_a_box_is_not_hit() -> None:
    front = (10.0, 0.0, 0.0, 4.0, 3.0, 2.0)
    behind = (20.0, 0.0, 0.0, 4.0, 2.0, 1.5)
    both = _boxes([front[:3], behind[:3]], [front[3:], behind[3:]])
    pts = simulate_lidar(np.zeros(3), both)
    assert not _inside(pts, behind[:3], behind[3], behind[4]).any()
    assert _inside(pts, front[:3], front[3], front[4]).sum() > 0
    alone = simulate_lidar(np.zeros(3), _boxes([behind[:3]], [behind[3:]]))
    assert _inside(alone, behind[:3], behind[3], behind[4]).sum() > 0  # visible once the occluder is gone


def test_static_structure_occludes_and_far_objects_get_fewer_points() -> None:
    car = _boxes([(0.0, 15.0, 0.0)], [(4.0, 2.0, 1.5)])
    wall = shapely.box(-5.0, 8.0, 5.0, 9.0)
    assert len(simulate_lidar(np.zeros(3), car, [wall])) > 0  # the wall itself returns points
    pts = simulate_lidar(np.zeros(3), car, [wall])
    assert not _inside(pts, (0.0, 15.0, 0.0), 4.0, 2.0).any()
    near = simulate_lidar(np.zeros(3), _boxes([(8.0, 0.0, 0.0)], [(4.0, 2.0, 1.5)]))
    far = simulate_lidar(np.zeros(3), _boxes([(40.0, 0.0, 0.0)], [(4.0, 2.0, 1.5)]))
    assert len(near) > len(far) > 0
    assert len(simulate_lidar(np.zeros(3), _boxes([(100.0, 0.0, 0.0)], [(4.0, 2.0, 1.5)]), max_range=80)) == 0


def test_sensor_pose_and_ground_returns() -> None:
    tracks = _boxes([(10.0, 10.0, 0.3)], [(4.0, 2.0, 1.5)])
    pts = simulate_lidar(np.array([10.0, 0.0, np.pi / 2]), tracks)
    assert np.all(pts[:, 1] > 8.0)  # the box ahead of a sensor facing +y
    with_ground = simulate_lidar(np.array([10.0, 0.0, np.pi / 2]), tracks, ground=True, num_azimuth=90)
    g = with_ground[with_ground[:, 2] == 0.0]
    assert len(g) > 0
    r = np.hypot(g[:, 0] - 10.0, g[:, 1])
    assert r.min() == pytest.approx(2.0 / np.tan(np.deg2rad(25.0)), rel=1e-6)  # lowest beam meets the ground
    assert not _inside(g, (10.0, 10.0, 0.3), 4.0, 2.0).any()


def test_empty_scene_and_invalid_rows() -> None:
    tracks = _boxes([(10.0, 0.0, 0.0)], [(4.0, 2.0, 1.5)])
    invalid = Tracks(tracks.token, tracks.category, tracks.size, tracks.pose, tracks.velocity,
                     np.zeros((1, 1), bool))
    assert simulate_lidar(np.zeros(3), invalid).shape == (0, 3)
    assert simulate_lidar(np.zeros(3), Tracks.empty(1), object()).shape == (0, 3)
