"""The synthetic town: a seeded road network with lanes, connectors, signals, crosswalks, sidewalks, parking.

Layout (right-hand traffic; x east, y north; ``N1`` at the local origin, then shifted to UTM-like coordinates)::

                 north-1            north-2
                    |                  |
   W0 ===========  N1 ~~~~~ curve ~~~~ N2 ========= N3 (merge zone) ========== E0
     parking strip  |                              //
                 south-1          on-ramp  =======//

- the arterial (2 lanes each way) runs W0 - N1 - N2 - N3 - E0, with a bowed (curved) section between N1 and N2
  and a parking strip along its eastbound edge between W0 and N1;
- N1 is a signalised 4-way intersection, N2 a signalised T intersection (crosswalks on every arm, stop lines
  per inbound lane, straight / left / right connectors, permissive lefts);
- N3 is a merge zone where a one-lane on-ramp joins the rightmost eastbound lane;
- sidewalks (walkways) run along every road except the ramp.

Lengths, lane width, lanes of side streets, curvature, skew, speed limits and signal timings are drawn from the
seed. Segments (lanes and connectors) carry dense centrelines (0.5 m) that drivers follow; ``layers.py`` turns
the town into nuPlan's map layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely

from sim.synth.curves import (
    arc_length,
    bump_road,
    curvature,
    cut,
    headings,
    offset,
    quintic_hermite,
    resample,
)

F64 = npt.NDArray[np.float64]

#: UTM zone 11N (Las Vegas), like nuPlan's ``us-nv-las-vegas-strip``.
CRS = "+proj=utm +zone=11 +datum=WGS84 +units=m +no_defs"
MAP_VERSION = "1.0.0"
STEP = 0.5  # centreline vertex spacing, m
CROSSWALK_WIDTH = 4.0
#: Extra set-back of the arms at signalised junctions: right-turn connectors get radii of about 8 m, which nuPlan's
#: LQR tracker follows within the lane (at 5 m radius it swings out by up to 1 m after the turn).
JUNCTION_EXTRA_M = 3.0
SIDEWALK_WIDTH = 2.5
PARKING_WIDTH = 2.6

# Id ranges per layer (also unique across layers, so a route id names one thing).
_FID_BASE = {"lane": 1000, "lane_group": 3000, "connector": 5000, "lane_group_connector": 8000,
             "baseline": 10000, "boundary": 20000, "intersection": 30000, "crosswalk": 31000,
             "walkway": 32000, "stop": 33000, "carpark": 34000, "road_segment": 35000, "generic": 36000}


@dataclass
class Segment:
    """A lane or a lane connector: the unit drivers follow.

    ``xy`` ``(P, 2)`` centreline at ~0.5 m spacing, ``heading`` / ``kappa`` ``(P,)``, ``s`` ``(P,)`` arc length.
    ``roadblock`` is the lane group (or lane-group connector) fid; ``lane_index`` 0 = leftmost (-1 connectors).
    ``phase`` is the signal phase that gives it green at its node (-1: unsignalled); ``turn`` one of
    straight / left / right / merge for connectors; ``priority`` 2 straight, 1 right, 0 left or merging.
    """

    idx: int
    fid: int
    is_connector: bool
    roadblock: int
    lane_index: int
    xy: F64
    width: float
    speed_limit: float
    left_edge: F64
    right_edge: F64
    left_boundary: int = -1
    right_boundary: int = -1
    succ: list[int] = field(default_factory=list)
    pred: list[int] = field(default_factory=list)
    left: int = -1
    right: int = -1
    node: int = -1
    phase: int = -1
    turn: str = ""
    priority: int = 2
    stop_fid: int = -1
    road: int = -1

    def __post_init__(self) -> None:
        self.s = arc_length(self.xy)
        self.heading = headings(self.xy)
        self.kappa = curvature(self.xy)
        self.length = float(self.s[-1])
        self.polygon = shapely.Polygon(np.concatenate([self.left_edge, self.right_edge[::-1]]))


@dataclass
class Road:
    """A two-way (or one-way) road between two nodes along a reference polyline (the centre divider)."""

    name: str
    kind: str  # arterial / side / ramp
    ref: F64
    node_a: int
    node_b: int
    n_fwd: int
    n_bwd: int
    width: float
    speed: float
    one_way: bool = False
    trim_a: float = 0.0
    trim_b: float = 0.0
    ref_trim: F64 | None = None
    rb_fwd: int = -1
    rb_bwd: int = -1
    lanes_fwd: list[int] = field(default_factory=list)
    lanes_bwd: list[int] = field(default_factory=list)

    def lane_offset(self, k: int, forward: bool) -> float:
        """Lateral offset (left positive, w.r.t. the a->b direction) of lane ``k`` of a direction."""
        if self.one_way:
            return -(k + 0.5) * self.width + self.n_fwd * self.width / 2.0
        return -(k + 0.5) * self.width if forward else (k + 0.5) * self.width

    @property
    def half_width(self) -> float:
        if self.one_way:
            return self.n_fwd * self.width / 2.0
        return max(self.n_fwd, self.n_bwd) * self.width


@dataclass
class Node:
    idx: int
    kind: str  # signal / merge / end
    pos: F64
    fid: int = -1
    polygon: object = None
    green: tuple[float, ...] = ()  # green time per phase, s
    yellow: float = 3.5
    all_red: float = 1.5
    offset: float = 0.0  # cycle offset, s


@dataclass
class Roadblock:
    fid: int
    is_connector: bool
    segments: list[int]
    polygon: object
    from_rb: int = -1
    to_rb: int = -1
    node: int = -1


@dataclass
class Crosswalk:
    fid: int
    polygon: object
    node: int
    road: int
    path: F64  # (2, 2) from one kerb to the other
    blocked_phase: int  # pedestrians may cross while this phase (the crossing traffic's) is red


@dataclass
class Town:
    seed: int
    location: str
    origin: F64
    segments: list[Segment]
    roads: list[Road]
    nodes: list[Node]
    roadblocks: dict[int, Roadblock]
    crosswalks: list[Crosswalk]
    walkways: list[object]
    stop_polygons: dict[int, object]
    carparks: list[object]
    parking_spots: F64  # (K, 3) centre poses of parking spots
    sidewalk_paths: list[F64]
    road_polygons: list[object]
    boundaries: dict[int, F64]
    conflicts: dict[int, list[tuple[int, float, float, int]]]
    drivable: object
    anchors: dict[str, object]

    def seg_by_fid(self, fid: int) -> Segment:
        return self.segments[self._fid_index()[fid]]

    def _fid_index(self) -> dict[int, int]:
        if not hasattr(self, "_fid_map"):
            self._fid_map = {s.fid: s.idx for s in self.segments}
        return self._fid_map

    def lane_route(self, start: int, roadblocks: list[int]) -> list[int] | None:
        """Segment indices from lane ``start`` along ``roadblocks`` (which begins with start's roadblock).

        At each step the successor in the next roadblock that keeps the lane index (or is closest) is taken;
        None if the lane cannot follow the roadblock route.
        """
        path = [start]
        for rb in roadblocks[1:]:
            cur = self.segments[path[-1]]
            options = [j for j in cur.succ if self.segments[j].roadblock == rb]
            if not options:
                return None
            path.append(options[0])
        return path


class _Fids:
    def __init__(self) -> None:
        self.next = dict(_FID_BASE)

    def __call__(self, kind: str) -> int:
        fid = self.next[kind]
        self.next[kind] += 1
        return fid


def _pose_at(points: F64, end: bool) -> tuple[F64, float]:
    h = headings(points)
    return (points[-1], float(h[-1])) if end else (points[0], float(h[0]))


def build_town(seed: int) -> Town:
    """Draw a town from ``seed`` (pure function of the seed)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x70AD]))
    fids = _Fids()
    w = float(rng.uniform(3.3, 3.7))
    n_side = int(rng.choice([1, 2], p=[0.6, 0.4]))
    v_art = float(rng.choice([13.41, 15.65]))
    v_side = float(rng.choice([11.18, 13.41]))
    # Arms are long enough for ~20 s of driving before the ego reaches an intersection.
    l_w, l_12, l_23 = rng.uniform(480, 540), rng.uniform(170, 220), rng.uniform(150, 190)
    l_m, l_e = rng.uniform(45, 60), rng.uniform(320, 380)
    l_n1, l_s1, l_n2 = rng.uniform(330, 370), rng.uniform(330, 370), rng.uniform(260, 300)
    bend = rng.uniform(8, 18)
    skew = np.deg2rad(rng.uniform(-8, 8))
    origin = np.array([664_000.0 + 10.0 * rng.integers(0, 400), 3_999_000.0 + 10.0 * rng.integers(0, 200)])

    x3 = l_12 + l_23
    local = {
        "W0": (-l_w, 0.0), "N1": (0.0, 0.0), "N2": (l_12, 0.0), "N3": (x3, 0.0), "E0": (x3 + l_e, 0.0),
        "N1n": (l_n1 * np.sin(-skew), l_n1 * np.cos(skew)), "N1s": (-l_s1 * np.sin(-skew), -l_s1 * np.cos(skew)),
        "N2n": (l_12, l_n2),
    }
    kinds = {"W0": "end", "N1": "signal", "N2": "signal", "N3": "merge", "E0": "end", "N1n": "end",
             "N1s": "end", "N2n": "end", "R0": "end"}
    ramp_end = np.array([x3 - l_m / 2, -(2 + 0.5) * w])
    local["R0"] = (ramp_end[0] - rng.uniform(170, 190), ramp_end[1] - rng.uniform(220, 250))
    names = list(local)
    nodes = [Node(i, kinds[n], np.asarray(local[n], float) + origin) for i, n in enumerate(names)]
    nid = {n: i for i, n in enumerate(names)}
    for nd in nodes:
        if nd.kind == "signal":
            nd.fid = fids("intersection")
            nd.green = (float(rng.uniform(18, 28)), float(rng.uniform(12, 20)))
            nd.yellow = float(rng.uniform(3.5, 4.0))
            nd.offset = float(rng.uniform(0, 40))
        elif nd.kind == "merge":
            nd.fid = fids("intersection")

    def pos(n: str) -> F64:
        return nodes[nid[n]].pos

    def straight(a: str, b: str) -> F64:
        return resample(np.stack([pos(a), pos(b)]), STEP)

    roads = [
        Road("arterial-west", "arterial", straight("W0", "N1"), nid["W0"], nid["N1"], 2, 2, w, v_art),
        Road("arterial-curve", "arterial", bump_road(pos("N1"), pos("N2"), bend), nid["N1"], nid["N2"], 2, 2, w,
             v_art),
        Road("arterial-mid", "arterial", straight("N2", "N3"), nid["N2"], nid["N3"], 2, 2, w, v_art),
        Road("arterial-east", "arterial", straight("N3", "E0"), nid["N3"], nid["E0"], 2, 2, w, v_art),
        Road("north-1", "side", straight("N1", "N1n"), nid["N1"], nid["N1n"], n_side, n_side, w, v_side),
        Road("south-1", "side", straight("N1", "N1s"), nid["N1"], nid["N1s"], n_side, n_side, w, v_side),
        Road("north-2", "side", straight("N2", "N2n"), nid["N2"], nid["N2n"], n_side, n_side, w, v_side),
    ]
    ramp_ref = resample(quintic_hermite(pos("R0"), np.deg2rad(rng.uniform(75, 85)), ramp_end + origin, 0.0,
                                        scale=1.2), STEP)
    roads.append(Road("on-ramp", "ramp", ramp_ref, nid["R0"], nid["N3"], 1, 0, w, 13.41, one_way=True))

    # Trim roads at intersections: each arm stops where the crossing roads (plus a crosswalk) begin.
    for road in roads:
        for end in ("a", "b"):
            node = nodes[road.node_a if end == "a" else road.node_b]
            trim = 0.0
            if node.kind == "signal":
                others = [r for r in roads if r is not road and node.idx in (r.node_a, r.node_b)]
                trim = max(r.half_width for r in others) + 2.0 + CROSSWALK_WIDTH + 1.0 + JUNCTION_EXTRA_M
            elif node.kind == "merge" and road.kind != "ramp":
                trim = l_m / 2
            setattr(road, f"trim_{end}", trim)
        length = arc_length(road.ref)[-1]
        road.ref_trim = cut(road.ref, road.trim_a, length - road.trim_b, STEP)

    segments: list[Segment] = []
    boundaries: dict[int, F64] = {}
    roadblocks: dict[int, Roadblock] = {}
    road_polys = []
    for ri, road in enumerate(roads):
        ref = road.ref_trim
        bnd_fwd = {}
        bnd_bwd = {}
        div = fids("boundary")
        boundaries[div] = offset(ref, 0.0) if not road.one_way else offset(ref, road.half_width)
        bnd_fwd[0] = bnd_bwd[0] = div
        for j in range(1, road.n_fwd + 1):
            b = fids("boundary")
            boundaries[b] = offset(ref, road.lane_offset(j - 1, True) - w / 2)
            bnd_fwd[j] = b
        for j in range(1, road.n_bwd + 1):
            b = fids("boundary")
            boundaries[b] = offset(ref, j * w)[::-1].copy()
            bnd_bwd[j] = b
        for forward, n in ((True, road.n_fwd), (False, road.n_bwd)):
            if n == 0:
                continue
            rb = fids("lane_group")
            ids = []
            for k in range(n):
                off = road.lane_offset(k, forward)
                xy = offset(ref, off)
                left = offset(ref, off + w / 2)
                right = offset(ref, off - w / 2)
                if not forward:
                    xy, left, right = xy[::-1].copy(), right[::-1].copy(), left[::-1].copy()
                bmap = bnd_fwd if forward else bnd_bwd
                seg = Segment(len(segments), fids("lane"), False, rb, k, xy, w, road.speed, left, right,
                              left_boundary=bmap[k], right_boundary=bmap[k + 1], road=ri)
                segments.append(seg)
                ids.append(seg.idx)
            for a, b in zip(ids[:-1], ids[1:], strict=True):
                segments[a].right, segments[b].left = b, a
            poly = shapely.union_all([segments[i].polygon for i in ids])
            roadblocks[rb] = Roadblock(rb, False, ids, _as_polygon(poly))
            if forward:
                road.rb_fwd, road.lanes_fwd = rb, ids
            else:
                road.rb_bwd, road.lanes_bwd = rb, ids
        hw = road.half_width
        if road.one_way:
            road_polys.append(shapely.Polygon(np.concatenate([offset(ref, hw), offset(ref, -hw)[::-1]])))
        else:
            road_polys.append(shapely.Polygon(np.concatenate([offset(ref, road.n_bwd * w),
                                                              offset(ref, -road.n_fwd * w)[::-1]])))

    # Connectors, stop lines, crosswalks and intersection polygons per node.
    stop_polygons: dict[int, object] = {}
    crosswalks: list[Crosswalk] = []
    conflicts: dict[int, list[tuple[int, float, float, int]]] = {}
    for node in nodes:
        if node.kind == "end":
            continue
        arms = []  # (road index, incoming lanes, outgoing lanes, outward heading, phase)
        for ri, road in enumerate(roads):
            if node.idx == road.node_b:
                _, h = _pose_at(road.ref_trim, True)
                arms.append((ri, road.lanes_fwd, road.lanes_bwd, h + np.pi))
            elif node.idx == road.node_a:
                _, h = _pose_at(road.ref_trim, False)
                arms.append((ri, road.lanes_bwd, road.lanes_fwd, h))
        conn_ids = []
        for ri_in, lanes_in, _, out_h_in in arms:
            phase = 0 if roads[ri_in].kind == "arterial" else 1
            stop_fid = -1
            for li in lanes_in:
                if node.kind == "signal":
                    stop_fid = fids("stop")
                    lane = segments[li]
                    stop_polygons[stop_fid] = _stop_polygon(lane)
                    lane.stop_fid = stop_fid
            for ri_out, _, lanes_out, out_h in arms:
                if ri_out == ri_in or not lanes_out or not lanes_in:
                    continue
                travel_in = out_h_in + np.pi
                turn_angle = float(np.angle(np.exp(1j * (out_h - travel_in))))
                if roads[ri_in].kind == "ramp":
                    if abs(turn_angle) > np.deg2rad(35):
                        continue
                    turn, pairs = "merge", [(lanes_in[-1], lanes_out[-1])]
                elif abs(turn_angle) < np.deg2rad(35):
                    turn = "straight"
                    pairs = [(lanes_in[k], lanes_out[k]) for k in range(min(len(lanes_in), len(lanes_out)))]
                elif abs(turn_angle) > np.deg2rad(150):
                    continue  # no U-turns
                elif turn_angle > 0:
                    turn, pairs = "left", [(lanes_in[0], lanes_out[0])]
                else:
                    turn, pairs = "right", [(lanes_in[-1], lanes_out[-1])]
                rbc = fids("lane_group_connector")
                ids = []
                for li, lo in pairs:
                    a, b = segments[li], segments[lo]
                    xy = resample(quintic_hermite(a.xy[-1], a.heading[-1], b.xy[0], b.heading[0],
                                                  scale=1.0 if turn in ("straight", "merge") else 0.9), STEP)
                    seg = Segment(len(segments), fids("connector"), True, rbc, -1, xy,
                                  w, min(a.speed_limit, b.speed_limit), offset(xy, w / 2), offset(xy, -w / 2),
                                  node=node.idx, phase=phase if node.kind == "signal" else -1, turn=turn,
                                  priority={"straight": 2, "right": 1, "left": 0, "merge": 0}[turn],
                                  stop_fid=a.stop_fid)
                    seg.left_boundary, seg.right_boundary = fids("boundary"), fids("boundary")
                    boundaries[seg.left_boundary], boundaries[seg.right_boundary] = seg.left_edge, seg.right_edge
                    segments.append(seg)
                    a.succ.append(seg.idx)
                    seg.pred.append(a.idx)
                    seg.succ.append(b.idx)
                    b.pred.append(seg.idx)
                    ids.append(seg.idx)
                    conn_ids.append(seg.idx)
                poly = shapely.union_all([segments[i].polygon for i in ids])
                roadblocks[rbc] = Roadblock(rbc, True, ids, _as_polygon(poly), segments[pairs[0][0]].roadblock,
                                            segments[pairs[0][1]].roadblock, node.idx)
        # Intersection polygon: hull of the arm caps and every connector.
        caps = []
        for ri, _, _, _ in arms:
            road = roads[ri]
            at_end = node.idx == road.node_b
            p, h = _pose_at(road.ref_trim, at_end)
            nrm = np.array([-np.sin(h), np.cos(h)])
            lo = -road.n_fwd * w if not road.one_way else -road.half_width
            hi = road.n_bwd * w if not road.one_way else road.half_width
            caps += [p + lo * nrm, p + hi * nrm]
        hull = shapely.union_all([shapely.MultiPoint(caps).convex_hull] + [segments[i].polygon for i in conn_ids])
        node.polygon = _as_polygon(hull).convex_hull
        if node.kind == "signal":
            for ri, _, _, out_h in arms:
                road = roads[ri]
                at_end = node.idx == road.node_b
                p, _ = _pose_at(road.ref_trim, at_end)
                toward = np.array([np.cos(out_h + np.pi), np.sin(out_h + np.pi)])
                nrm = np.array([-toward[1], toward[0]])
                hw = road.half_width + 1.0
                c0, c1 = p + 1.0 * toward, p + (1.0 + CROSSWALK_WIDTH) * toward
                poly = shapely.Polygon([c0 - hw * nrm, c1 - hw * nrm, c1 + hw * nrm, c0 + hw * nrm])
                mid = p + (1.0 + CROSSWALK_WIDTH / 2) * toward
                path = np.stack([mid - (hw + 1.0) * nrm, mid + (hw + 1.0) * nrm])
                phase = 0 if road.kind == "arterial" else 1
                crosswalks.append(Crosswalk(fids("crosswalk"), poly, node.idx, ri, path, phase))
        # Conflicts between connectors of this node: paths that cross (kind 0) or converge into the same
        # lane (kind 1, at the first point where they come closer than 2.5 m); diverging pairs need none.
        for i in conn_ids:
            for j in conn_ids:
                a, b = segments[i], segments[j]
                if i >= j or a.pred == b.pred:
                    continue
                if a.succ == b.succ:
                    pa, pb = _first_close(a.xy, b.xy, 2.5), _first_close(b.xy, a.xy, 2.5)
                    conflicts.setdefault(i, []).append((j, pa, pb, 1))
                    conflicts.setdefault(j, []).append((i, pb, pa, 1))
                    continue
                la, lb = shapely.LineString(a.xy), shapely.LineString(b.xy)
                hit = la.intersection(lb)
                if hit.is_empty:
                    continue
                pts = shapely.get_coordinates(hit)
                pa = min(la.project(shapely.Point(q)) for q in pts)
                pb = min(lb.project(shapely.Point(q)) for q in pts)
                conflicts.setdefault(i, []).append((j, float(pa), float(pb), 0))
                conflicts.setdefault(j, []).append((i, float(pb), float(pa), 0))

    # Parking strip along the eastbound edge of the west arterial.
    west = roads[0]
    ref = west.ref_trim
    length = arc_length(ref)[-1]
    park_ref = cut(ref, 30.0, length - 25.0, STEP)
    inner, outer = -2 * w, -2 * w - PARKING_WIDTH
    carpark = shapely.Polygon(np.concatenate([offset(park_ref, inner), offset(park_ref, outer)[::-1]]))
    spots_xy = offset(park_ref, (inner + outer) / 2)
    spot_s = np.arange(4.0, arc_length(park_ref)[-1] - 4.0, 6.5)
    sp_arc = arc_length(spots_xy)
    spots = np.stack([np.interp(spot_s, sp_arc, spots_xy[:, 0]), np.interp(spot_s, sp_arc, spots_xy[:, 1]),
                      np.full(len(spot_s), headings(ref)[0])], -1)

    # Sidewalks on both sides of every road but the ramp (outside the parking strip where there is one).
    road_area = shapely.union_all(road_polys + [n.polygon for n in nodes if n.polygon is not None] + [carpark])
    sidewalks, sidewalk_paths = [], []
    for ri, road in enumerate(roads):
        if road.kind == "ramp":
            continue
        ref = road.ref_trim
        length = arc_length(ref)[-1]
        ext = 1.0 + CROSSWALK_WIDTH + 2.0
        ext_a = ext if nodes[road.node_a].kind == "signal" else 0.0
        ext_b = ext if nodes[road.node_b].kind == "signal" else 0.0
        ref_x = _extend(ref, ext_a, ext_b)
        for side in (1.0, -1.0):
            base = road.n_bwd * w if side > 0 else road.n_fwd * w
            if ri == 0 and side < 0:
                base += PARKING_WIDTH
            d0, d1 = base + 0.5, base + 0.5 + SIDEWALK_WIDTH
            poly = shapely.Polygon(np.concatenate([offset(ref_x, side * d0), offset(ref_x, side * d1)[::-1]]))
            sidewalks.append(poly)
            sidewalk_paths.append(offset(ref_x, side * (d0 + d1) / 2))
    # Walkers keep off the ramp (it crosses the arterial's southern kerb line near the merge).
    ramp_poly = road_polys[-1]
    sidewalk_paths = [p for p in sidewalk_paths if not shapely.LineString(p).intersects(ramp_poly)]
    walk_area = shapely.difference(shapely.union_all(sidewalks), road_area.buffer(0.05))
    walkways = [g for g in getattr(walk_area, "geoms", [walk_area]) if g.area > 1.0]
    walkways = [shapely.simplify(g, 0.05) for g in walkways]

    drivable = shapely.union_all(road_polys + [n.polygon for n in nodes if n.polygon is not None] + [carpark])
    town = Town(seed=seed, location=f"synth-town-{seed}", origin=origin, segments=segments, roads=roads,
                nodes=nodes, roadblocks=roadblocks, crosswalks=crosswalks, walkways=walkways,
                stop_polygons=stop_polygons, carparks=[carpark], parking_spots=spots,
                sidewalk_paths=sidewalk_paths, road_polygons=road_polys, boundaries=boundaries,
                conflicts=conflicts, drivable=drivable, anchors={"node": nid})
    return town


