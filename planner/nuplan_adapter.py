"""Run a distiplan :class:`sim.planning.Planner` inside nuplan-devkit's simulation (its ``AbstractPlanner``).

Optional: this module imports nuplan-devkit when imported and raises an :class:`ImportError` explaining how to
install it when it is missing. Nothing else in distiplan imports it.

    from experts.idm_planner import IDMPlanner
    from planner.nuplan_adapter import DevkitPlannerAdapter
    planner = DevkitPlannerAdapter(IDMPlanner())      # use wherever devkit expects an AbstractPlanner

Conversions (devkit -> distiplan each step, distiplan -> devkit for the result):
- route roadblock ids ``str`` -> ``int``; mission goal ``StateSE2`` -> ``(3,)`` x, y, heading;
- the devkit map (``NuPlanMap``) -> distiplan :class:`MapAPI` of the same ``map.gpkg`` (through distiplan's map
  cache), or of ``maps_root`` when given;
- the history buffer's ``EgoState`` s -> :class:`EgoStates` (rear axle, body-frame velocity / acceleration),
  its ``DetectionsTracks`` -> one :class:`Observation` per step (box centre, global velocity; static objects 0);
- ``TrafficLightStatusData`` list -> ``{lane_connector_id: TrafficLightStatus}``;
- the returned :class:`Trajectory` -> ``InterpolatedTrajectory`` of ``EgoState`` s whose velocity,
  acceleration, yaw rate and steering angle are finite differences of the poses (kinematic bicycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sim.categories import Category, TrafficLightStatus
from sim.errors import DataError
from sim.planning import Observation, Planner, PlannerInitialization, PlannerInput
from sim.scenario import EgoStates, Tracks
from sim.trajectory import Trajectory

_INSTALL_HINT = (
    "planner.nuplan_adapter needs nuplan-devkit, which is not a dependency of distiplan. Install it in a "
    "separate environment: `pip install -e <nuplan-devkit checkout> --no-deps` plus its runtime packages "
    "(see benchmarks/devkit_compat/README.md for the exact commands)"
)

try:
    from nuplan.common.actor_state.ego_state import EgoState
    from nuplan.common.actor_state.state_representation import StateSE2, StateVector2D, TimePoint
    from nuplan.common.actor_state.vehicle_parameters import VehicleParameters, get_pacifica_parameters
    from nuplan.planning.simulation.observation.observation_type import DetectionsTracks
    from nuplan.planning.simulation.planner.abstract_planner import AbstractPlanner
    from nuplan.planning.simulation.trajectory.interpolated_trajectory import InterpolatedTrajectory
except ImportError as _err:  # pragma: no cover - exercised in distiplan's suite, where devkit is absent
    raise ImportError(f"{_INSTALL_HINT} (import failed: {_err})") from _err

F64 = npt.NDArray[np.float64]


# ----------------------------------------------------------------------------------------------- devkit -> us
def route_ids(ids: Any) -> tuple[int, ...]:
    """devkit's route roadblock ids (strings) as ints. Raises :class:`DataError` for a non-integer id."""
    out = []
    for r in ids or ():
        try:
            out.append(int(r))
        except (TypeError, ValueError):
            raise DataError(None, f"route roadblock id {r!r} is not an integer", "nuPlan map fids") from None
    return tuple(out)


def mission_goal(goal: Any) -> F64 | None:
    """``StateSE2`` (or None) -> ``(3,)`` x, y, heading (or None)."""
    return None if goal is None else np.array([goal.x, goal.y, goal.heading], dtype=np.float64)


