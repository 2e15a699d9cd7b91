"""Two-stage controller and batched rollouts: tracking quality, stopping, batch == loop, closed loop == batch."""

from __future__ import annotations

import numpy as np
import pytest

from sim.dynamics.bicycle import BicycleState
from sim.dynamics.controller import simulate_trajectories, two_stage_step
from sim.errors import DataError
from sim.scenario import EgoStates
from sim.trajectory import Trajectory


def _ego(pose=(0.0, 0.0, 0.0), v: float = 0.0, t: float = 0.0) -> EgoStates:
    return EgoStates(np.array([t]), np.array([pose], dtype=float), np.array([[v, 0.0]]), np.zeros((1, 2)),
                     np.zeros(1), np.zeros(1))


def _arc(radius: float, speed: float, times: np.ndarray) -> np.ndarray:
    s = speed * times
    h = s / radius
    return np.stack([radius * np.sin(h), radius * (1 - np.cos(h)), h], -1)


def test_tracks_straight_line_from_a_lateral_offset() -> None:
    t = np.arange(1, 101) * 0.1
    ref = np.stack([10.0 * t, np.zeros_like(t), np.zeros_like(t)], -1)
    r = simulate_trajectories(_ego(pose=(0.0, 1.0, 0.0), v=10.0), ref[None])
    assert r.pose.shape == (1, 101, 3) and r.time_s[-1] == pytest.approx(10.0)
    assert abs(r.pose[0, 0, 1]) == 1.0
    assert np.all(np.abs(r.pose[0, 60:, 1]) < 0.1)  # converged within 6 s
    assert np.abs(r.pose[0, :, 1]).max() <= 1.0 + 1e-9  # no overshoot beyond the start offset
    assert r.velocity[0, -1] == pytest.approx(10.0, abs=0.2)
    assert np.all(np.abs(r.pose[0, 60:, 0] - ref[59:, 0]) < 1.0)


def test_tracks_circle_arc_with_small_error() -> None:
    radius, speed = 30.0, 8.0
    t = np.arange(1, 81) * 0.1
    ref = _arc(radius, speed, t)
    ackermann = np.arctan(3.089 / radius)

    def lateral_and_total_error(initial_steering: float) -> tuple[np.ndarray, np.ndarray]:
        ego = _ego(v=speed)
        ego = EgoStates(ego.time_s, ego.pose, ego.velocity, ego.acceleration, np.array([initial_steering]),
                        ego.yaw_rate)
        r = simulate_trajectories(ego, ref[None])
        d = r.pose[0, 1:, :2] - ref[:, :2]
        lateral = -d[:, 0] * np.sin(ref[:, 2]) + d[:, 1] * np.cos(ref[:, 2])
        assert r.steering_angle[0, -1] == pytest.approx(ackermann, abs=0.01)  # settles near atan(L/R)
        return lateral, np.hypot(*d.T)

    lateral, total = lateral_and_total_error(ackermann)
    assert np.abs(lateral).max() < 0.2 and total.max() < 0.3
    # Entering the arc with straight wheels: a transient, then back near the path.
    lateral, total = lateral_and_total_error(0.0)
    assert np.abs(lateral).max() < 1.0 and np.abs(lateral[40:]).max() < 0.35 and total.max() < 1.0


def test_brings_the_car_to_a_stop() -> None:
    # Reference: decelerate from 8 m/s at 2 m/s² to a stop at 16 m, then stay there.
    t = np.arange(1, 101) * 0.1
    s = np.where(t < 4.0, 8.0 * t - t**2, 16.0)
    ref = np.stack([s, np.zeros_like(s), np.zeros_like(s)], -1)
    r = simulate_trajectories(_ego(v=8.0), ref[None])
    assert abs(r.velocity[0, -1]) < 0.2
    # The tracker has no position feedback (it tracks the speed 1 s ahead), so it overshoots a little, as
    # nuPlan's does.
    assert 16.0 <= r.pose[0, -1, 0] < 18.5
    assert abs(r.pose[0, -1, 0] - r.pose[0, -11, 0]) < 0.2  # standing still for the last second
    assert np.all(r.velocity[0] > -0.3)  # no reversing beyond a small undershoot


