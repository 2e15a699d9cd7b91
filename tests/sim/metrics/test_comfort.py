"""``ego_is_comfortable`` on synthetic 0.1 s rollouts (bounds strict: lon accel (-4.05, 2.40), |lat accel| < 4.89,
|jerk| < 8.37, |lon jerk| < 4.13, |yaw accel| < 1.93, |yaw rate| < 0.95)."""

from __future__ import annotations

import numpy as np
import pytest

from sim.geometry import wrap_angle
from sim.metrics.comfort import comfort_metrics, raw_acceleration, yaw_rate
from tests.sim.metrics.scenes import make_ego

T = np.arange(21) * 0.1


@pytest.mark.parametrize(("accel", "comfortable"), [(-5.0, 0.0), (-4.0, 1.0), (2.0, 1.0), (2.5, 0.0)])
def test_constant_longitudinal_acceleration(accel, comfortable):
    """Constant acceleration: the smoothed series equals it, all jerks are 0, so only the lon bound decides."""
    ego = make_ego(20 * T, 0.0, 0.0, 20.0 + accel * T, accel=accel)
    out = comfort_metrics(ego)
    assert out["ego_lon_acceleration.mean"] == pytest.approx(accel)
    assert out["ego_jerk.max"] == pytest.approx(0.0, abs=1e-6)
    assert out["ego_is_comfortable"] == comfortable
    assert out["ego_lon_acceleration.within_bound"] == comfortable


@pytest.mark.parametrize(("rate", "comfortable"), [(1.0, 0.0), (0.9, 1.0)])
def test_yaw_rate_bound_across_the_wrap(rate, comfortable):
    """Heading 3.0 + rate * t, wrapped at pi (the series crosses it): unwrapping recovers a constant yaw rate
    ``rate`` (|1.0| >= 0.95 fails, 0.9 passes) and yaw acceleration 0."""
    ego = make_ego(10 * T, 0.0, wrap_angle(3.0 + rate * T), 10.0)
    np.testing.assert_allclose(yaw_rate(ego), rate, atol=1e-6)
    out = comfort_metrics(ego)
    assert out["ego_yaw_acceleration.max"] == pytest.approx(0.0, abs=1e-6)
    assert out["ego_is_comfortable"] == comfortable


def test_centre_acceleration_includes_the_rigid_body_shift():
    """Rear-axle acceleration 0 with yaw rate 2 rad/s: the centre (1.461 m ahead) accelerates at
    1.461 * 2^2 = 5.844 m/s^2 > 2.40 -> uncomfortable."""
    ego = make_ego(10 * T, 0.0, 0.0, 10.0, yaw_rate=2.0)
    np.testing.assert_allclose(raw_acceleration(ego, "x"), 1.461 * 4.0)
    assert comfort_metrics(ego)["ego_is_comfortable"] == 0.0