def ego_states(states: Any) -> EgoStates:
    """devkit ``EgoState`` s (oldest first) -> :class:`EgoStates` at the rear axle."""
    rows = [(s.time_point.time_us * 1e-6, s.rear_axle.x, s.rear_axle.y, s.rear_axle.heading,
             s.dynamic_car_state.rear_axle_velocity_2d.x, s.dynamic_car_state.rear_axle_velocity_2d.y,
             s.dynamic_car_state.rear_axle_acceleration_2d.x, s.dynamic_car_state.rear_axle_acceleration_2d.y,
             s.tire_steering_angle, s.dynamic_car_state.angular_velocity) for s in states]
    a = np.array(rows, dtype=np.float64).reshape(-1, 10)
    return EgoStates(time_s=a[:, 0], pose=a[:, 1:4].copy(), velocity=a[:, 4:6].copy(),
                     acceleration=a[:, 6:8].copy(), steering_angle=a[:, 8].copy(), yaw_rate=a[:, 9].copy())


def _category(tracked_object_type: Any) -> int:
    return int(Category[tracked_object_type.name])


def observation(obs: Any) -> Observation:
    """devkit ``DetectionsTracks`` -> :class:`Observation` with ``(N, 1)`` tracks (other observation types: no
    objects)."""
    objs = list(obs.tracked_objects.tracked_objects) if isinstance(obs, DetectionsTracks) else []
    n = len(objs)
    if n == 0:
        return Observation(tracks=Tracks.empty(1))
    tokens = np.array([str(o.track_token) for o in objs], dtype=np.str_)
    cats = np.array([_category(o.tracked_object_type) for o in objs], dtype=np.int8)
    size = np.array([[o.box.length, o.box.width, o.box.height] for o in objs], dtype=np.float64)
    pose = np.array([[o.center.x, o.center.y, o.center.heading] for o in objs], dtype=np.float64)[:, None]
    # Agents carry a global-frame velocity; static objects (StaticObject) have none.
    vel = np.array([[o.velocity.x, o.velocity.y] if hasattr(o, "velocity") and o.velocity is not None
                    else [0.0, 0.0] for o in objs], dtype=np.float64)[:, None]
    return Observation(tracks=Tracks(token=tokens, category=cats, size=size, pose=pose, velocity=vel,
                                     valid=np.ones((n, 1), dtype=bool)))


def traffic_lights(data: Any) -> dict[int, int]:
    """devkit ``TrafficLightStatusData`` list -> ``{lane_connector_id: TrafficLightStatus value}``."""
    return {int(t.lane_connector_id): int(TrafficLightStatus[t.status.name]) for t in data or ()}


def planner_input(current_input: Any) -> PlannerInput:
    """devkit ``PlannerInput`` -> distiplan :class:`PlannerInput`."""
    history = current_input.history
    return PlannerInput(iteration=int(current_input.iteration.index), time_s=float(current_input.iteration.time_s),
                        ego_history=ego_states(history.ego_states),
                        observation_history=tuple(observation(o) for o in history.observations),
                        traffic_lights=traffic_lights(current_input.traffic_light_data))


def gpkg_of(map_api: Any) -> tuple[Path, str, str]:
    """``(map.gpkg path, location, version)`` behind a devkit ``NuPlanMap`` (``<root>/<location>/<version>/``)."""
    maps_db = getattr(map_api, "_maps_db", None)
    if maps_db is None or not hasattr(maps_db, "get_gpkg_path_and_store_on_disk"):
        raise DataError(None, f"map {type(map_api).__name__} is not backed by a GPKGMapsDB",
                        "a NuPlanMap (get_maps_api)")
    location = map_api.map_name
    path = Path(maps_db.get_gpkg_path_and_store_on_disk(location))
    return path, location, path.parent.name


