"""Benchmark: score K = 4096 candidate trajectories (4 s at 0.1 s) against 50 objects on a city-grid map.

One core (thread counts pinned before numpy loads). Prints per-stage times of one sample (world build, LQR +
bicycle tracking, area rules, collisions + TTC, progress, comfort, total) and compares, in the same run, with
naive per-trajectory loops over a subset (extrapolated to K):
- "scorer, K=1 loop": the same vectorized scorer called once per trajectory;
- "shapely loop": a straightforward per-trajectory / per-state implementation of the collision and
  drivable-area checks with shapely polygons and an STRtree (also used to cross-check the results).

Usage: ``python benchmarks/bench_scorer.py [--k 4096] [--objects 50] [--naive 48] [--repeat 3] [--seed 0]``
Target: < 150 ms per sample in total.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import shapely  # noqa: E402

from experts.scorer import simulate  # noqa: E402
from sim.categories import Category, TrafficLightStatus  # noqa: E402
from sim.geometry import to_global  # noqa: E402
from sim.metrics.pdm_score import build_scoring_world, score_trajectories  # noqa: E402
from sim.nuplan_map.layers import FeatureTable, MapLayers  # noqa: E402
from sim.nuplan_map.map_api import MapAPI  # noqa: E402
from sim.scenario import EgoStates, Tracks  # noqa: E402
from sim.vehicle import PACIFICA  # noqa: E402

LANE_W = 3.5
BLOCK = 120.0
HALF = 2 * LANE_W + 3.0  # intersection half size (m)
ORIGIN = np.array([664000.0, 3996000.0])  # UTM-like coordinates, as nuPlan's Las Vegas map


# ------------------------------------------------------------------------------------------ a city-grid map
def _table(fids, geoms, **cols) -> FeatureTable:
    return FeatureTable(np.asarray(fids, np.int64), np.array(geoms, dtype=object),
                        {k: np.asarray(v) for k, v in cols.items()})


def _bezier(p0: np.ndarray, c: np.ndarray, p1: np.ndarray, n: int = 24) -> np.ndarray:
    u = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - u) ** 2 * p0 + 2 * (1 - u) * u * c + u**2 * p1


def city_grid_layers(size: int = 5) -> MapLayers:
    """``size`` x ``size`` signalised 4-way intersections, 2 lanes each way, straight / left / right
    connectors with curved polygons, crosswalks, sidewalks: a few hundred lanes and connectors."""
    dirs = {"E": np.array([1.0, 0.0]), "W": np.array([-1.0, 0.0]), "N": np.array([0.0, 1.0]),
            "S": np.array([0.0, -1.0])}
    right = {"E": "S", "W": "N", "N": "E", "S": "W"}  # the side a direction's lanes lie on (right-hand)
    rows: dict[str, list] = {k: [] for k in ("lane", "group", "base", "conn", "connpoly", "gconn", "road", "inter",
                                             "stop", "cross", "walk")}
    fid = iter(range(1, 10**7))
    # lanes_in[(node, dir)] = lane fids (index 0 = inner) arriving at node travelling dir; lanes_out likewise.
    lanes_in: dict = {}
    lanes_out: dict = {}
    group_of: dict = {}
    base_of: dict = {}
    for i in range(size):
        for j in range(size):
            node = np.array([i * BLOCK, j * BLOCK]) + ORIGIN
            for d, to in (("E", (i + 1, j)), ("N", (i, j + 1))):
                if to[0] >= size or to[1] >= size:
                    continue
                other = np.array([to[0] * BLOCK, to[1] * BLOCK]) + ORIGIN
                rev = {"E": "W", "N": "S"}[d]
                for dd, a, b in ((d, node, other), (rev, other, node)):
                    u = dirs[dd]
                    side = dirs[right[dd]]
                    g = next(fid)
                    fids = []
                    for idx in range(2):
                        off = side * LANE_W * (idx + 0.5)
                        p0, p1 = a + u * HALF + off, b - u * HALF + off
                        line = np.linspace(p0, p1, int(np.linalg.norm(p1 - p0) // 2) + 2)
                        lf = next(fid)
                        poly = shapely.buffer(shapely.LineString(line), LANE_W / 2, cap_style="flat")
                        rows["lane"].append((lf, poly, g, idx))
                        rows["base"].append((next(fid), shapely.LineString(line), lf, -1))
                        base_of[lf] = line
                        group_of[lf] = g
                        fids.append(lf)
                    rows["group"].append((g, shapely.union_all([r[1] for r in rows["lane"][-2:]])))
                    key_a = (tuple(np.round(a, 3)), dd)
                    key_b = (tuple(np.round(b, 3)), dd)
                    lanes_out[key_a] = fids
                    lanes_in[key_b] = fids
                if d == "E":
                    road = shapely.box(node[0] + HALF, node[1] - HALF, other[0] - HALF, node[1] + HALF)
                else:
                    road = shapely.box(node[0] - HALF, node[1] + HALF, node[0] + HALF, other[1] - HALF)
                rows["road"].append((next(fid), road))
                walk_off = np.array([0.0, 1.0]) if d == "E" else np.array([1.0, 0.0])
                for sgn in (-1, 1):
                    c0 = node + walk_off * sgn * (HALF + 1.5)
                    c1 = other + walk_off * sgn * (HALF + 1.5)
                    rows["walk"].append((next(fid), shapely.buffer(shapely.LineString([c0, c1]), 1.5,
                                                                   cap_style="flat")))
    for i in range(size):
        for j in range(size):
            node = np.array([i * BLOCK, j * BLOCK]) + ORIGIN
            key = tuple(np.round(node, 3))
            inter_id = next(fid)
            rows["inter"].append((inter_id, shapely.box(*(node - HALF), *(node + HALF))))
            for d in dirs:
                if (key, d) not in lanes_in:
                    continue
                incoming = lanes_in[(key, d)]
                stops = []
                for lf in incoming:
                    end = base_of[lf][-1]
                    sp = shapely.buffer(shapely.LineString([end - dirs[d] * 1.0, end]), LANE_W / 2, cap_style="flat")
                    s_id = next(fid)
                    rows["stop"].append((s_id, sp))
                    stops.append(s_id)
                rows["cross"].append((next(fid), shapely.buffer(shapely.LineString(
                    [node - dirs[d] * (HALF + 2.0) + dirs[right[d]] * 2 * LANE_W,
                     node - dirs[d] * (HALF + 2.0) - dirs[right[d]] * 2 * LANE_W]), 2.0, cap_style="flat")))
                left_of = {"E": "N", "N": "W", "W": "S", "S": "E"}
                for out_d, pairs in ((d, ((0, 0), (1, 1))), (left_of[d], ((0, 0),)), (right[d], ((1, 1),))):
                    if (key, out_d) not in lanes_out:
                        continue
                    outgoing = lanes_out[(key, out_d)]
                    gc = next(fid)
                    polys = []
                    for a_idx, b_idx in pairs:
                        a, b = base_of[incoming[a_idx]][-1], base_of[outgoing[b_idx]][0]
                        if out_d == d:
                            line = np.linspace(a, b, 12)
                        else:  # the heading lines cross at the control point
                            ua, ub = dirs[d], dirs[out_d]
                            m = np.array([ua, -ub]).T
                            s = np.linalg.solve(m, b - a)
                            line = _bezier(a, a + ua * s[0], b)
                        cf = next(fid)
                        poly = shapely.buffer(shapely.LineString(line), LANE_W / 2, cap_style="flat")
                        polys.append(poly)
                        rows["conn"].append((cf, shapely.LineString(line), incoming[a_idx], outgoing[b_idx], gc,
                                             str(stops[a_idx]), inter_id))
                        rows["connpoly"].append((next(fid), poly, cf))
                        rows["base"].append((next(fid), shapely.LineString(line), -1, cf))
                    rows["gconn"].append((gc, shapely.union_all(polys), group_of[incoming[0]],
                                          group_of[outgoing[0]], inter_id))

    def cols(name: str, *names: str) -> dict:
        return {n: [r[i + 2] for r in rows[name]] for i, n in enumerate(names)}

    lane = rows["lane"]
    layers = {
        "lanes_polygons": _table([r[0] for r in lane], [r[1] for r in lane], lane_fid=[r[0] for r in lane],
                                 lane_group_fid=[r[2] for r in lane], lane_index=[r[3] for r in lane],
                                 left_boundary_fid=[-1] * len(lane), right_boundary_fid=[-1] * len(lane),
                                 speed_limit_mps=[13.4] * len(lane)),
        "lane_connectors": _table([r[0] for r in rows["conn"]], [r[1] for r in rows["conn"]],
                                  exit_lane_fid=[r[2] for r in rows["conn"]],
                                  entry_lane_fid=[r[3] for r in rows["conn"]],
                                  lane_group_connector_fid=[r[4] for r in rows["conn"]],
                                  speed_limit_mps=[11.0] * len(rows["conn"]),
                                  traffic_light_stop_line_fids=np.array([r[5] for r in rows["conn"]], dtype=object),
                                  intersection_fid=[r[6] for r in rows["conn"]]),
        "gen_lane_connectors_scaled_width_polygons": _table(
            [r[0] for r in rows["connpoly"]], [r[1] for r in rows["connpoly"]],
            lane_connector_fid=[r[2] for r in rows["connpoly"]], left_boundary_fid=[-1] * len(rows["connpoly"]),
            right_boundary_fid=[-1] * len(rows["connpoly"])),
        "lane_groups_polygons": _table([r[0] for r in rows["group"]], [r[1] for r in rows["group"]]),
        "lane_group_connectors": _table([r[0] for r in rows["gconn"]], [r[1] for r in rows["gconn"]],
                                        from_lane_group_fid=[r[2] for r in rows["gconn"]],
                                        to_lane_group_fid=[r[3] for r in rows["gconn"]],
                                        intersection_fid=[r[4] for r in rows["gconn"]]),
        "baseline_paths": _table([r[0] for r in rows["base"]], [r[1] for r in rows["base"]],
                                 **cols("base", "lane_fid", "lane_connector_fid")),
        "boundaries": _table([], []),
        "intersections": _table([r[0] for r in rows["inter"]], [r[1] for r in rows["inter"]]),
        "crosswalks": _table([r[0] for r in rows["cross"]], [r[1] for r in rows["cross"]]),
        "walkways": _table([r[0] for r in rows["walk"]], [r[1] for r in rows["walk"]]),
        "stop_polygons": _table([r[0] for r in rows["stop"]], [r[1] for r in rows["stop"]],
                                stop_polygon_type_fid=[2] * len(rows["stop"])),
        "carpark_areas": _table([], []),
        "generic_drivable_areas": _table([], []),
        "road_segments": _table([r[0] for r in rows["road"]], [r[1] for r in rows["road"]]),
    }
    return MapLayers("bench-grid", "1.0", "+proj=utm +zone=11 +datum=WGS84 +units=m +no_defs", layers)


# ------------------------------------------------------------------------------------------ a scene
def scene(map_api: MapAPI, num_objects: int, rng: np.random.Generator):
    """Ego 30 m before the centre intersection, eastbound at 10 m/s, route straight through; objects on lanes
    (moving along them or parked), pedestrians and cones near the ego; lights red for the ego's approach."""
    centre = ORIGIN + 2 * BLOCK
    ego_xy = centre + np.array([-HALF - 30.0, -LANE_W * 0.5])
    s = map_api.nearest_segment(np.array([*ego_xy, 0.0]))
    ego_pose = np.array([*ego_xy, 0.0])
    ego = EgoStates(np.array([0.0]), ego_pose[None], np.array([[10.0, 0.0]]), np.zeros((1, 2)), np.zeros(1),
                    np.zeros(1))
    rb = int(map_api.seg_roadblock_id[s])
    goal = rb
    for _ in range(4):
        nxt = [r for r in map_api.roadblock_successors(goal)]
        straight = [r for r in nxt if any(abs(map_api.baseline(int(q))[-1, 2] - 0.0) < 0.1
                                          for q in map_api.roadblock_segments(r))]
        goal = (straight or nxt)[0]
    route = map_api.route_between(rb, goal)
    near = map_api.segments_near(ego_xy, 70.0)
    cats, poses, sizes, vels = [], [], [], []
    for _ in range(num_objects):
        kind = rng.uniform()
        seg = int(rng.choice(near))
        base = map_api.baseline(seg)
        p = base[rng.integers(len(base))]
        if kind < 0.7:  # vehicles: moving along their lane or parked
            v = rng.choice([0.0, rng.uniform(3.0, 14.0)], p=[0.3, 0.7])
            cats.append(Category.VEHICLE)
            sizes.append([rng.uniform(4.2, 5.5), rng.uniform(1.8, 2.2), 1.6])
            poses.append(p)
            vels.append([v * np.cos(p[2]), v * np.sin(p[2])])
        elif kind < 0.85:
            h = rng.uniform(-np.pi, np.pi)
            cats.append(Category.PEDESTRIAN)
            sizes.append([0.6, 0.6, 1.7])
            poses.append([p[0] + rng.normal(0, 2), p[1] + rng.normal(0, 2), h])
            vels.append([1.3 * np.cos(h), 1.3 * np.sin(h)])
        else:
            cats.append(Category.TRAFFIC_CONE)
            sizes.append([0.5, 0.5, 0.8])
            poses.append([p[0] + rng.normal(0, 1), p[1] + rng.normal(0, 1), 0.0])
            vels.append([0.0, 0.0])
    n = len(cats)
    tracks = Tracks(np.array([f"{i:016x}" for i in range(n)]), np.array(cats, np.int8), np.array(sizes),
                    np.array(poses)[:, None, :], np.array(vels)[:, None, :], np.ones((n, 1), bool))
    lights = {}
    for c in np.flatnonzero(map_api.seg_has_traffic_light):
        heading = map_api.baseline(int(c))[0, 2]
        east_west = abs(np.sin(heading)) < 0.5
        lights[int(map_api.seg_id[c])] = TrafficLightStatus.RED if east_west else TrafficLightStatus.GREEN
    return ego, tracks, lights, route


