"""baseline_distance (pruned numpy projection) equals shapely's line_locate_point exactly."""

import numpy as np
import shapely

from sim.metrics.route import baseline_distance


def test_equals_shapely_line_locate_point_exactly() -> None:
    rng = np.random.default_rng(7)
    for k in range(300):
        n = int(rng.integers(2, 150))
        base = np.cumsum(rng.normal(0, 3, (n, 2)), 0) + rng.normal(0, 500, 2)
        if k % 5 == 0:  # zero-length segments
            base[int(rng.integers(1, n))] = base[0]
        if k % 7 == 0:  # integer coordinates: exact ties between segments
            base = np.round(base)
        if k % 13 == 0:  # back and forth along the same line
            base = np.concatenate([base, base[::-1]])
        p = int(rng.integers(1, 40))
        pts = base[rng.integers(0, len(base), p)] + rng.normal(0, 5, (p, 2)) * (k % 3)
        if k % 11 == 0:
            pts = np.round(pts)
        expected = np.asarray(shapely.line_locate_point(shapely.LineString(base), shapely.points(pts)))
        got = baseline_distance(base, pts)
        assert np.array_equal(got, expected), k


def test_points_far_away_and_single_point() -> None:
    base = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    got = baseline_distance(base, np.array([[-100.0, 3.0], [5.0, -1.0], [50.0, 50.0], [10.0, 5.0]]))
    assert np.array_equal(got, [0.0, 5.0, 20.0, 15.0])