# ----------------------------------------------------------------------------------------------- us -> devkit
def trajectory_states(traj: Trajectory, vehicle: VehicleParameters) -> list[EgoState]:
    """A distiplan :class:`Trajectory` as devkit ``EgoState`` s (rear axle). Velocity / acceleration / yaw rate
    are finite differences of the poses in the body frame; steering = atan(wheel base * curvature)."""
    t = np.asarray(traj.time_s, dtype=np.float64)
    pose = np.asarray(traj.pose, dtype=np.float64)
    if len(t) < 2:
        raise DataError(None, f"planner returned {len(t)} poses", "a trajectory of >= 2 poses")
    heading = np.unwrap(pose[:, 2])
    vx_g = np.gradient(pose[:, 0], t)
    vy_g = np.gradient(pose[:, 1], t)
    c, s = np.cos(heading), np.sin(heading)
    v_lon = vx_g * c + vy_g * s
    v_lat = -vx_g * s + vy_g * c
    yaw_rate = np.gradient(heading, t)
    a_lon = np.gradient(v_lon, t)
    a_lat = v_lon * yaw_rate
    curvature = np.divide(yaw_rate, v_lon, out=np.zeros_like(v_lon), where=np.abs(v_lon) > 0.1)
    steer = np.arctan(vehicle.wheel_base * curvature)
    yaw_acc = np.gradient(yaw_rate, t)
    return [EgoState.build_from_rear_axle(
        rear_axle_pose=StateSE2(float(pose[i, 0]), float(pose[i, 1]), float(pose[i, 2])),
        rear_axle_velocity_2d=StateVector2D(float(v_lon[i]), float(v_lat[i])),
        rear_axle_acceleration_2d=StateVector2D(float(a_lon[i]), float(a_lat[i])),
        tire_steering_angle=float(steer[i]), time_point=TimePoint(int(round(t[i] * 1e6))),
        vehicle_parameters=vehicle, is_in_auto_mode=True, angular_vel=float(yaw_rate[i]),
        angular_accel=float(yaw_acc[i])) for i in range(len(t))]


# ----------------------------------------------------------------------------------------------- the adapter
class DevkitPlannerAdapter(AbstractPlanner):
    """A distiplan planner as a nuplan-devkit ``AbstractPlanner`` (observation type ``DetectionsTracks``).

    ``maps_root`` / ``cache_root``: where distiplan loads the map from (default: the devkit map's own
    ``map.gpkg``, cached under ``<maps_root>/.distiplan_cache``). Oracle planners (``requires_scenario``) are
    refused: devkit does not hand the scenario to a planner at initialization.
    """

    requires_scenario = False

    def __init__(self, planner: Planner, maps_root: str | Path | None = None,
                 cache_root: str | Path | None = None, vehicle: VehicleParameters | None = None) -> None:
        if getattr(planner, "requires_scenario", False):
            raise DataError(None, f"planner {planner.name} requires the scenario (an oracle)",
                            "a planner with requires_scenario = False")
        self.planner = planner
        self.maps_root = None if maps_root is None else Path(maps_root)
        self.cache_root = cache_root
        self.vehicle = vehicle or get_pacifica_parameters()
        self.map_api: Any = None

    def name(self) -> str:
        return f"distiplan.{self.planner.name}"

    def observation_type(self) -> type:
        return DetectionsTracks

    def initialize(self, initialization: Any) -> None:
        from sim.nuplan_map.loader import load_map  # noqa: PLC0415 - loads map_api (shapely) only when used

        if isinstance(initialization, list | tuple):  # older devkit versions pass a list
            (initialization,) = initialization
        dk_map = initialization.map_api
        if self.maps_root is not None:
            self.map_api = load_map(self.maps_root, dk_map.map_name, cache_root=self.cache_root)
        else:
            gpkg, location, version = gpkg_of(dk_map)
            self.map_api = load_map(gpkg.parents[2], location, version, cache_root=self.cache_root)
        self.planner.initialize(PlannerInitialization(
            route_roadblock_ids=route_ids(initialization.route_roadblock_ids),
            mission_goal=mission_goal(initialization.mission_goal), map_api=self.map_api))

    def compute_planner_trajectory(self, current_input: Any) -> InterpolatedTrajectory:
        traj = self.planner.compute_trajectory(planner_input(current_input))
        return InterpolatedTrajectory(trajectory_states(traj, self.vehicle))
