"""``ego_progress_along_expert_route`` (nuPlan weight 5) and ``ego_is_making_progress`` (multiplier).

The expert route is the simplified centre route of the expert at every scenario iteration; each new roadblock
along it contributes a (roadblock polygon, baseline of the first route object in it) pair. A pose sequence then
accumulates progress: inside the current roadblock, the change of the projected arc length on its baseline;
outside, the later roadblocks are scanned for one containing the pose — progress = rest of the previous baseline
+ (projection on the new baseline - projection of the previous baseline's end on it) + the lengths credited for
skipped roadblocks; when none contains it, 0 and the reference stays.
ratio = 0 if ego progress < -2 m, else ``min(1, max(ego, 2) / max(expert, 2))``; 1 when the expert never
touches the lane graph. ``ego_is_making_progress`` = 1 iff ratio >= 0.2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely

from sim.metrics.common import DEFAULT_PARAMS, F64, MetricParams
from sim.metrics.route import Route, baseline_distance, simplified_route

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI


@dataclass(frozen=True)
class RouteBlock:
    """One roadblock of the expert route: its polygon and the baseline ``(P, 2)`` used to measure progress."""

    roadblock_id: int
    is_connector: bool
    polygon: shapely.Geometry
    baseline: F64

    @property
    def length(self) -> float:
        return float(shapely.length(shapely.LineString(self.baseline)))


def _roadblock_polygon(map_api: MapAPI, rb_id: int, is_connector: bool) -> shapely.Geometry:
    match = np.flatnonzero((map_api.rb_id == rb_id) & (map_api.rb_is_connector == is_connector))
    if len(match) == 0:
        match = np.array([map_api.roadblock_index(rb_id)])
    return map_api.rb_polygon[int(match[0])]


def expert_route_blocks(map_api: MapAPI, expert_route: list[Route]) -> list[RouteBlock]:
    """nuPlan's ``get_route_baseline_roadblock_linkedlist`` of a simplified centre route."""
    blocks: list[RouteBlock] = []
    prev: int | None = None
    for entry in expert_route:
        if not entry:
            continue
        s = entry[0]
        rb = int(map_api.seg_roadblock_id[s])
        if rb != prev:
            prev = rb
            conn = bool(map_api.seg_is_connector[s])
            blocks.append(RouteBlock(rb, conn, _roadblock_polygon(map_api, rb, conn), map_api.baseline(s)[:, :2]))
    return blocks


def progress_along_blocks(blocks: list[RouteBlock], points: F64) -> F64:
    """``(T,)`` per-frame progress (m) of centre points ``(T, 2)`` along the route blocks (first frame 0).

    Containment and projections of every point on every block are computed up front (B x T, vectorized);
    the walk through the blocks is sequential by definition.
    """
    pts = np.asarray(points, np.float64)[:, :2]
    progress = np.zeros(len(pts))
    if not blocks or len(pts) == 0:
        return progress
    shapely.prepare([b.polygon for b in blocks])  # many containment tests per polygon (no-op when prepared)
    inside = np.stack([shapely.contains_xy(b.polygon, pts[:, 0], pts[:, 1]) for b in blocks])  # (B, T)
    # The walk reads dist[b, i] only where point i is inside block b (and dist[0, 0]): project only those.
    dist = np.full(inside.shape, np.nan)
    for b, block in enumerate(blocks):
        need = inside[b].copy()
        if b == 0:
            need[0] = True
        if need.any():
            dist[b, need] = baseline_distance(block.baseline, pts[need])
    # projection of each block's last / first baseline point on every block's baseline
    ends = np.array([b.baseline[-1] for b in blocks])
    starts = np.array([b.baseline[0] for b in blocks])
    end_on = np.stack([baseline_distance(b.baseline, ends) for b in blocks])  # [onto, of]
    start_on = np.stack([baseline_distance(b.baseline, starts) for b in blocks])
    lengths = [b.length for b in blocks]
    cur = 0
    prev_dist = float(dist[cur, 0])
    for i in range(1, len(pts)):
        if inside[cur, i]:
            progress[i] = dist[cur, i] - prev_dist
            prev_dist = float(dist[cur, i])
            continue
        skipped_credit = 0.0
        skipped: int | None = None
        nxt = cur + 1
        while nxt < len(blocks):
            if inside[nxt, i]:
                # rest of the previous baseline + progress on the new one from the previous baseline's end
                progress[i] = (lengths[cur] - prev_dist) + (dist[nxt, i] - end_on[nxt, cur]) + skipped_credit
                prev_dist = float(dist[nxt, i])
                cur = nxt
                break
            if nxt + 1 >= len(blocks):
                break
            # credit the skipped roadblock from the previous baseline's end to the next baseline's start
            last = skipped if skipped is not None else cur
            skipped = nxt
            skipped_credit += start_on[skipped, nxt + 1] - end_on[skipped, last]
            nxt += 1
    return progress


def progress_metric(map_api: MapAPI, ego_centers: F64, expert_centers: F64,
                    params: MetricParams = DEFAULT_PARAMS, expert_route: list[Route] | None = None
                    ) -> dict[str, float]:
    """Both progress metrics. ``expert_route``: the expert's centre route if already computed."""
    from sim.metrics.route import center_route

    route = center_route(map_api, expert_centers[:, :2]) if expert_route is None else expert_route
    blocks = expert_route_blocks(map_api, simplified_route(route))
    name = "ego_progress_along_expert_route"
    if not blocks:
        ratio = 1.0
        out = {f"{name}.expert_progress": 0.0}
    else:
        ego = float(np.sum(progress_along_blocks(blocks, ego_centers[:, :2])))
        expert = float(np.sum(progress_along_blocks(blocks, expert_centers[:, :2])))
        thr = params.score_progress_threshold
        ratio = 0.0 if ego < -thr else min(1.0, max(ego, thr) / max(expert, thr))
        out = {f"{name}.expert_progress": expert, f"{name}.ego_progress": ego}
    out[name] = float(ratio)
    out["ego_is_making_progress"] = float(ratio >= params.min_progress_ratio)
    return out
