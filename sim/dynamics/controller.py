"""The ego controller: LQR tracker + kinematic bicycle (nuPlan's ``TwoStageController``).

- :func:`two_stage_step` moves the closed-loop ego one step along the planner's trajectory.
- :func:`simulate_trajectories` rolls out K candidate trajectories at once with the same controller (what
  PDM's batched simulator does); the expert and the scorer use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.dynamics.bicycle import BicycleState, propagate
from sim.dynamics.lqr import (
    LQR_DEFAULT,
    LQRParameters,
    curvature_moments,
    fit_reference,
    lqr_commands,
    reference_from_samples,
    reference_from_trajectory,
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
    """
    now = float(ego.time_s[-1])
    if not (trajectory.start_s - TIME_TOLERANCE_S <= now <= trajectory.end_s + TIME_TOLERANCE_S):
        raise DataError(None, f"planner trajectory covers [{trajectory.start_s:.3f}, {trajectory.end_s:.3f}] s "
                        f"but the current time is {now:.3f} s", "a trajectory that starts at or before now")
    state = BicycleState.from_ego(ego)
    reference = reference_from_trajectory(trajectory, params)
    # nuPlan reads the initial errors from the planner's own (interpolated) trajectory at the current time.
    ref_pose = trajectory.at(np.array([now]))
    accel, steering_rate = track(state.pose, state.velocity, state.steering_angle, now, reference, params,
                                 reference_pose=ref_pose)
    return propagate(state, accel, steering_rate, dt, vehicle).to_ego()


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

        def commands(t: int, s: BicycleState) -> tuple[F64, F64]:
            return lqr_commands(s.pose, s.velocity, s.steering_angle, ref_pose[t], ref_velocity[t],
                                tuple(moments[t]), params)
    else:
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