def test_batch_equals_per_trajectory_loop() -> None:
    rng = np.random.default_rng(0)
    k = 12
    t = np.arange(1, 41) * 0.1
    radius = rng.uniform(15, 200, k) * rng.choice([-1, 1], k)
    speed = rng.uniform(0, 15, k)
    poses = np.stack([_arc(radius[i], speed[i], t) for i in range(k)])
    initial = BicycleState(rng.normal(0, 0.3, (k, 3)), rng.uniform(0, 12, k), rng.normal(0, 1, k),
                           rng.normal(0, 0.05, k), np.zeros(k), np.zeros(k), 0.0)
    batch = simulate_trajectories(initial, poses)
    for i in range(k):
        one = simulate_trajectories(initial.take([i]), poses[i : i + 1])
        np.testing.assert_allclose(one.pose[0], batch.pose[i], atol=1e-10)
        np.testing.assert_allclose(one.velocity[0], batch.velocity[i], atol=1e-10)
        np.testing.assert_allclose(one.steering_angle[0], batch.steering_angle[i], atol=1e-10)
    # A single initial state is shared by all rollouts.
    shared = simulate_trajectories(initial.take([0]), poses)
    np.testing.assert_allclose(shared.pose[:, 0], np.repeat(initial.pose[:1], k, 0))


def test_closed_loop_steps_equal_batched_rollout() -> None:
    # Stepping the two-stage controller along a fixed trajectory = the batched rollout of the same reference.
    t = np.arange(0, 51) * 0.1 + 7.0
    ref = _arc(40.0, 9.0, t - 7.0)
    ref[:, :2] += [100.0, -50.0]
    ego = _ego(pose=(100.2, -50.3, 0.05), v=8.0, t=7.0)
    trajectory = Trajectory(t, ref)
    states = [ego]
    for _ in range(20):
        states.append(two_stage_step(states[-1], trajectory, 0.1))
    closed = EgoStates.concatenate(states)
    batch = simulate_trajectories(ego, ref[None], reference_includes_current=True)
    np.testing.assert_allclose(closed.pose, batch.pose[0, :21], atol=1e-9)
    np.testing.assert_allclose(closed.velocity[:, 0], batch.velocity[0, :21], atol=1e-9)
    np.testing.assert_allclose(closed.time_s, batch.time_s[:21])
    assert np.all(closed.velocity[:, 1] == 0.0)


def test_closed_loop_accepts_coarse_trajectories() -> None:
    t = np.arange(0, 17) * 0.5  # 8 s at 0.5 s like a learned planner's output
    ref = np.stack([6.0 * t, np.zeros_like(t), np.zeros_like(t)], -1)
    ego = _ego(v=6.0)
    for _ in range(30):
        traj = Trajectory(t + ego.time_s[-1], ref + [ego.pose[-1, 0], 0.0, 0.0])
        ego = two_stage_step(ego, traj, 0.1)
    assert ego.time_s[0] == pytest.approx(3.0)
    assert ego.pose[0, 0] == pytest.approx(18.0, abs=0.3)
    assert ego.velocity[0, 0] == pytest.approx(6.0, abs=0.05)


def test_trajectory_must_cover_now() -> None:
    traj = Trajectory(np.array([1.0, 2.0]), np.zeros((2, 3)))
    with pytest.raises(DataError, match="current time"):
        two_stage_step(_ego(t=0.5), traj, 0.1)


def test_simulate_with_coarser_step_resamples() -> None:
    t = np.arange(1, 21) * 0.2
    ref = np.stack([5.0 * t, np.zeros_like(t), np.zeros_like(t)], -1)
    r = simulate_trajectories(_ego(v=5.0), ref[None], dt=0.2)
    assert r.pose.shape == (1, 21, 3)
    np.testing.assert_allclose(r.pose[0, :, 0], np.concatenate([[0.0], ref[:, 0]]), atol=0.05)


