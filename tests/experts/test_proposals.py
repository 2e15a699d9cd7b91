"""Speed caps along a path: the fast evaluation equals the all-pairs definition exactly."""

from __future__ import annotations

import numpy as np
import pytest

from experts.proposals import speed_cap
from experts.route import Path


def _cap_all_pairs(path: Path, points_s: np.ndarray, points_v: np.ndarray, decel: float, lat: float) -> np.ndarray:
    """The definition: min over every vertex and caution point ahead of sqrt(v² + 2·decel·gap) (points up to
    3 m behind keep their own cap)."""
    ds = np.gradient(path.s)
    kappa = np.abs(np.gradient(path.heading) / np.maximum(ds, 1e-6))
    kappa = np.convolve(kappa, np.ones(5) / 5.0, mode="same")
    local = np.sqrt(lat / np.maximum(kappa, 1e-4))
    r_s = np.concatenate([path.s, points_s])
    r_v = np.concatenate([local, points_v])
    gap = r_s[None, :] - path.s[:, None]
    reach = np.where(gap >= 0.0, np.sqrt(r_v[None, :] ** 2 + 2.0 * decel * np.maximum(gap, 0.0)), np.inf)
    behind = (gap < 0.0) & (gap > -3.0) & (np.arange(len(r_s)) >= len(path))[None]
    return np.where(behind, r_v[None], reach).min(1)


@pytest.mark.parametrize("seed", range(6))
def test_speed_cap_equals_the_all_pairs_minimum_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 200
    s = np.arange(n, dtype=np.float64)
    # straight, then a curve, then straight again (and on some seeds curved everywhere)
    curvature = np.where((s > 60) & (s < 110), rng.uniform(0.01, 0.05), 0.0)
    if seed % 3 == 0:
        curvature = curvature + rng.uniform(0.0, 0.01, n)
    heading = np.cumsum(curvature)
    xy = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], -1), axis=0)
    path = Path(xy, heading, s, np.zeros(n, np.int64), np.full(n, 15.0))
    k = seed % 4
    points_s = rng.uniform(-5.0, 190.0, k)
    points_v = rng.uniform(0.0, 10.0, k)
    got = speed_cap(path, points_s, points_v, 1.5, 2.5)
    np.testing.assert_array_equal(got, _cap_all_pairs(path, points_s, points_v, 1.5, 2.5))
