"""The interface between the closed-loop simulator and whatever moves the other road users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from sim.scenario import Scenario, Tracks

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI


class AgentModel(Protocol):
    """Agents over one scenario: ``reset`` once, then ``observe`` / ``advance`` alternately.

    - ``reset(scenario, map_api, start_iteration)``: start at scenario iteration ``start_iteration``.
    - ``observe()``: the objects at the current iteration as one-step :class:`Tracks` ``(N, 1)`` (centred boxes,
      global-frame velocities).
    - ``advance(iteration, ego_pose_rear (3,), ego_speed, traffic_lights)``: move from ``iteration`` to
      ``iteration + 1`` given the ego at ``iteration`` (rear-axle pose, m/s) and the traffic-light states
      (lane-connector id -> :class:`sim.categories.TrafficLightStatus`) the agents should obey; nuPlan's IDM agents
      read the states of ``iteration + 1``.
    """

    def reset(self, scenario: Scenario, map_api: MapAPI, start_iteration: int = 0) -> None: ...

    def observe(self) -> Tracks: ...

    def advance(self, iteration: int, ego_pose_rear: npt.NDArray[np.float64], ego_speed: float,
                traffic_lights: dict[int, int]) -> None: ...
