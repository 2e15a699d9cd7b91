"""The ego controller: LQR tracker + kinematic bicycle (nuPlan's ``TwoStageController``).

- :func:`two_stage_step` moves the closed-loop ego one step along the planner's trajectory.
- :func:`simulate_trajectories` rolls out K candidate trajectories at once with the same controller (what
  PDM's batched simulator does); the expert and the scorer use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from sim.dynamics.bicycle import (
    ACCEL_TIME_CONSTANT,
    MAX_STEERING_ANGLE,
    STEERING_ANGLE_TIME_CONSTANT,
    BicycleState,
    propagate,
    wrap_angle,
)
from sim.dynamics.lqr import (
    INITIAL_CURVATURE_PENALTY,
    LQR_DEFAULT,
    LQRParameters,
    _horizon_constants,
    _velocity_fit_matrices,
    curvature_moments,
    fit_reference,
    reference_from_samples,
    resample_offsets,
    track,
)
from sim.errors import DataError
from sim.scenario import EgoStates
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA, VehicleParameters

F64 = npt.NDArray[np.float64]

#: Tolerance on "the trajectory covers the current time" (s): planners' float times may be off by rounding.
TIME_TOLERANCE_S = 1e-6


def two_stage_step(
    ego: EgoStates,
    trajectory: Trajectory,
    dt: float,
    params: LQRParameters = LQR_DEFAULT,
    vehicle: VehicleParameters = PACIFICA,
) -> EgoStates:
    """The ego state ``dt`` seconds after the last state of ``ego``, tracking ``trajectory`` (one state).

    Like nuPlan, the trajectory must cover the current time (start ≤ now ≤ end) and span at least one
    tracker step (0.1 s); otherwise a :class:`sim.errors.DataError` names the problem.

    Same arithmetic as :func:`sim.dynamics.lqr.track` + :func:`sim.dynamics.bicycle.propagate` with K=1, written
    for one vehicle: the closed loop calls it every step, where numpy's per-call overhead on (1,)-arrays
    dominated. Only the reference fit (one vector per trajectory sample) stays in numpy.
    """
    if not dt > 0.0:
        raise ValueError(f"bicycle propagate: dt={dt} s (expected > 0)")
    i = len(ego) - 1
    now = float(ego.time_s[i])
    if not (trajectory.start_s - TIME_TOLERANCE_S <= now <= trajectory.end_s + TIME_TOLERANCE_S):
        raise DataError(None, f"planner trajectory covers [{trajectory.start_s:.3f}, {trajectory.end_s:.3f}] s "
                        f"but the current time is {now:.3f} s", "a trajectory that starts at or before now")
    x, y, heading = (float(c) for c in ego.pose[i])
    v = float(ego.velocity[i, 0])
    a = float(ego.acceleration[i, 0])
    steering = float(ego.steering_angle[i])
    accel_cmd, steering_rate_cmd = _single_commands(x, y, heading, v, steering, now, trajectory, params)

    # nuPlan's bicycle step (see sim.dynamics.bicycle.propagate), in floats.
    accel = a + dt / (dt + ACCEL_TIME_CONSTANT) * (accel_cmd - a)
    ideal_steering = steering + dt * steering_rate_cmd
    lagged_steering = steering + dt / (dt + STEERING_ANGLE_TIME_CONSTANT) * (ideal_steering - steering)
    steering_rate = (lagged_steering - steering) / dt
    new_x = x + dt * v * math.cos(heading)
    new_y = y + dt * v * math.sin(heading)
    heading_rate = v * math.tan(steering) / vehicle.wheel_base
    new_heading = _wrap(heading + dt * heading_rate)
    velocity = v + dt * accel
    new_steering = min(max(steering + dt * steering_rate, -MAX_STEERING_ANGLE), MAX_STEERING_ANGLE)
    yaw_rate = velocity * math.tan(new_steering) / vehicle.wheel_base
    return EgoStates(np.array([now + dt]), np.array([[new_x, new_y, new_heading]]), np.array([[velocity, 0.0]]),
                     np.array([[accel, 0.0]]), np.array([new_steering]), np.array([yaw_rate]))


_TWO_PI = 2.0 * math.pi


def _wrap(angle: float) -> float:
    """:func:`sim.dynamics.bicycle.wrap_angle` for one float (same operations)."""
    return angle - _TWO_PI * math.floor((angle + math.pi) / _TWO_PI)


def _unwrap(heading: F64) -> F64:
    """``np.unwrap`` (same values), skipping its work when no step jumps by π or more (the usual case)."""
    if len(heading) < 2 or bool((np.abs(np.diff(heading)) < math.pi).all()):
        return heading
    return np.unwrap(heading)


def _single_commands(x: float, y: float, heading: float, v: float, steering: float, now: float,
                     trajectory: Trajectory, params: LQRParameters) -> tuple[float, float]:
    """:func:`sim.dynamics.lqr.track` for one vehicle and one planner trajectory (reference fitted here)."""
    dt = params.discretization_time
    n = params.tracking_horizon
    t = np.asarray(trajectory.time_s, dtype=np.float64)
    poses = np.asarray(trajectory.pose, dtype=np.float64)
    # --- reference_from_samples: resample on nuPlan's grid from the trajectory's start
    t0 = float(t[0])
    rel = t - t0
    idx, frac, on_grid = _resample_plan(rel.tobytes(), dt)
    unwrapped = _unwrap(poses[:, 2])
    if on_grid:  # the grid hits samples: q[idx]·1 + q[idx+1]·0 is q[idx]
        xy = poses[idx, :2]
        h = wrap_angle(unwrapped[idx])
    else:
        q = np.empty((len(t), 3))
        q[:, :2] = poses[:, :2]
        q[:, 2] = unwrapped
        fr = frac[:, None]
        resampled = q[idx] * (1.0 - fr) + q[idx + 1] * fr
        xy = resampled[:, :2]
        h = wrap_angle(resampled[:, 2])
    # --- fit_reference: speeds from the displacements projected on the headings, then curvatures
    heading_displacements = wrap_angle(h[1:] - h[:-1])
    head = np.empty(len(h) - 1)  # unwrapped headings 0..M-1: h[0] + cumulative wrapped displacements
    head[0] = h[0]
    np.add(h[0], np.cumsum(heading_displacements[:-1]), out=head[1:])
    d = xy[1:] - xy[:-1]
    projected = d[:, 0] * np.cos(head) + d[:, 1] * np.sin(head)
    m = len(projected)
    velocity_map, _ = _velocity_fit_matrices(m, float(dt), float(params.jerk_penalty))
    velocity = (projected[None] @ velocity_map.T)[0]
    curvature = _fit_curvature_single(heading_displacements, velocity, dt, params.curvature_rate_penalty)
    # --- horizon references (np.interp on the uniform grid, clamped), as lqr.horizon_references
    ref_velocity = _interp_grid(velocity, (now + dt * n - t0) / dt)
    if m == 1:
        kappa = np.full(n, curvature[0])
    else:
        u = np.clip(((now + _horizon_steps(dt, n)) - t0) / dt, 0.0, m - 1.0)
        i0 = np.minimum(u.astype(np.int64), m - 2)
        k0 = curvature[i0]
        kappa = k0 + (curvature[i0 + 1] - k0) * (u - i0)
    moments = kappa[None] @ _moment_weights(params)
    # --- reference pose: the planner's own trajectory at now (as Trajectory.at)
    rx = float(np.interp(now, t, poses[:, 0]))
    ry = float(np.interp(now, t, poses[:, 1]))
    rh = (float(np.interp(now, t, unwrapped)) + math.pi) % _TWO_PI - math.pi  # as sim.geometry.wrap_angle
    m_a, m_b, m_c, m_d, m_e = (float(c) for c in moments[0])
    return _lqr_single(x, y, heading, v, steering, rx, ry, rh, ref_velocity, m_a, m_b, m_c, m_d, m_e, params)


@lru_cache(maxsize=512)
def _resample_plan(rel_bytes: bytes, dt: float) -> tuple[npt.NDArray[np.int64], F64, bool]:
    """How a trajectory with relative times ``rel_bytes`` (float64 bytes, from 0) resamples on nuPlan's grid:
    ``(idx, frac, on_grid)`` of ``lqr.reference_from_samples``; cached because planners repeat their time grid."""
    rel = np.frombuffer(rel_bytes, dtype=np.float64)
    if len(rel) < 2 or bool((np.diff(rel) <= 0.0).any()):
        raise DataError(None, f"reference times {rel[:5]}... are not increasing", "at least 2 increasing times")
    offsets = resample_offsets(float(rel[-1]), dt)
    if len(offsets) < 2:
        raise DataError(None, f"reference spans {rel[-1]:.3f} s",
                        f"at least {dt} s to fit a tracking reference")
    idx = np.clip(np.searchsorted(rel, offsets, side="right") - 1, 0, len(rel) - 2)
    frac = np.clip((offsets - rel[idx]) / (rel[idx + 1] - rel[idx]), 0.0, 1.0)
    idx.setflags(write=False)
    frac.setflags(write=False)
    return idx, frac, bool((frac == 0.0).all())


@lru_cache(maxsize=16)
def _horizon_steps(dt: float, n: int) -> F64:
    out = dt * np.arange(n)
    out.setflags(write=False)
    return out


def _moment_weights(params: LQRParameters) -> F64:
    weights, _ = _horizon_constants(params.tracking_horizon, params.discretization_time, params.wheel_base)
    return weights


def _interp_grid(values: F64, u: float) -> float:
    """``values`` sampled at grid indices 0..M-1, read at fractional index ``u`` (clamped), as ``_interp_uniform``."""
    m = len(values)
    if m == 1:
        return float(values[0])
    u = min(max(u, 0.0), m - 1.0)
    i0 = min(int(u), m - 2)
    v0 = float(values[i0])
    return v0 + (float(values[i0 + 1]) - v0) * (u - i0)


def _fit_curvature_single(heading_displacements: F64, velocity: F64, dt: float, penalty: float) -> F64:
    """:func:`sim.dynamics.lqr.fit_curvature_profile` for one trajectory (LAPACK's tridiagonal solver)."""
    w = velocity * dt
    m = len(w)
    mu = penalty / (dt * dt)
    diag = w * w + mu * _degree(m)
    diag[0] += INITIAL_CURVATURE_PENALTY
    rhs = w * heading_displacements
    if m == 1:
        return rhs / diag
    off = np.full(m - 1, -mu)
    _, _, _, kappa, info = _gtsv()(off, diag, off.copy(), rhs, True, True, True, True)
    if info != 0:
        raise np.linalg.LinAlgError("singular matrix in the curvature fit")
    return kappa


@lru_cache(maxsize=256)
def _degree(m: int) -> F64:
    degree = np.full(m, 2.0)
    degree[0] -= 1.0
    degree[-1] -= 1.0
    degree.setflags(write=False)
    return degree


@lru_cache(maxsize=1)
def _gtsv():  # noqa: ANN202 - a LAPACK wrapper
    from scipy.linalg import get_lapack_funcs

    (gtsv,) = get_lapack_funcs(("gtsv",), (np.zeros(1),))
    return gtsv


def _lqr_single(x: float, y: float, heading: float, v: float, steering: float, rx: float, ry: float, rh: float,
                ref_velocity: float, m_a: float, m_b: float, m_c: float, m_d: float, m_e: float,
                params: LQRParameters) -> tuple[float, float]:
    """:func:`sim.dynamics.lqr.lqr_commands` for one vehicle, in floats (same operations)."""
    n = params.tracking_horizon
    dt = params.discretization_time
    _, c = _horizon_constants(n, dt, params.wheel_base)
    dx = x - rx
    dy = y - ry
    lateral_error = dy * math.cos(rh) - dx * math.sin(rh)
    heading_error = _wrap(heading - rh)
    b_lon = n * dt
    gain = b_lon * params.q_longitudinal / (b_lon * b_lon * params.q_longitudinal + params.r_longitudinal)
    accel = (ref_velocity - v) * gain
    a = accel
    vv, va, aa = v * v, v * a, a * a
    w_sum = v * c[0] + a * c[1]
    w_tail = vv * c[2] + va * c[3] + aa * c[4]
    kappa_w = v * m_a + a * m_b
    kappa_tail = vv * m_c + va * m_d + aa * m_e
    steer_l = steering * (1.0 / params.wheel_base)
    heading_n = heading_error + steer_l * w_sum - kappa_w
    lateral_n = lateral_error + heading_error * w_sum + steer_l * w_tail - kappa_tail
    b_head = v * c[5] + a * c[6]
    b_lat = vv * c[7] + va * c[8] + aa * c[9]
    b_steer = n * dt
    q1, q2, q3 = params.q_lateral
    e_head = _wrap(heading_n)
    numerator = b_lat * lateral_n * q1 + b_head * e_head * q2
    denominator = b_lat * b_lat * q1 + b_head * b_head * q2 + (q3 * b_steer * b_steer + params.r_lateral)
    if q3 != 0.0:
        numerator = numerator + q3 * b_steer * _wrap(steering)
    steering_rate = -numerator / denominator
    if ref_velocity <= params.stopping_velocity and v <= params.stopping_velocity:
        accel = -params.stopping_proportional_gain * (v - ref_velocity)
        steering_rate = 0.0
    return accel, steering_rate


@dataclass(frozen=True)
class Rollout:
    """K simulated trajectories over T+1 times (index 0 = the initial state).

    - ``time_s``: ``(T+1,)`` s
    - ``pose``: ``(K, T+1, 3)`` rear-axle x, y, heading
    - ``velocity``, ``acceleration``: ``(K, T+1)`` longitudinal m/s, m/s²
    - ``steering_angle``, ``steering_rate``, ``yaw_rate``: ``(K, T+1)`` rad, rad/s, rad/s

    :func:`simulate_trajectories` returns time-major storage seen through transposed views (not C-contiguous).
    """

    time_s: F64
    pose: F64
    velocity: F64
    acceleration: F64
    steering_angle: F64
    steering_rate: F64
    yaw_rate: F64

    def __len__(self) -> int:
        return self.pose.shape[0]

    def state(self, t: int) -> BicycleState:
        """The K states at time index ``t``."""
        return BicycleState(self.pose[:, t], self.velocity[:, t], self.acceleration[:, t],
                            self.steering_angle[:, t], self.steering_rate[:, t], self.yaw_rate[:, t],
                            float(self.time_s[t]))

    def to_ego(self, k: int) -> EgoStates:
        """Rollout ``k`` as :class:`EgoStates` ``(T+1,)`` (lateral velocity and acceleration 0)."""
        zeros = np.zeros(len(self.time_s))
        return EgoStates(self.time_s.copy(), self.pose[k].copy(), np.stack([self.velocity[k], zeros], -1),
                         np.stack([self.acceleration[k], zeros], -1), self.steering_angle[k].copy(),
                         self.yaw_rate[k].copy())


def simulate_trajectories(
    initial: BicycleState | EgoStates,
    poses: npt.ArrayLike,
    dt: float = 0.1,
    reference_includes_current: bool = False,
    params: LQRParameters = LQR_DEFAULT,
    vehicle: VehicleParameters = PACIFICA,
) -> Rollout:
    """Track K reference trajectories with LQR + bicycle for T steps of ``dt`` from ``initial``.

    ``poses``: ``(K, T, 3)`` global rear-axle poses at ``t0 + dt·(1..T)``; the initial pose is prepended as
    the reference at ``t0`` (as NAVSIM's scorer does). With ``reference_includes_current`` the poses are
    ``(K, T+1, 3)`` at ``t0 + dt·(0..T)`` instead (PDM's proposals, whose first pose lies on the path).
    ``initial``: one state (an :class:`EgoStates`' last state, or a K=1 :class:`BicycleState`) shared by all
    rollouts, or a K-state :class:`BicycleState`. Returns a :class:`Rollout` with T+1 states.
    """
    p = np.asarray(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3:
        raise DataError(None, f"trajectories to simulate have shape {p.shape}", "(K, T, 3)")
    k = p.shape[0]
    state = BicycleState.from_ego(initial, repeat=k) if isinstance(initial, EgoStates) else initial
    if len(state) == 1 and k != 1:
        state = state.take(np.zeros(k, dtype=np.int64))
    if len(state) != k:
        raise DataError(None, f"{len(state)} initial states for {k} trajectories", "1 or one per trajectory")
    ref = p if reference_includes_current else np.concatenate([state.pose[:, None, :], p], axis=1)
    num_steps = ref.shape[1] - 1
    if num_steps < 1:
        raise DataError(None, "trajectories to simulate have no future pose", "at least one step")
    t0 = state.time_s
    if abs(dt - params.discretization_time) < 1e-9:
        reference = fit_reference(ref, t0, params)
    else:
        reference = reference_from_samples(t0 + dt * np.arange(num_steps + 1), ref, params)

    if reference.dt == dt:
        # The simulation steps land on the reference grid: every reference the tracker reads is a sample
        # (np.interp at grid points, clamped at the end), so gather them all up front.
        n = params.tracking_horizon
        m = reference.velocity.shape[1]
        steps = np.arange(num_steps)
        ref_velocity = reference.velocity[:, np.minimum(steps + n, m - 1)].T.copy()  # (T, K)
        window = np.minimum(steps[:, None] + np.arange(n)[None, :], m - 1)  # (T, N)
        weights = curvature_moments(np.eye(n), params)  # (N, 5): the moments are linear in the window
        curvature_t = np.ascontiguousarray(reference.curvature.T)  # (M, K)
        moments = weights.T @ curvature_t[window]  # (5, N) @ (T, N, K) -> (T, 5, K)
        ref_pose = np.ascontiguousarray(reference.poses.transpose(1, 0, 2))  # (T+1, K, 3)
        return _rollout_on_grid(state, ref_pose, ref_velocity, moments, dt, params, vehicle)

    def commands(t: int, s: BicycleState) -> tuple[F64, F64]:
        return track(s.pose, s.velocity, s.steering_angle, t0 + t * dt, reference, params)

    # Time-major buffers: each step writes contiguous rows.
    shape = (num_steps + 1, k)
    out_pose = np.empty(shape + (3,))
    names = ("velocity", "acceleration", "steering_angle", "steering_rate", "yaw_rate")
    out = {name: np.empty(shape) for name in names}

    def record(t: int, s: BicycleState) -> None:
        out_pose[t] = s.pose
        for name in names:
            out[name][t] = getattr(s, name)

    record(0, state)
    for t in range(num_steps):
        accel, steering_rate = commands(t, state)
        # From the second step on the state's yaw rate is v·tan(δ)/L (set by propagate): reuse it.
        state = propagate(state, accel, steering_rate, dt, vehicle, heading_rate=state.yaw_rate if t else None)
        record(t + 1, state)
    # Transposed views (no copy): the arrays are (K, T+1) but stored time-major.
    return Rollout(t0 + dt * np.arange(num_steps + 1), out_pose.transpose(1, 0, 2),
                   **{name: a.T for name, a in out.items()})


def _scalar(value: float) -> F64:
    """``value`` as a read-only 0-d float64 array: numpy combines a ``(K,)`` array with a 0-d array ~40 %
    faster than with a Python float (no scalar conversion per call), with the same result."""
    out = np.array(value, np.float64)
    out.setflags(write=False)
    return out


_PI = _scalar(math.pi)
_TWO_PI_0D = _scalar(_TWO_PI)


def _wrap_rows(angle: F64) -> F64:
    """:func:`sim.dynamics.bicycle.wrap_angle` (same operations) with 0-d constants, for the rollout loop."""
    return angle - _TWO_PI_0D * np.floor((angle + _PI) / _TWO_PI_0D)


def _rollout_on_grid(state: BicycleState, ref_pose: F64, ref_velocity: F64, moments: F64, dt: float,
                     params: LQRParameters, vehicle: VehicleParameters) -> Rollout:
    """The rollout loop of :func:`simulate_trajectories` when the steps land on the reference grid.

    ``ref_pose`` ``(T+1, K, 3)``, ``ref_velocity`` ``(T, K)`` (the speed ``N·dt`` ahead), ``moments``
    ``(T, 5, K)``: every reference the tracker reads, per step. Same operations, in the same order, as
    :func:`sim.dynamics.lqr.lqr_commands` followed by :func:`sim.dynamics.bicycle.propagate` (so the same
    numbers), fused into one loop over time on ``(K,)`` rows: for a planner's few proposals the per-call
    overhead of ~100 small numpy operations per step dominated, so the reference-only parts are computed for
    all steps at once (heading cosines and sines, the stopping test on the reference speed), results are
    written in place and constants are 0-d arrays. (Stacking the sums that share a factor into ``(3, K)``
    operations saves a few calls for small K but costs memory traffic for large batches: not done.)
    """
    num_steps, k = ref_velocity.shape
    n = params.tracking_horizon
    _, c = _horizon_constants(n, params.discretization_time, params.wheel_base)
    q1, q2, q3 = params.q_lateral
    b_lon = n * params.discretization_time
    gain = b_lon * params.q_longitudinal / (b_lon * b_lon * params.q_longitudinal + params.r_longitudinal)
    b_steer = n * params.discretization_time
    stopping = params.stopping_velocity
    # The loop's scalar constants as 0-d arrays (see _scalar).
    gain, q1_0d, q2_0d, inv_l = _scalar(gain), _scalar(q1), _scalar(q2), _scalar(1.0 / params.wheel_base)
    steer_penalty = _scalar(q3 * b_steer * b_steer + params.r_lateral)
    wheel_base, dt_0d = _scalar(vehicle.wheel_base), _scalar(dt)
    accel_gain = _scalar(dt / (dt + ACCEL_TIME_CONSTANT))
    steer_gain = _scalar(dt / (dt + STEERING_ANGLE_TIME_CONSTANT))
    max_steer, min_steer = _scalar(MAX_STEERING_ANGLE), _scalar(-MAX_STEERING_ANGLE)
    # Reference-only terms, all steps at once.
    ref_x, ref_y = ref_pose[:num_steps, :, 0], ref_pose[:num_steps, :, 1]
    ref_h = ref_pose[:num_steps, :, 2]
    cos_ref, sin_ref = np.cos(ref_h), np.sin(ref_h)
    ref_slow = ref_velocity <= stopping
    any_slow = ref_slow.any(axis=1).tolist()
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9 = (_scalar(x) for x in c)  # see lqr._horizon_constants
    mom = np.ascontiguousarray(moments)  # (T, 5, K)

    # Time-major outputs; the state is read back from the rows written the step before.
    shape = (num_steps + 1, k)
    xs, ys, hs = np.empty(shape), np.empty(shape), np.empty(shape)
    vel, acc, steer, steer_rate, yaw = (np.empty(shape) for _ in range(5))
    xs[0], ys[0], hs[0] = state.pose[:, 0], state.pose[:, 1], state.pose[:, 2]
    vel[0], acc[0], steer[0] = state.velocity, state.acceleration, state.steering_angle
    steer_rate[0], yaw[0] = state.steering_rate, state.yaw_rate
    for t in range(num_steps):
        x, y, h, v, a_state, st = xs[t], ys[t], hs[t], vel[t], acc[t], steer[t]
        # --- LQR (lqr_commands)
        dx = x - ref_x[t]
        dy = y - ref_y[t]
        lateral_error = dy * cos_ref[t] - dx * sin_ref[t]
        heading_error = _wrap_rows(h - ref_h[t])
        accel = (ref_velocity[t] - v) * gain
        m_a, m_b, m_c, m_d, m_e = mom[t]
        vv, va, aa = v * v, v * accel, accel * accel
        w_sum = v * c0 + accel * c1
        w_tail = vv * c2 + va * c3 + aa * c4
        kappa_w = v * m_a + accel * m_b
        kappa_tail = vv * m_c + va * m_d + aa * m_e
        b_head = v * c5 + accel * c6
        b_lat = vv * c7 + va * c8 + aa * c9
        steer_l = st * inv_l
        heading_n = heading_error + steer_l * w_sum - kappa_w
        lateral_n = lateral_error + heading_error * w_sum + steer_l * w_tail - kappa_tail
        e_head = _wrap_rows(heading_n)
        numerator = b_lat * lateral_n * q1_0d + b_head * e_head * q2_0d
        denominator = b_lat * b_lat * q1_0d + b_head * b_head * q2_0d + steer_penalty
        if q3 != 0.0:
            numerator = numerator + q3 * b_steer * wrap_angle(st)
        rate_cmd = -numerator / denominator
        if any_slow[t]:  # stopping P-controller where the reference and the car are (nearly) still
            stop = ref_slow[t] & (v <= stopping)
            if stop.any():
                accel = np.where(stop, -params.stopping_proportional_gain * (v - ref_velocity[t]), accel)
                rate_cmd = np.where(stop, 0.0, rate_cmd)
        # --- bicycle (propagate); from the second step on the yaw rate is v·tan(δ)/L of the state
        new_acc = np.add(a_state, accel_gain * (accel - a_state), out=acc[t + 1])
        ideal = st + dt_0d * rate_cmd
        lagged = st + steer_gain * (ideal - st)
        rate = np.divide(lagged - st, dt_0d, out=steer_rate[t + 1])
        dt_v = dt_0d * v
        np.add(x, dt_v * np.cos(h), out=xs[t + 1])
        np.add(y, dt_v * np.sin(h), out=ys[t + 1])
        heading_rate = yaw[t] if t else v * np.tan(st) / wheel_base
        hs[t + 1] = _wrap_rows(h + dt_0d * heading_rate)
        new_v = np.add(v, dt_0d * new_acc, out=vel[t + 1])
        new_st = np.minimum(np.maximum(st + dt_0d * rate, min_steer), max_steer, out=steer[t + 1])
        np.divide(new_v * np.tan(new_st), wheel_base, out=yaw[t + 1])
    pose = np.stack([xs, ys, hs], axis=-1)  # (T+1, K, 3)
    # Transposed views (no copy): the arrays are (K, T+1) but stored time-major.
    return Rollout(state.time_s + dt * np.arange(num_steps + 1), pose.transpose(1, 0, 2), vel.T, acc.T, steer.T,
                   steer_rate.T, yaw.T)
