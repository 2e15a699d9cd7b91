"""``drivable_area_compliance`` (nuPlan multiplier, 0.3 m).

A corner is *outside* at a sample when it is in no lane / connector of its corner route and not inside the
drivable-area union. An outside corner is *far* unless the centre's route objects exist and the corner is within
0.3 m of one of their polygons, or else the corner is within 0.3 m of the drivable area. Score 0 if any corner is
ever far, else 1. ``corners_in_drivable_area`` (informational) is 1 when no corner is ever outside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import shapely

from sim.metrics.common import DEFAULT_PARAMS, F64, MetricParams
from sim.metrics.route import Route

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI


def drivable_area_metric(map_api: MapAPI, corners: F64, corner_route: list[tuple[Route, Route, Route, Route]],
                         centre_route: list[Route], params: MetricParams = DEFAULT_PARAMS) -> dict[str, float]:
    """Score and the informational corner flag. ``corners`` ``(T, 4, 2)``; routes from :mod:`sim.metrics.route`."""
    c = np.asarray(corners, np.float64)
    t = len(c)
    no_route = np.array([[len(r) == 0 for r in entry] for entry in corner_route], bool).reshape(t, 4)
    pts = c.reshape(-1, 2)
    outside = no_route & ~map_api.is_drivable(pts).reshape(t, 4)
    far = np.zeros((t, 4), bool)
    ti, ki = np.nonzero(outside)
    if len(ti):
        close_to_lane = np.zeros(len(ti), bool)
        for j, (i, k) in enumerate(zip(ti.tolist(), ki.tolist(), strict=True)):  # only outside corners
            if centre_route[i]:
                d = shapely.distance(map_api.seg_polygon[list(centre_route[i])], shapely.points(c[i, k]))
                close_to_lane[j] = float(np.min(d)) < params.drivable_max_violation
        d_area = map_api.distance_to_drivable(c[ti, ki])
        far[ti, ki] = ~close_to_lane & ~(d_area < params.drivable_max_violation)
    name = "drivable_area_compliance"
    return {name: float(not far.any()), f"{name}.corners_in_drivable_area": float(not outside.any()),
            f"{name}.samples_outside": float(outside.any(1).sum())}
