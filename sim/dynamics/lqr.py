"""nuPlan's LQR trajectory tracker, batched over K reference trajectories.

Same algorithm and constants as nuplan-devkit's ``LQRTracker`` (``controller/tracker/lqr.py`` and
``tracker_utils.py``), see ../shared/reference/nuplan.md §4.3:

- The reference is resampled every ``dt`` = 0.1 s from its start to its end. From the rear-axle poses a
  velocity profile (initial speed + acceleration sequence, jerk penalty 1e-4) and then a curvature profile
  (initial curvature + curvature-rate sequence, penalty 1e-2, 1e-10 on the initial curvature) are fitted by
  regularised least squares.
- Each step: longitudinal one-step LQR toward the reference speed 1 s ahead (``a = -B q e / (B² q + r)`` with
  ``B = 10·0.1``); lateral one-step LQR on (lateral error, heading error, steering angle) through a
  time-varying linear model over the 10-step horizon driven by the planned speeds and reference curvatures,
  with a constant steering-rate input. Below 0.2 m/s (reference and current) a P-controller stops the car.

Batching without changing the result:

- The velocity fit's normal matrix ``AᵀA`` does not depend on the headings (each displacement row is a unit
  heading vector times a shared coefficient row), so ``(AᵀA + λRᵀR)⁻¹Aᵀ`` reduces to one ``(M, M)`` matrix
  applied to the displacements projected on the headings: precomputed once per (M, dt, λ).
- The curvature fit's matrix depends on each reference's speeds. Written in the curvatures ``κ_k`` themselves
  (an invertible change of variables of nuPlan's ``(κ_0, κ̇_0..)``, hence the same minimiser) it is tridiagonal;
  it is solved by a Thomas sweep vectorized over K.
- The 10-step lateral model is composed in closed form with cumulative sums instead of 3×3 matrix products.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from sim.dynamics.bicycle import wrap_angle
from sim.errors import DataError
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA

F64 = npt.NDArray[np.float64]

#: Penalty on the initial curvature in the curvature fit (keeps the problem definite when the speed is 0).
INITIAL_CURVATURE_PENALTY = 1e-10


@dataclass(frozen=True)
class LQRParameters:
    """nuPlan's ``lqr_tracker.yaml``. Costs are the diagonals of Q and R."""

    q_longitudinal: float = 10.0
    r_longitudinal: float = 1.0
    q_lateral: tuple[float, float, float] = (1.0, 10.0, 0.0)  # lateral error, heading error, steering angle
    r_lateral: float = 1.0
    discretization_time: float = 0.1  # s
    tracking_horizon: int = 10  # steps
    jerk_penalty: float = 1e-4
    curvature_rate_penalty: float = 1e-2
    stopping_proportional_gain: float = 0.5
    stopping_velocity: float = 0.2  # m/s
    wheel_base: float = PACIFICA.wheel_base  # m


LQR_DEFAULT = LQRParameters()


@dataclass(frozen=True)
class ReferenceProfiles:
    """Fitted references for K trajectories sampled on a uniform grid ``start_s[k] + j·dt``, ``j = 0..M``.

    - ``start_s``: ``(K,)`` time of the first sample (s)
    - ``dt``: grid spacing (s)
    - ``poses``: ``(K, M+1, 3)`` rear-axle x, y, heading (headings unwrapped along time)
    - ``velocity``: ``(K, M)`` m/s at ``start + j·dt``, ``j < M``; ``acceleration``: ``(K, M-1)`` m/s²
    - ``curvature``: ``(K, M)`` 1/m; ``curvature_rate``: ``(K, M-1)`` 1/(m·s)
    """

    start_s: F64
    dt: float
    poses: F64
    velocity: F64
    acceleration: F64
    curvature: F64
    curvature_rate: F64

    def __len__(self) -> int:
        return len(self.start_s)

    @property
    def end_s(self) -> F64:
        return self.start_s + (self.poses.shape[1] - 1) * self.dt

    def pose_at(self, time_s: float) -> F64:
        """``(K, 3)`` reference poses at ``time_s`` (linear, heading unwrapped then wrapped; clamped)."""
        p = _interp_uniform(np.moveaxis(self.poses, 2, 0), self.start_s, self.dt, np.array([time_s]))[..., 0]
        out = p.T.copy()
        out[:, 2] = wrap_angle(out[:, 2])
        return out


