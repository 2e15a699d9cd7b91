"""Non-reactive agents: every object exactly as logged (nuPlan's ``TracksObservation``, CLS-NR)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sim.errors import DataError
from sim.scenario import Scenario, Tracks

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI


class LogReplayAgents:
    """Replays ``scenario.tracks``; the ego and traffic lights do not influence anything."""

    def __init__(self) -> None:
        self._scenario: Scenario | None = None
        self._iteration = 0

    @property
    def iteration(self) -> int:
        return self._iteration

    def reset(self, scenario: Scenario, map_api: MapAPI | None = None, start_iteration: int = 0) -> None:
        if not 0 <= start_iteration < scenario.num_iterations:
            raise DataError(None, f"scenario {scenario.token}: start iteration {start_iteration}",
                            f"0 <= start < {scenario.num_iterations}")
        self._scenario = scenario
        self._iteration = start_iteration

    def observe(self) -> Tracks:
        if self._scenario is None:
            raise RuntimeError("LogReplayAgents.observe called before reset")
        step = min(self._scenario.index(self._iteration), self._scenario.tracks.num_steps - 1)
        return self._scenario.tracks.at(step)

    def advance(self, iteration: int, ego_pose_rear: npt.NDArray[np.float64] | None = None,
                ego_speed: float = 0.0, traffic_lights: dict[int, int] | None = None) -> None:
        self._iteration = iteration + 1
