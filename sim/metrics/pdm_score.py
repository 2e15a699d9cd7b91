"""PDM score: the vectorized trajectory scorer behind the expert's choice, the teacher labels and NAVSIM's PDMS.

One implementation, three users. :func:`build_scoring_world` turns the map, the route, the current ego state,
the tracked objects and the traffic lights into a :class:`ScoringWorld` (frozen arrays plus rasters);
:func:`score_trajectories` scores K simulated ego rollouts ``(K, T+1)`` against it and returns
:class:`PDMScores`: one column per rule of :data:`RULES` and the aggregate.

Rules (semantics of tuplan_garage's PDM scorer and NAVSIM, re-derived from their documentation):

- ``no_at_fault_collision`` (NC, multiplier, {0, 0.5, 1}): ego box vs every object box at each of the T+1
  states. Each object counts once, at its first contact. Contact classification (first match wins; nuPlan's
  stopped threshold 0.05 m/s): ego stopped -> not at fault; object static or stopped -> at fault; object
  centre behind the ego (angle from the rear-axle heading > 150 deg) -> not at fault; ego front bumper
  (segment FL-FR) touches the object -> at fault; otherwise lateral -> at fault only while ego is in
  multiple lanes or partly outside the drivable area. At fault: 0 for agents (vehicle, pedestrian, bicycle),
  0.5 for static objects; NC is the minimum (PDM's rule: two cones still give 0.5).
- ``drivable_area`` (DAC, multiplier, {0, 1}): 0 if any box corner at any state is outside the drivable
  surface = lanes and lane connectors united with the map's drivable area (road segments, intersections,
  generic drivable areas, car parks). PDM uses lanes/connectors/car parks only; the union is nuPlan's DAC
  surface without its 0.3 m tolerance.
- ``driving_direction`` (DDC, {0, 0.5, 1}): per step, the distance travelled by the box centre while it lies
  outside every on-route lane / connector ("oncoming traffic"), summed over a sliding 1 s window; the
  maximum window sum < 2 m -> 1, < 6 m -> 0.5, else 0.
- ``traffic_light`` (TLC, {0, 1}): 0 if the ego box touches a red-light lane connector of the route at any
  state (NAVSIM v2). Connectors the ego box already touches at the current state are left out.
- ``time_to_collision`` (TTC, weight 5, {0, 1}): at each state the ego box is moved ahead at its current
  speed and heading by 0.0 / 0.3 / 0.6 / 0.9 s and checked against the objects at that future time. A hit
  counts unless the ego is (nearly) stopped (< 5e-3 m/s) or the object was already touched without fault;
  it needs the object ahead (< 30 deg from the rear-axle heading) or the ego in multiple lanes / outside the
  drivable area / with its rear axle in an intersection and the object not behind (<= 150 deg).
  An at-fault collision also sets TTC to 0.
- ``ego_progress`` (EP, weight 5, [0, 1]): raw progress = arc length of the box centre projected on the
  route centerline, last state minus first, clipped at 0. It is multiplied by the trajectory's multiplier
  product and divided by the best such value of the batch (optionally also a reference, e.g. NAVSIM's
  PDM-Closed); if that best value is <= ``progress_threshold`` (5 m as NAVSIM; tuplan_garage used 0.1 m)
  every trajectory with a non-zero multiplier gets 1 and the others 0.
- ``comfort`` (C, weight 2, {0, 1}): nuPlan's six comfort series with Savitzky-Golay derivatives (same
  conventions as :mod:`sim.metrics.comfort`), all strictly inside their bounds.

Aggregate (``PDMScores.pdm_score``): NC x DAC x DDC x TLC x (5 TTC + 5 EP + 2 C) / 12. NAVSIM v1's PDMS
(NC x DAC x (5 TTC + 5 EP + 2 C) / 12, EP re-normalised with the NC x DAC multiplier) is
:func:`navsim_v1_pdms`.

Everything is vectorized over trajectories x time x objects (no Python loop over trajectories or hits):
- collisions and TTC share one pass: a sweep-and-prune broad phase on box centres (per state and TTC offset)
  produces candidate (trajectory, state, object) triples, and the exact separating-axis test
  (:func:`obb_overlap`, the closed form of :func:`sim.geometry.boxes_overlap`) runs on candidates only. The
  horizon is walked in chunks of 10 states so that trajectories whose TTC / NC outcome is settled drop out;
- area look-ups go through boolean rasters (0.2 m, limited to the area's bounding box around the ego) whose
  cells touched by a boundary fall back to exact shapely tests, so results are exact; box corners are only
  computed where the box centre is not in the drivable raster's core (cells whose whole neighbourhood within
  the box's half-diagonal is surely drivable);
- lane membership ("in multiple lanes") and the intersection test are exact shapely queries, made only for
  the few states a collision classification or a sideways TTC hit needs.
Internally all coordinates are relative to the current rear-axle position (``ScoringWorld.origin``).
"""

from __future__ import annotations

import heapq
import weakref
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from time import process_time

import numpy as np
import numpy.typing as npt
import shapely
from scipy.ndimage import minimum_filter
from scipy.signal import savgol_filter
from scipy.spatial import cKDTree

from sim.categories import STATIC_CATEGORIES, TrafficLightStatus
from sim.errors import DataError
from sim.geometry import box_corners, wrap_angle
from sim.nuplan_map.map_api import MapAPI
from sim.scenario import EgoStates, Tracks
from sim.vehicle import PACIFICA, VehicleParameters

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

RULES = ("no_at_fault_collision", "drivable_area", "driving_direction", "traffic_light", "time_to_collision",
         "ego_progress", "comfort")
NC, DAC, DDC, TLC, TTC, EP, COMFORT = range(len(RULES))
#: Multipliers of :attr:`PDMScores.pdm_score`.
PDM_MULTIPLIERS = ("no_at_fault_collision", "drivable_area", "driving_direction", "traffic_light")
#: Weighted terms of both aggregates.
PDM_WEIGHTS = {"time_to_collision": 5.0, "ego_progress": 5.0, "comfort": 2.0}
NAVSIM_V1_MULTIPLIERS = ("no_at_fault_collision", "drivable_area")


@dataclass(frozen=True)
class ScoringParameters:
    """Thresholds of the PDM scorer (tuplan_garage / NAVSIM values)."""

    stopped_speed: float = 0.05  # m/s: ego / object counted as stopped for collision classification
    ttc_stopped_speed: float = 5e-3  # m/s: no TTC violation below this ego speed
    ttc_offsets_s: tuple[float, ...] = (0.0, 0.3, 0.6, 0.9)
    ahead_angle: float = np.deg2rad(30.0)  # rad
    behind_angle: float = np.deg2rad(150.0)  # rad
    static_collision_score: float = 0.5
    ddc_window_s: float = 1.0
    ddc_compliance: float = 2.0  # m
    ddc_violation: float = 6.0  # m
    progress_threshold: float = 5.0  # m (NAVSIM; tuplan_garage: 0.1)
    min_lon_accel: float = -4.05  # m/s^2
    max_lon_accel: float = 2.40
    max_abs_lat_accel: float = 4.89
    max_abs_jerk: float = 8.37  # m/s^3
    max_abs_lon_jerk: float = 4.13
    max_abs_yaw_rate: float = 0.95  # rad/s
    max_abs_yaw_accel: float = 1.93  # rad/s^2


DEFAULT_SCORING = ScoringParameters()
#: Batches of at most this many trajectories are checked for collisions / TTC in one pass over the horizon.
ONE_PASS_MAX_K = 64


