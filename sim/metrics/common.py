"""Shared pieces of the nuPlan metrics: parameters, time stamps, the ego box, summary statistics.

Every metric in this package is a pure function of a rollout. The rollout's ego is an
:class:`sim.scenario.EgoStates` (rear-axle reference, nuPlan's convention); the ego box is the Pacifica's
footprint centred ``rear_axle_to_center`` ahead of the rear axle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.errors import DataError
from sim.geometry import box_corners, rear_axle_to_center
from sim.scenario import EgoStates
from sim.vehicle import PACIFICA, VehicleParameters

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Bump when a metric's semantics change: results stored with another version must be re-scored.
METRICS_VERSION = "nuplan-1.2-distiplan-1"


@dataclass(frozen=True)
class MetricParams:
    """Thresholds of nuPlan's challenge configuration (``config/common/simulation_metric``).

    The fixture tests of nuplan-devkit use a few different values; pass a modified copy to reproduce them.
    """

    # no_ego_at_fault_collisions
    max_violation_vru: int = 0
    max_violation_vehicle: int = 0
    max_violation_object: int = 1
    stopped_speed: float = 0.05  # m/s, ego / track counted as stopped at or below
    # drivable_area_compliance
    drivable_max_violation: float = 0.3  # m
    # driving_direction_compliance
    direction_compliance: float = 2.0  # m
    direction_violation: float = 6.0  # m
    direction_horizon: float = 1.0  # s
    # ego_progress_along_expert_route / ego_is_making_progress
    score_progress_threshold: float = 2.0  # m
    min_progress_ratio: float = 0.2
    # time_to_collision_within_bound
    ttc_step: float = 0.1  # s
    ttc_horizon: float = 3.0  # s
    least_min_ttc: float = 0.95  # s
    ttc_stopped_speed: float = 5e-3  # m/s
    # speed_limit_compliance
    max_overspeed: float = 2.23  # m/s
    # ego_is_comfortable (strict bounds)
    min_lon_accel: float = -4.05  # m/s^2
    max_lon_accel: float = 2.40
    max_abs_lat_accel: float = 4.89
    max_abs_jerk: float = 8.37  # m/s^3
    max_abs_lon_jerk: float = 4.13
    max_abs_yaw_accel: float = 1.93  # rad/s^2
    max_abs_yaw_rate: float = 0.95  # rad/s
    # open loop
    ols_horizons: tuple[int, ...] = (3, 5, 8)  # s
    ols_frequency: float = 1.0  # Hz
    max_average_l2: float = 8.0  # m
    max_final_l2: float = 8.0  # m
    max_average_heading: float = 0.8  # rad
    max_final_heading: float = 0.8  # rad
    miss_displacement: tuple[float, ...] = (6.0, 8.0, 16.0)  # m, one per horizon
    max_miss_rate: float = 0.3


DEFAULT_PARAMS = MetricParams()


def time_us(ego: EgoStates) -> I64:
    """Integer microsecond stamps ``(T,)``: nuPlan computes intervals from integers, so must we
    (``int(1 / mean(diff))`` on float seconds can land on 9 instead of 10)."""
    return np.round(np.asarray(ego.time_s, np.float64) * 1e6).astype(np.int64)


def mean_interval_s(ego: EgoStates) -> float:
    """Mean sample interval in seconds, from integer microseconds."""
    t = time_us(ego)
    if len(t) < 2:
        raise DataError(None, f"ego has {len(t)} samples", "at least 2 samples to compute an interval")
    return float(np.mean(np.diff(t))) * 1e-6


def ego_center(ego: EgoStates, vehicle: VehicleParameters = PACIFICA) -> F64:
    """``(T, 3)`` centre poses of the ego box."""
    return rear_axle_to_center(ego.pose, vehicle.rear_axle_to_center)


def ego_corners(ego: EgoStates, vehicle: VehicleParameters = PACIFICA) -> F64:
    """``(T, 4, 2)`` ego box corners FL, RL, RR, FR."""
    c = ego_center(ego, vehicle)
    n = len(c)
    return box_corners(c, np.full(n, vehicle.length), np.full(n, vehicle.width))


def p90_closest_observation(values: npt.ArrayLike) -> float:
    """90th percentile as the closest observation, with the rounding of the numpy release nuPlan pinned.

    0-based virtual index ``k = 0.9 n - 1.5``; an integral even ``k`` takes that order statistic, otherwise the
    next one (numpy >= 1.25 changed the parity rule, which moves the result for e.g. 5 samples: nuPlan's golden
    values use the old rule).
    """
    v = np.sort(np.asarray(values, np.float64)[~np.isnan(np.asarray(values, np.float64))])
    if v.size == 0:
        return float("nan")
    k = v.size * 0.9 - 1.5
    prev = np.floor(k)
    idx = prev if (k - prev == 0 and prev % 2 == 0) else prev + 1
    return float(v[int(np.clip(idx, 0, v.size - 1))])


def series_stats(values: npt.ArrayLike) -> dict[str, float]:
    """nuPlan's time-series statistics: max, min, mean (NaN-aware) and p90 as the closest observation."""
    v = np.asarray(values, np.float64)
    if v.size == 0 or np.all(np.isnan(v)):
        return {"max": float("nan"), "min": float("nan"), "mean": float("nan"), "p90": float("nan")}
    return {"max": float(np.nanmax(v)), "min": float(np.nanmin(v)), "mean": float(np.nanmean(v)),
            "p90": p90_closest_observation(v)}


def angle_to(origin: F64, points: F64) -> F64:
    """Angle (rad, in ``[0, pi]``) between each origin's heading and the vector origin -> point.

    ``origin`` ``(..., 3)``, ``points`` ``(..., 2)`` broadcastable. NaN where the point coincides with the
    origin (nuPlan divides by the zero norm, and NaN fails both the 'ahead' and the 'behind' test).
    """
    d = np.asarray(points, np.float64)[..., :2] - np.asarray(origin, np.float64)[..., :2]
    norm = np.hypot(d[..., 0], d[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (np.cos(origin[..., 2]) * d[..., 0] + np.sin(origin[..., 2]) * d[..., 1]) / norm
    return np.where(norm > 0, np.arccos(np.clip(cos, -1.0, 1.0)), np.nan)


def check_lengths(ego: EgoStates, num_steps: int, what: str) -> None:
    if len(ego) != num_steps:
        raise DataError(None, f"{what} has {num_steps} samples but the ego has {len(ego)}",
                        "one sample per ego state")
