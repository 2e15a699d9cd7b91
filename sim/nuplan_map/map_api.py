"""The compiled map: nuPlan's layers as struct-of-arrays plus spatial indexes, built once per map.

Segments are lanes and lane connectors together (lanes first), indexed ``0..S-1``; roadblocks are lane groups
and lane-group connectors together. The directed graph is lane -> connector -> lane, as in nuPlan
(a connector's ``exit_lane_fid`` is the lane it leaves, ``entry_lane_fid`` the lane it enters).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely import STRtree

from sim.errors import NotFoundError, SchemaError
from sim.geometry import polyline_arc_length, wrap_angle
from sim.nuplan_map.layers import FeatureTable, MapLayers

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

#: Polygon layers exposed through :meth:`MapAPI.layer` / :meth:`MapAPI.in_layer`.
AREA_LAYERS = ("crosswalks", "walkways", "intersections", "stop_polygons", "carpark_areas")
#: Layers whose union is nuPlan's vector drivable area.
DRIVABLE_LAYERS = ("road_segments", "intersections", "generic_drivable_areas", "carpark_areas")


def _column(table: FeatureTable, name: str, layer: str, default: float | int | str | None = None) -> np.ndarray:
    if name in table.columns:
        return table.columns[name]
    if default is not None:
        return np.full(len(table), default)
    raise SchemaError(None, f"map layer '{layer}' has no column '{name}'", f"the columns of nuPlan's {layer}")


def _int_list(text: str) -> tuple[int, ...]:
    """Parse nuPlan's comma-separated fid lists (``traffic_light_stop_line_fids``)."""
    return tuple(int(float(t)) for t in str(text).replace(" ", ",").split(",") if t.strip() not in ("", "nan"))


@dataclass(frozen=True)
class _Area:
    ids: I64
    polygons: npt.NDArray[np.object_]
    tree: STRtree


