"""Reference planners: the log replay oracle and constant velocity.

- :class:`LogReplayPlanner` returns the logged ego's next 8 s (nuPlan's ``LogFuturePlanner``): an upper bound
  that needs the scenario (``requires_scenario = True``, never allowed for submissions).
- :class:`ConstantVelocityPlanner` drives straight on at the current velocity: the floor any planner must beat.
"""

from __future__ import annotations

import numpy as np

from sim.errors import DataError
from sim.planning import Planner, PlannerInitialization, PlannerInput
from sim.scenario import Scenario
from sim.trajectory import Trajectory


class LogReplayPlanner(Planner):
    """The expert's own future from the log, ``horizon_s`` long (fewer poses near the scenario's end)."""

    requires_scenario = True

    def __init__(self, horizon_s: float = 8.0) -> None:
        self.horizon_s = float(horizon_s)
        self._scenario: Scenario | None = None

    def initialize(self, initialization: PlannerInitialization) -> None:
        if initialization.scenario is None:
            raise DataError(None, "LogReplayPlanner got no scenario", "PlannerInitialization.scenario (oracle)")
        self._scenario = initialization.scenario

    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        sc = self._scenario
        assert sc is not None, "initialize() first"
        k = sc.index(current_input.iteration)
        time_s = sc.time_us * 1e-6
        stop = int(np.searchsorted(time_s, time_s[k] + self.horizon_s + 1e-6, side="left"))
        stop = max(stop, k + 2)
        return Trajectory(time_s[k:stop].copy(), sc.ego.pose[k:stop].copy())


class ConstantVelocityPlanner(Planner):
    """Straight line from the current rear axle at the current velocity (body-frame ``vx, vy``)."""

    def __init__(self, horizon_s: float = 8.0, interval_s: float = 0.1) -> None:
        self.horizon_s = float(horizon_s)
        self.interval_s = float(interval_s)

    def initialize(self, initialization: PlannerInitialization) -> None:
        pass

    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        ego = current_input.current_ego
        x, y, h = ego.pose[0]
        vx, vy = ego.velocity[0]
        t = np.arange(int(round(self.horizon_s / self.interval_s)) + 1) * self.interval_s
        gx = vx * np.cos(h) - vy * np.sin(h)
        gy = vx * np.sin(h) + vy * np.cos(h)
        pose = np.stack([x + gx * t, y + gy * t, np.full_like(t, h)], -1)
        return Trajectory(current_input.time_s + t, pose)
