"""Route centerlines for the expert: which lanes to follow and the path along them.

A :class:`Path` is a polyline resampled at a fixed spacing with its arc length, heading, the map segment each
vertex comes from and that segment's speed limit. The expert builds one per step from the lane graph:

1. on-route segments = the lanes and connectors of the route's roadblocks;
2. starting segment = the on-route segment containing the rear axle with the smallest heading error
   (fallbacks: nearest on-route segment, then the nearest segment);
3. Dijkstra over on-route segments (edge cost = baseline length) toward the last roadblock of a window of
   ``search_depth`` route roadblocks ahead; if it is unreachable, the deepest reached segment wins;
4. the baselines of the found segments, concatenated and resampled.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.geometry import polyline_arc_length, wrap_angle
from sim.nuplan_map.map_api import MapAPI

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Route roadblocks looked ahead by the Dijkstra search (PDM-Closed's ``search_depth``).
SEARCH_DEPTH = 30
#: Resampling step of a path (m).
PATH_SPACING = 1.0


@dataclass(frozen=True)
class Path:
    """A drivable path, vertices every ``PATH_SPACING`` metres.

    - ``xy``: ``(P, 2)`` m, global; ``heading``: ``(P,)`` rad (unwrapped, so it interpolates)
    - ``s``: ``(P,)`` arc length from the first vertex (m)
    - ``segment``: ``(P,)`` map segment index each vertex was taken from (-1 for blended vertices)
    - ``speed_limit``: ``(P,)`` m/s, NaN where the map has none
    """

    xy: F64
    heading: F64
    s: F64
    segment: I64
    speed_limit: F64

    def __len__(self) -> int:
        return len(self.s)

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def normal(self) -> F64:
        """``(P, 2)`` unit left normals."""
        return np.stack([-np.sin(self.heading), np.cos(self.heading)], -1)

    def poses_at(self, s: npt.ArrayLike, offset: npt.ArrayLike = 0.0) -> F64:
        """Poses ``(..., 3)`` at arc lengths ``s`` (clamped to the path), shifted ``offset`` m to the left."""
        q = np.clip(np.asarray(s, np.float64), 0.0, self.s[-1])
        x = np.interp(q, self.s, self.xy[:, 0])
        y = np.interp(q, self.s, self.xy[:, 1])
        h = np.interp(q, self.s, self.heading)
        d = np.asarray(offset, np.float64)
        return np.stack([x - d * np.sin(h), y + d * np.cos(h), wrap_angle(h)], -1)

    def project(self, points: npt.ArrayLike) -> tuple[F64, F64, F64]:
        """Arc length, signed lateral offset (left > 0) and distance to the nearest vertex of points ``(..., 2)``.

        Local linearisation at the nearest vertex; exact to a few centimetres at 1 m spacing for the
        curvatures of real roads. Points beyond the ends extend the end tangents.
        """
        p = np.asarray(points, np.float64)
        flat = p.reshape(-1, 2)
        # Nearest vertex by brute force over a short path: (M, P) is small (P <= a few hundred).
        if len(flat) * len(self.s) <= 4_000_000:
            # |p - v|² = |v|² − 2 p·v + |p|²; the |p|² term does not change the argmin.
            d2 = (self.xy**2).sum(1)[None, :] - 2.0 * (flat @ self.xy.T)
            k = np.argmin(d2, axis=1)
        else:  # large batches: a KD-tree keeps memory flat
            from scipy.spatial import cKDTree

            k = cKDTree(self.xy).query(flat)[1]
        rel = flat - self.xy[k]
        c, s = np.cos(self.heading[k]), np.sin(self.heading[k])
        along = rel[:, 0] * c + rel[:, 1] * s
        lat = -rel[:, 0] * s + rel[:, 1] * c
        dist = np.hypot(rel[:, 0], rel[:, 1])
        shape = p.shape[:-1]
        return (self.s[k] + along).reshape(shape), lat.reshape(shape), dist.reshape(shape)


def on_route_mask(map_api: MapAPI, route_roadblock_ids: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    """``(S,)`` True for the segments of the route's roadblocks (unknown roadblock ids are skipped)."""
    mask = np.zeros(len(map_api.seg_id), bool)
    for rb in route_roadblock_ids:
        if map_api.has_roadblock(rb):
            mask[map_api.roadblock_segments(rb)] = True
    return mask