class MapAPI:
    """Queryable map of one location. Build with :meth:`from_layers`; loaders cache the result."""

    def __init__(self, layers: MapLayers) -> None:
        self.location = layers.location
        self.version = layers.version
        self.crs = layers.crs
        tables = layers.layers
        for required in ("lanes_polygons", "lane_connectors", "baseline_paths"):
            if required not in tables:
                raise SchemaError(None, f"map '{layers.location}' has no layer '{required}'",
                                  "nuPlan's map layers")
        self._build_segments(tables)
        self._build_graph()
        self._build_roadblocks(tables)
        self._build_areas(tables)

    @classmethod
    def from_layers(cls, layers: MapLayers) -> MapAPI:
        return cls(layers)

    # ------------------------------------------------------------------ construction
    def _build_segments(self, tables: dict[str, FeatureTable]) -> None:
        lanes, conns = tables["lanes_polygons"], tables["lane_connectors"]
        n_lanes, n_conns = len(lanes), len(conns)
        self.seg_id: I64 = np.concatenate([lanes.fid, conns.fid]).astype(np.int64)
        self.seg_is_connector = np.concatenate([np.zeros(n_lanes, bool), np.ones(n_conns, bool)])
        self.seg_roadblock_id: I64 = np.concatenate([
            _column(lanes, "lane_group_fid", "lanes_polygons").astype(np.int64),
            _column(conns, "lane_group_connector_fid", "lane_connectors").astype(np.int64)])
        self.seg_speed_limit: F64 = np.concatenate([
            _column(lanes, "speed_limit_mps", "lanes_polygons", np.nan).astype(np.float64),
            _column(conns, "speed_limit_mps", "lane_connectors", np.nan).astype(np.float64)])
        self.seg_lane_index: I64 = np.concatenate([
            _column(lanes, "lane_index", "lanes_polygons").astype(np.int64), np.full(n_conns, -1, np.int64)])
        self.seg_intersection_id: I64 = np.concatenate([
            np.full(n_lanes, -1, np.int64),
            _column(conns, "intersection_fid", "lane_connectors", -1).astype(np.int64)])
        self._conn_exit = _column(conns, "exit_lane_fid", "lane_connectors").astype(np.int64)
        self._conn_entry = _column(conns, "entry_lane_fid", "lane_connectors").astype(np.int64)
        stop_text = _column(conns, "traffic_light_stop_line_fids", "lane_connectors", "")
        self._stop_line_fids = [()] * n_lanes + [_int_list(t) for t in stop_text]
        self.seg_has_traffic_light = np.array([len(f) > 0 for f in self._stop_line_fids], dtype=bool)
        self._lane_key = {int(f): i for i, f in enumerate(lanes.fid)}
        self._conn_key = {int(f): n_lanes + i for i, f in enumerate(conns.fid)}

        xy_list = self._baselines(tables["baseline_paths"], conns)
        self._baseline_offsets = np.concatenate([[0], np.cumsum([len(b) for b in xy_list])]).astype(np.int64)
        self._baseline_xyh, self.seg_length = _stack_polylines(xy_list, self._baseline_offsets)

        conn_polys = np.array(conns.geometry, dtype=object).copy()
        if "gen_lane_connectors_scaled_width_polygons" in tables:
            gen = tables["gen_lane_connectors_scaled_width_polygons"]
            owner = _column(gen, "lane_connector_fid", "gen_lane_connectors_scaled_width_polygons")
            for fid, poly in zip(owner, gen.geometry, strict=True):
                if int(fid) in self._conn_key:
                    conn_polys[self._conn_key[int(fid)] - n_lanes] = poly
        for i, g in enumerate(conn_polys):  # a connector without its polygon: a 4 m wide band around the path
            if g is None or g.geom_type not in ("Polygon", "MultiPolygon"):
                conn_polys[i] = shapely.buffer(shapely.LineString(self.baseline(n_lanes + i)[:, :2]), 2.0,
                                               cap_style="flat")
        self.seg_polygon = np.concatenate([np.array(lanes.geometry, dtype=object), conn_polys])
        self._seg_tree = STRtree(self.seg_polygon)

        self.seg_left = np.full(len(self.seg_id), -1, np.int64)
        self.seg_right = np.full(len(self.seg_id), -1, np.int64)
        by_group: dict[tuple[int, int], int] = {
            (int(g), int(k)): i for i, (g, k) in enumerate(zip(self.seg_roadblock_id[:n_lanes],
                                                               self.seg_lane_index[:n_lanes], strict=True))}
        for (group, index), i in by_group.items():
            self.seg_left[i] = by_group.get((group, index - 1), -1)
            self.seg_right[i] = by_group.get((group, index + 1), -1)

    def _baselines(self, paths: FeatureTable, conns: FeatureTable) -> list[F64]:
        lane_col = _column(paths, "lane_fid", "baseline_paths", -1)
        conn_col = _column(paths, "lane_connector_fid", "baseline_paths", -1)
        found: dict[int, F64] = {}
        for lane_fid, conn_fid, geom in zip(lane_col, conn_col, paths.geometry, strict=True):
            xy = np.asarray(shapely.get_coordinates(geom), dtype=np.float64)
            lane_fid = -1 if lane_fid is None or lane_fid != lane_fid else int(lane_fid)
            conn_fid = -1 if conn_fid is None or conn_fid != conn_fid else int(conn_fid)
            if lane_fid >= 0 and lane_fid in self._lane_key:
                found[self._lane_key[lane_fid]] = xy
            elif conn_fid >= 0 and conn_fid in self._conn_key:
                found[self._conn_key[conn_fid]] = xy
        n_lanes = len(self._lane_key)
        out = []
        for s in range(len(self.seg_id)):
            xy = found.get(s)
            if xy is None and s >= n_lanes:  # nuPlan's lane_connectors layer is itself the path
                xy = np.asarray(shapely.get_coordinates(conns.geometry[s - n_lanes]), dtype=np.float64)
            if xy is None or len(xy) < 2:
                kind = "lane_connector_fid" if s >= n_lanes else "lane_fid"
                raise SchemaError(None, f"map has no baseline path for {kind}={int(self.seg_id[s])}",
                                  "a baseline_paths row (>= 2 vertices) for every lane and lane connector")
            out.append(xy[:, :2])
        return out

    def _build_graph(self) -> None:
        n = len(self.seg_id)
        succ: list[list[int]] = [[] for _ in range(n)]
        pred: list[list[int]] = [[] for _ in range(n)]
        n_lanes = len(self._lane_key)
        for j, (exit_fid, entry_fid) in enumerate(zip(self._conn_exit, self._conn_entry, strict=True)):
            c = n_lanes + j
            if int(exit_fid) in self._lane_key:
                lane = self._lane_key[int(exit_fid)]
                succ[lane].append(c)
                pred[c].append(lane)
            if int(entry_fid) in self._lane_key:
                lane = self._lane_key[int(entry_fid)]
                succ[c].append(lane)
                pred[lane].append(c)
        self._succ = [np.array(sorted(s), np.int64) for s in succ]
        self._pred = [np.array(sorted(p), np.int64) for p in pred]

    def _build_roadblocks(self, tables: dict[str, FeatureTable]) -> None:
        groups = tables.get("lane_groups_polygons")
        gconns = tables.get("lane_group_connectors")
        ids, is_conn, polys = [], [], []
        for table, flag in ((groups, False), (gconns, True)):
            if table is not None:
                ids.extend(int(f) for f in table.fid)
                is_conn.extend([flag] * len(table))
                polys.extend(table.geometry)
        known = set(ids)
        for s in np.unique(self.seg_roadblock_id):  # roadblocks referenced by segments but without a polygon
            if int(s) not in known:
                members = np.flatnonzero(self.seg_roadblock_id == s)  # rare: only maps lacking lane groups
                ids.append(int(s))
                is_conn.append(bool(self.seg_is_connector[members[0]]))
                polys.append(shapely.union_all(self.seg_polygon[members]))
        self.rb_id: I64 = np.array(ids, np.int64)
        self.rb_is_connector = np.array(is_conn, bool)
        self.rb_polygon = np.array(polys, dtype=object)
        self._rb_key: dict[int, int] = {}
        for i, rb in enumerate(self.rb_id):
            self._rb_key.setdefault(int(rb), i)
        order = np.argsort(self.seg_roadblock_id, kind="stable")
        keys, starts = np.unique(self.seg_roadblock_id[order], return_index=True)
        groups = np.split(order, starts[1:]) if len(order) else []
        self._rb_segments = {int(rb): np.zeros(0, np.int64) for rb in self.rb_id}
        self._rb_segments.update({int(k): g.astype(np.int64) for k, g in zip(keys, groups, strict=True)})
        self._rb_succ: dict[int, tuple[int, ...]] = {}
        for rb, segs in self._rb_segments.items():
            nxt = {int(self.seg_roadblock_id[t]) for s in segs for t in self._succ[s]}
            self._rb_succ[rb] = tuple(sorted(nxt))
        self._rb_length = {rb: float(self.seg_length[s].mean()) if len(s) else 0.0
                           for rb, s in self._rb_segments.items()}

    def _build_areas(self, tables: dict[str, FeatureTable]) -> None:
        self._areas: dict[str, _Area] = {}
        for name in AREA_LAYERS:
            t = tables.get(name)
            ids = np.asarray(t.fid, np.int64) if t is not None else np.zeros(0, np.int64)
            polys = np.array(list(t.geometry), dtype=object) if t is not None else np.zeros(0, object)
            self._areas[name] = _Area(ids, polys, STRtree(polys))
        stops = tables.get("stop_polygons")
        self.stop_polygon_type: I64 = (np.asarray(_column(stops, "stop_polygon_type_fid", "stop_polygons", 5),
                                                  np.int64) if stops is not None else np.zeros(0, np.int64))
        self._stop_key = {int(f): i for i, f in enumerate(self._areas["stop_polygons"].ids)}
        parts = [g for name in DRIVABLE_LAYERS if name in tables for g in tables[name].geometry]
        if not parts:  # maps without area layers: lanes and connectors are the drivable surface
            parts = list(self.seg_polygon)
        self.drivable_area = shapely.union_all(np.array(parts, dtype=object))
        shapely.prepare(self.drivable_area)
        all_geoms = np.concatenate([self.seg_polygon, np.array(parts, dtype=object)])
        self.bounds: F64 = (np.asarray(shapely.total_bounds(all_geoms), np.float64) if len(all_geoms)
                            else np.full(4, np.nan))  # an empty map (e.g. a devkit placeholder location)

    # ------------------------------------------------------------------ segments
    def baseline(self, s: int) -> F64:
        """``(P, 3)`` baseline vertices x, y, heading of segment ``s``."""
        return self._baseline_xyh[self._baseline_offsets[s]:self._baseline_offsets[s + 1]]

    def successors(self, s: int) -> I64:
        return self._succ[s]

    def predecessors(self, s: int) -> I64:
        return self._pred[s]

    def segment_index(self, map_id: int, connector: bool) -> int:
        key = self._conn_key if connector else self._lane_key
        if int(map_id) not in key:
            kind = "lane connector" if connector else "lane"
            raise NotFoundError(None, f"map '{self.location}' has no {kind} with id {map_id}")
        return key[int(map_id)]

    def connector_stop_lines(self, s: int) -> list[shapely.Geometry]:
        area = self._areas["stop_polygons"]
        return [area.polygons[self._stop_key[f]] for f in self._stop_line_fids[s] if f in self._stop_key]

    def project(self, s: int, points: npt.ArrayLike) -> tuple[F64, F64]:
        """Arc length along segment ``s``'s baseline and signed lateral offset (left > 0) of points ``(N, 2)``.

        Points beyond the ends project onto the end vertices' extension lines (arc length < 0 or > length).
        """
        pts = np.atleast_2d(np.asarray(points, np.float64))[:, :2]
        base = self.baseline(s)[:, :2]
        return project_on_polyline(base, pts)

    def segments_containing(self, points: npt.ArrayLike) -> list[I64]:
        pts = np.atleast_2d(np.asarray(points, np.float64))[:, :2]
        hits = self._seg_tree.query(shapely.points(pts), predicate="intersects")
        order = np.lexsort((hits[1], hits[0]))
        point_idx, seg_idx = hits[0][order], hits[1][order]
        splits = np.searchsorted(point_idx, np.arange(1, len(pts)))
        return [a.astype(np.int64) for a in np.split(seg_idx, splits)]

    def segments_near(self, xy: npt.ArrayLike, radius: float) -> I64:
        """Segments whose polygon intersects the axis-aligned square of half-size ``radius`` around ``xy``."""
        x, y = float(np.asarray(xy)[0]), float(np.asarray(xy)[1])
        box = shapely.box(x - radius, y - radius, x + radius, y + radius)
        return np.sort(self._seg_tree.query(box, predicate="intersects")).astype(np.int64)

    def nearest_segment(self, pose: npt.ArrayLike, candidates: npt.ArrayLike | None = None) -> int:
        """The segment nearest to ``pose`` (x, y, heading): smallest distance, ties broken by heading error.

        Cost = distance to the polygon (0 inside) + 2 m per radian of heading error at the projection.
        """
        p = np.asarray(pose, np.float64)
        cand = (self.segments_near(p[:2], 10.0) if candidates is None else np.asarray(candidates, np.int64))
        if len(cand) == 0:
            cand = np.asarray(self._seg_tree.query_nearest(shapely.points(p[:2]), all_matches=True), np.int64)
        point = shapely.points(p[:2])
        dist = shapely.distance(self.seg_polygon[cand], point)
        head_err = np.array([self._heading_error(int(s), p) for s in cand])
        return int(cand[np.argmin(dist + 2.0 * head_err)])

    def _heading_error(self, s: int, pose: F64) -> float:
        base = self.baseline(s)
        arc, _ = self.project(s, pose[None, :2])
        along = polyline_arc_length(base)
        k = int(np.clip(np.searchsorted(along, arc[0]) - 1, 0, len(base) - 1))
        return float(abs(wrap_angle(pose[2] - base[k, 2])))

    # ------------------------------------------------------------------ roadblocks
    def roadblock_index(self, rb_id: int) -> int:
        if int(rb_id) not in self._rb_key:
            raise NotFoundError(None, f"map '{self.location}' has no roadblock or roadblock connector {rb_id}")
        return self._rb_key[int(rb_id)]

    def has_roadblock(self, rb_id: int) -> bool:
        return int(rb_id) in self._rb_key

    def roadblock_segments(self, rb_id: int) -> I64:
        self.roadblock_index(rb_id)
        return self._rb_segments.get(int(rb_id), np.zeros(0, np.int64))

    def roadblock_successors(self, rb_id: int) -> tuple[int, ...]:
        self.roadblock_index(rb_id)
        return self._rb_succ.get(int(rb_id), ())

    def route_between(self, start_rb: int, goal_rb: int) -> tuple[int, ...] | None:
        """Shortest roadblock path (by mean baseline length) from ``start_rb`` to ``goal_rb``, both included."""
        self.roadblock_index(start_rb)
        self.roadblock_index(goal_rb)
        best = {int(start_rb): 0.0}
        parent: dict[int, int] = {}
        heap = [(0.0, int(start_rb))]
        while heap:
            cost, rb = heapq.heappop(heap)
            if rb == int(goal_rb):
                path = [rb]
                while path[-1] in parent:
                    path.append(parent[path[-1]])
                return tuple(reversed(path))
            if cost > best.get(rb, np.inf):
                continue
            for nxt in self._rb_succ.get(rb, ()):
                c = cost + self._rb_length.get(nxt, 0.0)
                if c < best.get(nxt, np.inf):
                    best[nxt], parent[nxt] = c, rb
                    heapq.heappush(heap, (c, nxt))
        return None

    # ------------------------------------------------------------------ areas
    def is_drivable(self, points: npt.ArrayLike) -> npt.NDArray[np.bool_]:
        pts = np.atleast_2d(np.asarray(points, np.float64))
        return shapely.intersects_xy(self.drivable_area, pts[:, 0], pts[:, 1])

    def distance_to_drivable(self, points: npt.ArrayLike) -> F64:
        pts = np.atleast_2d(np.asarray(points, np.float64))
        return shapely.distance(self.drivable_area, shapely.points(pts[:, :2]))

    def layer(self, name: str) -> tuple[I64, npt.NDArray[np.object_]]:
        if name not in self._areas:
            raise NotFoundError(None, f"unknown map layer '{name}'", f"one of {', '.join(AREA_LAYERS)}")
        return self._areas[name].ids, self._areas[name].polygons

    def in_layer(self, name: str, points: npt.ArrayLike) -> I64:
        """Index into :meth:`layer` ``name`` of a polygon containing each point ``(N, 2)``, or -1."""
        self.layer(name)
        pts = np.atleast_2d(np.asarray(points, np.float64))
        out = np.full(len(pts), -1, np.int64)
        hits = self._areas[name].tree.query(shapely.points(pts[:, :2]), predicate="intersects")
        out[hits[0][::-1]] = hits[1][::-1]  # first hit wins
        return out