def vocabulary(k: int, steps: int, dt: float, v0: float, max_curvature: float = 0.12) -> np.ndarray:
    """``(K, T, 3)`` ego-frame candidate poses: constant curvature (|k| <= ``max_curvature`` 1/m) x constant
    acceleration (-5 .. +3 m/s²) profiles: a wide fan, many of them off the road or into objects."""
    n_curv = int(np.sqrt(k))
    n_acc = k // n_curv
    curv = np.linspace(-max_curvature, max_curvature, n_curv)
    acc = np.linspace(-5.0, 3.0, n_acc)
    t = dt * np.arange(1, steps + 1)
    speed = np.maximum(v0 + acc[:, None] * t, 0.0)  # (A, T)
    dist = np.cumsum(speed * dt, axis=1)
    heading = curv[:, None, None] * dist[None]  # (C, A, T)
    # exact integration of a constant-curvature arc
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(np.abs(curv)[:, None, None] > 1e-9, np.sin(heading) / curv[:, None, None], dist[None])
        y = np.where(np.abs(curv)[:, None, None] > 1e-9, (1 - np.cos(heading)) / curv[:, None, None], 0.0)
    poses = np.stack([x, y, heading], -1).reshape(-1, steps, 3)
    return poses[:k]


# ------------------------------------------------------------------------------------------ naive references
def naive_shapely(rollout_pose: np.ndarray, world, vehicle=PACIFICA) -> tuple[np.ndarray, np.ndarray]:
    """Per trajectory, per state: shapely ego polygon vs the objects (STRtree) and corners vs the drivable
    surface. Returns (any box overlap (K,), all corners drivable (K,))."""
    geom = world.drivable.geometry
    k_num, t_num = rollout_pose.shape[:2]
    any_hit = np.zeros(k_num, bool)
    drivable = np.ones(k_num, bool)
    boxes = [shapely.polygons(world.obj_corners[:, t] + world.origin) for t in range(t_num)]
    valid = [world.obj_valid[:, t] for t in range(t_num)]
    trees = [shapely.STRtree(b) for b in boxes]
    d = vehicle.rear_axle_to_center
    for k in range(k_num):
        for t in range(t_num):
            x, y, h = rollout_pose[k, t]
            c, s = np.cos(h), np.sin(h)
            cx, cy = x + d * c, y + d * s
            corners = [(cx + c * lx - s * ly, cy + s * lx + c * ly)
                       for lx, ly in ((2.588, 1.1485), (-2.588, 1.1485), (-2.588, -1.1485), (2.588, -1.1485))]
            ego = shapely.Polygon(corners)
            hits = trees[t].query(ego, predicate="intersects")
            if any(valid[t][h_] for h_ in hits):
                any_hit[k] = True
            if not all(geom.intersects(shapely.Point(p)) for p in corners):
                drivable[k] = False
    return any_hit, drivable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=4096)
    ap.add_argument("--objects", type=int, default=50)
    ap.add_argument("--naive", type=int, default=48, help="trajectories in the naive loops (extrapolated)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-curvature", type=float, default=0.12, help="1/m; smaller = a tamer vocabulary")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    t0 = time.perf_counter()
    map_api = MapAPI.from_layers(city_grid_layers())
    print(f"map: {len(map_api.seg_id)} lanes+connectors, {len(map_api.rb_id)} roadblocks "
          f"(built in {time.perf_counter() - t0:.2f} s)")
    ego, tracks, lights, route = scene(map_api, args.objects, rng)
    dt, steps = 0.1, 40
    times = dt * np.arange(steps + 1)
    t0 = time.perf_counter()
    world = build_scoring_world(map_api, route, ego, tracks, lights, times)
    cold = time.perf_counter() - t0
    print(f"world: {world.num_objects} objects, red-light connectors {list(world.red_light_ids)}, "
          f"raster {world.drivable.inside.shape} at {world.drivable.resolution} m "
          f"({100 * world.drivable.uncertain.mean():.1f} % exact-fallback cells); first build {1e3 * cold:.1f} ms "
          "(includes the per-map drivable union, cached)")
    poses = to_global(vocabulary(args.k, steps, dt, float(ego.velocity[-1, 0]), args.max_curvature), ego.pose[-1])

    # A step of a planner reuses the area rasters, red-light unions and centerline of earlier steps (cached per
    # map); a labeler scoring an unrelated sample starts cold. Both figures, CPU time:
    import sim.metrics.pdm_score as pdm_score

    cold_builds = []
    for _ in range(args.repeat):
        for cache in (pdm_score._RASTER_CACHE, pdm_score._RED_CACHE, pdm_score._CENTERLINE_CACHE):
            cache.clear()
        t0 = time.process_time()
        world = build_scoring_world(map_api, route, ego, tracks, lights, times)
        cold_builds.append(time.process_time() - t0)
    print(f"world build with cold step caches (new location): {1e3 * min(cold_builds):.1f} ms; the table below is "
          "a planning step (warm caches)")

    stages: dict[str, list[float]] = {}
    walls: list[float] = []
    for _ in range(args.repeat):
        wall = time.perf_counter()
        t0 = time.process_time()
        world = build_scoring_world(map_api, route, ego, tracks, lights, times)
        t1 = time.process_time()
        rollout = simulate(poses, ego, world)
        t2 = time.process_time()
        timings: dict[str, float] = {}
        scores = score_trajectories(rollout, world, timings=timings)
        t3 = time.process_time()
        walls.append(time.perf_counter() - wall)
        for name, value in (("world build", t1 - t0), ("tracking (LQR + bicycle)", t2 - t1),
                            *((f"  {n}", v) for n, v in timings.items() if n != "total"),
                            ("scoring", t3 - t2), ("total", t3 - t0)):
            stages.setdefault(name, []).append(value)
    best = int(np.argmin(stages["total"]))
    print(f"\nK = {args.k} trajectories x {steps + 1} states, {world.num_objects} objects, one core; CPU time "
          f"(process_time) of the fastest of {args.repeat} runs:")
    for name, values in stages.items():
        print(f"  {name:<28s} {1e3 * values[best]:8.1f} ms")
    total = stages["total"][best]
    print(f"  (wall clock of that run: {1e3 * walls[best]:.1f} ms; collisions and TTC share the overlap pass)")
    print(f"  -> {1e6 * total / args.k:.1f} µs per trajectory; target < 150 ms per sample: "
          f"{'OK' if total < 0.150 else 'MISSED'}")
    cols = {r: scores.column(r).mean() for r in ("no_at_fault_collision", "drivable_area", "driving_direction",
                                                 "traffic_light", "time_to_collision", "ego_progress", "comfort")}
    print("  mean scores: " + ", ".join(f"{r} {v:.3f}" for r, v in cols.items())
          + f", pdm {scores.pdm_score.mean():.3f}")

    # Naive loops on a subset, extrapolated.
    sub = rng.choice(args.k, size=min(args.naive, args.k), replace=False)
    t0 = time.process_time()
    for i in sub:
        one = type(rollout)(rollout.time_s, rollout.pose[i:i + 1], rollout.velocity[i:i + 1],
                            rollout.acceleration[i:i + 1], rollout.steering_angle[i:i + 1],
                            rollout.steering_rate[i:i + 1], rollout.yaw_rate[i:i + 1])
        single = score_trajectories(one, world)
        assert single.column("no_at_fault_collision")[0] == scores.column("no_at_fault_collision")[i]
    loop = (time.process_time() - t0) / len(sub) * args.k
    t0 = time.process_time()
    hit, drivable = naive_shapely(rollout.pose[sub], world)
    naive = (time.process_time() - t0) / len(sub) * args.k
    scoring = stages["scoring"][best]
    print(f"\nnaive loops over {len(sub)} trajectories, extrapolated to K = {args.k}:")
    print(f"  scorer called per trajectory (K=1)     {loop:8.2f} s  ({loop / scoring:6.0f}x the batched scorer)")
    print(f"  shapely collision + drivable only      {naive:8.2f} s  ({naive / scoring:6.0f}x the batched scorer)")
    agree_dac = np.mean(drivable == (scores.column("drivable_area")[sub] == 1.0))
    batched_hit = scores.collision_time_s[sub] < np.inf
    print(f"  agreement with the shapely loop: drivable area {100 * agree_dac:.1f} %, "
          f"at-fault collisions are a subset of overlaps: {bool(np.all(hit[batched_hit]))}")

    # Drivable-area look-up alone: the raster (with exact fallback) vs prepared shapely on every box corner.
    from sim.geometry import box_corners

    center = rollout.pose.copy()
    center[..., 0] += PACIFICA.rear_axle_to_center * np.cos(center[..., 2]) - world.origin[0]
    center[..., 1] += PACIFICA.rear_axle_to_center * np.sin(center[..., 2]) - world.origin[1]
    corners = box_corners(center, PACIFICA.length, PACIFICA.width).reshape(-1, 2)
    t0 = time.process_time()
    fast = world.drivable.contains(corners[:, 0], corners[:, 1])
    t_raster = time.process_time() - t0
    geom = world.drivable.geometry
    t0 = time.process_time()
    exact = shapely.intersects_xy(geom, corners[:, 0] + world.origin[0], corners[:, 1] + world.origin[1])
    t_shapely = time.process_time() - t0
    print(f"\ndrivable look-up of all {len(corners)} box corners: raster + exact fallback {1e3 * t_raster:.1f} ms, "
          f"prepared shapely intersects_xy {1e3 * t_shapely:.1f} ms ({t_shapely / t_raster:.0f}x); "
          f"identical: {bool(np.array_equal(fast, exact))}")


if __name__ == "__main__":
    main()
