"""nuPlan's kinematic bicycle model (rear-axle reference), batched over K vehicles.

One step of :func:`propagate` follows nuplan-devkit's ``KinematicBicycleModel.propagate_state``:

1. first-order lags on the commands (time constants 0.2 s for acceleration, 0.05 s for steering angle):
   ``a' = a + dt/(dt+0.2)·(a_cmd − a)``, ``δ_ideal = δ + dt·δ̇_cmd``, ``δ' = δ + dt/(dt+0.05)·(δ_ideal − δ)``,
   ``δ̇' = (δ' − δ)/dt``;
2. forward Euler with the *current* speed and steering for the pose (``ẋ = v cosψ``, ``ẏ = v sinψ``,
   ``ψ̇ = v tanδ / L``) and the lagged acceleration for the speed; lateral velocity is 0;
3. the steering angle integrates to ``δ'`` and is clipped to ±π/3; the yaw rate is recomputed from the new
   speed and steering angle.

There is no acceleration or speed limit (the speed may become negative, as in nuPlan).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.scenario import EgoStates
from sim.vehicle import PACIFICA, VehicleParameters

F64 = npt.NDArray[np.float64]

_TWO_PI = 2.0 * np.pi


def wrap_angle(angle: F64) -> F64:
    """Angles wrapped to ``[-pi, pi)`` (same as :func:`sim.geometry.wrap_angle`; floor is faster than mod)."""
    return angle - _TWO_PI * np.floor((angle + np.pi) / _TWO_PI)

MAX_STEERING_ANGLE = np.pi / 3.0  # rad
ACCEL_TIME_CONSTANT = 0.2  # s
STEERING_ANGLE_TIME_CONSTANT = 0.05  # s


@dataclass(frozen=True)
class BicycleState:
    """States of K vehicles at one time (all arrays ``(K,)`` unless noted).

    - ``pose``: ``(K, 3)`` rear-axle x, y (m), heading (rad)
    - ``velocity``: rear-axle longitudinal speed (m/s)
    - ``acceleration``: rear-axle longitudinal acceleration (m/s²)
    - ``steering_angle``: tire steering angle (rad)
    - ``steering_rate``: tire steering rate (rad/s)
    - ``yaw_rate``: rad/s
    - ``time_s``: seconds (shared by all K)
    """

    pose: F64
    velocity: F64
    acceleration: F64
    steering_angle: F64
    steering_rate: F64
    yaw_rate: F64
    time_s: float

    def __len__(self) -> int:
        return len(self.velocity)

    @staticmethod
    def from_ego(ego: EgoStates, index: int = -1, repeat: int = 1) -> BicycleState:
        """State ``index`` (default the last) of ``ego``, repeated ``repeat`` times along K.

        The steering rate is not stored in :class:`EgoStates`; it is set to 0 (the model never reads it).
        """
        i = index % len(ego)

        def rep(x: npt.ArrayLike) -> F64:
            return np.repeat(np.asarray(x, dtype=np.float64)[None], repeat, axis=0)

        return BicycleState(
            pose=rep(ego.pose[i]),
            velocity=rep(ego.velocity[i, 0]),
            acceleration=rep(ego.acceleration[i, 0]),
            steering_angle=rep(ego.steering_angle[i]),
            steering_rate=np.zeros(repeat),
            yaw_rate=rep(ego.yaw_rate[i]),
            time_s=float(ego.time_s[i]),
        )

    def to_ego(self, k: int = 0) -> EgoStates:
        """Vehicle ``k`` as a one-state :class:`EgoStates` (body-frame lateral velocity / acceleration 0)."""
        return EgoStates(
            time_s=np.array([self.time_s]),
            pose=self.pose[k : k + 1].copy(),
            velocity=np.array([[self.velocity[k], 0.0]]),
            acceleration=np.array([[self.acceleration[k], 0.0]]),
            steering_angle=self.steering_angle[k : k + 1].copy(),
            yaw_rate=self.yaw_rate[k : k + 1].copy(),
        )

    def take(self, index: npt.ArrayLike) -> BicycleState:
        """A sub-batch (or a re-ordering / repetition) of the K vehicles."""
        i = np.asarray(index)
        return BicycleState(self.pose[i], self.velocity[i], self.acceleration[i], self.steering_angle[i],
                            self.steering_rate[i], self.yaw_rate[i], self.time_s)


def propagate(
    state: BicycleState,
    accel_cmd: npt.ArrayLike,
    steering_rate_cmd: npt.ArrayLike,
    dt: float,
    vehicle: VehicleParameters = PACIFICA,
    heading_rate: F64 | None = None,
) -> BicycleState:
    """One step of ``dt`` seconds for K vehicles given commanded acceleration ``(K,)`` (m/s²) and steering
    rate ``(K,)`` (rad/s). Returns the state at ``time_s + dt``.

    ``heading_rate``: ``v·tan(δ)/L`` of ``state`` when already known — it equals ``state.yaw_rate`` whenever
    ``state`` itself came from :func:`propagate` (saves a tangent per step in long rollouts); default: computed.
    """
    if not dt > 0.0:
        raise ValueError(f"bicycle propagate: dt={dt} s (expected > 0)")
    accel_cmd = np.asarray(accel_cmd, dtype=np.float64)
    steering_rate_cmd = np.asarray(steering_rate_cmd, dtype=np.float64)

    # First-order actuator lags (nuPlan's _update_commands).
    accel = state.acceleration + dt / (dt + ACCEL_TIME_CONSTANT) * (accel_cmd - state.acceleration)
    ideal_steering = state.steering_angle + dt * steering_rate_cmd
    lagged_steering = state.steering_angle + dt / (dt + STEERING_ANGLE_TIME_CONSTANT) * (
        ideal_steering - state.steering_angle)
    steering_rate = (lagged_steering - state.steering_angle) / dt

    # Forward Euler; the pose uses the speed and steering angle at the start of the step.
    heading = state.pose[:, 2]
    v = state.velocity
    pose = np.empty_like(state.pose)
    pose[:, 0] = state.pose[:, 0] + dt * v * np.cos(heading)
    pose[:, 1] = state.pose[:, 1] + dt * v * np.sin(heading)
    if heading_rate is None:
        heading_rate = v * np.tan(state.steering_angle) / vehicle.wheel_base
    pose[:, 2] = wrap_angle(heading + dt * heading_rate)
    velocity = v + dt * accel
    steering = np.clip(state.steering_angle + dt * steering_rate, -MAX_STEERING_ANGLE, MAX_STEERING_ANGLE)
    yaw_rate = velocity * np.tan(steering) / vehicle.wheel_base
    return BicycleState(pose=pose, velocity=velocity, acceleration=accel, steering_angle=steering,
                        steering_rate=steering_rate, yaw_rate=yaw_rate, time_s=state.time_s + dt)
