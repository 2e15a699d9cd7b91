"""LQR tracker: the fast batched fits and commands against a literal (matrix, pinv) formulation of nuPlan's
tracker written here from ../shared/reference/nuplan.md §4.3, plus behavioural checks."""

from __future__ import annotations

import numpy as np
import pytest

from sim.dynamics.lqr import (
    LQR_DEFAULT,
    curvature_moments,
    fit_curvature_profile,
    fit_reference,
    fit_velocity_profile,
    horizon_references,
    lqr_commands,
    reference_from_samples,
    resample_offsets,
    track,
)
from sim.errors import DataError
from sim.geometry import wrap_angle

P = LQR_DEFAULT


def _literal_velocity_fit(poses: np.ndarray, dt: float, jerk: float) -> tuple[np.ndarray, np.ndarray]:
    d = np.diff(poses[:, :2], axis=0)
    m = len(d)
    a = np.zeros((2 * m, m))
    for k, h in enumerate(poses[:-1, 2]):
        a[2 * k : 2 * k + 2, 0] = [np.cos(h) * dt, np.sin(h) * dt]
        a[2 * k : 2 * k + 2, 1 : 1 + k] = np.array([np.cos(h), np.sin(h)])[:, None] * dt**2
    band = np.zeros((max(m - 2, 0), m - 1))
    for i in range(m - 2):
        band[i, i], band[i, i + 1] = -1.0, 1.0
    r = np.hstack([np.zeros((len(band), 1)), band])
    x = np.linalg.pinv(a.T @ a + jerk * r.T @ r) @ a.T @ d.reshape(-1)
    return x[0] + np.concatenate([[0.0], np.cumsum(x[1:] * dt)]), x[1:]


def _literal_curvature_fit(dpsi: np.ndarray, v: np.ndarray, dt: float, pen: float) -> np.ndarray:
    a = np.tri(len(dpsi))
    a[:, 0] = v * dt
    for i in range(1, len(v)):
        a[i, 1:] *= v[i] * dt**2
    q = pen * np.eye(len(dpsi))
    q[0, 0] = 1e-10
    x = np.linalg.pinv(a.T @ a + q) @ a.T @ dpsi
    return x[0] + np.concatenate([[0.0], np.cumsum(x[1:] * dt)])


def _literal_commands(pose, v0, steer, ref_pose, v_ref, curvature) -> tuple[float, float]:
    dt, n, wb = P.discretization_time, P.tracking_horizon, P.wheel_base
    dx, dy = pose[0] - ref_pose[0], pose[1] - ref_pose[1]
    lat = -dx * np.sin(ref_pose[2]) + dy * np.cos(ref_pose[2])
    head = wrap_angle(pose[2] - ref_pose[2])
    if v_ref <= 0.2 and v0 <= 0.2:
        return -0.5 * (v0 - v_ref), 0.0
    b = n * dt
    accel = float(-(b * 10.0) / (b * 10.0 * b + 1.0) * (v0 - v_ref))
    speeds = v0 + accel * dt * np.arange(n)
    a_mat, b_mat, g = np.eye(3), np.zeros((3, 1)), np.zeros(3)
    for vel, kap in zip(speeds, curvature, strict=True):
        s = np.eye(3)
        s[0, 1] = vel * dt
        s[1, 2] = vel * dt / wb
        aff = np.array([0.0, -vel * kap * dt, 0.0])
        a_mat, b_mat, g = s @ a_mat, s @ b_mat + np.array([[0.0], [0.0], [dt]]), s @ g + aff
    err = a_mat @ np.array([lat, head, steer]) + g
    err[1:] = wrap_angle(err[1:])
    q = np.diag([1.0, 10.0, 0.0])
    u = -np.linalg.inv(b_mat.T @ q @ b_mat + 1.0) @ b_mat.T @ q @ err
    return accel, float(u[0])


def _random_references(rng: np.random.Generator, k: int, m: int) -> np.ndarray:
    """Smooth-ish random drives: speeds 0-15 m/s with noise, curvatures up to 0.1 1/m."""
    dt = 0.1
    v = np.clip(rng.uniform(0, 15, (k, 1)) + np.cumsum(rng.normal(0, 0.3, (k, m)), 1), 0, None)
    kappa = rng.uniform(-0.1, 0.1, (k, 1)) + np.cumsum(rng.normal(0, 0.01, (k, m)), 1)
    heading = np.concatenate([rng.uniform(-np.pi, np.pi, (k, 1)), np.zeros((k, m))], 1)
    heading[:, 1:] = heading[:, :1] + np.cumsum(v * kappa * dt, 1)
    xy = np.zeros((k, m + 1, 2))
    xy[:, 1:, 0] = np.cumsum(v * np.cos(heading[:, :-1]) * dt, 1)
    xy[:, 1:, 1] = np.cumsum(v * np.sin(heading[:, :-1]) * dt, 1)
    poses = np.concatenate([xy + rng.normal(0, 0.02, xy.shape), wrap_angle(heading)[..., None]], -1)
    return poses


