"""How the ego moves from one iteration to the next (nuPlan's ``ego_controller`` choices).

- ``two_stage``: LQR tracker + kinematic bicycle (:func:`sim.dynamics.controller.two_stage_step`), the
  closed-loop challenges' controller;
- ``perfect_tracking``: the ego lands on the plan's pose at the next time (velocity from the plan);
- ``log_playback``: the ego follows the log whatever the plan (nuPlan's open-loop OLS mode).

Each is a function ``(ego (1 sample), trajectory, dt, scenario, next_iteration) -> EgoStates (1 sample)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim.errors import DataError
from sim.geometry import to_local, wrap_angle
from sim.scenario import EgoStates, Scenario
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA

EgoUpdate = Callable[[EgoStates, Trajectory, float, Scenario, int], EgoStates]

EGO_CONTROLLERS = ("two_stage", "perfect_tracking", "log_playback")


def _two_stage(ego: EgoStates, trajectory: Trajectory, dt: float, scenario: Scenario, next_iteration: int) -> EgoStates:
    from sim.dynamics.controller import two_stage_step

    return two_stage_step(ego, trajectory, dt)


def _perfect_tracking(ego: EgoStates, trajectory: Trajectory, dt: float, scenario: Scenario,
                      next_iteration: int) -> EgoStates:
    t_next = float(ego.time_s[-1]) + dt
    h = 0.05  # s, half-width of the central difference on the plan
    before, pose, after = trajectory.at(np.array([t_next - h, t_next, t_next + h]))
    local = to_local(after, before)
    span = min(t_next + h, trajectory.end_s) - max(t_next - h, trajectory.start_s)
    vel = local[:2] / span if span > 1e-9 else np.zeros(2)
    yaw_rate = float(wrap_angle(pose[2] - ego.pose[-1, 2])) / dt
    speed = float(np.hypot(*vel))
    steering = float(np.arctan(yaw_rate * PACIFICA.wheel_base / speed)) if speed > 0.1 else 0.0
    accel = (vel - ego.velocity[-1]) / dt
    return EgoStates(np.array([t_next]), pose[None], vel[None], accel[None], np.array([steering]),
                     np.array([yaw_rate]))


def _log_playback(ego: EgoStates, trajectory: Trajectory, dt: float, scenario: Scenario,
                  next_iteration: int) -> EgoStates:
    k = scenario.index(next_iteration)
    return scenario.ego.slice(k, k + 1)


def ego_update(name: str) -> EgoUpdate:
    """The ego controller called ``name`` (one of :data:`EGO_CONTROLLERS`)."""
    table = {"two_stage": _two_stage, "perfect_tracking": _perfect_tracking, "log_playback": _log_playback}
    if name not in table:
        raise DataError(None, f"unknown ego_controller '{name}'", f"one of {', '.join(EGO_CONTROLLERS)}")
    return table[name]
