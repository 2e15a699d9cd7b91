"""Small hand-built nuPlan maps (as :class:`MapLayers`) for tests, examples and benchmarks.

:func:`junction_layers` is one signalled 4-way junction: four arms, each a road with two inbound and two
outbound lanes (3.5 m), 16 lane connectors (straight, left, right), crosswalks, walkways, stop polygons,
baseline paths, boundaries, road segments, one car park. :func:`tile_layers` copies a map on a grid (ids
offset per copy) to make a town-sized map for benchmarks.

Conventions follow nuPlan: right-hand traffic; ``lane_index`` 0 is the leftmost lane of a lane group; a
connector goes from ``exit_lane_fid`` (the lane it leaves) to ``entry_lane_fid`` (the lane it enters);
``traffic_light_stop_line_fids`` lists the stop polygons of signalled connectors (right turns are unsignalled).
"""

from __future__ import annotations

import numpy as np
import shapely

from sim.nuplan_map.layers import LAYER_SCHEMA, FeatureTable, MapLayers

LANE_WIDTH = 3.5
JUNCTION_HALF = 10.0  # the intersection square is [-10, 10]^2 around the origin
ARM_LENGTH = 50.0  # arms run from r = 10 m to r = 60 m
#: A UTM-like origin (Las Vegas, zone 11N) so that coordinates have realistic magnitudes.
DEFAULT_ORIGIN = (664_000.0, 3_997_000.0)
#: StopLineType values (nuPlan): PED_CROSSING 0, TRAFFIC_LIGHT 2.
PED_CROSSING, TRAFFIC_LIGHT = 0, 2


class _Table:
    """Row accumulator for one layer."""

    def __init__(self, name: str, first_fid: int) -> None:
        self.name, self.next_fid = name, first_fid
        self.fid: list[int] = []
        self.geometry: list[object] = []
        self.cols: dict[str, list] = {c: [] for c in LAYER_SCHEMA[name][1]}

    def add(self, geometry: object, **cols: object) -> int:
        fid = self.next_fid
        self.next_fid += 1
        self.fid.append(fid)
        self.geometry.append(geometry)
        for c, values in self.cols.items():
            values.append(cols.get(c, _MISSING[LAYER_SCHEMA[self.name][1][c]]))
        return fid

    def table(self) -> FeatureTable:
        dtypes = {"int": np.int64, "float": np.float64, "str": object}
        kinds = LAYER_SCHEMA[self.name][1]
        return FeatureTable(np.array(self.fid, np.int64), np.array(self.geometry + [None], object)[:-1],
                            {c: np.array(v, dtypes[kinds[c]]) for c, v in self.cols.items()})


_MISSING = {"int": -1, "float": np.nan, "str": ""}


def _bezier(p: np.ndarray, dp: np.ndarray, q: np.ndarray, dq: np.ndarray, n: int = 12) -> shapely.LineString:
    """Quadratic Bezier from ``p`` (heading ``dp``) to ``q`` (heading ``dq``); a straight line if parallel."""
    a = np.array([dp, -dq]).T
    if abs(np.linalg.det(a)) < 1e-9:
        return shapely.LineString(np.linspace(p, q, n))
    s = np.linalg.solve(a, q - p)[0]
    c = p + s * dp
    t = np.linspace(0.0, 1.0, n)[:, None]
    return shapely.LineString((1 - t) ** 2 * p + 2 * (1 - t) * t * c + t**2 * q)