# ---------------------------------------------------------------------------------------------- area rasters
@dataclass(frozen=True, eq=False)
class AreaRaster:
    """Point-in-area look-up: a boolean grid plus exact fallback.

    ``inside`` ``(H, W)`` is the area at each cell centre; ``uncertain`` marks the cells an area boundary
    passes through, where (and outside the grid, within ``bounds``) :meth:`contains` asks
    shapely (``geometry``, global frame). Cell ``(r, c)`` spans ``origin + (c, r) * resolution`` .. ``+ resolution``
    (local frame).
    """

    origin: F64  # (2,) lower-left corner of the grid, local frame (m)
    resolution: float  # m
    inside: B
    uncertain: B
    geometry: shapely.Geometry | None  # prepared, global frame; None = empty area
    frame_origin: F64  # (2,) global xy of the local frame's origin
    bounds: F64 | None = None  # (4,) the geometry's bounding box, local frame: nothing outside is inside
    core_margin: float = 0.0  # m: see :meth:`in_core`
    _code: npt.NDArray[np.uint8] = field(init=False, repr=False)  # (H+2)*(W+2): 0 out, 1 in, 2 ask shapely
    _core: npt.NDArray[np.bool_] = field(init=False, repr=False)  # (H+2)*(W+2)

    def __post_init__(self) -> None:
        h, w = self.inside.shape
        code = np.full((h + 2, w + 2), 2, np.uint8)  # a border of "ask shapely" cells: outside the grid
        code[1:-1, 1:-1] = np.where(self.uncertain, 2, self.inside.astype(np.uint8))
        object.__setattr__(self, "_code", code.ravel())
        core = code == 1
        if self.core_margin > 0.0 and core.any():
            # Cells whose whole neighbourhood of (margin / resolution + 1) cells is certainly inside: every point
            # within ``core_margin`` of any point of such a cell is inside (a square covers the disc).
            r = int(np.ceil(self.core_margin / self.resolution)) + 1
            core = minimum_filter(core.view(np.uint8), size=2 * r + 1, mode="constant", cval=0).view(bool)
        else:
            core = np.zeros_like(core)
        object.__setattr__(self, "_core", core.ravel())

    def _index(self, x: F64, y: F64) -> npt.NDArray[np.intp]:
        """Flat index into the padded grid of points ``(M,)``; outside the grid -> a border cell."""
        h, w = self.inside.shape
        inv = 1.0 / self.resolution
        # Cell index + 1, clipped into the border cells: non-negative, so truncation is floor.
        col = (x - (self.origin[0] - self.resolution)) * inv
        np.maximum(col, 0.0, out=col)
        np.minimum(col, w + 1.0, out=col)
        row = (y - (self.origin[1] - self.resolution)) * inv
        np.maximum(row, 0.0, out=row)
        np.minimum(row, h + 1.0, out=row)
        index = row.astype(np.intp)
        index *= w + 2
        index += col.astype(np.intp)
        return index

    def in_core(self, x: npt.ArrayLike, y: npt.ArrayLike) -> B:
        """Whether the disc of radius ``core_margin`` around each local point ``(...)`` surely lies in the area
        (False means "not known", never "outside")."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        shape = np.broadcast_shapes(x.shape, y.shape)
        x, y = np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()
        return self._core[self._index(x, y)].reshape(shape)

    def contains(self, x: npt.ArrayLike, y: npt.ArrayLike) -> B:
        """Whether local points ``(...)`` lie in the area (boundary counts as inside)."""
        x = np.asarray(x, np.float64)
        y = np.asarray(y, np.float64)
        shape = np.broadcast_shapes(x.shape, y.shape)
        if self.geometry is None:
            return np.zeros(shape, bool)
        x, y = np.broadcast_to(x, shape).ravel(), np.broadcast_to(y, shape).ravel()
        code = self._code[self._index(x, y)]
        out = code == 1
        exact = np.flatnonzero(code == 2)
        if len(exact) and self.bounds is not None:
            b = self.bounds
            xe, ye = x[exact], y[exact]
            exact = exact[(xe >= b[0]) & (xe <= b[2]) & (ye >= b[1]) & (ye <= b[3])]
        if len(exact):
            out[exact] = shapely.intersects_xy(self.geometry, x[exact] + self.frame_origin[0],
                                               y[exact] + self.frame_origin[1])
        return out.reshape(shape)


def _ring_edges(geometry: shapely.Geometry) -> F64:
    """``(E, 4)`` edges x0, y0, x1, y1 of all rings of a (multi)polygon geometry."""
    rings = shapely.get_rings(shapely.get_parts(geometry))
    if len(rings) == 0:
        return np.zeros((0, 4))
    xy, ring = shapely.get_coordinates(rings, return_index=True)
    same = ring[1:] == ring[:-1]
    return np.column_stack([xy[:-1][same], xy[1:][same]])


def rasterize_edges(edges: F64, origin: F64, resolution: float, shape: tuple[int, int]) -> tuple[B, B]:
    """Even-odd scanline fill of closed rings given as edges ``(E, 4)`` (local frame) on a grid.

    Returns ``(inside, uncertain)`` ``(H, W)``: the area at each cell centre (exact) and the cells an edge
    passes through (the only cells where a point may differ from its cell centre). Edges must include every
    edge crossing the grid's rows (left and right of it too), so that the parity is right.
    """
    h, w = shape
    inside = np.zeros(shape, bool)
    uncertain = np.zeros(shape, bool)
    if len(edges) == 0:
        return inside, uncertain
    x0, y0, x1, y1 = edges.T
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    # Rows whose centre y lies in [ylo, yhi): the half-open rule gives an even count per row and ring.
    r_lo = np.clip(np.ceil((ylo - origin[1]) / resolution - 0.5), 0, h).astype(np.int64)
    r_hi = np.clip(np.ceil((yhi - origin[1]) / resolution - 0.5), 0, h).astype(np.int64)
    counts = np.where(yhi > ylo, r_hi - r_lo, 0)
    total = int(counts.sum())
    if total:
        e = np.repeat(np.arange(len(edges)), counts)
        starts = np.cumsum(counts) - counts
        row = r_lo[e] + np.arange(total) - starts[e]
        yc = origin[1] + (row + 0.5) * resolution
        xc = x0[e] + (yc - y0[e]) * (x1[e] - x0[e]) / (y1[e] - y0[e])
        col = np.clip(np.ceil((xc - origin[0]) / resolution - 0.5), 0, w).astype(np.int64)
        order = np.lexsort((xc, row))
        row, col = row[order], col[order]
        # Consecutive crossings of a row pair up as (enter, exit); paint [enter, exit) via a difference array.
        enter = row[0::2] * (w + 1) + col[0::2]
        leave = row[1::2] * (w + 1) + col[1::2]
        size = h * (w + 1)
        diff = np.bincount(enter, minlength=size) - np.bincount(leave, minlength=size)
        inside = np.cumsum(diff.reshape(h, w + 1)[:, :w], axis=1) > 0
    # Cells an edge passes through (exact supercover): the cells on both sides of every crossing of a grid
    # line, plus the cells of the end points. Coordinates within ``eps`` of a grid line mark both neighbours.
    lo = origin - resolution
    hi = origin + np.array([w + 1, h + 1]) * resolution
    near = ((np.maximum(x0, x1) >= lo[0]) & (np.minimum(x0, x1) <= hi[0]) & (yhi >= lo[1]) & (ylo <= hi[1]))
    ex = (edges[near] - np.tile(origin, 2)) / resolution  # in cell units
    if len(ex):
        eps = 1e-7
        rows, cols = [], []
        for a, b in ((0, 1), (1, 0)):  # crossings of lines x = const (a = 0), then y = const (a = 1)
            p0, p1, q0, q1 = ex[:, a], ex[:, a + 2], ex[:, b], ex[:, b + 2]
            first = np.ceil(np.minimum(p0, p1))
            n = np.maximum(np.floor(np.maximum(p0, p1)) - first + 1, 0).astype(np.int64)
            n[p0 == p1] = 0  # parallel to these lines: covered by the other family and the end points
            e = np.repeat(np.arange(len(ex)), n)
            line = first[e] + (np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n))
            q = q0[e] + (line - p0[e]) * (q1[e] - q0[e]) / (p1[e] - p0[e])
            for side in (line - 1, line):
                for qq in (q - eps, q + eps):
                    cells = (side, np.floor(qq))
                    cols.append(cells[a])
                    rows.append(cells[b])
        for c in (0, 2):  # end points
            for d in (-eps, eps):
                cols.append(np.floor(ex[:, c] + d))
                rows.append(np.floor(ex[:, c + 1] + d))
        c = np.concatenate(cols)
        r = np.concatenate(rows)
        ok = (c >= 0) & (c < w) & (r >= 0) & (r < h)
        uncertain[r[ok].astype(np.int64), c[ok].astype(np.int64)] = True
    return inside, uncertain


def area_raster(geometry: shapely.Geometry | None, frame_origin: F64, center: F64, half_size: float,
                resolution: float, edges: F64 | None = None, core_margin: float = 0.0) -> AreaRaster:
    """Raster of ``geometry`` (global frame, unioned) on the square ``center ± half_size`` (local frame),
    shrunk to the geometry's bounding box. ``half_size`` 0 gives a raster that asks shapely for every point
    (for areas tested at a few points only)."""
    frame_origin = np.asarray(frame_origin, np.float64)
    if geometry is None or geometry.is_empty:
        return AreaRaster(np.zeros(2), resolution, np.zeros((1, 1), bool), np.zeros((1, 1), bool), None,
                          frame_origin)
    shapely.prepare(geometry)
    box = np.asarray(shapely.bounds(geometry), np.float64) - np.tile(frame_origin, 2)
    lo = np.maximum(np.asarray(center, np.float64) - half_size, box[:2] - resolution)
    hi = np.minimum(np.asarray(center, np.float64) + half_size, box[2:] + resolution)
    cells = np.ceil((hi - lo) / resolution).astype(np.int64)
    if half_size <= 0.0 or (cells <= 0).any():  # nothing to rasterize: every point goes to shapely
        return AreaRaster(lo, resolution, np.zeros((0, 0), bool), np.zeros((0, 0), bool), geometry, frame_origin,
                          box)
    if edges is None:
        edges = _ring_edges(geometry)
    local = edges - np.tile(frame_origin, 2)
    # Parity needs every edge crossing the grid's rows, wherever it lies in x.
    ylo = np.minimum(local[:, 1], local[:, 3])
    yhi = np.maximum(local[:, 1], local[:, 3])
    band = (yhi >= lo[1]) & (ylo <= lo[1] + cells[1] * resolution)
    inside, uncertain = rasterize_edges(local[band], lo, resolution, (int(cells[1]), int(cells[0])))
    return AreaRaster(lo, resolution, inside, uncertain, geometry, frame_origin, box, core_margin)


# Per-map caches: the drivable union (and its edges) is built once per MapAPI; route unions per route.
_DRIVABLE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ROUTE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_LANE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# Per-map caches of what does not change between planning steps: rasters of fixed areas on windows snapped to
# a global grid, red-light geometries per set of red connectors, route centerlines per start segment.
_RASTER_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_RED_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CENTERLINE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Grid (m) the cached raster windows are anchored to; a window reaches ``snap`` m beyond the requested size.
RASTER_SNAP = 16.0


def _lane_index(map_api: MapAPI) -> tuple[shapely.STRtree, npt.NDArray[np.object_]]:
    """An STRtree over the lane / connector polygons (prepared), cached per map object."""
    cached = _LANE_CACHE.get(map_api)
    if cached is None:
        polygons = np.asarray(map_api.seg_polygon, dtype=object)
        shapely.prepare(polygons)
        cached = (shapely.STRtree(polygons), polygons)
        _LANE_CACHE[map_api] = cached
    return cached


def _shifted(raster: AreaRaster, frame_origin: F64) -> AreaRaster:
    """The same raster (shared grids, no recomputation) expressed in the local frame of ``frame_origin``."""
    delta = raster.frame_origin - frame_origin
    out = object.__new__(AreaRaster)
    for name in ("resolution", "inside", "uncertain", "geometry", "core_margin", "_code", "_core"):
        object.__setattr__(out, name, getattr(raster, name))
    object.__setattr__(out, "origin", raster.origin + delta)
    object.__setattr__(out, "frame_origin", np.asarray(frame_origin, np.float64).copy())
    object.__setattr__(out, "bounds", None if raster.bounds is None else raster.bounds + np.tile(delta, 2))
    return out


def cached_area_raster(map_api: MapAPI, key: object, geometry: shapely.Geometry | None, frame_origin: F64,
                       half_size: float, resolution: float, edges: F64 | None = None,
                       core_margin: float = 0.0) -> AreaRaster:
    """:func:`area_raster` centred on the local origin, reused across planning steps.

    The window is anchored to a global grid of :data:`RASTER_SNAP` m and grown by that much, so that it covers
    ``frame_origin ± half_size`` wherever the ego stands in its grid cell; it is built once per anchor and
    ``key`` (which must identify ``geometry``) and shifted into the caller's frame. Look-ups are exact either way
    (boundary cells ask shapely), so results equal those of a fresh raster.
    """
    frame_origin = np.asarray(frame_origin, np.float64)
    if half_size <= 0.0 or geometry is None or geometry.is_empty:
        return area_raster(geometry, frame_origin, np.zeros(2), half_size, resolution, edges, core_margin)
    anchor = np.round(frame_origin / RASTER_SNAP) * RASTER_SNAP
    per_map = _RASTER_CACHE.setdefault(map_api, {})
    ck = (key, float(anchor[0]), float(anchor[1]), float(half_size), float(resolution), float(core_margin))
    base = per_map.get(ck)
    if base is None:
        base = area_raster(geometry, anchor, np.zeros(2), half_size + RASTER_SNAP, resolution, edges, core_margin)
        if len(per_map) > 48:  # a few windows per area along a drive: keep memory bounded
            per_map.pop(next(iter(per_map)))
        per_map[ck] = base
    return _shifted(base, frame_origin)


def _red_light_geometries(map_api: MapAPI, red_ids: tuple[int, ...], grow: float
                          ) -> tuple[shapely.Geometry | None, shapely.Geometry | None]:
    """Union of the red connectors ``red_ids`` and the same grown by ``grow`` m (cached per map and set)."""
    if not red_ids:
        return None, None
    per_map = _RED_CACHE.setdefault(map_api, {})
    key = (red_ids, float(grow))
    if key not in per_map:
        polys = [map_api.seg_polygon[map_api.segment_index(i, connector=True)] for i in red_ids]
        geom = shapely.union_all(np.array(polys, dtype=object))
        if len(per_map) > 64:
            per_map.clear()
        per_map[key] = (geom, shapely.buffer(geom, grow))
    return per_map[key]


def _union_with_edges(parts: npt.NDArray[np.object_]) -> tuple[shapely.Geometry, F64]:
    union = shapely.union_all(shapely.make_valid(parts)) if len(parts) else shapely.Polygon()
    pieces = shapely.get_parts(union)
    union = shapely.union_all(pieces[np.isin(shapely.get_type_id(pieces), (3, 6))])  # drop stray lines / points
    return union, (_ring_edges(union) if not union.is_empty else np.zeros((0, 4)))


def drivable_surface(map_api: MapAPI) -> tuple[shapely.Geometry, F64]:
    """The drivable surface (lanes, connectors and the map's drivable area, unioned) and its edges ``(E, 4)``.

    Cached per map object.
    """
    cached = _DRIVABLE_CACHE.get(map_api)
    if cached is None:
        _, inter = map_api.layer("intersections")
        cached = {
            "drivable": _union_with_edges(np.concatenate([np.asarray(map_api.seg_polygon, dtype=object),
                                                          np.array([map_api.drivable_area], dtype=object)])),
            "intersections": _union_with_edges(np.asarray(inter, dtype=object)),
        }
        _DRIVABLE_CACHE[map_api] = cached
    return cached["drivable"]


def intersection_surface(map_api: MapAPI) -> tuple[shapely.Geometry, F64]:
    """Union of the map's intersection polygons and its edges, cached per map object."""
    drivable_surface(map_api)
    return _DRIVABLE_CACHE[map_api]["intersections"]


def route_surface(map_api: MapAPI, route_roadblock_ids: tuple[int, ...]) -> tuple[shapely.Geometry, F64, I64]:
    """Union of the lanes / connectors of the route roadblocks, its edges and their segment indices."""
    per_map = _ROUTE_CACHE.setdefault(map_api, {})
    key = tuple(int(r) for r in route_roadblock_ids)
    if key not in per_map:
        segs = [map_api.roadblock_segments(rb) for rb in key if map_api.has_roadblock(rb)]
        seg_idx = np.unique(np.concatenate(segs)).astype(np.int64) if segs else np.zeros(0, np.int64)
        union = (shapely.union_all(shapely.make_valid(map_api.seg_polygon[seg_idx])) if len(seg_idx)
                 else shapely.Polygon())
        if len(per_map) > 64:  # a labeler walks many scenarios: keep the cache bounded
            per_map.clear()
        per_map[key] = (union, _ring_edges(union) if not union.is_empty else np.zeros((0, 4)), seg_idx)
    return per_map[key]


# ---------------------------------------------------------------------------------------------- route centerline
def route_centerline(map_api: MapAPI, route_roadblock_ids: tuple[int, ...], ego_pose: F64,
                     max_length: float = 400.0, extension: float = 100.0) -> F64:
    """``(P, 2)`` global centerline for progress: PDM's lane-graph path from the ego's lane along the route.

    Start: the on-route lane / connector containing the rear axle with the smallest heading error (else the
    nearest on-route one). Then a Dijkstra over successors restricted to on-route segments, up to
    ``max_length`` m; the path reaching the furthest route roadblock wins (ties: the shortest). The path is
    prolonged straight by ``extension`` m. Without a usable route: a straight line along the ego heading.
    """
    pose = np.asarray(ego_pose, np.float64)
    _, _, on_route = route_surface(map_api, route_roadblock_ids)
    if len(on_route) == 0:
        return pose[:2] + np.outer(np.linspace(-10.0, max_length, 42), [np.cos(pose[2]), np.sin(pose[2])])
    containing = np.intersect1d(map_api.segments_containing(pose[None, :2])[0], on_route)
    if len(containing) == 1:  # the usual case: no distances or heading errors to compare
        start = int(containing[0])
    else:
        start = int(map_api.nearest_segment(pose, containing if len(containing) else on_route))
    # The path depends on the start segment only (not on where ego is on it): cached per map and route.
    per_map = _CENTERLINE_CACHE.setdefault(map_api, {})
    key = (tuple(int(r) for r in route_roadblock_ids), start, float(max_length), float(extension))
    cached = per_map.get(key)
    if cached is None:
        cached = _centerline_from(map_api, route_roadblock_ids, on_route, start, pose, max_length, extension)
        if len(per_map) > 256:
            per_map.clear()
        per_map[key] = cached
    return cached.copy()


def _centerline_from(map_api: MapAPI, route_roadblock_ids: tuple[int, ...], on_route: I64, start: int,
                     pose: F64, max_length: float, extension: float) -> F64:
    """The centerline of :func:`route_centerline` from segment ``start`` (Dijkstra + straight extension)."""
    order = {int(rb): i for i, rb in enumerate(route_roadblock_ids)}
    allowed = set(on_route.tolist())
    best = {start: 0.0}
    parent: dict[int, int] = {}
    frontier = [(0.0, start)]
    while frontier:
        cost, s = heapq.heappop(frontier)
        if cost > best.get(s, np.inf) or cost > max_length:
            continue
        for nxt in map_api.successors(s):
            nxt = int(nxt)
            c = cost + float(map_api.seg_length[s])
            if nxt in allowed and c < best.get(nxt, np.inf):
                best[nxt] = c
                parent[nxt] = s
                heapq.heappush(frontier, (c, nxt))
    end = max(best, key=lambda s: (order.get(int(map_api.seg_roadblock_id[s]), -1), -best[s]))
    path = [end]
    while path[-1] in parent:
        path.append(parent[path[-1]])
    pieces = [map_api.baseline(s)[:, :2] for s in reversed(path)]
    xy = np.concatenate([pieces[0]] + [p[1:] if np.allclose(p[0], q[-1]) else p
                                       for q, p in zip(pieces[:-1], pieces[1:], strict=True)])
    keep = np.concatenate([[True], np.hypot(*np.diff(xy, axis=0).T) > 1e-9])
    xy = xy[keep]
    # Past the last lane the path goes on straight, so that progress does not saturate where the lane graph
    # ends (a dead end, or a route that needs a lane change the graph search cannot make).
    # (One baseline vertex cannot happen for a real lane; the heading fallback keeps the cache pose-free.)
    tail = xy[-1] - xy[-2] if len(xy) > 1 else np.array([np.cos(pose[2]), np.sin(pose[2])])
    tail = tail / max(float(np.hypot(*tail)), 1e-9)
    return np.concatenate([xy, xy[-1:] + extension * tail[None]])


# ---------------------------------------------------------------------------------------------- the world
@dataclass(frozen=True, eq=False)
class ScoringWorld:
    """Everything the scorer needs about one planning step, in a local frame (global minus ``origin``).

    Objects are sampled on the time grid ``time_s`` extended by the largest TTC offset
    (``num_steps + extra_steps`` samples at ``dt``):

    - ``obj_token`` ``(N,)``, ``obj_category`` ``(N,)`` int8, ``obj_is_static`` ``(N,)``,
      ``obj_size`` ``(N, 2)`` length, width (m), ``obj_radius`` ``(N,)`` half-diagonal (m)
    - ``obj_pose`` ``(N, S, 3)`` box centres, ``obj_speed`` ``(N, S)`` m/s, ``obj_valid`` ``(N, S)``,
      ``obj_corners`` ``(N, S, 4, 2)``
    - ``drivable`` / ``on_route``: :class:`AreaRaster` of the drivable surface (with a core of the ego's
      half-diagonal) / the on-route lanes; ``intersection``: the map's intersections (exact look-ups only)
    - ``red_light`` / ``red_light_near``: rasters of the red-light connectors of the route and of the same
      grown by the ego's half-diagonal (``red_light_geometry`` global, prepared; None if no red light)
    - ``centerline`` shapely LineString (local frame) for progress, densified as ``centerline_xy`` /
      ``centerline_s`` (``centerline_tree``: a KD-tree over them, built on first use); ``route_segments``
      on-route segment indices
    """

    origin: F64
    ego_pose: F64  # (3,) current rear-axle pose, local frame
    time_s: F64  # (T+1,) s relative to now
    dt: float
    extra_steps: int
    obj_token: npt.NDArray[np.str_]
    obj_category: npt.NDArray[np.int8]
    obj_is_static: B
    obj_size: F64
    obj_radius: F64
    obj_pose: F64
    obj_speed: F64
    obj_valid: B
    obj_corners: F64
    drivable: AreaRaster
    on_route: AreaRaster
    intersection: AreaRaster
    red_light: AreaRaster
    red_light_near: AreaRaster
    red_light_geometry: shapely.Geometry | None
    red_light_ids: I64
    centerline: shapely.LineString
    centerline_xy: F64  # (P, 2) densified (<= 0.5 m) vertices, local frame
    centerline_s: F64  # (P,) arc length at each vertex (m)
    route_segments: I64
    map_api: MapAPI = field(repr=False)

    @property
    def num_steps(self) -> int:
        """T+1: the number of scored ego states."""
        return len(self.time_s)

    @property
    def num_objects(self) -> int:
        return len(self.obj_token)

    @cached_property
    def centerline_tree(self) -> cKDTree:
        """KD-tree over ``centerline_xy`` (built on first use: a planner's few projections do without)."""
        return cKDTree(self.centerline_xy)


def _densify(xy: F64, step: float) -> F64:
    """Insert vertices so that no polyline edge is longer than ``step`` (the geometry is unchanged)."""
    seg = np.diff(xy, axis=0)
    n = np.maximum(np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step).astype(np.int64), 1)
    frac = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    i = np.repeat(np.arange(len(seg)), n)
    return np.concatenate([xy[i] + seg[i] * (frac / n[i])[:, None], xy[-1:]])