def extend_route_to_ego(map_api: MapAPI, route_roadblock_ids: tuple[int, ...], pose: F64,
                        max_hops: int = 3) -> tuple[int, ...]:
    """The route, prefixed with the roadblocks that lead from ego's position into it when ego is not on it.

    A mission's route may start at the roadblock *after* the one ego is in (e.g. ego starts on a lane
    connector). Scored against such a route, every proposal leaves the route ("oncoming traffic") until ego
    reaches it, and a stopped ego would look best. Roadblocks containing the rear axle are followed forward
    (``max_hops`` roadblocks at most) to the first route roadblock; the shortest chain found is prepended.
    Unchanged when ego is on the route or nothing leads into it.
    """
    route = tuple(int(r) for r in route_roadblock_ids)
    if not route:
        return route
    inside = map_api.segments_containing(np.asarray(pose, np.float64)[None, :2])[0]
    here = {int(map_api.seg_roadblock_id[s]) for s in inside}
    if not here or here & set(route):
        return route
    goal = route[0]
    best: tuple[int, ...] | None = None
    for rb in sorted(here):
        frontier: list[tuple[int, ...]] = [(rb,)]
        for _ in range(max_hops):
            nxt = []
            for chain in frontier:
                for succ in map_api.roadblock_successors(chain[-1]):
                    if int(succ) == goal:
                        if best is None or len(chain) < len(best):
                            best = chain
                    elif int(succ) not in chain:
                        nxt.append(chain + (int(succ),))
            if best is not None:
                break
            frontier = nxt
    return route if best is None else best + route


def heading_error(map_api: MapAPI, seg: int, pose: F64) -> float:
    """Absolute heading difference (rad) between ``pose`` and segment ``seg``'s baseline at its projection."""
    base = map_api.baseline(seg)
    arc, _ = map_api.project(seg, pose[None, :2])
    along = polyline_arc_length(base)
    k = int(np.clip(np.searchsorted(along, arc[0]) - 1, 0, len(base) - 1))
    return float(abs(wrap_angle(pose[2] - base[k, 2])))


def starting_segment(map_api: MapAPI, pose: F64, on_route: npt.NDArray[np.bool_]) -> int:
    """The on-route segment containing the rear axle with the least heading error (PDM-Closed's rule).

    Fallbacks: the nearest on-route segment within 10 m, else the nearest segment of the map.
    """
    inside = map_api.segments_containing(pose[None, :2])[0]
    cand = inside[on_route[inside]]
    if len(cand) == 1:  # the usual case: nothing to compare
        return int(cand[0])
    if len(cand):
        errs = [heading_error(map_api, int(s), pose) for s in cand]
        return int(cand[int(np.argmin(errs))])
    near = map_api.segments_near(pose[:2], 10.0)
    near = near[on_route[near]]
    if len(near):
        return map_api.nearest_segment(pose, near)
    return map_api.nearest_segment(pose)


def route_position(route_roadblock_ids: tuple[int, ...]) -> dict[int, int]:
    """Roadblock id -> its index in the route (first occurrence)."""
    pos: dict[int, int] = {}
    for i, rb in enumerate(route_roadblock_ids):
        pos.setdefault(int(rb), i)
    return pos


def lane_sequence(map_api: MapAPI, start: int, on_route: npt.NDArray[np.bool_],
                  route_roadblock_ids: tuple[int, ...], search_depth: int = SEARCH_DEPTH,
                  off_route_length: float = 200.0) -> list[int]:
    """Segments from ``start`` toward the end of the route window, by Dijkstra over on-route segments.

    The target is any segment of the roadblock ``search_depth`` route entries after the start's roadblock
    (clamped to the last). When the target is unreachable the path ends at the deepest reached segment
    (largest route index, then cheapest). From an off-route start (a bad route, or ego off it) any successor
    is allowed until the route is reached; without reaching it, the longest path up to ``off_route_length`` m
    wins, so the expert keeps driving along the lanes instead of stopping at the end of its lane.
    """
    pos = route_position(route_roadblock_ids)
    start_rb = pos.get(int(map_api.seg_roadblock_id[start]), 0)
    target_idx = min(start_rb + search_depth, len(route_roadblock_ids) - 1) if route_roadblock_ids else -1
    target_rb = int(route_roadblock_ids[target_idx]) if target_idx >= 0 else None

    cost = {start: 0.0}
    parent: dict[int, int] = {}
    heap = [(0.0, start)]
    off_route = not on_route[start]
    best_end, best_key = start, (pos.get(int(map_api.seg_roadblock_id[start]), -1), 0.0)
    while heap:
        c, seg = heapq.heappop(heap)
        if c > cost.get(seg, np.inf):
            continue
        rb = int(map_api.seg_roadblock_id[seg])
        here = pos.get(rb, -1)
        key = (here, -c) if here >= 0 else (-1, c)  # off the route: the longer the better
        if key > best_key:
            best_end, best_key = seg, key
        if target_rb is not None and rb == target_rb:
            best_end = seg
            break
        if here < 0 and c > off_route_length:
            continue
        for nxt in map_api.successors(seg):
            nxt = int(nxt)
            nxt_pos = pos.get(int(map_api.seg_roadblock_id[nxt]), -1)
            if on_route[nxt]:
                if nxt_pos < here:
                    continue  # never go back along the route (route loops)
            elif not (off_route and here < 0):
                continue  # stay on the route once on it
            nc = c + float(map_api.seg_length[nxt])
            if nc < cost.get(nxt, np.inf):
                cost[nxt], parent[nxt] = nc, seg
                heapq.heappush(heap, (nc, nxt))
    seq = [best_end]
    while seq[-1] in parent:
        seq.append(parent[seq[-1]])
    return seq[::-1]


