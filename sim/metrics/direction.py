"""``driving_direction_compliance`` (nuPlan multiplier; 2 m / 6 m over a 1 s window).

Per sample, progress along the baseline of the first centre-route object: the change of the centre's projected
arc length while ego stays in the same object (0 on entering an object, 0 when the projection is exactly 0 and off
the lane graph, where the previous object is remembered). Windowed sums over the last ``int(1 s / interval) + 1``
samples; ``m = |min window sum|``. Score 1 if ``m < 2``, 0.5 if ``m < 6``, else 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.metrics.common import DEFAULT_PARAMS, F64, MetricParams
from sim.metrics.route import Route, baseline_distance

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI


def baseline_progress(map_api: MapAPI, centers: F64, centre_route: list[Route]) -> F64:
    """``(T,)`` per-sample progress (m) along the baseline of the current route object."""
    c = np.asarray(centers, np.float64)
    first = np.array([r[0] if r else -1 for r in centre_route], np.int64)
    # project every sample on its own object's baseline in one call per distinct object
    dist = np.full(len(c), np.nan)
    for s in np.unique(first[first >= 0]).tolist():
        sel = first == s
        dist[sel] = baseline_distance(map_api.baseline(s), c[sel, :2])
    progress = np.zeros(len(c))
    prev_obj: int | None = int(first[0]) if first[0] >= 0 else None
    prev_dist: float | None = None
    for i in range(len(c)):  # sequential by definition: the reference resets on object changes
        if first[i] < 0:
            continue
        if prev_obj is not None and first[i] == prev_obj:
            d = float(dist[i])
            progress[i] = d - prev_dist if (prev_dist is not None and d) else 0.0
            prev_dist = d
        else:
            prev_dist = None
            prev_obj = int(first[i])
    return progress


def windowed_sum(values: F64, n_horizon: int) -> F64:
    """Sums over ``values[max(0, i - n_horizon) : i + 1]``."""
    cs = np.concatenate([[0.0], np.cumsum(values)])
    i = np.arange(len(values))
    return cs[i + 1] - cs[np.maximum(0, i - n_horizon)]


def driving_direction_metric(progress: F64, interval_us: float,
                             params: MetricParams = DEFAULT_PARAMS) -> dict[str, float]:
    """Score and the minimum windowed progress (m). ``interval_us``: mean sample interval in microseconds."""
    n_horizon = int(params.direction_horizon * 1e6 / interval_us)
    m = abs(float(np.min(windowed_sum(progress, n_horizon))))
    if m < params.direction_compliance:
        score = 1.0
    elif m < params.direction_violation:
        score = 0.5
    else:
        score = 0.0
    name = "driving_direction_compliance"
    return {name: score, f"{name}.min_progress": -m}
