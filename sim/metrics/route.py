"""Which lanes / lane connectors the ego occupies: nuPlan's ``route_extractor`` semantics on :class:`MapAPI`.

A *route object* is a segment index (lane or lane connector, see ``MapAPI``); a route entry is a tuple of them
(ascending index order, nuPlan's table order). Containment is strict (``polygon.contains``), as in nuPlan.

- :func:`center_route`: per pose, the single lane containing it, else every connector containing it; previous
  objects (or, if exactly one, its successors) are tried first; an unrelated connector (or an intersection-only
  pose) right after a connector within 5 m keeps the previous connectors; finally entries with several connectors
  are pruned backwards with the object ego ends up in.
- :func:`corner_routes`: the same candidate logic for the 4 box corners (FL, RL, RR, FR).
- :func:`common_or_connected`: per sample, the objects shared by all corners, else the objects that connect
  them (rear corners in each other's object or successor, front-left in rear-right's / its predecessor, front-right
  in rear-left's / its predecessor), else ``None``; an empty set when every corner is off the lane graph.
  A non-empty result means "ego inside one lane" for the collision and TTC metrics.

The containment of every pose is computed in one batched query; the sequential candidate logic then runs on
small Python sets (T <= 151 per scenario).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely

from sim.metrics.common import F64

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI

Route = tuple[int, ...]

#: A connector within this distance (m) of a pose that fell into an unrelated connector is kept.
KEEP_PREVIOUS_CONNECTOR_M = 5.0


def containing_segments(map_api: MapAPI, points: npt.ArrayLike) -> list[frozenset[int]]:
    """For each point ``(P, 2)``, the segments whose polygon strictly contains it."""
    pts = np.atleast_2d(np.asarray(points, np.float64))[:, :2]
    if len(pts) == 0 or len(map_api.seg_id) == 0:
        return [frozenset() for _ in range(len(pts))]
    tree = getattr(map_api, "_seg_tree", None)
    if tree is not None:
        # Bounding-box candidates, then strict containment on prepared polygons: the same pairs as the map's
        # "intersects" query filtered by containment (contains ⊂ intersects ⊂ bbox), many times cheaper.
        point_idx, seg_idx = tree.query(shapely.points(pts))
        shapely.prepare(map_api.seg_polygon[np.unique(seg_idx)])  # no-op for already prepared ones
    else:
        hits = map_api.segments_containing(pts)
        point_idx = np.repeat(np.arange(len(pts)), [len(h) for h in hits])
        seg_idx = np.concatenate(hits) if hits else np.zeros(0, np.int64)
    inside = shapely.contains_xy(map_api.seg_polygon[seg_idx], pts[point_idx, 0], pts[point_idx, 1])
    out: list[set[int]] = [set() for _ in range(len(pts))]
    for p, s in zip(point_idx[inside].tolist(), seg_idx[inside].tolist(), strict=True):
        out[p].add(s)
    return [frozenset(o) for o in out]


def _current_objects(map_api: MapAPI, inside: frozenset[int]) -> Route:
    """nuPlan's ``get_current_route_objects``: the lane containing the point, else all its connectors."""
    lanes = sorted(s for s in inside if not map_api.seg_is_connector[s])
    if lanes:
        return (lanes[0],)  # nuPlan asserts a single lane; overlapping lanes keep the first
    return tuple(sorted(inside))


def _with_candidates(map_api: MapAPI, inside: frozenset[int], candidates: Route) -> Route:
    """nuPlan's ``get_route_obj_with_candidates``."""
    found = tuple(c for c in candidates if c in inside)
    if not found and len(candidates) == 1:
        found = tuple(int(s) for s in map_api.successors(candidates[0]) if int(s) in inside)
    return found


def _remove_extra_connectors(map_api: MapAPI, route: list[Route]) -> list[Route]:
    """nuPlan's ``remove_extra_lane_connectors``: prune multi-connector entries, last to first."""
    rev = route[::-1]
    for ind in range(1, len(rev)):
        current = rev[ind]
        if len(current) <= 1:
            continue
        nxt = rev[ind - 1]
        if len(current) > len(nxt) and all(o in current for o in nxt):
            rev[ind] = nxt
        nxt = rev[ind - 1]
        if nxt and not map_api.seg_is_connector[nxt[0]]:
            incoming = {int(s) for s in map_api.predecessors(nxt[0])}
            keep = tuple(o for o in current if o in incoming)
            if keep:
                rev[ind] = keep
    return rev[::-1]