def _nearest_vertex(world: ScoringWorld, pts: F64) -> npt.NDArray[np.intp]:
    """Index of the nearest ``centerline_xy`` vertex of each point ``(M, 2)``: by brute force for a few points
    (the same squared distances the KD-tree compares; building the tree costs more than that), else the tree."""
    line = world.centerline_xy
    if len(pts) * len(line) <= BRUTE_FORCE_PAIRS:
        d2 = (pts[:, None, 0] - line[None, :, 0]) ** 2 + (pts[:, None, 1] - line[None, :, 1]) ** 2
        return d2.argmin(1)
    return world.centerline_tree.query(pts)[1]


#: Up to this many point-vertex pairs :func:`_nearest_vertex` compares all of them.
BRUTE_FORCE_PAIRS = 100_000


def project_on_centerline(world: ScoringWorld, xy: F64) -> F64:
    """Arc length ``(M,)`` (m) of the closest point of the route centerline to local points ``(M, 2)``.

    The nearest densified vertex (KD-tree) picks the candidate edges (the two around it); the point is
    projected on both and the closer projection wins. Clamped to the centerline's ends.
    """
    pts = np.asarray(xy, np.float64).reshape(-1, 2)
    line, arc = world.centerline_xy, world.centerline_s
    if len(line) < 2:
        return np.zeros(len(pts))
    v = _nearest_vertex(world, pts)
    best_d = np.full(len(pts), np.inf)
    best_s = np.zeros(len(pts))
    for e in (np.clip(v - 1, 0, len(line) - 2), np.clip(v, 0, len(line) - 2)):
        a, b = line[e], line[e + 1]
        ab = b - a
        t = np.clip(((pts - a) * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
        d = np.hypot(*(a + t[:, None] * ab - pts).T)
        better = d < best_d
        best_d = np.where(better, d, best_d)
        best_s = np.where(better, arc[e] + t * (arc[e + 1] - arc[e]), best_s)
    return best_s


def _nan_to_num(x: F64) -> F64:
    """``np.nan_to_num(x)``; ``x`` itself (not a copy) when it is all finite, skipping nan_to_num's overhead."""
    return x if bool(np.isfinite(x).all()) else np.nan_to_num(x)


def _isin_small(values: npt.ArrayLike, choices: npt.ArrayLike) -> B:
    """``np.isin(values, choices)`` for a few choices: one broadcast comparison (np.isin's setup costs more)."""
    v = np.asarray(values)
    return (v[..., None] == np.asarray(choices)).any(-1)


def _forecast(tracks: Tracks, times: F64, forecast: str, origin: F64) -> tuple[F64, F64, B]:
    """Object centre poses ``(N, S, 3)``, speeds ``(N, S)`` and validity on ``times`` (local frame)."""
    n = len(tracks)
    pose0 = tracks.pose[:, 0].astype(np.float64)
    vel0 = _nan_to_num(tracks.velocity[:, 0].astype(np.float64))
    if forecast == "constant_velocity":
        pose = np.repeat(pose0[:, None, :], len(times), axis=1)
        pose[..., 0] += vel0[:, 0, None] * times[None]
        pose[..., 1] += vel0[:, 1, None] * times[None]
        speed = np.repeat(np.hypot(vel0[:, 0], vel0[:, 1])[:, None], len(times), axis=1)
        valid = np.repeat(tracks.valid[:, :1], len(times), axis=1)
    elif forecast == "given":
        given = tracks.num_steps
        m = min(given, len(times))
        pose = np.empty((n, len(times), 3))
        vel = np.zeros((n, len(times), 2))
        valid = np.zeros((n, len(times)), bool)
        pose[:, :m] = tracks.pose[:, :m]
        vel[:, :m] = np.nan_to_num(tracks.velocity[:, :m])
        valid[:, :m] = tracks.valid[:, :m]
        if m < len(times):  # beyond the given forecast: constant velocity from its last sample
            dt_tail = times[m:] - times[m - 1]
            pose[:, m:] = pose[:, m - 1:m]
            pose[:, m:, 0] += vel[:, m - 1, 0, None] * dt_tail[None]
            pose[:, m:, 1] += vel[:, m - 1, 1, None] * dt_tail[None]
            vel[:, m:] = vel[:, m - 1:m]
            valid[:, m:] = valid[:, m - 1:m]
        speed = np.hypot(vel[..., 0], vel[..., 1])
    else:
        raise DataError(None, f"forecast={forecast!r}", "'constant_velocity' or 'given'")
    pose = pose.copy()
    pose[..., :2] -= origin
    valid &= np.isfinite(pose).all(-1)
    pose[~valid] = 0.0
    return pose, speed, valid


def build_scoring_world(
    map_api: MapAPI,
    route_roadblock_ids: tuple[int, ...],
    ego_state: EgoStates,
    tracks: Tracks,
    traffic_lights: dict[int, int],
    time_s: npt.ArrayLike,
    forecast: str = "constant_velocity",
    *,
    vehicle: VehicleParameters = PACIFICA,
    params: ScoringParameters = DEFAULT_SCORING,
    raster_half_size: float = 80.0,
    resolution: float = 0.2,
    object_radius: float = 100.0,
    drop_initial_overlaps: bool = True,
) -> ScoringWorld:
    """Assemble the :class:`ScoringWorld` of one planning step.

    - ``ego_state``: the current ego (its last sample is used; rear axle, global frame)
    - ``tracks``: ``(N, 1)`` current objects (``forecast='constant_velocity'``: agents move at their current
      velocity, static objects stay) or ``(N, T')`` forecasts aligned with ``time_s`` (``forecast='given'``;
      extended at constant velocity past their end)
    - ``traffic_lights``: ``{lane_connector_id: TrafficLightStatus}``; red connectors of the route become
      obstacles for the traffic-light rule
    - ``time_s``: ``(T+1,)`` uniform times of the scored states relative to now (``time_s[0] = 0``)
    - ``raster_half_size`` / ``resolution``: extent (m around the ego) and cell size (m) of the area rasters;
      points outside are tested exactly (slower)
    - ``object_radius``: objects farther than this from the ego now are dropped (m)
    - ``drop_initial_overlaps``: leave out objects whose box already overlaps the ego box now (PDM's
      observation does: they would zero every candidate's NC)

    Without a route roadblock in the map, the driving-direction rule uses the drivable surface instead of the
    on-route lanes and progress is measured along the ego's heading.
    """
    times = np.asarray(time_s, np.float64)
    if times.ndim != 1 or len(times) < 2 or abs(times[0]) > 1e-9:
        raise DataError(None, f"scoring time grid of shape {times.shape} starting at "
                        f"{times[0] if times.size else None}", "(T+1,) uniform times from 0")
    dt = float(times[1] - times[0])
    # np.allclose(np.diff(times), dt, atol=1e-6) without its overhead (every planning step passes here)
    if not (dt > 0 and bool((np.abs(np.diff(times) - dt) <= 1e-6 + 1e-5 * abs(dt)).all())):
        raise DataError(None, "scoring time grid is not uniform", "a uniform step (e.g. 0.1 s)")
    extra = int(round(max(params.ttc_offsets_s) / dt))
    all_times = dt * np.arange(len(times) + extra)

    ego_global = np.asarray(ego_state.pose[-1], np.float64)
    origin = ego_global[:2].copy()
    ego_pose = np.array([0.0, 0.0, ego_global[2]])

    # Objects near the ego.
    if tracks.num_steps == 0:
        raise DataError(None, "tracks for scoring have no time sample", "(N, 1) current or (N, T) forecast tracks")
    if forecast == "given":  # the closest valid sample decides (objects may appear later)
        dist = np.hypot(tracks.pose[..., 0] - origin[0], tracks.pose[..., 1] - origin[1])
        dist = np.where(tracks.valid, np.nan_to_num(dist, nan=np.inf), np.inf).min(axis=1, initial=np.inf)
    else:
        dist = np.where(tracks.valid[:, 0], np.hypot(tracks.pose[:, 0, 0] - origin[0],
                                                     tracks.pose[:, 0, 1] - origin[1]), np.inf)
    keep = np.flatnonzero(dist <= object_radius)  # NaN compares False, as the inf it used to be mapped to
    near = tracks.select(keep)
    static = _isin_small(near.category, STATIC_CATEGORIES)
    if forecast == "constant_velocity":
        near = Tracks(near.token, near.category, near.size, near.pose[:, :1],
                      np.where(static[:, None, None], 0.0, near.velocity[:, :1]), near.valid[:, :1])
    obj_pose, obj_speed, obj_valid = _forecast(near, all_times, forecast, origin)
    if forecast == "given":
        obj_speed = np.where(static[:, None], 0.0, obj_speed)
    size = np.asarray(near.size[:, :2], np.float64)
    if drop_initial_overlaps and len(near):
        # Objects the ego box already touches now would fail every candidate: PDM leaves them out.
        ego_center = _ego_centers(np.array([0.0, 0.0, ego_global[2]]), vehicle)
        touching = obj_valid[:, 0] & obb_overlap(
            np.repeat(ego_center[None], len(near), 0), (0.5 * vehicle.length, 0.5 * vehicle.width),
            obj_pose[:, 0], (0.5 * size[:, 0], 0.5 * size[:, 1]))
        if touching.any():
            kept = ~touching
            near, static, size = near.select(kept), static[kept], size[kept]
            obj_pose, obj_speed, obj_valid = obj_pose[kept], obj_speed[kept], obj_valid[kept]
    obj_corners = box_corners(obj_pose, size[:, 0, None], size[:, 1, None])

    # Areas.
    drive_geom, drive_edges = drivable_surface(map_api)
    drivable = cached_area_raster(map_api, "drivable", drive_geom, origin, raster_half_size, resolution,
                                  drive_edges, core_margin=0.5 * float(np.hypot(vehicle.length, vehicle.width)))
    inter_geom, inter_edges = intersection_surface(map_api)
    intersection = area_raster(inter_geom, origin, np.zeros(2), 0.0, resolution)  # a few look-ups: exact
    route_key = ("route", tuple(int(r) for r in route_roadblock_ids))
    route_geom, route_edges, route_segments = route_surface(map_api, route_key[1])
    if len(route_segments) == 0:  # no usable route: driving direction can only judge leaving the road
        route_geom, route_edges, route_key = drive_geom, drive_edges, "drivable"
    on_route = cached_area_raster(map_api, route_key, route_geom, origin, raster_half_size, resolution,
                                  route_edges)

    # Red lights: red connectors of the route that the ego does not already touch.
    ego_box_now = shapely.polygons(_ego_corners(_ego_centers(ego_global, vehicle), vehicle))
    red_ids = []
    route_set = set(int(s) for s in route_segments)
    for conn_id, status in traffic_lights.items():
        if int(status) != TrafficLightStatus.RED:
            continue
        try:
            s = map_api.segment_index(int(conn_id), connector=True)
        except DataError:
            continue
        if s in route_set and not shapely.intersects(map_api.seg_polygon[s], ego_box_now):
            red_ids.append(int(conn_id))
    half_diag = 0.5 * float(np.hypot(vehicle.length, vehicle.width))
    red_key = tuple(red_ids)
    red_geom, red_near_geom = _red_light_geometries(map_api, red_key, half_diag + 0.05)
    red_light = cached_area_raster(map_api, ("red", red_key), red_geom, origin, raster_half_size, resolution)
    red_light_near = cached_area_raster(map_api, ("red_near", red_key, half_diag), red_near_geom, origin,
                                        raster_half_size, resolution)

    centerline_xy = route_centerline(map_api, tuple(route_roadblock_ids), ego_global) - origin
    dense = _densify(centerline_xy, 0.5)
    dense_s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(dense, axis=0).T))])
    return ScoringWorld(
        origin=origin, ego_pose=ego_pose, time_s=times, dt=dt, extra_steps=extra,
        obj_token=near.token, obj_category=near.category.astype(np.int8), obj_is_static=static, obj_size=size,
        obj_radius=0.5 * np.hypot(size[:, 0], size[:, 1]), obj_pose=obj_pose, obj_speed=obj_speed,
        obj_valid=obj_valid, obj_corners=obj_corners, drivable=drivable, on_route=on_route, intersection=intersection,
        red_light=red_light, red_light_near=red_light_near, red_light_geometry=red_geom,
        red_light_ids=np.array(red_ids, np.int64), centerline=shapely.LineString(centerline_xy),
        centerline_xy=dense, centerline_s=dense_s,
        route_segments=route_segments, map_api=map_api)