def junction_layers(origin: tuple[float, float] = DEFAULT_ORIGIN, location: str = "us-nv-las-vegas-strip",
                    version: str = "9.15.1915", crs: str = "epsg:32611") -> MapLayers:
    """One signalled 4-way junction centred at ``origin`` (UTM metres). 16 lanes, 16 connectors.

    Arm ``k`` points along ``(cos k*90deg, sin k*90deg)``. The speed limit of arm 3 is unknown (NaN).
    Ids: lanes 100+, lane groups 200+, connectors 300+, lane-group connectors 400+, boundaries 500+,
    baseline paths 600+, stop polygons 700+, crosswalks 800+, walkways 900+, road segments 1000+,
    intersection 1100, car park 1200.
    """
    o = np.asarray(origin, dtype=np.float64)
    w, r0, r1 = LANE_WIDTH, JUNCTION_HALF, JUNCTION_HALF + ARM_LENGTH
    t = {name: _Table(name, first) for name, first in [
        ("lanes_polygons", 100), ("lane_groups_polygons", 200), ("lane_connectors", 300),
        ("gen_lane_connectors_scaled_width_polygons", 300), ("lane_group_connectors", 400),
        ("boundaries", 500), ("baseline_paths", 600), ("stop_polygons", 700), ("crosswalks", 800),
        ("walkways", 900), ("road_segments", 1000), ("intersections", 1100), ("carpark_areas", 1200),
        ("generic_drivable_areas", 1300)]}

    def rect(u: np.ndarray, n: np.ndarray, ra: float, rb: float, la: float, lb: float) -> shapely.Polygon:
        """Rectangle in arm coordinates: radial ``ra..rb`` along ``u``, lateral ``la..lb`` along ``n``."""
        pts = [o + r * u + lat * n for r, lat in [(ra, la), (rb, la), (rb, lb), (ra, lb)]]
        return shapely.orient_polygons(shapely.Polygon(pts))

    intersection_fid = t["intersections"].add(shapely.box(*(o - r0), *(o + r0)))
    inbound: dict[int, tuple[int, list[int], int]] = {}  # arm -> (group fid, lane fids, stop polygon fid)
    outbound: dict[int, tuple[int, list[int]]] = {}
    arm_axes = []
    for k in range(4):
        u = np.array([np.cos(k * np.pi / 2), np.sin(k * np.pi / 2)]).round(12)
        n = np.array([-u[1], u[0]])  # left of u
        arm_axes.append((u, n))
        speed = np.nan if k == 3 else 13.4
        for direction, side in (("in", 1.0), ("out", -1.0)):
            # Inbound lanes drive along -u, on the +n side; outbound along +u, on the -n side.
            group_poly = rect(u, n, r0, r1, 0.0, side * 2 * w)
            group = t["lane_groups_polygons"].add(group_poly)
            edges = [t["boundaries"].add(shapely.LineString(
                [o + (r1 if direction == "in" else r0) * u + side * j * w * n,
                 o + (r0 if direction == "in" else r1) * u + side * j * w * n])) for j in range(3)]
            lanes = []
            for idx in range(2):
                lat = side * (idx + 0.5) * w
                a, b = (r1, r0) if direction == "in" else (r0, r1)
                line = shapely.LineString(np.linspace(o + a * u + lat * n, o + b * u + lat * n, 11))
                lane = t["lanes_polygons"].next_fid
                t["lanes_polygons"].add(rect(u, n, r0, r1, side * idx * w, side * (idx + 1) * w), lane_fid=lane,
                                        lane_group_fid=group, lane_index=idx, left_boundary_fid=edges[idx],
                                        right_boundary_fid=edges[idx + 1], speed_limit_mps=speed)
                t["baseline_paths"].add(line, lane_fid=lane)
                lanes.append(lane)
            if direction == "in":
                stop = t["stop_polygons"].add(rect(u, n, r0 - 0.5, r0 + 0.5, 0.0, 2 * w),
                                              stop_polygon_type_fid=TRAFFIC_LIGHT)
                t["stop_polygons"].add(rect(u, n, r0 + 4.5, r0 + 5.5, 0.0, 2 * w),
                                       stop_polygon_type_fid=PED_CROSSING)
                inbound[k] = (group, lanes, stop)
            else:
                outbound[k] = (group, lanes)
        t["road_segments"].add(rect(u, n, r0, r1, -2 * w, 2 * w))
        t["crosswalks"].add(rect(u, n, r0 + 1.0, r0 + 4.0, -2 * w - 0.5, 2 * w + 0.5))
        for side in (1.0, -1.0):
            t["walkways"].add(rect(u, n, r0, r1, side * (2 * w + 0.5), side * (2 * w + 2.5)))

    for a in range(4):
        ua, na = arm_axes[a]
        group_in, lanes_in, stop = inbound[a]
        for b, turn in (((a + 2) % 4, "straight"), ((a + 3) % 4, "left"), ((a + 1) % 4, "right")):
            ub, nb = arm_axes[b]
            group_out, lanes_out = outbound[b]
            lgc = t["lane_group_connectors"].next_fid
            pairs = {"straight": [(0, 0), (1, 1)], "left": [(0, 0)], "right": [(1, 1)]}[turn]
            polys = []
            for i, j in pairs:
                p = o + r0 * ua + (i + 0.5) * w * na
                q = o + r0 * ub - (j + 0.5) * w * nb
                line = _bezier(p, -ua, q, ub)
                poly = shapely.buffer(line, w / 2, cap_style="flat")
                polys.append(poly)
                left = t["boundaries"].add(shapely.offset_curve(line, w / 2))
                right = t["boundaries"].add(shapely.offset_curve(line, -w / 2))
                fid = t["lane_connectors"].add(
                    line, exit_lane_fid=lanes_in[i], entry_lane_fid=lanes_out[j], lane_group_connector_fid=lgc,
                    speed_limit_mps=8.9, traffic_light_stop_line_fids="" if turn == "right" else str(stop),
                    intersection_fid=intersection_fid)
                t["gen_lane_connectors_scaled_width_polygons"].add(
                    poly, lane_connector_fid=fid, left_boundary_fid=left, right_boundary_fid=right)
                t["baseline_paths"].add(line, lane_connector_fid=fid)
            t["lane_group_connectors"].add(shapely.union_all(polys), from_lane_group_fid=group_in,
                                           to_lane_group_fid=group_out, intersection_fid=intersection_fid)

    t["carpark_areas"].add(shapely.box(*(o + 20.0), *(o + 40.0)))
    return MapLayers(location=location, version=version, crs=crs,
                     layers={name: tab.table() for name, tab in t.items()} | {
                         name: _Table(name, 1).table() for name in LAYER_SCHEMA if name not in t})