def _resample(xy: F64, seg: I64, spacing: float) -> tuple[F64, F64, I64]:
    keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-6])
    xy, seg = xy[keep], seg[keep]
    arc = polyline_arc_length(xy)
    n = max(int(np.floor(arc[-1] / spacing)) + 1, 2)
    s = np.linspace(0.0, arc[-1], n) if arc[-1] > 0 else np.zeros(2)
    out = np.stack([np.interp(s, arc, xy[:, 0]), np.interp(s, arc, xy[:, 1])], -1)
    idx = np.clip(np.searchsorted(arc, s, side="right") - 1, 0, len(seg) - 1)
    return out, s, seg[idx]


def _headings(xy: F64) -> F64:
    d = np.diff(xy, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    h = np.concatenate([h, h[-1:]]) if len(h) else np.zeros(len(xy))
    return np.unwrap(h)


def path_from_segments(map_api: MapAPI, segments: list[int], spacing: float = PATH_SPACING) -> Path:
    """Concatenated baselines of ``segments``, resampled every ``spacing`` metres."""
    xy = np.concatenate([map_api.baseline(s)[:, :2] for s in segments])
    seg = np.concatenate([np.full(len(map_api.baseline(s)), s, np.int64) for s in segments])
    out, s, seg_r = _resample(xy, seg, spacing)
    return Path(out, _headings(out), s, seg_r, map_api.seg_speed_limit[seg_r])


def trim_path(path: Path, s_from: float, s_to: float | None = None) -> Path:
    """The part of ``path`` between arc lengths ``s_from`` and ``s_to``, arc length restarting at 0."""
    keep = path.s >= s_from - 1e-9
    if s_to is not None:
        keep &= path.s <= s_to + 1e-9
    if keep.sum() < 2:
        keep = np.zeros(len(path), bool)
        keep[-2:] = True
    s = path.s[keep]
    return Path(path.xy[keep], path.heading[keep], s - s[0], path.segment[keep], path.speed_limit[keep])


def offset_path(path: Path, offset: float) -> Path:
    """``path`` shifted ``offset`` m to the left (arc lengths kept: exact on straight parts)."""
    xy = path.xy + offset * path.normal()
    return Path(xy, path.heading, path.s, path.segment, path.speed_limit)


def blend_paths(a: Path, a_start: float, b: Path, b_start: float, ramp_start: float, ramp_length: float,
                spacing: float = PATH_SPACING) -> Path:
    """A lane change: follows ``a`` from arc ``a_start``, moving smoothly onto ``b`` (from ``b_start``).

    At distance ``u`` ahead the point is ``(1 − w(u))·a(a_start + u) + w(u)·b(b_start + u)`` with a smoothstep
    weight ``w`` from 0 at ``ramp_start`` to 1 at ``ramp_start + ramp_length``. The result ends where the
    shorter of the two remaining paths ends and is resampled every ``spacing`` metres.
    """
    n = int(max(min(a.length - a_start, b.length - b_start), 2.0) / spacing) + 1
    u = np.arange(n) * spacing
    pa = a.poses_at(a_start + u)
    pb = b.poses_at(b_start + u)
    r = np.clip((u - ramp_start) / max(ramp_length, 1e-6), 0.0, 1.0)
    w = r**3 * (10.0 - 15.0 * r + 6.0 * r * r)  # quintic: zero curvature at both ends (less overshoot)
    xy = (1.0 - w)[:, None] * pa[:, :2] + w[:, None] * pb[:, :2]
    seg_a = a.segment[np.clip(np.searchsorted(a.s, a_start + u), 0, len(a) - 1)]
    seg_b = b.segment[np.clip(np.searchsorted(b.s, b_start + u), 0, len(b) - 1)]
    seg = np.where(w < 0.5, seg_a, seg_b)
    out, s, seg_r = _resample(xy, seg, spacing)
    lim_a = np.interp(s, a.s - a_start, a.speed_limit)
    lim_b = np.interp(s, b.s - b_start, b.speed_limit)
    return Path(out, _headings(out), s, seg_r, np.fmin(lim_a, lim_b))