# ---------------------------------------------------------------------------------------------- ego rollouts
@dataclass(frozen=True)
class EgoRollout:
    """The scorer's view of K simulated ego trajectories over T+1 states (index 0 = now).

    - ``pose`` ``(K, T+1, 3)`` rear-axle x, y (global, m), heading (rad)
    - ``velocity`` ``(K, T+1)`` rear-axle longitudinal speed (m/s)
    - ``acceleration`` ``(K, T+1, 2)`` rear-axle body-frame acceleration (m/s²)
    - ``yaw_rate`` ``(K, T+1)`` rad/s
    """

    pose: F64
    velocity: F64
    acceleration: F64
    yaw_rate: F64

    def __len__(self) -> int:
        return self.pose.shape[0]


def as_rollout(states: object, dt: float = 0.1) -> EgoRollout:
    """Adapt simulated states to :class:`EgoRollout`.

    Accepts :class:`sim.dynamics.controller.Rollout` (or anything with ``pose``, ``velocity``,
    ``acceleration`` arrays ``(K, T+1[, ...])``; optional ``yaw_rate``). ``velocity`` / ``acceleration`` may be
    longitudinal ``(K, T+1)`` or body-frame ``(K, T+1, 2)``. A missing yaw rate is differentiated from the
    headings with step ``dt``.
    """
    if isinstance(states, EgoRollout):
        return states
    try:
        pose = np.asarray(states.pose, np.float64)  # type: ignore[attr-defined]
        vel = np.asarray(states.velocity, np.float64)  # type: ignore[attr-defined]
        acc = np.asarray(states.acceleration, np.float64)  # type: ignore[attr-defined]
    except AttributeError as err:
        raise DataError(None, f"ego states of type {type(states).__name__} have no {err.name!r}",
                        "pose, velocity and acceleration arrays (K, T+1, ...)") from None
    if pose.ndim != 3 or pose.shape[2] != 3:
        raise DataError(None, f"ego rollout poses have shape {pose.shape}", "(K, T+1, 3)")
    if vel.ndim == 3:
        vel = vel[..., 0]
    if acc.ndim == 2:
        acc = np.stack([acc, np.zeros_like(acc)], -1)
    if vel.shape != pose.shape[:2] or acc.shape != pose.shape[:2] + (2,):
        raise DataError(None, f"ego rollout velocity {vel.shape} / acceleration {acc.shape} do not match poses "
                        f"{pose.shape}", "(K, T+1) or (K, T+1, 2)")
    yaw_rate = getattr(states, "yaw_rate", None)
    if yaw_rate is None:
        yaw_rate = np.gradient(np.unwrap(pose[..., 2], axis=1), dt, axis=1)
    # Rollouts may be transposed views of time-major buffers: the scorer reads them trajectory-major.
    return EgoRollout(*(np.ascontiguousarray(a, dtype=np.float64) for a in (pose, vel, acc, yaw_rate)))


