"""SE2 and oriented-box geometry: hypothesis properties against shapely and against each other."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.geometry import (
    box_corners,
    boxes_overlap,
    interpolate_poses,
    polyline_arc_length,
    to_global,
    to_local,
    wrap_angle,
)

coord = st.floats(-1e4, 1e4, allow_nan=False)
angle = st.floats(-20.0, 20.0, allow_nan=False)
pose = st.tuples(coord, coord, angle).map(np.array)
size = st.floats(0.2, 20.0)


@given(pose, pose)
def test_to_local_and_to_global_are_inverse(p: np.ndarray, origin: np.ndarray) -> None:
    back = to_global(to_local(p, origin), origin)
    np.testing.assert_allclose(back[:2], p[:2], atol=1e-6)
    assert abs(wrap_angle(back[2] - p[2])) < 1e-9


@given(pose, pose, pose)
def test_relative_pose_composition(a: np.ndarray, b: np.ndarray, origin: np.ndarray) -> None:
    """Distances and heading differences do not depend on the frame."""
    la, lb = to_local(a, origin), to_local(b, origin)
    assert np.isclose(np.hypot(*(la[:2] - lb[:2])), np.hypot(*(a[:2] - b[:2])), atol=1e-6)
    assert abs(wrap_angle((la[2] - lb[2]) - (a[2] - b[2]))) < 1e-9


@given(angle)
def test_wrap_angle_range(a: float) -> None:
    w = float(wrap_angle(a))
    assert -np.pi <= w < np.pi
    assert np.isclose(np.cos(w), np.cos(a)) and np.isclose(np.sin(w), np.sin(a))


@given(pose, size, size)
def test_box_corners_match_the_box(center: np.ndarray, length: float, width: float) -> None:
    corners = box_corners(center, length, width)
    poly = shapely.Polygon(corners)
    assert np.isclose(poly.area, length * width, rtol=1e-6)
    np.testing.assert_allclose(corners.mean(0), center[:2], atol=1e-6)
    front = (corners[0] + corners[3]) / 2 - center[:2]  # FL and FR lie ahead along the heading
    assert np.isclose(front @ [np.cos(center[2]), np.sin(center[2])], length / 2, atol=1e-6)


small = st.floats(-15.0, 15.0, allow_nan=False)


@settings(max_examples=300)
@given(st.tuples(small, small, angle), size, size, st.tuples(small, small, angle), size, size)
def test_boxes_overlap_agrees_with_shapely(pa, la, wa, pb, lb, wb) -> None:
    ca, cb = box_corners(np.array(pa), la, wa), box_corners(np.array(pb), lb, wb)
    expected = shapely.Polygon(ca).intersects(shapely.Polygon(cb))
    distance = shapely.Polygon(ca).distance(shapely.Polygon(cb))
    if distance > 1e-9 or expected:  # skip grazing contacts where float rounding decides
        assert bool(boxes_overlap(ca, cb)) == expected


def test_boxes_overlap_broadcasts() -> None:
    a = box_corners(np.zeros((5, 3)), 4.0, 2.0)
    b = box_corners(np.array([[x, 0.0, 0.0] for x in (0.0, 3.0, 3.9, 4.1, 10.0)]), 4.0, 2.0)
    assert boxes_overlap(a, b).tolist() == [True, True, True, False, False]


@given(st.lists(st.floats(-100, 100), min_size=2, max_size=20))
def test_interpolation_hits_the_samples(headings: list[float]) -> None:
    t = np.arange(len(headings), dtype=float)
    poses = np.column_stack([t * 2.0, -t, headings])
    out = interpolate_poses(t, poses, t)
    np.testing.assert_allclose(out[:, :2], poses[:, :2])
    np.testing.assert_allclose(np.cos(out[:, 2]), np.cos(poses[:, 2]), atol=1e-9)
    assert np.all(np.diff(polyline_arc_length(out)) >= 0)
