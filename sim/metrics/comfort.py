"""Comfort: the six low-level kinematic metrics and ``ego_is_comfortable`` (nuPlan weight 2).

Signal processing follows nuplan-devkit's ``state_extractors``:
- accelerations: per-state value, Savitzky-Golay smoothed (polyorder 2, window ``min(8, T)`` — an even window,
  as nuPlan does), rounded to 8 decimals;
- jerks: Savitzky-Golay first derivative (polyorder 2, window ``min(15, T)``) of the smoothed acceleration with
  ``delta`` = mean interval, rounded to 8 decimals;
- yaw rate / acceleration: rear-axle heading unwrapped (differences rounded to whole turns), Savitzky-Golay
  derivative 1 (polyorder 2) / 2 (polyorder 3) with window ``min(5, T)``, rounded to 8 decimals.
A series passes when every value is strictly inside its bounds.

The centre acceleration is nuPlan's rigid-body shift of the rear-axle acceleration by ``d`` = rear axle to centre:
``(a_x + d*w^2 + d*alpha, a_y)``, with ``w`` the yaw rate and ``alpha`` its backward difference (0 at the first
sample; this is how nuPlan's motion model defines angular acceleration).
"""

from __future__ import annotations

import numpy as np

from sim.errors import DataError
from sim.metrics.common import DEFAULT_PARAMS, F64, MetricParams, mean_interval_s, series_stats
from sim.scenario import EgoStates
from sim.vehicle import PACIFICA, VehicleParameters

ACCEL_WINDOW = 8
JERK_WINDOW = 15
YAW_WINDOW = 5


def phase_unwrap(headings: F64) -> F64:
    """Remove whole turns between successive headings (nuPlan's ``phase_unwrap``)."""
    h = np.asarray(headings, np.float64)
    adj = np.zeros_like(h)
    adj[1:] = np.cumsum(np.round(np.diff(h) / (2.0 * np.pi)))
    return h - 2.0 * np.pi * adj


def _savgol(y: F64, window: int, polyorder: int, deriv: int = 0, delta: float = 1.0) -> F64:
    """``scipy.signal.savgol_filter`` (mode 'interp'), memoized on the input: the comfort metrics filter the same
    acceleration series several times (once for its own metric, again under each jerk)."""
    window = min(window, len(y))
    if polyorder >= window:
        raise DataError(None, f"{len(y)} ego samples are too few for a degree-{polyorder} Savitzky-Golay filter",
                        f"at least {polyorder + 1} samples")
    values = np.ascontiguousarray(y, dtype=np.float64)
    key = (values.tobytes(), window, polyorder, deriv, float(delta))
    out = _SAVGOL_MEMO.get(key)
    if out is None:
        from scipy.signal import savgol_filter  # lazy: importing scipy.signal costs 1-3 s per process

        out = savgol_filter(values, window_length=window, polyorder=polyorder, deriv=deriv, delta=delta)
        out.setflags(write=False)
        if len(_SAVGOL_MEMO) >= _SAVGOL_MEMO_SIZE:
            _SAVGOL_MEMO.pop(next(iter(_SAVGOL_MEMO)))
        _SAVGOL_MEMO[key] = out
    return out.copy()


_SAVGOL_MEMO: dict[tuple[bytes, int, int, int, float], F64] = {}
_SAVGOL_MEMO_SIZE = 16


def angular_acceleration(ego: EgoStates) -> F64:
    """``(T,)`` backward difference of the yaw rate, 0 at the first sample (rad/s^2)."""
    w = np.asarray(ego.yaw_rate, np.float64)
    out = np.zeros_like(w)
    if len(w) > 1:
        out[1:] = np.diff(w) / np.diff(np.asarray(ego.time_s, np.float64))
    return out


def raw_acceleration(ego: EgoStates, coordinate: str, vehicle: VehicleParameters = PACIFICA) -> F64:
    """Unfiltered acceleration ``(T,)``: 'x' / 'y' at the box centre (body frame) or 'magnitude' at the rear axle."""
    a = np.asarray(ego.acceleration, np.float64)
    if coordinate == "magnitude":
        return np.hypot(a[:, 0], a[:, 1])
    d = vehicle.rear_axle_to_center
    if coordinate == "x":
        w = np.asarray(ego.yaw_rate, np.float64)
        return a[:, 0] + d * w**2 + d * angular_acceleration(ego)
    if coordinate == "y":
        return a[:, 1].copy()
    raise ValueError(f"acceleration coordinate {coordinate!r} is not one of 'x', 'y', 'magnitude'")