# ---------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PDMScores:
    """Scores of K trajectories.

    - ``scores`` ``(K, R)``: per-rule scores, columns :data:`RULES`
    - ``pdm_score`` ``(K,)``: NC x DAC x DDC x TLC x (5 TTC + 5 EP + 2 C) / 12
    - ``raw_progress`` ``(K,)``: metres along the route centerline (before normalisation)
    - ``collision_time_s`` / ``ttc_time_s`` ``(K,)``: time of the first at-fault collision / first TTC
      violation (s from now; inf if none) — the expert's emergency-brake test reads them
    """

    scores: F64
    pdm_score: F64
    raw_progress: F64
    collision_time_s: F64
    ttc_time_s: F64

    def __len__(self) -> int:
        return len(self.pdm_score)

    def column(self, rule: str) -> F64:
        """``(K,)`` scores of one rule of :data:`RULES`."""
        if rule not in RULES:
            raise KeyError(f"unknown PDM rule {rule!r}; rules: {', '.join(RULES)}")
        return self.scores[:, RULES.index(rule)]

    def multiplier(self, rules: tuple[str, ...] = PDM_MULTIPLIERS) -> F64:
        return np.prod(self.scores[:, [RULES.index(r) for r in rules]], axis=1)

    def select(self, index: npt.ArrayLike) -> PDMScores:
        i = np.asarray(index)
        return PDMScores(self.scores[i], self.pdm_score[i], self.raw_progress[i], self.collision_time_s[i],
                         self.ttc_time_s[i])


def normalize_progress(raw_progress: F64, multiplier: F64, threshold: float = DEFAULT_SCORING.progress_threshold,
                       reference_progress: float | None = None) -> F64:
    """EP ``(K,)``: raw progress times the multiplier, over the best such value (PDM / NAVSIM rule).

    ``reference_progress``: an extra candidate for the best value (already multiplied by its own multiplier),
    e.g. NAVSIM's PDM-Closed trajectory. If the best is <= ``threshold`` m, EP = 1 where the multiplier is
    non-zero and 0 elsewhere.
    """
    masked = np.asarray(raw_progress, np.float64) * np.asarray(multiplier, np.float64)
    best = max(float(masked.max(initial=0.0)), float(reference_progress or 0.0))
    if best > threshold:
        return np.clip(masked / best, 0.0, 1.0)
    return (np.asarray(multiplier) > 0).astype(np.float64)


