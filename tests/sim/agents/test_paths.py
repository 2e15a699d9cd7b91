"""Path geometry of the IDM agents: projection, corridor entry, simplification."""

from __future__ import annotations

import numpy as np
import pytest

from sim.agents.paths import (
    band_polygon,
    corridor_entry,
    first_in_corridor,
    make_path,
    poses_at,
    project,
    simplify_polyline,
    sub_path,
)
from sim.geometry import box_corners


def _straight(length: float = 50.0):
    x = np.linspace(0.0, length, 51)
    return make_path(np.column_stack([x, np.zeros_like(x), np.zeros_like(x)]))


def _pad(box: np.ndarray) -> np.ndarray:
    return np.concatenate([box, np.repeat(box[-1:], 8, axis=0)])


def test_corridor_entry_counts_edges_crossing_with_both_vertices_outside() -> None:
    path = _straight()
    # A long truck across the path at x = 20: its corners are all 4 m away laterally.
    crossing = _pad(box_corners(np.array([20.0, 0.0, np.pi / 2]), 8.0, 2.0))
    beside = _pad(box_corners(np.array([10.0, 3.0, 0.0]), 4.0, 2.0))  # the next lane: never in a 1 m corridor
    behind = _pad(box_corners(np.array([2.0, 0.0, 0.0]), 2.0, 2.0))
    entry = corridor_entry(path, 5.0, 1.0, np.stack([crossing, beside, behind]))
    assert entry[0] == pytest.approx(19.0)
    assert np.isinf(entry[1]) and np.isinf(entry[2])
    # An object straddling the start enters at the start.
    assert corridor_entry(path, 1.5, 1.0, behind[None])[0] == pytest.approx(1.5)


def test_first_in_corridor_matches_brute_force() -> None:
    rng = np.random.default_rng(4)
    theta = np.linspace(0, 1.2, 60)
    path = make_path(np.column_stack([30 * np.sin(theta), 30 * (1 - np.cos(theta)), theta]))
    for _ in range(30):
        n = 15
        centres = np.column_stack([rng.uniform(-5, 35, n), rng.uniform(-5, 30, n), rng.uniform(-3, 3, n)])
        polys = np.stack([_pad(box_corners(c, rng.uniform(1, 6), rng.uniform(1, 3))) for c in centres])
        start = rng.uniform(0, 20)
        entry = corridor_entry(path, start, 1.0, polys)
        j, e = first_in_corridor(path, start, 1.0, polys)
        if np.isfinite(entry).any():
            assert e == pytest.approx(entry.min()) and entry[j] == pytest.approx(entry.min())
        else:
            assert j == -1 and np.isinf(e)


def test_projection_poses_and_sub_path() -> None:
    path = make_path([[0, 0, 0], [10, 0, 0], [10, 10, np.pi / 2]])
    arc, lat = project(path, np.array([[5.0, 1.0], [11.0, 5.0], [-2.0, -1.0]]))
    np.testing.assert_allclose(arc, [5.0, 15.0, -2.0])
    np.testing.assert_allclose(lat, [1.0, -1.0, -1.0])
    np.testing.assert_allclose(poses_at(path, [0.0, 10.0, 25.0]), [[0, 0, 0], [10, 0, 0], [10, 10, np.pi / 2]])
    sub = sub_path(path, 5.0, 15.0)
    assert sub.length == pytest.approx(10.0)
    np.testing.assert_allclose(sub.xyh[[0, -1], :2], [[5, 0], [10, 5]])
    pose, band = band_polygon(path, 2.0, 6.0, 1.0, 3, center=4.0)
    np.testing.assert_allclose(pose, [4.0, 0.0, 0.0])
    np.testing.assert_allclose(band, [[2, 1], [4, 1], [6, 1], [6, -1], [4, -1], [2, -1]])


def test_simplify_keeps_shape_and_vertex_headings() -> None:
    x = np.linspace(0, 50, 51)
    straight = np.column_stack([x, np.zeros_like(x), np.zeros_like(x)])
    assert len(simplify_polyline(straight, 0.02)) == 2
    theta = np.linspace(0, np.pi / 2, 91)
    arc = np.column_stack([20 * np.sin(theta), 20 * (1 - np.cos(theta)), theta])
    kept = simplify_polyline(arc, 0.02)
    assert 5 < len(kept) < 91
    assert all(np.any(np.all(arc == k, axis=1)) for k in kept)  # kept vertices are original rows