def center_route(map_api: MapAPI, points: npt.ArrayLike) -> list[Route]:
    """nuPlan's ``get_route`` for poses ``(T, 2)`` (box centres)."""
    pts = np.atleast_2d(np.asarray(points, np.float64))[:, :2]
    inside = containing_segments(map_api, pts)
    in_intersection: npt.NDArray[np.bool_] | None = None
    route: list[Route] = []
    current: Route = ()
    for ind in range(len(pts)):
        if current:
            current = _with_candidates(map_api, inside[ind], current)
        if not current:
            current = _current_objects(map_api, inside[ind])
            prev = route[-1] if route else ()
            if ind > 1 and prev and map_api.seg_is_connector[prev[0]]:
                if in_intersection is None:
                    in_intersection = map_api.in_layer("intersections", pts) >= 0
                if (current and map_api.seg_is_connector[current[0]]) or (not current and in_intersection[ind]):
                    dist = shapely.distance(map_api.seg_polygon[list(prev)], shapely.points(pts[ind]))
                    near = tuple(o for o, d in zip(prev, dist, strict=True) if d < KEEP_PREVIOUS_CONNECTOR_M)
                    if near:
                        current = near
        route.append(current)
    return _remove_extra_connectors(map_api, route)


def corner_routes(map_api: MapAPI, corners: F64) -> list[tuple[Route, Route, Route, Route]]:
    """nuPlan's ``extract_corners_route`` for ego corners ``(T, 4, 2)`` (FL, RL, RR, FR)."""
    c = np.asarray(corners, np.float64)
    flat = containing_segments(map_api, c.reshape(-1, 2))
    out: list[tuple[Route, Route, Route, Route]] = []
    candidates: list[int] = []
    for ind in range(len(c)):
        next_candidates: list[int] = []
        entry: list[Route] = []
        for k in range(4):
            inside = flat[4 * ind + k]
            objs: Route = _with_candidates(map_api, inside, tuple(candidates)) if candidates else ()
            if not objs:
                objs = _current_objects(map_api, inside)
                if ind == 1:  # nuPlan's quirk: only the second sample grows the candidates within the sample
                    candidates += [o for o in objs if o not in candidates]
            next_candidates += [o for o in objs if o not in next_candidates]
            entry.append(objs)
        out.append((entry[0], entry[1], entry[2], entry[3]))
        candidates = next_candidates
    return out


def _successors(map_api: MapAPI, objs: Route) -> set[int]:
    return {int(s) for o in objs for s in map_api.successors(o)}


def _predecessors(map_api: MapAPI, objs: Route) -> set[int]:
    return {int(s) for o in objs for s in map_api.predecessors(o)}


def common_or_connected(map_api: MapAPI, corners: tuple[Route, Route, Route, Route]) -> frozenset[int] | None:
    """nuPlan's ``extract_common_or_connecting_route_objs`` for one sample's corner routes."""
    empty = [len(c) == 0 for c in corners]
    if all(empty):
        return frozenset()
    if any(empty):
        return None
    fl, rl, rr, fr = (set(c) for c in corners)
    common = fl & rl & rr & fr
    if common:
        return frozenset(common)
    rr_or_out = rr | _successors(map_api, corners[2])
    rl_or_out = rl | _successors(map_api, corners[1])
    rear = (rl & rr_or_out) | (rr & rl_or_out)
    if not rear:
        return None
    fl_or_in = fl | _predecessors(map_api, corners[0])
    fr_or_in = fr | _predecessors(map_api, corners[3])
    connected = (fl_or_in & rr_or_out) & (fr_or_in & rl_or_out)
    return frozenset(connected) if connected else None


def single_lane_flags(map_api: MapAPI, routes: list[tuple[Route, Route, Route, Route]]) -> npt.NDArray[np.bool_]:
    """``(T,)`` whether all four corners are in common or connected lane objects at each sample
    (nuPlan's ``timestamps_in_common_or_connected_route_objs``), from :func:`corner_routes`."""
    cache: dict[tuple[Route, Route, Route, Route], bool] = {}
    out = np.zeros(len(routes), bool)
    for i, r in enumerate(routes):
        if r not in cache:
            cache[r] = bool(common_or_connected(map_api, r))
        out[i] = cache[r]
    return out


def in_single_lane(map_api: MapAPI | None, corners: F64) -> npt.NDArray[np.bool_]:
    """:func:`single_lane_flags` straight from ego corners ``(T, 4, 2)``. Without a map: all False (every
    corner off the lane graph, as nuPlan treats a pose outside all lanes)."""
    c = np.asarray(corners, np.float64)
    if map_api is None:
        return np.zeros(len(c), bool)
    return single_lane_flags(map_api, corner_routes(map_api, c))


def simplified_route(route: list[Route]) -> list[Route]:
    """nuPlan's ``get_route_simplified``: drop leading empties and entries sharing an object with the last kept."""
    start = next((i for i, r in enumerate(route) if r), None)
    if start is None:
        return []
    out = [route[start]]
    for r in route[start + 1:]:
        if r and not set(r) & set(out[-1]):
            out.append(r)
    return out