def _stack_polylines(xy_list: list[F64], offsets: I64) -> tuple[F64, F64]:
    """Concatenate polylines into ``(P, 3)`` x, y, heading (nuPlan's vertex headings) and their lengths ``(S,)``."""
    xy = np.concatenate(xy_list) if xy_list else np.zeros((0, 2))
    d = np.diff(xy, axis=0, append=xy[-1:] if len(xy) else np.zeros((0, 2)))
    heading = np.arctan2(d[:, 1], d[:, 0])
    last = offsets[1:] - 1  # each polyline's last vertex repeats the previous heading
    heading[last] = heading[last - 1]
    step = np.hypot(d[:, 0], d[:, 1])
    step[last] = 0.0
    cum = np.concatenate([[0.0], np.cumsum(step)])
    lengths = cum[offsets[1:]] - cum[offsets[:-1]]
    return np.column_stack([xy, heading]), lengths


def project_on_polyline(base: F64, pts: F64) -> tuple[F64, F64]:
    """Arc length and signed lateral offset (left > 0) of points ``(N, 2)`` on polyline ``(P, 2)``."""
    a, b = base[:-1], base[1:]
    ab = b - a
    seg_len2 = np.maximum((ab**2).sum(-1), 1e-12)
    rel = pts[:, None, :] - a[None]
    t = (rel * ab[None]).sum(-1) / seg_len2
    t_in = np.clip(t, 0.0, 1.0)
    # points beyond the ends project onto the extensions of the first / last segment
    t_in[:, 0] = np.minimum(t[:, 0], 1.0)
    t_in[:, -1] = np.maximum(t[:, -1], 0.0) if len(ab) > 1 else t[:, -1]
    closest = a[None] + t_in[..., None] * ab[None]
    d2 = ((pts[:, None, :] - closest) ** 2).sum(-1)
    k = np.argmin(d2, axis=1)
    rows = np.arange(len(pts))
    cum = polyline_arc_length(base)
    seg_len = np.sqrt(seg_len2)
    arc = cum[k] + t_in[rows, k] * seg_len[k]
    cross = ab[k, 0] * rel[rows, k, 1] - ab[k, 1] * rel[rows, k, 0]
    lateral = np.sign(cross) * np.sqrt(d2[rows, k])
    return arc, lateral
