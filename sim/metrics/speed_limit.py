"""``speed_limit_compliance`` (nuPlan weight 4; 2.23 m/s overspeed scale).

Per sample with a centre route: a lane gives its speed limit; connectors give the maximum limit over the lanes
entering and leaving every connector ego is in. Any unknown limit (NaN / 0) or no route means no violation.
Violation depth = ``max(0, speed - limit)``. Score 1 without violation, else
``max(0, 1 - sum(depth) * mean_dt / (2.23 * (t_last - t_first)))``.
Statistics as nuPlan: violations are contiguous runs; count, max / min of the runs' maxima, duration-weighted
mean of the runs' means (a run still open at the end lasts until the last sample).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.metrics.common import DEFAULT_PARAMS, F64, I64, MetricParams
from sim.metrics.route import Route

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI


def route_speed_limit(map_api: MapAPI, route: Route) -> float:
    """Speed limit (m/s) that applies to a centre-route entry; NaN when unknown or off the lane graph."""
    if not route:
        return float("nan")
    if not map_api.seg_is_connector[route[0]]:
        limits = [float(map_api.seg_speed_limit[route[0]])]
    else:
        limits = [float(map_api.seg_speed_limit[int(e)]) for s in route
                  for e in np.concatenate([map_api.successors(s), map_api.predecessors(s)])]
    if not limits or any(np.isnan(v) or v == 0.0 for v in limits):
        return float("nan")
    return max(limits)


def overspeed(speed: F64, limits: F64) -> F64:
    """``(T,)`` violation depth (m/s): positive excess over a known limit, else 0."""
    with np.errstate(invalid="ignore"):
        excess = np.asarray(speed, np.float64) - np.asarray(limits, np.float64)
    return np.where(np.isnan(excess) | (excess <= 0), 0.0, excess)


def speed_limit_metric(depth: F64, stamps_us: I64, params: MetricParams = DEFAULT_PARAMS) -> dict[str, float]:
    """Score and violation statistics from the depth series and integer time stamps."""
    name = "speed_limit_compliance"
    d = np.asarray(depth, np.float64)
    t = np.asarray(stamps_us, np.int64)
    violating = d > 0
    out: dict[str, float] = {f"{name}.count": 0.0}
    if not violating.any():
        out[name] = 1.0
        return out
    # contiguous runs [start, stop) of violating samples
    edges = np.diff(np.concatenate([[0], violating.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    maxima = np.array([d[a:b].max() for a, b in zip(starts, stops, strict=True)])
    means = np.array([d[a:b].mean() for a, b in zip(starts, stops, strict=True)])
    end_t = t[np.minimum(stops, len(t) - 1)]
    durations = (end_t - t[starts]).astype(np.float64)
    out[f"{name}.count"] = float(len(starts))
    out[f"{name}.max"] = float(maxima.max())
    out[f"{name}.min"] = float(maxima.min())
    out[f"{name}.mean"] = float(np.sum(means * durations) / durations.sum()) if durations.sum() > 0 else float("nan")
    dt = float(np.mean(np.diff(t))) * 1e-6 if len(t) > 1 else 0.0
    duration = float(t[-1] - t[0]) * 1e-6
    if duration <= 0:
        out[name] = 1.0
        return out
    loss = d.sum() * dt / (max(params.max_overspeed, 1e-3) * duration)
    out[name] = float(max(0.0, 1.0 - loss))
    return out