#: Segments per block in :func:`baseline_distance`'s pruning.
_BLOCK = 8


def baseline_distance(baseline_xy: F64, points: npt.ArrayLike) -> F64:
    """Arc length (m) of the closest baseline point to each point ``(P, 2)``, clamped to ``[0, length]``
    (shapely's ``project``, as nuPlan's ``get_distance_of_closest_baseline_point_to_its_start``).

    Same values as ``shapely.line_locate_point`` (GEOS's ``LengthIndexOfPoint`` arithmetic: point-segment
    distance, the first segment with the smallest distance wins, measure = cumulated segment lengths +
    projection factor x segment length), computed only on the segments that can be nearest: blocks of
    segments whose bounding box is closer than the nearest block-start vertex (an upper bound of the distance).
    """
    base = np.asarray(baseline_xy, np.float64)[:, :2]
    pts = np.atleast_2d(np.asarray(points, np.float64))[:, :2]
    if len(base) < 2 or len(pts) == 0 or not np.isfinite(base).all() or not np.isfinite(pts).all():
        line = shapely.LineString(base)
        return np.asarray(shapely.line_locate_point(line, shapely.points(pts)), np.float64)
    ax, ay = base[:-1, 0], base[:-1, 1]
    dx, dy = base[1:, 0] - ax, base[1:, 1] - ay
    len2 = dx * dx + dy * dy
    seg_len = np.sqrt(len2)
    start = np.zeros(len(seg_len))
    np.cumsum(seg_len[:-1], out=start[1:])
    num_seg = len(seg_len)
    num_blocks = -(-num_seg // _BLOCK)
    pad = num_blocks * _BLOCK - num_seg
    # block bounding boxes (all vertices of the block's segments)
    bx0 = np.concatenate([ax, np.full(pad, ax[-1])]).reshape(num_blocks, _BLOCK)
    by0 = np.concatenate([ay, np.full(pad, ay[-1])]).reshape(num_blocks, _BLOCK)
    bx1 = np.concatenate([base[1:, 0], np.full(pad, base[-1, 0])]).reshape(num_blocks, _BLOCK)
    by1 = np.concatenate([base[1:, 1], np.full(pad, base[-1, 1])]).reshape(num_blocks, _BLOCK)
    lo_x = np.minimum(bx0.min(1), bx1.min(1))
    hi_x = np.maximum(bx0.max(1), bx1.max(1))
    lo_y = np.minimum(by0.min(1), by1.min(1))
    hi_y = np.maximum(by0.max(1), by1.max(1))
    px, py = pts[:, 0:1], pts[:, 1:2]
    gx = np.maximum(np.maximum(lo_x - px, px - hi_x), 0.0)
    gy = np.maximum(np.maximum(lo_y - py, py - hi_y), 0.0)
    lower2 = gx * gx + gy * gy  # (P, NB) squared distance to each block's box: <= any of its segments
    vx, vy = px - bx0[:, 0], py - by0[:, 0]
    upper2 = (vx * vx + vy * vy).min(axis=1, keepdims=True)  # a vertex distance: >= the nearest segment's
    pi, bi = np.nonzero(lower2 <= upper2 * (1.0 + 1e-9) + 1e-9)
    seg = (bi[:, None] * _BLOCK + np.arange(_BLOCK)).ravel()
    pi = np.repeat(pi, _BLOCK)
    valid = seg < num_seg
    seg, pi = seg[valid], pi[valid]  # pairs sorted by point, then segment
    qx, qy = pts[pi, 0], pts[pi, 1]
    sax, say, sdx, sdy, sl2 = ax[seg], ay[seg], dx[seg], dy[seg], len2[seg]
    degenerate = sl2 == 0.0
    safe = np.where(degenerate, 1.0, sl2)
    rx, ry = qx - sax, qy - say
    r = np.where(degenerate, 0.0, (rx * sdx + ry * sdy) / safe)
    to_a = np.sqrt(rx * rx + ry * ry)
    bxx, byy = qx - base[1:, 0][seg], qy - base[1:, 1][seg]
    to_b = np.sqrt(bxx * bxx + byy * byy)
    cross = (-ry * sdx - (-rx) * sdy) / safe  # ((A.y - p.y)·dx − (A.x − p.x)·dy) / len2
    dist = np.where(r <= 0.0, to_a, np.where(r >= 1.0, to_b, np.abs(cross) * seg_len[seg]))
    dist = np.where(degenerate, to_a, dist)
    order = np.lexsort((dist, pi))  # stable: equal distances keep segment order (GEOS keeps the first)
    first = order[np.concatenate([[0], np.flatnonzero(np.diff(pi[order])) + 1])]
    k, factor = seg[first], r[first]
    measure = start[k] + factor * seg_len[k]
    return np.where(factor <= 0.0, start[k], np.where(factor >= 1.0, start[k] + seg_len[k], measure))