@pytest.mark.parametrize("m", [1, 2, 3, 40, 80])
def test_profile_fits_match_literal_least_squares(m: int) -> None:
    rng = np.random.default_rng(m)
    poses = _random_references(rng, 6, m)
    velocity, accel = fit_velocity_profile(poses, 0.1, 1e-4)
    dpsi = wrap_angle(np.diff(poses[..., 2], axis=1))
    curvature, rate = fit_curvature_profile(dpsi, velocity, 0.1, 1e-2)
    assert velocity.shape == curvature.shape == (6, m) and accel.shape == rate.shape == (6, m - 1)
    for k in range(6):
        v_lit, a_lit = _literal_velocity_fit(poses[k], 0.1, 1e-4)
        np.testing.assert_allclose(velocity[k], v_lit, atol=1e-7)
        np.testing.assert_allclose(accel[k], a_lit, atol=1e-5)
        np.testing.assert_allclose(curvature[k], _literal_curvature_fit(dpsi[k], v_lit, 0.1, 1e-2), atol=1e-7)


def test_commands_match_literal_tracker() -> None:
    rng = np.random.default_rng(7)
    k = 50
    ref = fit_reference(_random_references(rng, k, 30), 2.0)
    t_now = 2.0 + rng.integers(0, 30) * 0.1 + 0.03  # off-grid on purpose
    pose = ref.pose_at(t_now) + rng.normal(0, [0.5, 0.5, 0.1], (k, 3))
    v0 = np.clip(ref.velocity[:, 0] + rng.normal(0, 2, k), 0, None)
    v0[:5] = 0.1  # some stopping cases
    steer = rng.normal(0, 0.1, k)
    accel, rate = track(pose, v0, steer, t_now, ref)
    ref_pose = ref.pose_at(t_now)
    grid = 2.0 + 0.1 * np.arange(ref.velocity.shape[1])
    for i in range(k):
        v_ref = np.interp(t_now + 1.0, grid, ref.velocity[i])
        curv = np.interp(t_now + 0.1 * np.arange(10), grid, ref.curvature[i])
        a_lit, r_lit = _literal_commands(pose[i], v0[i], steer[i], ref_pose[i], v_ref, curv)
        assert accel[i] == pytest.approx(a_lit, abs=1e-9)
        assert rate[i] == pytest.approx(r_lit, abs=1e-9)
    assert np.any(rate[:5] == 0.0) or np.all(ref.velocity[:5, -1] > 0.2)


def test_horizon_references_clamp_like_np_interp() -> None:
    ref = fit_reference(_random_references(np.random.default_rng(3), 2, 12), 5.0)
    v_ref, curv = horizon_references(ref, 5.0 + 0.75)  # 1 s ahead is past the end (5.0 + 1.1)
    grid = 5.0 + 0.1 * np.arange(12)
    for i in range(2):
        assert v_ref[i] == pytest.approx(np.interp(6.75, grid, ref.velocity[i]))
        np.testing.assert_allclose(curv[i], np.interp(5.75 + 0.1 * np.arange(10), grid, ref.curvature[i]))
    np.testing.assert_allclose(curvature_moments(curv)[:, 0], 0.1 * curv.sum(1))


def test_resampling_follows_nuplan_grid() -> None:
    np.testing.assert_allclose(resample_offsets(8.0, 0.1), np.arange(81) * 0.1)  # end included when it fits
    np.testing.assert_allclose(resample_offsets(0.25, 0.1), [0.0, 0.1, 0.2])
    t = np.array([0.0, 0.5, 1.0])
    poses = np.array([[[0, 0, 0], [5, 0, 0], [10, 0, 0.0]]], dtype=float)
    ref = reference_from_samples(t + 3.0, poses)
    assert ref.poses.shape == (1, 11, 3) and ref.start_s[0] == 3.0
    np.testing.assert_allclose(ref.poses[0, :, 0], np.arange(11))
    np.testing.assert_allclose(ref.velocity[0], 10.0, atol=0.05)
    with pytest.raises(DataError, match="spans"):
        reference_from_samples([0.0, 0.05], poses[:, :2])


def test_stopping_controller_below_threshold() -> None:
    pose = np.zeros((1, 3))
    accel, rate = lqr_commands(pose, np.array([0.15]), np.array([0.1]), pose, np.array([0.05]), np.zeros((1, 5)))
    assert accel[0] == pytest.approx(-0.5 * 0.1) and rate[0] == 0.0


def test_per_trajectory_start_times() -> None:
    rng = np.random.default_rng(11)
    poses = _random_references(rng, 3, 20)
    starts = np.array([1.0, 1.3, 0.8])
    times = starts[:, None] + 0.1 * np.arange(21)[None]
    ref = reference_from_samples(times, poses)
    np.testing.assert_allclose(ref.start_s, starts)
    state = rng.normal(0, 0.3, (3, 3)) + poses[:, 3]
    v0, steer = np.array([4.0, 6.0, 2.0]), np.array([0.0, 0.05, -0.02])
    accel, rate = track(state, v0, steer, 1.45, ref)
    for k in range(3):
        one = fit_reference(poses[k : k + 1], starts[k])
        a1, r1 = track(state[k : k + 1], v0[k : k + 1], steer[k : k + 1], 1.45, one)
        assert accel[k] == pytest.approx(a1[0], abs=1e-12) and rate[k] == pytest.approx(r1[0], abs=1e-12)
    with pytest.raises(DataError, match="beyond an offset"):
        reference_from_samples(times * np.array([[1.0], [1.0], [1.1]]), poses)