# --------------------------------------------------------------------------------------------------------
# Reference fitting


def resample_offsets(duration_s: float, dt: float) -> F64:
    """nuPlan's resampling grid (offsets from the start, s): every ``dt`` in ``[0, duration)``, plus one
    more sample if it still fits in the trajectory. Computed in integer microseconds like nuPlan."""
    duration_us = int(round(duration_s * 1e6))
    step_us = int(round(dt * 1e6))
    offsets = np.arange(0, duration_us, step_us, dtype=np.int64)
    if len(offsets) == 0:
        offsets = np.zeros(1, dtype=np.int64)
    if offsets[-1] + step_us <= duration_us:
        offsets = np.append(offsets, offsets[-1] + step_us)
    return offsets * 1e-6


@lru_cache(maxsize=256)
def _velocity_fit_matrices(num_displacements: int, dt: float, jerk_penalty: float) -> tuple[F64, F64]:
    """``(Wv, Wa)``: velocity ``(M, M)`` and acceleration ``(M-1, M)`` profiles as linear maps of the
    displacements projected on the reference headings ``(M,)``."""
    m = num_displacements
    # Row k of nuPlan's A (per axis, before the heading factor): [dt, dt², ..., dt² (k times), 0, ...].
    coeff = np.tril(np.full((m, m), dt * dt))
    coeff[:, 0] = dt
    # Jerk penalty on differences of consecutive accelerations (unknowns 1..M-1).
    n_jerk = max(m - 2, 0)
    diff = np.zeros((n_jerk, m))
    rows = np.arange(n_jerk)
    diff[rows, rows + 1] = -1.0
    diff[rows, rows + 2] = 1.0
    normal = coeff.T @ coeff + jerk_penalty * diff.T @ diff
    solution = np.linalg.solve(normal, coeff.T)  # unknowns (v0, a_0..a_{M-2}) per projected displacement
    velocity_map = (coeff / dt) @ solution  # v_k = v0 + dt·Σ_{i<k} a_i
    return velocity_map, solution[1:]


def fit_velocity_profile(poses: F64, dt: float, jerk_penalty: float) -> tuple[F64, F64]:
    """Least-squares speed profile of poses ``(K, M+1, 3)`` sampled every ``dt``.

    Returns velocity ``(K, M)`` (m/s, one per displacement) and acceleration ``(K, M-1)`` (m/s²).
    """
    d = np.diff(poses[..., :2], axis=1)  # (K, M, 2)
    h = poses[:, :-1, 2]
    projected = d[..., 0] * np.cos(h) + d[..., 1] * np.sin(h)  # (K, M)
    velocity_map, accel_map = _velocity_fit_matrices(projected.shape[1], float(dt), float(jerk_penalty))
    return projected @ velocity_map.T, projected @ accel_map.T


def fit_curvature_profile(heading_displacements: F64, velocity: F64, dt: float, curvature_rate_penalty: float,
                          initial_curvature_penalty: float = INITIAL_CURVATURE_PENALTY) -> tuple[F64, F64]:
    """Least-squares curvature profile ``(K, M)`` (1/m) and its rate ``(K, M-1)`` from heading displacements
    ``(K, M)`` (rad, wrapped) and the fitted speeds ``(K, M)``.

    Minimises ``Σ_k (Δψ_k − v_k·dt·κ_k)² + λ Σ_k κ̇_k² + ε κ_0²`` with ``κ̇_k = (κ_{k+1} − κ_k)/dt``: the
    normal equations in ``κ`` are tridiagonal (diagonal ``w² + μ·deg + ε·[k=0]``, off-diagonal ``−μ``,
    ``w = v·dt``, ``μ = λ/dt²``), solved by a Thomas sweep over k vectorized over K.
    """
    # (M, K) C-contiguous: the sweep runs along axis 0 and each row must be one contiguous block.
    w = np.ascontiguousarray(velocity.T) * dt
    y = np.ascontiguousarray(heading_displacements.T)
    m = w.shape[0]
    mu = curvature_rate_penalty / (dt * dt)
    degree = np.full(m, 2.0)
    degree[0] -= 1.0
    degree[-1] -= 1.0
    diag = w * w + (mu * degree)[:, None]
    diag[0] += initial_curvature_penalty
    rhs = w * y
    off = -mu
    if w.shape[1] <= SMALL_BATCH:
        kappa = _solve_tridiagonal_lapack(diag, off, rhs)
    else:
        kappa = _solve_tridiagonal_sweep(diag, off, rhs)
    curvature = kappa.T
    return curvature, np.diff(curvature, axis=1) / dt