def acceleration(ego: EgoStates, coordinate: str, vehicle: VehicleParameters = PACIFICA) -> F64:
    """Smoothed acceleration series ``(T,)`` m/s^2 (see module docstring)."""
    return np.round(_savgol(raw_acceleration(ego, coordinate, vehicle), ACCEL_WINDOW, 2), 8)


def jerk(ego: EgoStates, coordinate: str, vehicle: VehicleParameters = PACIFICA) -> F64:
    """Jerk series ``(T,)`` m/s^3: derivative of the smoothed acceleration."""
    acc = acceleration(ego, coordinate, vehicle)
    return np.round(_savgol(acc, JERK_WINDOW, 2, deriv=1, delta=mean_interval_s(ego)), 8)


def yaw_rate(ego: EgoStates) -> F64:
    """Yaw-rate series ``(T,)`` rad/s from the rear-axle heading."""
    return np.round(_savgol(phase_unwrap(ego.pose[:, 2]), YAW_WINDOW, 2, deriv=1, delta=mean_interval_s(ego)), 8)


def yaw_acceleration(ego: EgoStates) -> F64:
    """Yaw-acceleration series ``(T,)`` rad/s^2 from the rear-axle heading."""
    return np.round(_savgol(phase_unwrap(ego.pose[:, 2]), YAW_WINDOW, 3, deriv=2, delta=mean_interval_s(ego)), 8)


def within(values: F64, low: float, high: float) -> bool:
    """Strictly inside ``(low, high)`` at every sample (nuPlan's within-bound rule)."""
    v = np.asarray(values, np.float64)
    return bool(np.all((v > low) & (v < high)))


def comfort_series(ego: EgoStates, vehicle: VehicleParameters = PACIFICA) -> dict[str, F64]:
    """The six series checked by ``ego_is_comfortable``, by nuPlan metric name."""
    return {
        "ego_lon_acceleration": acceleration(ego, "x", vehicle),
        "ego_lat_acceleration": acceleration(ego, "y", vehicle),
        "ego_jerk": jerk(ego, "magnitude", vehicle),
        "ego_lon_jerk": jerk(ego, "x", vehicle),
        "ego_yaw_acceleration": yaw_acceleration(ego),
        "ego_yaw_rate": yaw_rate(ego),
    }


def comfort_bounds(params: MetricParams = DEFAULT_PARAMS) -> dict[str, tuple[float, float]]:
    """Strict (low, high) bounds of each comfort series."""
    return {
        "ego_lon_acceleration": (params.min_lon_accel, params.max_lon_accel),
        "ego_lat_acceleration": (-params.max_abs_lat_accel, params.max_abs_lat_accel),
        "ego_jerk": (-params.max_abs_jerk, params.max_abs_jerk),
        "ego_lon_jerk": (-params.max_abs_lon_jerk, params.max_abs_lon_jerk),
        "ego_yaw_acceleration": (-params.max_abs_yaw_accel, params.max_abs_yaw_accel),
        "ego_yaw_rate": (-params.max_abs_yaw_rate, params.max_abs_yaw_rate),
    }


def comfort_metrics(ego: EgoStates, params: MetricParams = DEFAULT_PARAMS,
                    vehicle: VehicleParameters = PACIFICA) -> dict[str, float]:
    """``ego_is_comfortable`` (0/1) plus, per low-level metric, its max/min/mean/p90 and within-bound flag.

    Keys: ``ego_is_comfortable`` and ``<metric>.max`` / ``.min`` / ``.mean`` / ``.p90`` / ``.within_bound``.
    """
    out: dict[str, float] = {}
    ok = True
    bounds = comfort_bounds(params)
    for name, series in comfort_series(ego, vehicle).items():
        for stat, value in series_stats(series).items():
            out[f"{name}.{stat}"] = value
        inside = within(series, *bounds[name])
        out[f"{name}.within_bound"] = float(inside)
        ok &= inside
    out["ego_is_comfortable"] = float(ok)
    return out


def non_scored_kinematics(ego: EgoStates, vehicle: VehicleParameters = PACIFICA) -> dict[str, float]:
    """nuPlan's informational metrics: ``ego_acceleration`` (magnitude), ``ego_lat_jerk``, ``ego_mean_speed``."""
    out: dict[str, float] = {}
    for name, series in (("ego_acceleration", acceleration(ego, "magnitude", vehicle)),
                         ("ego_lat_jerk", jerk(ego, "y", vehicle))):
        for stat, value in series_stats(series).items():
            out[f"{name}.{stat}"] = value
    out["ego_mean_speed"] = float(np.mean(ego.speed)) if len(ego) else float("nan")
    return out