def _extend(ref: F64, before: float, after: float) -> F64:
    """Extend a polyline straight by ``before`` / ``after`` metres at its ends."""
    h = headings(ref)
    pts = [ref]
    if before > 0:
        pts.insert(0, (ref[0] - before * np.array([np.cos(h[0]), np.sin(h[0])]))[None])
    if after > 0:
        pts.append((ref[-1] + after * np.array([np.cos(h[-1]), np.sin(h[-1])]))[None])
    return resample(np.concatenate(pts), STEP)


def _first_close(a: F64, b: F64, dist: float) -> float:
    """Arc length along ``a`` of its first vertex within ``dist`` of polyline ``b``."""
    line = shapely.LineString(b)
    d = shapely.distance(shapely.points(a), line)
    k = int(np.argmax(d < dist)) if np.any(d < dist) else len(a) - 1
    return float(arc_length(a)[k])


def _stop_polygon(lane: Segment) -> object:
    """A thin polygon across the lane end: from 0.5 m before the lane end to 1.0 m past it."""
    p, h = lane.xy[-1], lane.heading[-1]
    t = np.array([np.cos(h), np.sin(h)])
    n = np.array([-t[1], t[0]])
    hw = lane.width / 2
    a, b = p - 0.5 * t, p + 1.0 * t
    return shapely.Polygon([a - hw * n, b - hw * n, b + hw * n, a + hw * n])


def _as_polygon(geom: object) -> object:
    """A single polygon: the geometry itself, its largest part's hull if it fell apart, or its hull."""
    if geom.geom_type == "Polygon":
        return shapely.Polygon(geom.exterior)
    return geom.convex_hull
