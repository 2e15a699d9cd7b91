"""The scenario: ego track, agent tracks, traffic lights, route and goal, sampled at 0.1 s.

Everything is struct-of-arrays over time (and agents), SI units, seconds in memory.

Time indexing: every time-indexed array covers ``history_steps`` past samples followed by the
scenario's iterations. ``scenario.index(i)`` maps iteration ``i`` (0 = scenario start, nuPlan's iteration 0,
3 s before the tagged frame) to the array index. With the defaults (2 s history, 15 s scenario) arrays have
20 + 151 = 171 samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sim.geometry import rear_axle_to_center
from sim.vehicle import PACIFICA, VehicleParameters

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EgoStates:
    """Ego states over time ``(T,)``; reference point = rear axle (nuPlan's convention).

    - ``time_s``: ``(T,)`` seconds (absolute, = time_us * 1e-6)
    - ``pose``: ``(T, 3)`` rear-axle x, y (m, global), heading (rad)
    - ``velocity``: ``(T, 2)`` rear-axle velocity in the body frame (vx forward, vy left), m/s
    - ``acceleration``: ``(T, 2)`` rear-axle acceleration in the body frame, m/s²
    - ``steering_angle``: ``(T,)`` tire steering angle, rad
    - ``yaw_rate``: ``(T,)`` rad/s
    """

    time_s: F64
    pose: F64
    velocity: F64
    acceleration: F64
    steering_angle: F64
    yaw_rate: F64

    def __len__(self) -> int:
        return len(self.time_s)

    @property
    def speed(self) -> F64:
        return np.hypot(self.velocity[:, 0], self.velocity[:, 1])

    def center(self, vehicle: VehicleParameters = PACIFICA) -> F64:
        """``(T, 3)`` centre poses of the ego box."""
        return rear_axle_to_center(self.pose, vehicle.rear_axle_to_center)

    def slice(self, start: int, stop: int | None = None) -> EgoStates:
        s = slice(start, stop)
        return EgoStates(self.time_s[s], self.pose[s], self.velocity[s], self.acceleration[s],
                         self.steering_angle[s], self.yaw_rate[s])

    @staticmethod
    def concatenate(parts: list[EgoStates]) -> EgoStates:
        return EgoStates(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                           ("time_s", "pose", "velocity", "acceleration", "steering_angle", "yaw_rate")))


@dataclass(frozen=True)
class Tracks:
    """Agent and static-object tracks ``(N, T)``; boxes are centred (nuPlan's ``lidar_box``).

    - ``token``: ``(N,)`` 16-character hex track tokens (``track.token``)
    - ``category``: ``(N,)`` int8 :class:`sim.categories.Category`
    - ``size``: ``(N, 3)`` length, width, height (m)
    - ``pose``: ``(N, T, 3)`` box centre x, y, heading (NaN where invalid)
    - ``velocity``: ``(N, T, 2)`` global-frame vx, vy (m/s; 0 for static objects)
    - ``valid``: ``(N, T)`` bool — the object is observed at that sample
    """

    token: npt.NDArray[np.str_]
    category: npt.NDArray[np.int8]
    size: F64
    pose: F64
    velocity: F64
    valid: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.token)

    @property
    def num_steps(self) -> int:
        return self.pose.shape[1]

    def at(self, step: int) -> Tracks:
        """The objects valid at ``step``, as a one-step ``Tracks`` (N', 1)."""
        keep = self.valid[:, step]
        s = slice(step, step + 1)
        return Tracks(self.token[keep], self.category[keep], self.size[keep], self.pose[keep, s],
                      self.velocity[keep, s], self.valid[keep, s])

    def select(self, mask_or_index: npt.ArrayLike) -> Tracks:
        m = np.asarray(mask_or_index)
        return Tracks(self.token[m], self.category[m], self.size[m], self.pose[m], self.velocity[m], self.valid[m])

    def time_slice(self, start: int, stop: int | None = None) -> Tracks:
        s = slice(start, stop)
        return Tracks(self.token, self.category, self.size, self.pose[:, s], self.velocity[:, s], self.valid[:, s])

    @staticmethod
    def empty(num_steps: int) -> Tracks:
        return Tracks(np.zeros(0, dtype="<U16"), np.zeros(0, dtype=np.int8), np.zeros((0, 3)),
                      np.zeros((0, num_steps, 3)), np.zeros((0, num_steps, 2)), np.zeros((0, num_steps), bool))


@dataclass(frozen=True)
class TrafficLights:
    """Traffic-light states per lane connector over time.

    - ``lane_connector_id``: ``(L,)`` int64 map ids of lane connectors with a signal
    - ``status``: ``(T, L)`` int8 :class:`sim.categories.TrafficLightStatus` (UNKNOWN where not reported)
    """

    lane_connector_id: npt.NDArray[np.int64]
    status: npt.NDArray[np.int8]

    def at(self, step: int) -> dict[int, int]:
        return {int(c): int(s) for c, s in zip(self.lane_connector_id, self.status[step], strict=True)}

    def time_slice(self, start: int, stop: int | None = None) -> TrafficLights:
        return TrafficLights(self.lane_connector_id, self.status[start:stop])

    @staticmethod
    def empty(num_steps: int) -> TrafficLights:
        return TrafficLights(np.zeros(0, np.int64), np.zeros((num_steps, 0), np.int8))


@dataclass(frozen=True)
class Scenario:
    """One nuPlan scenario (default 15 s at 0.1 s) with ``history_steps`` samples of past before it.

    ``token`` is the tagged lidar_pc token (hex); iteration 0 is ``extraction offset`` (3 s) before it.
    ``route_roadblock_ids`` are map ids of roadblocks or roadblock connectors, in driving order.
    ``mission_goal`` is ``(3,)`` x, y, heading or None.
    ``tagged_track_tokens``: hex tokens of the agents the scenario's tags name (``scenario_tag.agent_track_token``:
    the lead that brakes, the vehicle that cuts in, ...), empty when the tags name none.
    """

    token: str
    log_name: str
    map_location: str
    scenario_type: str
    time_us: npt.NDArray[np.int64]
    ego: EgoStates
    tracks: Tracks
    traffic_lights: TrafficLights
    route_roadblock_ids: tuple[int, ...]
    mission_goal: F64 | None
    history_steps: int = 20
    tags: tuple[str, ...] = field(default_factory=tuple)
    map_version: str = ""
    tagged_track_tokens: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_iterations(self) -> int:
        """Number of scenario samples (151 for 15 s at 0.1 s); the planner is called ``num_iterations - 1`` times."""
        return len(self.time_us) - self.history_steps

    @property
    def interval_s(self) -> float:
        return float(np.median(np.diff(self.time_us))) * 1e-6

    def index(self, iteration: int) -> int:
        """Array index of scenario iteration ``iteration`` (may be negative for history)."""
        return self.history_steps + iteration

    @property
    def expert(self) -> EgoStates:
        """The logged ego over the scenario iterations only (no history)."""
        return self.ego.slice(self.history_steps)
