"""Kinematic bicycle: hand-derived cases."""

from __future__ import annotations

import numpy as np
import pytest

from sim.dynamics.bicycle import MAX_STEERING_ANGLE, BicycleState, propagate
from sim.scenario import EgoStates
from sim.vehicle import PACIFICA


def _state(k: int = 1, v: float = 0.0, a: float = 0.0, steer: float = 0.0, heading: float = 0.0) -> BicycleState:
    pose = np.zeros((k, 3))
    pose[:, 2] = heading
    return BicycleState(pose, np.full(k, v), np.full(k, a), np.full(k, steer), np.zeros(k), np.zeros(k), 0.0)


def test_straight_acceleration_follows_first_order_lag() -> None:
    dt, a_cmd = 0.1, 2.0
    s = _state(heading=0.3)
    xs, vs, accs = [0.0], [0.0], [0.0]
    for _ in range(30):
        s = propagate(s, np.array([a_cmd]), np.array([0.0]), dt)
        # Hand recursion: a' = a + dt/(dt+0.2)(a_cmd - a); v' = v + dt a'; distance += dt v (old speed).
        accs.append(accs[-1] + dt / (dt + 0.2) * (a_cmd - accs[-1]))
        xs.append(xs[-1] + dt * vs[-1])
        vs.append(vs[-1] + dt * accs[-1])
    n = np.arange(31)
    np.testing.assert_allclose(accs, a_cmd * (1 - (0.2 / 0.3) ** n), atol=1e-12)  # closed form of the lag
    assert s.acceleration[0] == pytest.approx(accs[-1], abs=1e-12)
    assert s.velocity[0] == pytest.approx(vs[-1], abs=1e-12)
    assert s.pose[0, 0] == pytest.approx(xs[-1] * np.cos(0.3), abs=1e-12)
    assert s.pose[0, 1] == pytest.approx(xs[-1] * np.sin(0.3), abs=1e-12)
    assert s.pose[0, 2] == pytest.approx(0.3)
    assert s.yaw_rate[0] == 0.0
    assert s.time_s == pytest.approx(3.0)


def test_constant_steering_drives_a_circle_of_radius_wheelbase_over_tan() -> None:
    dt, v, steer = 0.1, 5.0, 0.2
    s = _state(v=v, steer=steer)
    points = [s.pose[0, :2].copy()]
    for _ in range(200):
        s = propagate(s, np.zeros(1), np.zeros(1), dt)
        points.append(s.pose[0, :2].copy())
    p = np.array(points)
    radius = PACIFICA.wheel_base / np.tan(steer)
    # Forward Euler walks a regular polygon: chord v·dt, turn v·dt/R per step -> circumradius below.
    chord, turn = v * dt, v * dt / radius
    circumradius = chord / (2 * np.sin(turn / 2))
    # Centre: left of the start, perpendicular to the first chord's midpoint.
    mid = chord / 2
    centre = np.array([mid, np.sqrt(circumradius**2 - mid**2)])
    np.testing.assert_allclose(np.hypot(*(p - centre).T), circumradius, rtol=1e-9)
    assert circumradius == pytest.approx(radius, rel=1e-3)
    assert s.yaw_rate[0] == pytest.approx(v * np.tan(steer) / PACIFICA.wheel_base)
    assert s.steering_angle[0] == pytest.approx(steer)
    assert s.velocity[0] == pytest.approx(v)


def test_steering_lag_rate_and_clip() -> None:
    dt = 0.1
    s = propagate(_state(2, v=3.0), np.zeros(2), np.array([1.0, -100.0]), dt)
    expected = dt / (dt + 0.05) * dt * 1.0  # lagged step toward δ + dt·rate
    assert s.steering_angle[0] == pytest.approx(expected)
    assert s.steering_rate[0] == pytest.approx(expected / dt)
    assert s.steering_angle[1] == pytest.approx(-MAX_STEERING_ANGLE)  # clipped
    assert s.yaw_rate[1] == pytest.approx(3.0 * np.tan(-MAX_STEERING_ANGLE) / PACIFICA.wheel_base)


def test_batch_equals_single() -> None:
    rng = np.random.default_rng(1)
    k = 16
    s = BicycleState(rng.normal(size=(k, 3)) * 10, rng.uniform(0, 15, k), rng.normal(size=k), rng.normal(size=k) * .3,
                     np.zeros(k), np.zeros(k), 1.0)
    a, r = rng.normal(size=k), rng.normal(size=k)
    batch = propagate(s, a, r, 0.1)
    for i in range(k):
        one = propagate(s.take([i]), a[i : i + 1], r[i : i + 1], 0.1)
        np.testing.assert_array_equal(one.pose[0], batch.pose[i])
        np.testing.assert_array_equal(one.velocity[0], batch.velocity[i])


def test_ego_round_trip() -> None:
    ego = EgoStates(np.array([0.0, 0.1]), np.array([[0, 0, 0], [1.0, 2.0, 0.5]]), np.array([[0, 0], [4.0, 0.3]]),
                    np.array([[0, 0], [0.5, 0.1]]), np.array([0.0, 0.05]), np.array([0.0, 0.02]))
    s = BicycleState.from_ego(ego, repeat=3)
    assert len(s) == 3 and s.time_s == pytest.approx(0.1)
    np.testing.assert_array_equal(s.pose[2], [1.0, 2.0, 0.5])
    assert s.velocity[1] == 4.0 and s.acceleration[0] == 0.5  # longitudinal components
    back = s.to_ego(1)
    np.testing.assert_array_equal(back.pose[0], ego.pose[1])
    np.testing.assert_array_equal(back.velocity[0], [4.0, 0.0])
    assert back.steering_angle[0] == 0.05 and back.yaw_rate[0] == 0.02


def test_rejects_non_positive_dt() -> None:
    with pytest.raises(ValueError, match="dt"):
        propagate(_state(), np.zeros(1), np.zeros(1), 0.0)