def test_single_vehicle_step_equals_batched_tracker_and_bicycle() -> None:
    """two_stage_step (one vehicle, in floats) = lqr.track + bicycle.propagate with K=1 arrays."""
    from sim.dynamics.bicycle import BicycleState, propagate
    from sim.dynamics.lqr import LQR_DEFAULT, reference_from_trajectory, track

    rng = np.random.default_rng(3)
    for k in range(200):
        n = int(rng.integers(3, 90))
        step = float(rng.choice([0.1, 0.05, 0.25, 0.137]))
        t = 2.0 + np.arange(n) * step
        heading = np.cumsum(rng.normal(0, 0.3 if k % 3 else 1.5, n)) + rng.uniform(-4, 4)  # wraps past ±π
        v = rng.uniform(0, 15) if k % 7 else rng.uniform(0, 0.15)  # some below the stopping speed
        xy = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], -1) * v * step, 0)
        traj = Trajectory(t, np.concatenate([xy, heading[:, None]], 1))
        now = float(t[0] + rng.uniform(0, 0.9) * (t[-1] - t[0]))
        if t[-1] - t[0] < 0.1:
            continue
        pose = traj.at(np.array([now]))[0] + rng.normal(0, 0.3, 3)
        ego = EgoStates(np.array([now]), pose[None], np.array([[rng.uniform(0, 15), 0.0]]),
                        np.array([[rng.normal(0, 2), 0.0]]), np.array([rng.normal(0, 0.3)]), np.array([0.0]))
        state = BicycleState.from_ego(ego)
        accel, rate = track(state.pose, state.velocity, state.steering_angle, now, reference_from_trajectory(traj),
                            LQR_DEFAULT, reference_pose=traj.at(np.array([now])))
        expected = propagate(state, accel, rate, 0.1).to_ego()
        got = two_stage_step(ego, traj, 0.1)
        for field in ("time_s", "pose", "velocity", "acceleration", "steering_angle", "yaw_rate"):
            np.testing.assert_allclose(getattr(got, field), getattr(expected, field), rtol=0, atol=1e-12)


def test_fused_rollout_equals_track_and_propagate_bit_for_bit() -> None:
    """The fused on-grid loop of simulate_trajectories = lqr.track + bicycle.propagate step by step, exactly,
    also for headings across ±π (the wrap fast path must not apply there) and references that stop."""
    from sim.dynamics.bicycle import propagate
    from sim.dynamics.lqr import LQR_DEFAULT, fit_reference, track

    rng = np.random.default_rng(3)
    k, steps = 6, 40
    t = np.arange(steps + 1) * 0.1
    speeds = np.array([0.0, 0.1, 3.0, 8.0, 12.0, 15.0])[:, None]
    heading0 = np.array([3.1, -3.1, 0.2, np.pi - 0.01, -1.0, 2.0])[:, None]
    yaw = rng.uniform(-0.3, 0.3, (k, 1))
    h = heading0 + yaw * t[None]
    x = np.cumsum(speeds * 0.1 * np.cos(h), axis=1)
    y = np.cumsum(speeds * 0.1 * np.sin(h), axis=1)
    poses = np.stack([x, y, (h + np.pi) % (2 * np.pi) - np.pi], -1)
    initial = BicycleState(poses[:, 0] + rng.normal(0.0, 0.3, (k, 3)), speeds[:, 0] + rng.normal(0.0, 0.5, k),
                           rng.normal(0.0, 0.5, k), rng.normal(0.0, 0.05, k), np.zeros(k), rng.normal(0.0, 0.1, k),
                           0.0)
    fused = simulate_trajectories(initial, poses, reference_includes_current=True)

    reference = fit_reference(poses, 0.0, LQR_DEFAULT)
    state = initial
    for i in range(steps):
        accel, rate = track(state.pose, state.velocity, state.steering_angle, i * 0.1, reference,
                            reference_pose=reference.poses[:, i].copy())
        state = propagate(state, accel, rate, 0.1, heading_rate=state.yaw_rate if i else None)
        for name, got in (("pose", fused.pose[:, i + 1]), ("velocity", fused.velocity[:, i + 1]),
                          ("acceleration", fused.acceleration[:, i + 1]),
                          ("steering_angle", fused.steering_angle[:, i + 1]),
                          ("steering_rate", fused.steering_rate[:, i + 1]), ("yaw_rate", fused.yaw_rate[:, i + 1])):
            np.testing.assert_array_equal(got, getattr(state, name), err_msg=f"{name} at step {i + 1}")
