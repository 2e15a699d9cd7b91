"""The planner interface, mirroring nuPlan's ``AbstractPlanner`` so the nuplan-devkit adapter stays thin."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sim.scenario import EgoStates, Scenario, Tracks
from sim.trajectory import Trajectory

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI


@dataclass(frozen=True)
class Observation:
    """What the simulator shows the planner at one step.

    ``tracks``: objects visible now, ``(N, 1)`` (one time step). ``point_cloud``: ``(P, 3)`` x, y, z in the global
    frame from the simulated roof LiDAR, only for planners that ask for it (``Planner.wants_point_cloud``).
    """

    tracks: Tracks
    point_cloud: npt.NDArray[np.float64] | None = None


@dataclass(frozen=True)
class PlannerInitialization:
    """Given once per scenario. ``scenario`` is set only for oracle planners (``requires_scenario = True``)."""

    route_roadblock_ids: tuple[int, ...]
    mission_goal: npt.NDArray[np.float64] | None
    map_api: MapAPI
    scenario: Scenario | None = None


@dataclass(frozen=True)
class PlannerInput:
    """Given every step. Histories are oldest first; the last entry is the current state.

    ``ego_history``: up to 21 states (2 s at 0.1 s + current). ``observation_history``: matching observations.
    ``traffic_lights``: lane-connector id -> :class:`sim.categories.TrafficLightStatus` value, current step.
    """

    iteration: int
    time_s: float
    ego_history: EgoStates
    observation_history: tuple[Observation, ...]
    traffic_lights: dict[int, int]

    @property
    def current_ego(self) -> EgoStates:
        return self.ego_history.slice(len(self.ego_history) - 1)

    @property
    def current_observation(self) -> Observation:
        return self.observation_history[-1]


class Planner(abc.ABC):
    """A planner: initialized once per scenario, then asked for a trajectory every 0.1 s."""

    #: Oracle planners (log replay) get the scenario in ``PlannerInitialization``; never allowed for submissions.
    requires_scenario: bool = False
    #: Sensor planners get a simulated LiDAR point cloud in each observation.
    wants_point_cloud: bool = False

    @property
    def name(self) -> str:
        return type(self).__name__

    @abc.abstractmethod
    def initialize(self, initialization: PlannerInitialization) -> None: ...

    @abc.abstractmethod
    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        """Rear-axle trajectory in global coordinates, starting at or before ``current_input.time_s``."""