#: Below this many trajectories LAPACK's banded solver per trajectory beats the sweep vectorized over K.
SMALL_BATCH = 8


def _solve_tridiagonal_lapack(diag: F64, off: float, rhs: F64) -> F64:
    """Solve the symmetric tridiagonal systems (diagonal ``diag`` (M, K), constant off-diagonal) one per column."""
    from scipy.linalg import solve_banded  # lazy: scipy.linalg costs ~0.5 s to import

    m = diag.shape[0]
    out = np.empty_like(diag)
    off_row = np.full(m, off)
    for k in range(diag.shape[1]):
        banded = np.stack([off_row, diag[:, k], off_row])  # (upper, main, lower); unused ends are ignored
        out[:, k] = solve_banded((1, 1), banded, rhs[:, k], check_finite=False)
    return out


def _solve_tridiagonal_sweep(diag: F64, off: float, rhs: F64) -> F64:
    """Thomas algorithm along axis 0, vectorized over the K columns (fast for large K).

    Rows are written in place (``out=``) and ``off`` is a 0-d array: for a few dozen columns numpy's per-call
    overhead, not the arithmetic, is the cost.
    """
    m = diag.shape[0]
    off = np.array(off, np.float64)
    c_prime = np.empty_like(diag)
    r_prime = np.empty_like(diag)
    np.divide(off, diag[0], out=c_prime[0])
    np.divide(rhs[0], diag[0], out=r_prime[0])
    for k in range(1, m):
        denom = diag[k] - off * c_prime[k - 1]
        np.divide(off, denom, out=c_prime[k])
        np.divide(rhs[k] - off * r_prime[k - 1], denom, out=r_prime[k])
    kappa = np.empty_like(diag)
    kappa[-1] = r_prime[-1]
    for k in range(m - 2, -1, -1):
        np.subtract(r_prime[k], c_prime[k] * kappa[k + 1], out=kappa[k])
    return kappa