#: Columns ending in ``_fid`` that hold a type, not an id (not offset when tiling).
_TYPE_COLUMNS = {"stop_polygon_type_fid"}


def tile_layers(layers: MapLayers, nx: int, ny: int, spacing: float, id_stride: int = 10_000) -> MapLayers:
    """``nx * ny`` copies of ``layers`` on a grid ``spacing`` metres apart; copy ``c`` adds ``c * id_stride`` to
    every fid and id column (``*_fid`` ints and ``traffic_light_stop_line_fids``). Ids must be < ``id_stride``.
    """
    out: dict[str, FeatureTable] = {}
    for name, table in layers.layers.items():
        fids, geoms, cols = [], [], {c: [] for c in table.columns}
        for c_idx, (ix, iy) in enumerate((ix, iy) for iy in range(ny) for ix in range(nx)):
            off = c_idx * id_stride
            fids.append(table.fid + off)
            geoms.append(shapely.transform(table.geometry, lambda xy, ix=ix, iy=iy: xy + [ix * spacing, iy * spacing]))
            for c, v in table.columns.items():
                if c.endswith("_fid") and c not in _TYPE_COLUMNS and np.issubdtype(v.dtype, np.integer):
                    cols[c].append(np.where(v >= 0, v + off, v))
                elif c == "traffic_light_stop_line_fids":
                    cols[c].append(np.array([",".join(str(int(s) + off) for s in x.split(",")) if x else ""
                                             for x in v], dtype=object))
                else:
                    cols[c].append(v)
        out[name] = FeatureTable(np.concatenate(fids), np.concatenate(geoms),
                                 {c: np.concatenate(v) for c, v in cols.items()})
    return MapLayers(layers.location, layers.version, layers.crs, out)
