"""nuPlan CLS metrics of one rollout: :func:`compute_closed_loop_metrics`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.errors import DataError
from sim.metrics.collisions import collision_metric, find_collisions
from sim.metrics.comfort import comfort_metrics, non_scored_kinematics
from sim.metrics.common import DEFAULT_PARAMS, MetricParams, ego_center, ego_corners, time_us
from sim.metrics.direction import baseline_progress, driving_direction_metric
from sim.metrics.drivable import drivable_area_metric
from sim.metrics.open_loop import ego_expert_errors
from sim.metrics.progress import progress_metric
from sim.metrics.route import center_route, corner_routes, single_lane_flags
from sim.metrics.speed_limit import overspeed, route_speed_limit, speed_limit_metric
from sim.metrics.ttc import time_to_collision, ttc_metric
from sim.scenario import EgoStates, Tracks, TrafficLights
from sim.vehicle import PACIFICA, VehicleParameters

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI

#: The eight scored CLS metrics (nuPlan names); the same set for CLS-NR and CLS-R.
CLS_METRICS = (
    "no_ego_at_fault_collisions",
    "drivable_area_compliance",
    "ego_is_making_progress",
    "driving_direction_compliance",
    "ego_progress_along_expert_route",
    "time_to_collision_within_bound",
    "speed_limit_compliance",
    "ego_is_comfortable",
)


def compute_closed_loop_metrics(ego: EgoStates, tracks: Tracks, expert: EgoStates, map_api: MapAPI,
                                route_roadblock_ids: tuple[int, ...] | list[int] = (),
                                traffic_lights: TrafficLights | None = None,
                                params: MetricParams = DEFAULT_PARAMS,
                                vehicle: VehicleParameters = PACIFICA) -> dict[str, float]:
    """Every scored nuPlan CLS metric of a rollout, plus statistics.

    - ``ego``: the simulated ego, ``T`` samples (nuPlan's N-1 history samples), rear axle.
    - ``tracks``: ``(N, T)`` the objects observed at each of those samples.
    - ``expert``: the logged ego at all scenario iterations (progress reference; also the informational
      ``ego_expert_l2_error``).
    - ``route_roadblock_ids`` and ``traffic_lights`` are accepted for interface stability: nuPlan's CLS metrics
      do not use them (progress follows the expert's driven route, not the mission route).

    Returns metric name -> score for :data:`CLS_METRICS` and ``"<metric>.<statistic>"`` entries.
    """
    del route_roadblock_ids, traffic_lights  # not used by nuPlan's scored metrics
    if tracks.valid.shape[1] != len(ego):
        raise DataError(None, f"tracks cover {tracks.valid.shape[1]} samples but the ego has {len(ego)}",
                        "tracks (N, T) aligned with the T ego samples")
    if len(ego) < 2:
        raise DataError(None, f"ego has {len(ego)} samples", "at least 2 samples")
    stamps = time_us(ego)
    interval_us = float(np.mean(np.diff(stamps)))
    centers = ego_center(ego, vehicle)
    corners = ego_corners(ego, vehicle)

    # lane occupancy, shared by several metrics
    c_route = center_route(map_api, centers[:, :2])
    k_routes = corner_routes(map_api, corners)
    single_lane = single_lane_flags(map_api, k_routes)
    in_intersection = map_api.in_layer("intersections", ego.pose[:, :2]) >= 0

    out: dict[str, float] = {}
    collisions = find_collisions(ego, tracks, single_lane, params, vehicle)
    out.update(collision_metric(collisions, params))
    ttc = time_to_collision(ego, tracks, collisions, single_lane, in_intersection, params, vehicle)
    out.update(ttc_metric(ttc, params))
    out.update(drivable_area_metric(map_api, corners, k_routes, c_route, params))
    out.update(driving_direction_metric(baseline_progress(map_api, centers, c_route), interval_us, params))
    out.update(progress_metric(map_api, centers, ego_center(expert, vehicle), params))
    limits = np.array([route_speed_limit(map_api, r) for r in c_route])
    out.update(speed_limit_metric(overspeed(ego.speed, limits), stamps, params))
    out.update(comfort_metrics(ego, params, vehicle))
    out.update(non_scored_kinematics(ego, vehicle))
    if len(expert) in (len(ego), len(ego) + 1):
        out.update(ego_expert_errors(ego, expert, vehicle=vehicle))
    out["samples_in_single_lane"] = float(single_lane.sum())
    return out