def aggregate(scores: F64, multipliers: tuple[str, ...] = PDM_MULTIPLIERS,
              weights: dict[str, float] | None = None) -> F64:
    """``(K,)`` = product of the multiplier columns x weighted mean of the weighted columns of ``(K, R)``."""
    weights = PDM_WEIGHTS if weights is None else weights
    s = np.asarray(scores, np.float64)
    mult = np.prod(s[:, [RULES.index(r) for r in multipliers]], axis=1)
    w = np.array(list(weights.values()))
    weighted = s[:, [RULES.index(r) for r in weights]] @ w / w.sum()
    return mult * weighted


def navsim_v1_pdms(scores: PDMScores, progress_threshold: float = DEFAULT_SCORING.progress_threshold,
                   reference_progress: float | None = None) -> F64:
    """NAVSIM v1 PDMS ``(K,)`` = NC x DAC x (5 TTC + 5 EP + 2 C) / 12, EP normalised with NC x DAC.

    NAVSIM scores the agent's trajectory in one batch with PDM-Closed's: pass both in ``scores`` (or the
    PDM-Closed masked progress as ``reference_progress``). DDC has weight 0 in v1 and TLC does not exist.
    """
    s = scores.scores.copy()
    mult = scores.multiplier(NAVSIM_V1_MULTIPLIERS)
    s[:, EP] = normalize_progress(scores.raw_progress, mult, progress_threshold, reference_progress)
    return aggregate(s, NAVSIM_V1_MULTIPLIERS, PDM_WEIGHTS)


# ---------------------------------------------------------------------------------------------- scoring
def _ego_centers(pose: F64, vehicle: VehicleParameters, cos_h: F64 | None = None, sin_h: F64 | None = None
                 ) -> F64:
    """Box centre poses ``(..., 3)`` of ego rear-axle poses ``(..., 3)`` (``cos_h``/``sin_h``: of the headings,
    if the caller has them)."""
    d = vehicle.rear_axle_to_center
    center = np.empty(pose.shape)
    center[..., 0] = pose[..., 0] + d * (np.cos(pose[..., 2]) if cos_h is None else cos_h)
    center[..., 1] = pose[..., 1] + d * (np.sin(pose[..., 2]) if sin_h is None else sin_h)
    center[..., 2] = pose[..., 2]
    return center


def _ego_corners_xy(center: F64, vehicle: VehicleParameters) -> tuple[F64, F64]:
    """Corner x and y ``(..., 4)`` (FL, RL, RR, FR) of ego boxes with centre poses ``(..., 3)``."""
    hl, hw = 0.5 * vehicle.length, 0.5 * vehicle.width
    c, s = np.cos(center[..., 2, None]), np.sin(center[..., 2, None])
    lx = np.array([hl, -hl, -hl, hl])
    ly = np.array([hw, hw, -hw, -hw])
    return center[..., 0, None] + (c * lx - s * ly), center[..., 1, None] + (s * lx + c * ly)


def _ego_corners(center: F64, vehicle: VehicleParameters) -> F64:
    """Corners ``(..., 4, 2)`` (FL, RL, RR, FR) of ego boxes with centre poses ``(..., 3)``."""
    return np.stack(_ego_corners_xy(center, vehicle), -1)


def _bearing(pose: F64, target_xy: F64) -> F64:
    """Absolute angle (rad) between the heading of ``pose`` ``(M, 3)`` and the vector to ``target_xy``."""
    return np.abs(wrap_angle(np.arctan2(target_xy[:, 1] - pose[:, 1], target_xy[:, 0] - pose[:, 0]) - pose[:, 2]))


def obb_overlap(pose_a: F64, half_a: tuple[F64, F64], pose_b: F64, half_b: tuple[F64, F64]) -> B:
    """Separating-axis test of oriented rectangles, element-wise over ``(M,)`` (touching counts as overlap).

    ``pose_*`` ``(M, 3)`` centre x, y, heading; ``half_*`` (half length, half width), each scalar or ``(M,)``.
    The same test as :func:`sim.geometry.boxes_overlap` written for rectangles in closed form: with ``T`` the
    centre offset in A's frame and ``d`` the relative heading, the four candidate axes separate when
    ``|T.x| > la + lb|cos d| + wb|sin d|`` (and the three analogues). A half length of 0 is a segment.
    """
    return _obb_overlap(pose_a[:, 0], pose_a[:, 1], np.cos(pose_a[:, 2]), np.sin(pose_a[:, 2]), *half_a,
                        pose_b[:, 0], pose_b[:, 1], np.cos(pose_b[:, 2]), np.sin(pose_b[:, 2]), *half_b)


def _obb_overlap(xa: F64, ya: F64, ca: F64, sa: F64, la: F64 | float, wa: F64 | float,
                 xb: F64, yb: F64, cb: F64, sb: F64, lb: F64 | float, wb: F64 | float) -> B:
    """:func:`obb_overlap` with the headings given as cosines / sines (no trigonometry)."""
    dx, dy = xb - xa, yb - ya
    tx, ty = dx * ca + dy * sa, dy * ca - dx * sa
    cd, sd = cb * ca + sb * sa, sb * ca - cb * sa  # cos / sin of the relative heading
    ac, as_ = np.abs(cd), np.abs(sd)
    sep = np.abs(tx) > la + lb * ac + wb * as_
    sep |= np.abs(ty) > wa + lb * as_ + wb * ac
    sep |= np.abs(tx * cd + ty * sd) > lb + la * ac + wa * as_
    sep |= np.abs(ty * cd - tx * sd) > wb + la * as_ + wa * ac
    return ~sep


def _candidate_pairs(ex: F64, ey: F64, ox: F64, oy: F64, valid: B, radius: F64
                     ) -> tuple[I64, I64, I64, F64, F64]:
    """Broad phase: ``(k, s, n)`` with ego centre ``(S, K)`` within ``radius[n]`` of object centre ``(N, S)``,
    and the ego centre x, y of each candidate.

    Per slot s, objects outside the box around all K ego centres are dropped; for the rest a sweep along x
    over the sorted ego centres of that slot yields the candidates, then the exact distance filters them.
    """
    num_s, num_k = ex.shape
    empty = np.zeros(0, np.int64)
    if num_k == 0 or ox.size == 0:
        return empty, empty, empty, np.zeros(0), np.zeros(0)
    r = radius[:, None]
    active = (valid & (ox + r >= ex.min(1)) & (ox - r <= ex.max(1))
              & (oy + r >= ey.min(1)) & (oy - r <= ey.max(1)))
    pair_n, pair_s = np.nonzero(active)
    if len(pair_n) == 0:
        return empty, empty, empty, np.zeros(0), np.zeros(0)
    # np.unique(pair_s, return_inverse=True) by a mask over the slots (the same arrays, less overhead)
    present = np.zeros(num_s, bool)
    present[pair_s] = True
    slots = np.flatnonzero(present)
    slot_pos = (np.cumsum(present) - 1)[pair_s]
    xs = ex[slots]  # (A, K)
    order = np.argsort(xs, axis=1)
    flat_order = order + (np.arange(len(slots)) * num_k)[:, None]  # np.take_along_axis as a flat take
    xs_sorted = xs.take(flat_order)
    ys_sorted = ey[slots].take(flat_order).ravel()
    r_max = float(radius.max())
    lo_x = min(float(xs_sorted.min()), float(ox[active].min())) - r_max - 1.0
    span = max(float(xs_sorted.max()), float(ox[active].max())) + r_max + 1.0 - lo_x
    keys = (xs_sorted - lo_x + span * np.arange(len(slots))[:, None]).ravel()  # increasing: slot-major
    px = ox[pair_n, pair_s] - lo_x + span * slot_pos
    py = oy[pair_n, pair_s]
    pr = radius[pair_n]
    lo = np.searchsorted(keys, px - pr, side="left")
    hi = np.searchsorted(keys, px + pr, side="right")
    counts = hi - lo
    total = int(counts.sum())
    if total == 0:
        return empty, empty, empty, np.zeros(0), np.zeros(0)
    # Each pair's candidates are one contiguous run of the sorted keys: expand the runs.
    pos = np.arange(total) + np.repeat(lo - (np.cumsum(counts) - counts), counts)
    dx = keys[pos] - np.repeat(px, counts)
    dy = ys_sorted[pos] - np.repeat(py, counts)
    close = np.flatnonzero(dx * dx + dy * dy <= np.repeat(pr * pr, counts))
    pair = np.searchsorted(np.cumsum(counts), close, side="right")
    pos = pos[close]
    ego_x = dx[close] + px[pair] + lo_x - span * slot_pos[pair]
    return order.ravel()[pos], pair_s[pair], pair_n[pair], ego_x, ys_sorted[pos]