def fit_reference(poses: npt.ArrayLike, start_s: npt.ArrayLike, params: LQRParameters = LQR_DEFAULT,
                  dt: float | None = None) -> ReferenceProfiles:
    """Fit the tracker's profiles to references ``(K, M+1, 3)`` already sampled every ``dt`` (default the
    tracker's 0.1 s) from ``start_s`` (scalar or ``(K,)``)."""
    p = np.array(poses, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3 or p.shape[1] < 2:
        raise DataError(None, f"reference poses have shape {p.shape}", "(K, M+1, 3) with M+1 >= 2")
    dt = params.discretization_time if dt is None else float(dt)
    heading_displacements = wrap_angle(np.diff(p[..., 2], axis=1))
    # Unwrapped headings (np.unwrap's result, cheaper): start + cumulative wrapped displacements.
    p[:, 1:, 2] = p[:, :1, 2] + np.cumsum(heading_displacements, axis=1)
    velocity, acceleration = fit_velocity_profile(p, dt, params.jerk_penalty)
    curvature, curvature_rate = fit_curvature_profile(heading_displacements, velocity, dt,
                                                      params.curvature_rate_penalty)
    start = np.broadcast_to(np.asarray(start_s, dtype=np.float64), (p.shape[0],)).copy()
    return ReferenceProfiles(start, dt, p, velocity, acceleration, curvature, curvature_rate)


def reference_from_samples(times_s: npt.ArrayLike, poses: npt.ArrayLike,
                           params: LQRParameters = LQR_DEFAULT) -> ReferenceProfiles:
    """Resample references given at arbitrary increasing times onto nuPlan's 0.1 s grid, then fit.

    ``times_s``: ``(M,)`` shared, or ``(K, M)`` whose rows differ only by an offset (per-K start times).
    ``poses``: ``(K, M, 3)`` rear-axle poses. Headings are interpolated unwrapped (nuPlan's interpolation).
    """
    p = np.asarray(poses, dtype=np.float64)
    t = np.asarray(times_s, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 3:
        raise DataError(None, f"reference poses have shape {p.shape}", "(K, M, 3)")
    shared = t.ndim == 1
    if shared:
        t = np.broadcast_to(t, p.shape[:2])
    if t.shape != p.shape[:2]:
        raise DataError(None, f"reference times have shape {t.shape} for poses {p.shape}", "(M,) or (K, M)")
    relative = t - t[:, :1]
    if not shared and not np.allclose(relative, relative[:1], atol=1e-6):
        raise DataError(None, "reference times differ between trajectories beyond an offset",
                        "a shared relative time grid")
    rel = relative[0]
    if len(rel) < 2 or np.any(np.diff(rel) <= 0.0):
        raise DataError(None, f"reference times {rel[:5]}... are not increasing", "at least 2 increasing times")
    offsets = resample_offsets(float(rel[-1]), params.discretization_time)
    if len(offsets) < 2:
        raise DataError(None, f"reference spans {rel[-1]:.3f} s",
                        f"at least {params.discretization_time} s to fit a tracking reference")
    # One interpolation setup shared by all K (the relative grid is shared).
    idx = np.clip(np.searchsorted(rel, offsets, side="right") - 1, 0, len(rel) - 2)
    frac = np.clip((offsets - rel[idx]) / (rel[idx + 1] - rel[idx]), 0.0, 1.0)[None, :, None]
    q = p.copy()
    q[..., 2] = np.unwrap(q[..., 2], axis=1)
    resampled = q[:, idx] * (1.0 - frac) + q[:, idx + 1] * frac
    resampled[..., 2] = wrap_angle(resampled[..., 2])
    return fit_reference(resampled, t[:, 0], params)


def reference_from_trajectory(trajectory: Trajectory, params: LQRParameters = LQR_DEFAULT) -> ReferenceProfiles:
    """The K=1 reference of one planner trajectory (nuPlan's resampling at 0.1 s from its start)."""
    return reference_from_samples(trajectory.time_s, trajectory.pose[None], params)


# --------------------------------------------------------------------------------------------------------
# Tracking


def _interp_uniform(values: F64, start_s: F64, dt: float, query_s: F64) -> F64:
    """``np.interp`` on per-row uniform grids: ``values`` ``(..., K, M)`` sampled at ``start_s[k] + j·dt``,
    queried at ``query_s`` ``(Q,)`` (shared) → ``(..., K, Q)``, clamped at both ends."""
    m = values.shape[-1]
    u = (query_s[None, :] - start_s[:, None]) / dt  # (K, Q)
    if m == 1:
        return np.broadcast_to(values, values.shape[:-1] + (u.shape[1],)).copy()
    u = np.clip(u, 0.0, m - 1.0)
    i0 = np.minimum(u.astype(np.int64), m - 2)
    frac = u - i0
    lead = values.shape[:-2]
    i0b = np.broadcast_to(i0, lead + i0.shape)
    v0 = np.take_along_axis(values, i0b, axis=-1)
    v1 = np.take_along_axis(values, i0b + 1, axis=-1)
    return v0 + (v1 - v0) * frac


@lru_cache(maxsize=16)
def _horizon_constants(n: int, dt: float, wheel_base: float) -> tuple[F64, tuple[float, ...]]:
    """Constants of the closed-form N-step lateral model with planned speeds ``w_j = (v + a·j·dt)·dt``.

    Returns the curvature weights ``(N, 5)`` (columns ``dt·1``, ``dt²·j``, ``dt²·tail1_j``,
    ``dt³·(tail2_j + j·tail1_j)``, ``dt⁴·j·tail2_j`` with ``tail1_j = #{i > j}``, ``tail2_j = Σ_{i>j} i``) and
    the scalar coefficients used by :func:`lqr_commands` (dt powers folded in).
    """
    j = np.arange(n, dtype=np.float64)
    tail1 = n - 1 - j
    tail2 = np.cumsum(j[::-1])[::-1] - j
    dt2, dt3, dt4 = dt * dt, dt**3, dt**4
    weights = np.stack([np.full(n, dt), dt2 * j, dt2 * tail1, dt3 * (tail2 + j * tail1), dt4 * j * tail2], -1)
    inv_l = 1.0 / wheel_base
    coefficients = (
        dt * n, dt2 * j.sum(),  # Σ_j w_j = v·c0 + a·c1
        # Σ_i w_i·Σ_{k>i} w_k = v²·c2 + v·a·c3 + a²·c4
        dt2 * tail1.sum(), dt3 * (tail2 + j * tail1).sum(), dt4 * (j * tail2).sum(),
        # heading response to a unit steering rate: Σ_j w_j·j·dt/L = v·c5 + a·c6
        inv_l * dt2 * j.sum(), inv_l * dt3 * (j * j).sum(),
        # lateral response: (dt/L)·Σ_i i·w_i·Σ_{k>i} w_k = v²·c7 + v·a·c8 + a²·c9
        inv_l * dt3 * (j * tail1).sum(), inv_l * dt4 * (j * (tail2 + j * tail1)).sum(),
        inv_l * dt**5 * (j * j * tail2).sum(),
    )
    return weights, coefficients


def curvature_moments(curvature: F64, params: LQRParameters = LQR_DEFAULT) -> F64:
    """The five weighted sums ``(..., 5)`` of a reference-curvature window ``(..., N)`` (curvatures at
    ``now + k·dt``, ``k < N``) that the lateral LQR needs (see :func:`_horizon_constants`)."""
    weights, _ = _horizon_constants(params.tracking_horizon, params.discretization_time, params.wheel_base)
    return curvature @ weights


def lqr_commands(
    pose: F64,
    velocity: F64,
    steering_angle: F64,
    reference_pose: F64,
    reference_velocity: F64,
    moments: F64 | tuple[F64, ...],
    params: LQRParameters = LQR_DEFAULT,
) -> tuple[F64, F64]:
    """nuPlan's LQR step for K vehicles given the references over the horizon.

    ``pose``/``reference_pose`` ``(K, 3)``; ``velocity``, ``steering_angle``, ``reference_velocity`` (the
    reference speed ``N·dt`` ahead) ``(K,)``; ``moments``: :func:`curvature_moments` of the reference
    curvatures at ``now + k·dt``, ``k < N``, as ``(K, 5)`` or five ``(K,)`` arrays.
    Returns ``(accel_cmd (K,), steering_rate_cmd (K,))``.
    """
    n = params.tracking_horizon
    dt = params.discretization_time
    _, c = _horizon_constants(n, dt, params.wheel_base)
    m_a, m_b, m_c, m_d, m_e = moments.T if isinstance(moments, np.ndarray) else moments

    # Initial errors in the reference frame at the current time.
    dx = pose[:, 0] - reference_pose[:, 0]
    dy = pose[:, 1] - reference_pose[:, 1]
    ref_heading = reference_pose[:, 2]
    lateral_error = dy * np.cos(ref_heading) - dx * np.sin(ref_heading)
    heading_error = wrap_angle(pose[:, 2] - ref_heading)

    # Longitudinal one-step LQR over the whole horizon: v_N = v_0 + (N·dt)·a.
    b_lon = n * dt
    gain = b_lon * params.q_longitudinal / (b_lon * b_lon * params.q_longitudinal + params.r_longitudinal)
    accel = (reference_velocity - velocity) * gain

    # Lateral: the N-step model (per step j: y += w_j·ψ, ψ += w_j·(δ/L − κ_j), δ += dt·u, w_j = (v + a·j·dt)·dt)
    # composed in closed form (sums over j are polynomials in v and a; curvature sums come as moments).
    v, a = velocity, accel
    vv, va, aa = v * v, v * a, a * a
    w_sum = v * c[0] + a * c[1]
    w_tail = vv * c[2] + va * c[3] + aa * c[4]
    kappa_w = v * m_a + a * m_b  # Σ_j w_j κ_j
    kappa_tail = vv * m_c + va * m_d + aa * m_e  # Σ_i w_i κ_i Σ_{j>i} w_j
    steer_l = steering_angle * (1.0 / params.wheel_base)
    heading_n = heading_error + steer_l * w_sum - kappa_w  # zero-input terminal errors
    lateral_n = lateral_error + heading_error * w_sum + steer_l * w_tail - kappa_tail
    b_head = v * c[5] + a * c[6]  # response to a unit steering rate held over the horizon
    b_lat = vv * c[7] + va * c[8] + aa * c[9]
    b_steer = n * dt
    q1, q2, q3 = params.q_lateral
    e_head = wrap_angle(heading_n)
    numerator = b_lat * lateral_n * q1 + b_head * e_head * q2
    denominator = b_lat * b_lat * q1 + b_head * b_head * q2 + (q3 * b_steer * b_steer + params.r_lateral)
    if q3 != 0.0:
        numerator = numerator + q3 * b_steer * wrap_angle(steering_angle)
    steering_rate = -numerator / denominator

    # Stopping P-controller when both the reference and the car are (nearly) still.
    stop = (reference_velocity <= params.stopping_velocity) & (velocity <= params.stopping_velocity)
    if stop.any():
        accel = np.where(stop, -params.stopping_proportional_gain * (velocity - reference_velocity), accel)
        steering_rate = np.where(stop, 0.0, steering_rate)
    return accel, steering_rate


def horizon_references(reference: ReferenceProfiles, time_s: float,
                       params: LQRParameters = LQR_DEFAULT) -> tuple[F64, F64]:
    """Reference speed ``N·dt`` ahead ``(K,)`` and curvatures at ``time_s + k·dt``, ``k < N``, ``(K, N)``,
    interpolated like nuPlan (``np.interp``: clamped beyond the reference's ends)."""
    dt = params.discretization_time
    n = params.tracking_horizon
    horizon = time_s + dt * np.arange(n + 1)
    ref_velocity = _interp_uniform(reference.velocity, reference.start_s, reference.dt, horizon[n:])[:, 0]
    curvature = _interp_uniform(reference.curvature, reference.start_s, reference.dt, horizon[:n])
    return ref_velocity, curvature


def track(
    pose: F64,
    velocity: F64,
    steering_angle: F64,
    time_s: float,
    reference: ReferenceProfiles,
    params: LQRParameters = LQR_DEFAULT,
    reference_pose: F64 | None = None,
) -> tuple[F64, F64]:
    """Commands for K vehicles at ``time_s`` tracking ``reference`` (one reference per vehicle).

    ``pose`` ``(K, 3)`` rear axle, ``velocity`` ``(K,)`` longitudinal m/s, ``steering_angle`` ``(K,)`` rad.
    ``reference_pose`` ``(K, 3)``: the reference at ``time_s`` if known exactly (nuPlan interpolates the
    planner's own trajectory, not its resampling); default: interpolated from ``reference.poses``.
    Returns ``(accel_cmd (K,) m/s², steering_rate_cmd (K,) rad/s)``.
    """
    if reference_pose is None:
        reference_pose = reference.pose_at(time_s)
    ref_velocity, curvature = horizon_references(reference, time_s, params)
    return lqr_commands(pose, velocity, steering_angle, reference_pose, ref_velocity,
                        curvature_moments(curvature, params), params)