def _multiple_lanes(world: ScoringWorld, corners: F64) -> B:
    """For M ego states with corners ``(M, 4, 2)`` (local): in multiple lanes (PDM): more than one lane /
    connector holds a corner and none holds all four."""
    m = len(corners)
    if m == 0:
        return np.zeros(0, bool)
    tree, polygons = _lane_index(world.map_api)
    pts = corners.reshape(-1, 2) + world.origin
    point, seg = tree.query(shapely.points(pts))  # bounding-box candidates, then the exact test
    inside = shapely.contains_xy(polygons[seg], pts[point, 0], pts[point, 1]) | shapely.intersects_xy(
        polygons[seg], pts[point, 0], pts[point, 1])
    point, seg = point[inside], seg[inside]
    num_seg = len(polygons)
    pair, per_pair = np.unique((point // 4) * num_seg + seg, return_counts=True)
    pair_state = pair // num_seg
    lanes = np.bincount(pair_state, minlength=m)
    all_four = np.zeros(m, bool)
    all_four[pair_state[per_pair >= 4]] = True
    return (lanes > 1) & ~all_four


@dataclass(frozen=True)
class _CollisionContext:
    """Per-call arrays shared by the chunks of :func:`_collisions_and_ttc`."""

    world: ScoringWorld
    pose: F64  # (K, T, 3) rear axle, local
    center: F64  # (K, T, 3)
    vehicle: VehicleParameters
    speed: F64  # (K, T)
    cos_h: F64  # (K, T)
    sin_h: F64
    obj_cos: F64  # (N, S_world)
    obj_sin: F64
    ego_half: tuple[float, float]
    obj_half: tuple[F64, F64]
    radius: F64  # (N,) ego + object half-diagonals
    offsets_s: F64  # (J,)
    off_steps: I64  # (J,)
    time_major: F64  # (5, T, K) centre x, centre y, cos, sin, speed: contiguous per state for the broad phase


def _overlaps(ctx: _CollisionContext, ks: I64, t0: int, t1: int, js: I64) -> tuple[I64, I64, I64, I64]:
    """Exact overlaps ``(k, t, j, n)`` of the ego boxes of trajectories ``ks`` at states ``t0..t1-1`` moved
    ahead by the offsets ``js`` with the objects at the matching times."""
    ts = np.arange(t0, t1)
    num_s = len(ts) * len(js)
    slot_t = np.repeat(ts, len(js))
    slot_j = np.tile(js, len(ts))
    tau = slot_t + ctx.off_steps[slot_j]
    tm = ctx.time_major[:, t0:t1]
    if len(ks) < ctx.time_major.shape[2]:
        tm = tm[:, :, ks]
    cx, cy, cos_h, sin_h, speed = tm[:, :, None, :]  # (T', 1, K')
    move = speed * ctx.offsets_s[js][None, :, None]  # (T', J', K') m along the heading
    ex = (cx + move * cos_h).reshape(num_s, len(ks))
    ey = (cy + move * sin_h).reshape(num_s, len(ks))
    obj = ctx.world.obj_pose
    ox, oy = obj[:, tau, 0], obj[:, tau, 1]
    k, s, n, cx, cy = _candidate_pairs(ex, ey, ox, oy, ctx.world.obj_valid[:, tau], ctx.radius)
    k, t = ks[k], slot_t[s]
    ego_i = k * ctx.speed.shape[1] + t  # flat indices: 1-D takes are much cheaper than 2-D fancy indexing
    obj_i = n * ctx.obj_cos.shape[1] + tau[s]
    slot_i = n * num_s + s
    hit = _obb_overlap(cx, cy, ctx.cos_h.take(ego_i), ctx.sin_h.take(ego_i), *ctx.ego_half, ox.take(slot_i),
                       oy.take(slot_i), ctx.obj_cos.take(obj_i), ctx.obj_sin.take(obj_i), ctx.obj_half[0].take(n),
                       ctx.obj_half[1].take(n))
    return k[hit], t[hit], slot_j[s][hit], n[hit]


def _collisions_and_ttc(world: ScoringWorld, ro: EgoRollout, pose: F64, center: F64,
                        non_drivable: B, vehicle: VehicleParameters, params: ScoringParameters,
                        chunk: int = 10, stage: _Stopwatch | None = None,
                        cos_sin: tuple[F64, F64] | None = None) -> tuple[F64, F64, F64, F64]:
    """NC ``(K,)``, TTC ``(K,)``, first at-fault collision time and first TTC-violation time (s, inf if none).

    The horizon is processed in chunks of ``chunk`` states, in time order; a trajectory leaves the TTC checks
    once it has a violation (later ones cannot change TTC or its time) and the collision checks once NC is 0.
    """
    num_k, num_t = pose.shape[:2]
    nc = np.ones(num_k)
    coll_time = np.full(num_k, np.inf)
    ttc_time = np.full(num_k, np.inf)
    num_n = world.num_objects
    if num_n == 0 or num_k == 0:
        return nc, np.ones(num_k), coll_time, ttc_time
    offsets_s = np.asarray(params.ttc_offsets_s, np.float64)
    if offsets_s[0] != 0.0:
        raise ValueError("ScoringParameters.ttc_offsets_s must start with 0.0 (the collision check itself)")
    cos_h, sin_h = cos_sin if cos_sin is not None else (np.cos(center[..., 2]), np.sin(center[..., 2]))
    ctx = _CollisionContext(
        world=world, pose=pose, center=center, vehicle=vehicle, speed=ro.velocity, cos_h=cos_h, sin_h=sin_h,
        obj_cos=np.cos(world.obj_pose[..., 2]), obj_sin=np.sin(world.obj_pose[..., 2]),
        ego_half=(0.5 * vehicle.length, 0.5 * vehicle.width),
        obj_half=(0.5 * world.obj_size[:, 0], 0.5 * world.obj_size[:, 1]),
        radius=world.obj_radius + 0.5 * float(np.hypot(vehicle.length, vehicle.width)),
        offsets_s=offsets_s, off_steps=np.rint(offsets_s / world.dt).astype(np.int64),
        time_major=np.stack([center[..., 0].T, center[..., 1].T, cos_h.T, sin_h.T, ro.velocity.T]))
    stage = stage or _Stopwatch(None)
    never = np.iinfo(np.int64).max
    first = np.full((num_k, num_n), never)  # state of each object's first contact per trajectory
    projected = np.arange(1, len(offsets_s))
    for t0 in range(0, num_t, chunk):
        t1 = min(t0 + chunk, num_t)
        nc_active = np.flatnonzero(nc > 0.0)
        ttc_active = ttc_time == np.inf  # (K,) a violation found earlier cannot be improved on
        k, t, j, n = _overlaps(ctx, nc_active, t0, t1, np.zeros(1, np.int64))
        if ttc_active.any() and len(projected):
            kp, tp, jp, np_ = _overlaps(ctx, np.flatnonzero(ttc_active), t0, t1, projected)
            k, t, j, n = (np.concatenate(a) for a in ((k, kp), (t, tp), (j, jp), (n, np_)))
        stage("overlaps")
        c0 = np.flatnonzero(j == 0)
        if len(c0):
            _classify_contacts(ctx, k[c0], t[c0], n[c0], first, non_drivable, nc, coll_time, params)
        ttc_time = np.minimum(ttc_time, coll_time)  # an at-fault collision is a TTC violation
        stage("collision_rules")
        live = ttc_active[k]
        _ttc_violations(ctx, k[live], t[live], j[live], n[live], first, non_drivable, ttc_time, params)
        stage("ttc_rules")
    ttc = (ttc_time == np.inf).astype(np.float64)
    return nc, ttc, coll_time, ttc_time


def _classify_contacts(ctx: _CollisionContext, k: I64, t: I64, n: I64, first: I64, non_drivable: B, nc: F64,
                       coll_time: F64, params: ScoringParameters) -> None:
    """Classify each object's first contact among the overlaps ``(k, t, n)`` (offset 0); update ``first``,
    ``nc`` and ``coll_time`` in place (nuPlan's collision types, PDM's scores)."""
    world = ctx.world
    num_n = world.num_objects
    fresh = first[k, n] == np.iinfo(np.int64).max
    k, t, n = k[fresh], t[fresh], n[fresh]
    if len(k) == 0:
        return
    key = k * num_n + n
    order = np.lexsort((t, key))
    _, idx = np.unique(key[order], return_index=True)
    sel = order[idx]
    k, t, n = k[sel], t[sel], n[sel]
    first[k, n] = t
    ego_stopped = np.abs(ctx.speed[k, t]) <= params.stopped_speed
    track_stopped = world.obj_is_static[n] | (world.obj_speed[n, t] <= params.stopped_speed)
    behind = _bearing(ctx.pose[k, t], world.obj_pose[n, t, :2]) > params.behind_angle
    # the front bumper: the FL-FR segment, a rectangle of half length 0 at the front of the box
    half_l = ctx.ego_half[0]
    cos_h, sin_h = ctx.cos_h[k, t], ctx.sin_h[k, t]
    bx = ctx.center[k, t, 0] + half_l * cos_h
    by = ctx.center[k, t, 1] + half_l * sin_h
    front = _obb_overlap(bx, by, cos_h, sin_h, 0.0, ctx.ego_half[1], world.obj_pose[n, t, 0], world.obj_pose[n, t, 1],
                         ctx.obj_cos[n, t], ctx.obj_sin[n, t], ctx.obj_half[0][n], ctx.obj_half[1][n])
    lateral = ~ego_stopped & ~track_stopped & ~behind & ~front
    lateral_fault = non_drivable[k, t] & lateral
    ask = np.flatnonzero(lateral & ~lateral_fault)
    lateral_fault[ask] = _multiple_lanes(world, _ego_corners(ctx.center[k[ask], t[ask]], ctx.vehicle))
    fault = ~ego_stopped & (track_stopped | (~behind & (front | lateral_fault)))
    value = np.where(world.obj_is_static[n[fault]], params.static_collision_score, 0.0)
    np.minimum.at(nc, k[fault], value)
    np.minimum.at(coll_time, k[fault], world.time_s[t[fault]])


def _ttc_violations(ctx: _CollisionContext, k: I64, t: I64, j: I64, n: I64, first: I64, non_drivable: B,
                    ttc_time: F64, params: ScoringParameters) -> None:
    """Lower ``ttc_time`` in place with the projected overlaps ``(k, t, j, n)`` that count for TTC."""
    world = ctx.world
    num_t = ctx.pose.shape[1]
    keep = (np.abs(ctx.speed[k, t]) >= params.ttc_stopped_speed) & (t < first[k, n])
    k, t, n = k[keep], t[keep], n[keep]
    angle = _bearing(ctx.pose[k, t], world.obj_pose[n, t, :2])  # where the object is now, as nuPlan
    ahead = angle < params.ahead_angle
    np.minimum.at(ttc_time, k[ahead], world.time_s[t[ahead]])
    # Sideways hits count when the ego is exposed; only those that could make the violation earlier are checked.
    maybe = np.flatnonzero(~ahead & (angle <= params.behind_angle) & (world.time_s[t] < ttc_time[k]))
    if len(maybe) == 0:
        return
    states, inv = np.unique(k[maybe] * num_t + t[maybe], return_inverse=True)
    sk, st = states // num_t, states % num_t
    exposed = non_drivable[sk, st] | world.intersection.contains(ctx.pose[sk, st, 0], ctx.pose[sk, st, 1])
    ask = np.flatnonzero(~exposed)
    exposed[ask] = _multiple_lanes(world, _ego_corners(ctx.center[sk[ask], st[ask]], ctx.vehicle))
    counts = maybe[exposed[inv]]
    np.minimum.at(ttc_time, k[counts], world.time_s[t[counts]])


def _driving_direction(center: F64, oncoming: B, dt: float, params: ScoringParameters) -> F64:
    """DDC ``(K,)`` from the centre's travel while outside the on-route lanes, over a sliding window."""
    step = np.zeros(center.shape[:2])
    step[:, 1:] = np.hypot(np.diff(center[..., 0], axis=1), np.diff(center[..., 1], axis=1))
    step[~oncoming] = 0.0
    cs = np.cumsum(step, axis=1)
    w = int(round(params.ddc_window_s / dt)) + 1  # samples in a window: [t - 1 s, t]
    window = cs.copy()
    window[:, w:] -= cs[:, :-w]
    worst = window.max(axis=1)
    return np.where(worst < params.ddc_compliance, 1.0, np.where(worst < params.ddc_violation, 0.5, 0.0))


def _traffic_light(world: ScoringWorld, center: F64, vehicle: VehicleParameters) -> F64:
    """TLC ``(K,)``: 0 if the ego box touches a red-light connector at any state."""
    tlc = np.ones(center.shape[0])
    if world.red_light_geometry is None:
        return tlc
    near = world.red_light_near.contains(center[..., 0], center[..., 1])
    ks, ts = np.nonzero(near)
    if len(ks) == 0:
        return tlc
    c = _ego_corners(center[ks, ts], vehicle)
    hit = world.red_light.contains(c[..., 0], c[..., 1]).any(-1)
    rest = np.flatnonzero(~hit)
    if len(rest):
        boxes = shapely.polygons(c[rest] + world.origin)
        hit[rest] = shapely.intersects(world.red_light_geometry, boxes)
    tlc[ks[hit]] = 0.0
    return tlc


@lru_cache(maxsize=64)
@lru_cache(maxsize=64)
def _savgol_operator(num_t: int, window: int, order: int, deriv: int, dt: float) -> F64:
    """``(T, T)`` matrix M with ``y @ M`` = scipy's Savitzky-Golay filter of rows ``y`` (mode 'interp').

    The filter (edges included) is linear in the signal, so filtering the identity gives its matrix. Cached
    (read-only): the same few operators serve every call.
    """
    window = min(window, num_t)
    order = min(order, window - 1)
    out = np.ascontiguousarray(savgol_filter(np.eye(num_t), window, order, deriv=deriv, delta=dt, axis=-1))
    out.flags.writeable = False
    return out


@lru_cache(maxsize=16)
def _yaw_operator(num_t: int, dt: float) -> F64:
    """``(T, 2T)``: yaw rate and yaw acceleration operators side by side (one product for both)."""
    out = np.concatenate([_savgol_operator(num_t, 5, 2, 1, dt), _savgol_operator(num_t, 5, 3, 2, dt)], axis=1)
    out.flags.writeable = False
    return out


def comfort_scores(ro: EgoRollout, dt: float, vehicle: VehicleParameters = PACIFICA,
                   params: ScoringParameters = DEFAULT_SCORING) -> F64:
    """Comfort ``(K,)``: nuPlan's six series (batched; conventions of :mod:`sim.metrics.comfort`), all strictly
    inside their bounds. Every Savitzky-Golay filter is one matrix product (:func:`_savgol_operator`)."""
    num_k, num_t = ro.pose.shape[:2]
    if num_k == 0:
        return np.zeros(0)
    op = partial(_savgol_operator, num_t, dt=dt)
    ax = np.ascontiguousarray(ro.acceleration[..., 0])
    ay = np.ascontiguousarray(ro.acceleration[..., 1])
    w = np.ascontiguousarray(ro.yaw_rate)
    d = vehicle.rear_axle_to_center
    signals = np.empty((3 * num_k, num_t))  # rows: centre lon accel, rear-axle accel magnitude, lateral accel
    signals[:num_k] = ax + d * w * w
    signals[:num_k, 1:] += d * np.diff(w, axis=1) / dt  # angular acceleration, 0 at the first sample
    np.hypot(ax, ay, out=signals[num_k:2 * num_k])
    rows = 3 * num_k
    if ay.any():
        signals[2 * num_k:] = ay
    else:  # bicycle rollouts have no lateral acceleration: its filtered series is 0
        rows = 2 * num_k
    accel = np.zeros((3 * num_k, num_t))
    accel[:rows] = np.round(signals[:rows] @ op(8, 2, 0), 8)
    jerks = np.round(accel[:2 * num_k] @ op(15, 2, 1), 8)  # lon jerk, jerk of the magnitude
    h = ro.pose[..., 2]
    step = np.diff(h, axis=1)
    step -= 2.0 * np.pi * np.round(step / (2.0 * np.pi))  # nuPlan's phase unwrap
    heading = np.empty((num_k, num_t))
    heading[:, 0] = h[:, 0]
    np.cumsum(step, axis=1, out=heading[:, 1:])
    heading[:, 1:] += h[:, :1]
    yaw = np.round(heading @ _yaw_operator(num_t, dt), 8)

    def inside(x: F64, low: float, high: float) -> B:
        return (x.min(axis=1) > low) & (x.max(axis=1) < high)

    lon, lat = accel[:num_k], accel[2 * num_k:]
    ok = inside(lon, params.min_lon_accel, params.max_lon_accel)
    ok &= inside(lat, -params.max_abs_lat_accel, params.max_abs_lat_accel)
    ok &= inside(jerks[:num_k], -params.max_abs_lon_jerk, params.max_abs_lon_jerk)
    ok &= inside(jerks[num_k:], -params.max_abs_jerk, params.max_abs_jerk)
    ok &= inside(yaw[:, :num_t], -params.max_abs_yaw_rate, params.max_abs_yaw_rate)
    ok &= inside(yaw[:, num_t:], -params.max_abs_yaw_accel, params.max_abs_yaw_accel)
    return ok.astype(np.float64)


class _Stopwatch:
    """Accumulates CPU seconds per named stage into a dict (no-op without one)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        # The CPU clock is a system call: only read it when timings are wanted.
        self.start = self.last = process_time() if timings is not None else 0.0

    def __call__(self, name: str) -> None:
        if self.timings is not None:
            now = process_time()
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
            self.last = now

    def finish(self) -> None:
        if self.timings is not None:
            self.timings["total"] = process_time() - self.start


def score_trajectories(
    states: object,
    world: ScoringWorld,
    vehicle: VehicleParameters = PACIFICA,
    *,
    params: ScoringParameters = DEFAULT_SCORING,
    reference_progress: float | None = None,
    timings: dict[str, float] | None = None,
) -> PDMScores:
    """Score K simulated ego rollouts ``(K, T+1)`` (see :func:`as_rollout`) against ``world``.

    ``states`` must have ``world.num_steps`` states per trajectory at ``world.dt``, index 0 = now.
    ``reference_progress``: an extra best-progress candidate for EP (see :func:`normalize_progress`).
    ``timings``: if given, filled with CPU seconds (``time.process_time``) per stage: ``boxes``,
    ``drivable_area``, ``direction_and_lights``, ``overlaps`` (broad + narrow phase, shared by NC and TTC),
    ``collision_rules``, ``ttc_rules``, ``progress``, ``comfort``, ``total``.
    """
    stage = _Stopwatch(timings)
    ro = as_rollout(states, world.dt)
    num_k, num_t = ro.pose.shape[:2]
    if num_t != world.num_steps:
        raise DataError(None, f"ego rollouts have {num_t} states but the scoring world has {world.num_steps}",
                        "rollouts on the world's time grid (T+1 states)")
    pose = ro.pose - np.array([world.origin[0], world.origin[1], 0.0])
    cos_h, sin_h = np.cos(pose[..., 2]), np.sin(pose[..., 2])  # shared by the centres and the collision pass
    center = _ego_centers(pose, vehicle, cos_h, sin_h)
    scores = np.ones((num_k, len(RULES)))
    stage("boxes")

    # Corners are only needed where the box is not surely inside (the raster's core around the centre).
    non_drivable = np.zeros((num_k, num_t), bool)
    ks, ts = np.nonzero(~world.drivable.in_core(center[..., 0], center[..., 1]))
    corner_x, corner_y = _ego_corners_xy(center[ks, ts], vehicle)
    non_drivable[ks, ts] = ~world.drivable.contains(corner_x, corner_y).all(-1)
    scores[:, DAC] = (~non_drivable.any(1)).astype(np.float64)
    stage("drivable_area")
    oncoming = ~world.on_route.contains(center[..., 0], center[..., 1])
    scores[:, DDC] = _driving_direction(center, oncoming, world.dt, params)
    scores[:, TLC] = _traffic_light(world, center, vehicle)
    stage("direction_and_lights")

    # Small batches (a planner's proposals) in one pass: the per-chunk overhead would exceed what dropping
    # settled trajectories saves. The outcome does not depend on the chunk size.
    chunk = num_t if num_k <= ONE_PASS_MAX_K else 10
    nc, ttc, coll_time, ttc_time = _collisions_and_ttc(world, ro, pose, center, non_drivable, vehicle, params,
                                                       chunk=chunk, stage=stage, cos_sin=(cos_h, sin_h))
    scores[:, NC], scores[:, TTC] = nc, ttc

    along = project_on_centerline(world, center[:, [0, -1], :2]).reshape(num_k, 2)
    raw = np.maximum(along[:, 1] - along[:, 0], 0.0)
    mult = np.prod(scores[:, [RULES.index(r) for r in PDM_MULTIPLIERS]], axis=1)
    scores[:, EP] = normalize_progress(raw, mult, params.progress_threshold, reference_progress)
    stage("progress")

    scores[:, COMFORT] = comfort_scores(ro, world.dt, vehicle, params)
    stage("comfort")
    stage.finish()
    return PDMScores(scores, aggregate(scores), raw, coll_time, ttc_time)
