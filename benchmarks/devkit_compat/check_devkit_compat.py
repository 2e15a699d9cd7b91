"""Load a nuPlan dataset (log ``.db`` files + maps root) with nuplan-devkit's own code and print a report.

Runs ONLY inside the separate devkit venv (see README.md in this folder); distiplan's test suite never imports
it. With ``--distiplan /work/main`` the same files are also read with distiplan and the two readings compared.

    /work/nuplan-venv/bin/python benchmarks/devkit_compat/check_devkit_compat.py \
        --db /tmp/ds/data/nuplan-v1.1/splits/mini --maps-root /tmp/ds/maps --distiplan .

Exit status 0 when every check passed (WARN lines do not fail), 1 otherwise.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The locations devkit's GPKGMapsDB loads when constructed (``MAP_LOCATIONS``).
DEVKIT_LOCATIONS = ("sg-one-north", "us-ma-boston", "us-nv-las-vegas-strip", "us-pa-pittsburgh-hazelwood")


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, status: str, name: str, detail: str = "") -> None:
        self.rows.append((status, name, detail))
        print(f"{status:5s} {name}{': ' + detail if detail else ''}", flush=True)

    def check(self, name: str, fn: Callable[[], str | None]) -> Any:
        """Run ``fn``; PASS with its returned detail, FAIL with the exception (and a short traceback)."""
        t0 = time.perf_counter()
        try:
            detail = fn()
        except Exception as err:  # noqa: BLE001 - every failure is reported, not raised
            tb = traceback.extract_tb(err.__traceback__)[-3:]
            where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb))
            self.add("FAIL", name, f"{type(err).__name__}: {str(err)[:300]} [{where}]")
            return False
        self.add("PASS", name, f"{detail or ''} ({time.perf_counter() - t0:.2f} s)".strip())
        return True

    @property
    def failures(self) -> int:
        return sum(1 for s, _, _ in self.rows if s == "FAIL")


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


# ------------------------------------------------------------------------------------------- log schema
def check_log_schema(rep: Report, db: Path) -> None:
    """Tables, column names and declared types of ``db`` against devkit's ORM models (SQLite dialect)."""
    import nuplan.database.nuplan_db_orm.nuplandb  # noqa: F401 - registers every model on Base
    from nuplan.database.nuplan_db_orm.models import Base
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    def run() -> str:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            problems = []
            for name, table in sorted(Base.metadata.tables.items()):
                info = con.execute(f"PRAGMA table_info({name})").fetchall()
                if not info:
                    problems.append(f"missing table {name}")
                    continue
                have = {r[1]: r[2].upper() for r in info}
                for col in table.columns:
                    want = col.type.compile(dialect=sqlite_dialect.dialect()).upper()
                    if col.name not in have:
                        problems.append(f"{name}.{col.name} missing")
                    elif have[col.name] != want:
                        problems.append(f"{name}.{col.name} is {have[col.name]}, ORM says {want}")
                extra = set(have) - {c.name for c in table.columns}
                if extra:
                    problems.append(f"{name} has extra columns {sorted(extra)}")
            n_scenes = con.execute("SELECT COUNT(*) FROM scene").fetchone()[0]
        finally:
            con.close()
        _expect(not problems, "; ".join(problems))
        _expect(n_scenes >= 5, f"{n_scenes} scenes; devkit drops the first 2 and last 2 of a log, needs >= 5")
        return f"{len(Base.metadata.tables)} ORM tables match; {n_scenes} scenes"

    rep.check(f"log/{db.name}/schema", run)


def check_log_orm(rep: Report, db: Path) -> None:
    """Open the log with devkit's ORM (NuPlanDB) and walk log -> scenes -> lidar_pc -> boxes."""
    from nuplan.database.nuplan_db_orm.nuplandb import NuPlanDB

    def run() -> str:
        ndb = NuPlanDB(data_root=str(db.parent), load_path=str(db), maps_db=None, verbose=False)
        try:
            log = ndb.log
            n_pc = len(ndb.lidar_pc)
            pc = ndb.lidar_pc[n_pc // 2]
            boxes = pc.lidar_boxes
            ego = pc.ego_pose
            _expect(abs(ego.timestamp - pc.timestamp) < 100_000, "ego_pose / lidar_pc timestamps differ")
            cats = Counter(b.category.name for b in boxes)
            _ = [(b.track.width, b.next_token, b.prev_token) for b in boxes]
            tags = Counter(t.type for t in ndb.scenario_tag)
            tls = len(ndb.traffic_light_status)
            scene = ndb.scene[len(ndb.scene) // 2]
            goal = scene.goal_ego_pose
            return (f"log {log.logfile} @ {log.map_version}; {len(ndb.scene)} scenes, {n_pc} lidar_pc, "
                    f"{len(ndb.lidar_box)} boxes, {len(ndb.track)} tracks; mid frame boxes {dict(cats)}; "
                    f"{sum(tags.values())} tags of {len(tags)} types; {tls} light rows; "
                    f"mid scene goal {'none' if goal is None else (round(goal.x, 1), round(goal.y, 1))}, "
                    f"roadblocks '{scene.roadblock_ids[:40]}'")
        finally:
            ndb.session.close()

    rep.check(f"log/{db.name}/orm", run)


# ------------------------------------------------------------------------------------------- maps
def check_maps(rep: Report, maps_root: Path, map_version: str, dp: Any | None) -> list[str]:
    """Maps index + GPKGMapsDB + every location's map through NuPlanMap. Returns the locations checked."""
    import json

    index_file = maps_root / f"{map_version}.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError) as err:
        rep.add("FAIL", "maps/index", f"{index_file}: {err}")
        return []
    missing = [loc for loc in DEVKIT_LOCATIONS if loc not in index]
    no_file = [loc for loc in DEVKIT_LOCATIONS if loc in index
               and not (maps_root / loc / str(index[loc].get("version")) / "map.gpkg").is_file()]
    if missing or no_file:
        rep.add("FAIL", "maps/index", f"GPKGMapsDB loads all of {DEVKIT_LOCATIONS} when built; "
                f"not in {index_file.name}: {missing}; no map.gpkg: {no_file}")
    else:
        rep.add("PASS", "maps/index", f"{sorted(index)} -> versions {[index[k]['version'] for k in sorted(index)]}")
    extra = sorted(set(index) - set(DEVKIT_LOCATIONS))
    if extra:
        rep.add("INFO", "maps/index", f"locations {extra} are not nuPlan's; devkit opens them by name "
                "(scenarios take the map name from log.map_version)")

    from nuplan.common.maps.nuplan_map.map_factory import get_maps_api, get_maps_db

    def maps_db() -> str:
        return f"built; locations {list(get_maps_db(str(maps_root), map_version).get_locations())}"

    if not rep.check("maps/GPKGMapsDB", maps_db):
        return []
    checked = []
    for location in sorted(index):
        if (maps_root / location / str(index[location]["version"]) / "map.gpkg").is_file():
            check_one_map(rep, get_maps_api, maps_root, map_version, location, dp)
            checked.append(location)
    return checked


def check_one_map(rep: Report, get_maps_api: Callable, maps_root: Path, map_version: str, location: str,
                  dp: Any | None) -> None:
    from nuplan.common.actor_state.state_representation import Point2D
    from nuplan.common.maps.maps_datatypes import SemanticMapLayer as L

    name = f"map/{location}"
    holder: dict[str, Any] = {}

    def load() -> str:
        m = get_maps_api(str(maps_root), map_version, location)
        m.initialize_all_layers()
        holder["map"] = m
        da = m._get_vector_map_layer(L.DRIVABLE_AREA)
        holder["bounds"] = da.total_bounds if len(da) else m._get_vector_map_layer(L.LANE).total_bounds
        crs = m._get_vector_map_layer(L.LANE).crs
        return f"all vector layers loaded; CRS {crs.to_string() if crs else None}; bounds {holder['bounds'].round(1)}"

    if not rep.check(f"{name}/load", load):
        return
    m = holder["map"]
    x0, y0, x1, y1 = holder["bounds"]
    centre = Point2D((x0 + x1) / 2, (y0 + y1) / 2)
    radius = math.hypot(x1 - x0, y1 - y0)
    layers = [L.LANE, L.LANE_CONNECTOR, L.ROADBLOCK, L.ROADBLOCK_CONNECTOR, L.STOP_LINE, L.CROSSWALK,
              L.INTERSECTION, L.WALKWAYS, L.CARPARK_AREA]

    def proximal() -> str:
        objs = m.get_proximal_map_objects(centre, radius, layers)
        holder["objs"] = objs
        _expect(len(objs[L.LANE]) > 0 and len(objs[L.ROADBLOCK]) > 0, "no lanes / roadblocks found")
        return ", ".join(f"{k.name.lower()} {len(v)}" for k, v in objs.items())

    if len(m._get_vector_map_layer(L.LANE)) == 0:
        rep.add("INFO", f"{name}/proximal_map_objects", "empty map (a placeholder for GPKGMapsDB): not inspected")
        return
    if not rep.check(f"{name}/proximal_map_objects", proximal):
        return
    objs = holder["objs"]

    def lanes() -> str:
        n_pts, widths, adj = 0, [], 0
        for lane in objs[L.LANE]:
            path = lane.baseline_path.discrete_path
            n_pts += len(path)
            _expect(len(path) >= 2 and lane.baseline_path.length > 0, f"lane {lane.id} has a degenerate baseline")
            _ = lane.left_boundary.linestring, lane.right_boundary.linestring
            _expect(lane.polygon.area > 0, f"lane {lane.id} polygon is empty")
            _ = lane.speed_limit_mps, lane.index, lane.has_traffic_lights(), lane.stop_lines
            _expect(lane.parent.id == lane.get_roadblock_id(), f"lane {lane.id} parent mismatch")
            _ = lane.incoming_edges, lane.outgoing_edges
            left, right = lane.adjacent_edges
            if left is not None:
                adj += 1
                _expect(left.is_left_of(lane), f"lane {lane.id}: left neighbour {left.id} is not left of it")
            if right is not None:
                adj += 1
            mid = path[len(path) // 2]
            # get_width_left_right is NotImplemented in devkit: width = polygon area / baseline length.
            widths.append(lane.polygon.area / lane.baseline_path.length)
            _ = lane.baseline_path.get_nearest_arc_length_from_position(Point2D(mid.x, mid.y))
        succ = sum(len(lane.outgoing_edges) for lane in objs[L.LANE])
        return (f"{len(objs[L.LANE])} lanes, {n_pts} baseline poses, {succ} outgoing connectors, "
                f"{adj} neighbour links, mean width {sum(widths) / max(len(widths), 1):.2f} m")

    def connectors() -> str:
        signalled, stops = 0, 0
        for lc in objs[L.LANE_CONNECTOR]:
            _expect(len(lc.baseline_path.discrete_path) >= 2, f"connector {lc.id} degenerate baseline")
            _expect(len(lc.incoming_edges) == 1 and len(lc.outgoing_edges) == 1,
                    f"connector {lc.id} has {len(lc.incoming_edges)} in / {len(lc.outgoing_edges)} out lanes")
            signalled += lc.has_traffic_lights()
            stops += len(lc.stop_lines)
            _ = lc.polygon.area, lc.left_boundary, lc.right_boundary, lc.speed_limit_mps, lc.parent.id
        return f"{len(objs[L.LANE_CONNECTOR])} connectors, {signalled} signalled, {stops} stop lines"

    def roadblocks() -> str:
        interior = 0
        for rb in objs[L.ROADBLOCK] + objs[L.ROADBLOCK_CONNECTOR]:
            edges = rb.interior_edges
            _expect(len(edges) > 0, f"roadblock {rb.id} has no lanes")
            interior += len(edges)
            _ = rb.incoming_edges, rb.outgoing_edges, rb.polygon.area
        n_int = sum(rbc.intersection is not None for rbc in objs[L.ROADBLOCK_CONNECTOR])
        return (f"{len(objs[L.ROADBLOCK])} roadblocks + {len(objs[L.ROADBLOCK_CONNECTOR])} connectors "
                f"({n_int} in an intersection), {interior} interior edges")

    def polygons() -> str:
        # StopLine.layer_type, Intersection.is_signaled / interior_edges are NotImplemented in devkit.
        for s in objs[L.STOP_LINE]:
            _expect(s.polygon.area > 0, f"stop line {s.id} has an empty polygon")
        for layer in (L.CROSSWALK, L.WALKWAYS, L.CARPARK_AREA, L.INTERSECTION):
            for o in objs[layer]:
                _expect(o.polygon.area > 0, f"{layer.name} {o.id} has an empty polygon")
        return (f"{len(objs[L.STOP_LINE])} stop lines, {len(objs[L.CROSSWALK])} crosswalks, "
                f"{len(objs[L.WALKWAYS])} walkways, {len(objs[L.CARPARK_AREA])} car parks, "
                f"{len(objs[L.INTERSECTION])} intersections: all polygons non-empty")

    def areas() -> str:
        lane = objs[L.LANE][0]
        p = lane.baseline_path.discrete_path[len(lane.baseline_path.discrete_path) // 2]
        inside = Point2D(p.x, p.y)
        outside = Point2D(x1 + 500.0, y1 + 500.0)
        _expect(m.is_in_layer(inside, L.DRIVABLE_AREA), "a lane centre is not in the drivable area")
        _expect(not m.is_in_layer(outside, L.DRIVABLE_AREA), "a far point is in the drivable area")
        _expect(m.is_in_layer(inside, L.LANE), "a lane centre is not in the lane layer")
        one = m.get_one_map_object(inside, L.LANE)
        _expect(one is not None and one.id == lane.id, f"get_one_map_object gave {one and one.id}, want {lane.id}")
        oid, dist = m.get_distance_to_nearest_map_object(outside, L.LANE)
        _expect(dist > 0, "distance to nearest lane is 0 from a far point")
        got = m.get_map_object(lane.id, L.LANE)
        _expect(got is not None and got.id == lane.id, "get_map_object failed")
        return f"drivable area ok; nearest lane to a far point {oid} at {dist:.1f} m"

    for part, fn in (("lanes", lanes), ("lane_connectors", connectors), ("roadblocks", roadblocks),
                     ("polygons", polygons), ("areas", areas)):
        rep.check(f"{name}/{part}", fn)

    def raster() -> str:
        layer = m.get_raster_map_layer(L.DRIVABLE_AREA)
        return f"raster drivable_area {layer.data.shape}"

    try:
        detail = raster()
        rep.add("PASS", f"{name}/raster", detail)
    except Exception as err:  # noqa: BLE001 - rasters are optional (only raster models use them)
        rep.add("WARN", f"{name}/raster", f"no raster drivable_area ({type(err).__name__}); only raster models "
                "need <location>/<version>/drivable_area.npy.npz + transform_matrix in the index")

    if dp is not None:
        def compare() -> str:
            api = dp.load_map(maps_root, location, use_cache=False)
            n_lane = int((~api.seg_is_connector).sum())
            n_lc = int(api.seg_is_connector.sum())
            _expect(n_lane == len(objs[L.LANE]), f"lanes: distiplan {n_lane}, devkit {len(objs[L.LANE])}")
            n_dk = len(objs[L.LANE_CONNECTOR])
            _expect(n_lc == n_dk, f"connectors: distiplan {n_lc}, devkit {n_dk}")
            n_rb = len(objs[L.ROADBLOCK]) + len(objs[L.ROADBLOCK_CONNECTOR])
            _expect(len(api.rb_id) == n_rb, f"roadblocks: distiplan {len(api.rb_id)}, devkit {n_rb}")
            worst = 0.0
            for obj in objs[L.LANE] + objs[L.LANE_CONNECTOR]:
                s = api.segment_index(int(obj.id), obj in objs[L.LANE_CONNECTOR])
                worst = max(worst, abs(api.seg_length[s] - obj.baseline_path.length))
                succ_dp = sorted(int(api.seg_id[k]) for k in api.successors(s))
                succ_dk = sorted(int(e.id) for e in obj.outgoing_edges)
                _expect(succ_dp == succ_dk, f"segment {obj.id} successors: distiplan {succ_dp}, devkit {succ_dk}")
                sl = obj.speed_limit_mps
                dps = api.seg_speed_limit[s]
                _expect((sl is None and math.isnan(dps)) or (sl is not None and abs(sl - dps) < 1e-6),
                        f"segment {obj.id} speed limit: distiplan {dps}, devkit {sl}")
            _expect(worst < 1e-6, f"baseline lengths differ by up to {worst:.3g} m")
            return f"same lanes, connectors, roadblocks, successors, speed limits; baseline length diff {worst:.1e} m"

        rep.check(f"{name}/same_as_distiplan", compare)


# ------------------------------------------------------------------------------------------- scenarios
def build_scenarios(rep: Report, dbs: list[Path], maps_root: Path, map_version: str, types: list[str] | None,
                    mapping_yaml: Path | None, dp: Any | None = None) -> list:
    from nuplan.planning.scenario_builder.nuplan_db.nuplan_scenario_builder import NuPlanScenarioBuilder
    from nuplan.planning.scenario_builder.nuplan_db.nuplan_scenario_utils import ScenarioMapping
    from nuplan.planning.scenario_builder.scenario_filter import ScenarioFilter
    from nuplan.planning.utils.multithreading.worker_sequential import Sequential

    mapping = ScenarioMapping({}, None)
    if mapping_yaml is not None and mapping_yaml.is_file():
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_container(OmegaConf.load(mapping_yaml))
        mapping = ScenarioMapping({k: tuple(v) for k, v in cfg["scenario_map"].items()},
                                  cfg.get("subsample_ratio_override"))
    builder = NuPlanScenarioBuilder(data_root=str(dbs[0].parent), map_root=str(maps_root),
                                    sensor_root=str(dbs[0].parent / "sensor_blobs"), db_files=[str(d) for d in dbs],
                                    map_version=map_version, verbose=False, scenario_mapping=mapping)
    out: dict[str, list] = {}

    def every_frame() -> str:
        f = ScenarioFilter(scenario_types=None, scenario_tokens=None, log_names=None, map_names=None,
                           num_scenarios_per_type=None, limit_total_scenarios=None, timestamp_threshold_s=None,
                           ego_displacement_minimum_m=None, expand_scenarios=False, remove_invalid_goals=False,
                           shuffle=False)
        sc = builder.get_scenarios(f, Sequential())
        _expect(len(sc) > 0, "no scenario: every log needs >= 5 scenes (first 2 / last 2 are dropped)")
        return f"{len(sc)} start frames in the valid scenes of {len(dbs)} log(s)"

    def tagged() -> str:
        f = ScenarioFilter(scenario_types=types, scenario_tokens=None, log_names=None, map_names=None,
                           num_scenarios_per_type=None, limit_total_scenarios=None, timestamp_threshold_s=None,
                           ego_displacement_minimum_m=None, expand_scenarios=False, remove_invalid_goals=True,
                           shuffle=False)
        sc = builder.get_scenarios(f, Sequential())
        out["scenarios"] = sc
        _expect(len(sc) > 0, "no tagged scenario with a valid goal")
        return f"{len(sc)} scenarios: {dict(Counter(s.scenario_type for s in sc))}"

    rep.check("scenarios/all_frames_filter", every_frame)
    which = f"{len(types)} types" if types else "all frames"
    rep.check(f"scenarios/tag_filter ({which}, remove_invalid_goals)", tagged)
    if dp is not None and "scenarios" in out:
        def compare() -> str:
            ours = dp.list_scenarios(dbs, dp.ScenarioFilter(scenario_types=types, remove_invalid_goals=True))
            a = {(r.log_name, r.token, r.scenario_type) for r in ours}
            b = {(s.log_name, s.token, s.scenario_type) for s in out["scenarios"]}
            _expect(a == b, f"distiplan {len(a)} scenarios, devkit {len(b)}, common {len(a & b)}")
            return f"same {len(a)} (log, token, type) triples"

        rep.check("scenarios/same_as_distiplan", compare)
    return out.get("scenarios", [])


def check_scenario(rep: Report, sc: Any, maps_root: Path, dp: Any | None, future_s: float, past_s: float) -> None:
    from nuplan.common.maps.maps_datatypes import SemanticMapLayer as L

    name = f"scenario/{sc.scenario_type}/{sc.token}"
    holder: dict[str, Any] = {}

    def basics() -> str:
        n = sc.get_number_of_iterations()
        holder["n"] = n
        _expect(n >= 2, f"{n} iterations")
        dt = sc.database_interval
        ego0 = sc.initial_ego_state
        egos = [sc.get_ego_state_at_iteration(i) for i in range(n)]
        t = [e.time_us for e in egos]
        _expect(all(b > a for a, b in zip(t, t[1:], strict=False)), "ego time not increasing")
        _expect(ego0.time_us == t[0], "initial ego state differs from iteration 0")
        dur = (t[-1] - t[0]) * 1e-6
        info = getattr(sc, "_scenario_extraction_info", None)
        if info is not None:  # the full window must be in the log, or devkit silently cuts the scenario short
            want = int(round(info.scenario_duration / dt)) + 1
            _expect(n == want, f"{n} iterations, the extraction window ({info.scenario_duration:.0f} s from "
                    f"{info.extraction_offset:+.0f} s) needs {want}: the log ends too early / starts too late")
        return (f"{n} iterations ({dur:.2f} s, interval {dt:.2f} s), map {sc.map_api.map_name}, "
                f"ego0 ({ego0.rear_axle.x:.1f}, {ego0.rear_axle.y:.1f}, {ego0.rear_axle.heading:.2f}) "
                f"v {ego0.dynamic_car_state.rear_axle_velocity_2d.x:.2f} m/s")

    def objects() -> str:
        n = holder["n"]
        counts = []
        for i in sorted({0, n // 2, n - 1}):
            tr = sc.get_tracked_objects_at_iteration(i).tracked_objects
            counts.append(len(tr))
            holder.setdefault("types", Counter()).update(o.tracked_object_type.name for o in tr)
        lights = [list(sc.get_traffic_light_status_at_iteration(i)) for i in (0, n - 1)]
        _ = [(tl.lane_connector_id, tl.status.name) for tl in lights[0]]
        window = sc.get_tracked_objects_within_time_window_at_iteration(0, 1.0, 1.0)
        return (f"objects at 0/mid/last: {counts} {dict(holder['types'])}; lights at 0: "
                f"{sorted((tl.lane_connector_id, tl.status.name) for tl in lights[0])[:4]}; "
                f"window objects {len(window.tracked_objects)}")

    def mission() -> str:
        route = sc.get_route_roadblock_ids()
        goal = sc.get_mission_goal()
        expert = sc.get_expert_goal_state()
        known = [r for r in route if sc.map_api.get_map_object(r, L.ROADBLOCK) is not None
                 or sc.map_api.get_map_object(r, L.ROADBLOCK_CONNECTOR) is not None]
        holder["route_unknown"] = len(route) - len(known)
        holder["route_len"] = len(route)
        return (f"route {len(route)} roadblocks ({len(known)} on the map), goal "
                f"{None if goal is None else (round(goal.x, 1), round(goal.y, 1))}, expert goal "
                f"({expert.x:.1f}, {expert.y:.1f})")

    def horizons() -> str:
        n = holder["n"]
        fut = list(sc.get_ego_future_trajectory(0, future_s))
        past = list(sc.get_ego_past_trajectory(0, past_s))
        fut_last = list(sc.get_ego_future_trajectory(n - 1, future_s))
        past_obj = list(sc.get_past_tracked_objects(0, past_s))
        fut_obj = list(sc.get_future_tracked_objects(0, future_s))
        _expect(len(past) > 0 and len(fut) > 0, "empty past / future")
        want = int(round(future_s / sc.database_interval))
        holder["fut_last"] = len(fut_last)
        holder["fut_want"] = want
        return (f"future {future_s:.0f} s from 0: {len(fut)} states, past {past_s:.0f} s: {len(past)} states, "
                f"past/future objects {len(past_obj)}/{len(fut_obj)}; future {future_s:.0f} s from the last "
                f"iteration: {len(fut_last)}/{want} states")

    def features() -> str:
        # What devkit's vector-map feature builders (and PDM-style planners) read around the ego.
        from nuplan.common.actor_state.state_representation import Point2D
        from nuplan.common.maps.maps_datatypes import TrafficLightStatuses
        from nuplan.common.maps.nuplan_map.utils import get_roadblock_ids_from_trajectory
        from nuplan.planning.training.preprocessing.feature_builders.vector_builder_utils import (
            get_neighbor_vector_map,
            get_neighbor_vector_set_map,
        )

        ego0 = sc.initial_ego_state
        p = Point2D(ego0.rear_axle.x, ego0.rear_axle.y)
        coords, conns, groups, lane_ids, rb_ids = get_neighbor_vector_map(sc.map_api, p, 50.0)
        holder["near_lanes"] = len(coords.to_vector())
        lights = [TrafficLightStatuses(list(sc.get_traffic_light_status_at_iteration(0)))]
        sets, tl = get_neighbor_vector_set_map(
            sc.map_api, ["LANE", "LEFT_BOUNDARY", "RIGHT_BOUNDARY", "STOP_LINE", "CROSSWALK", "ROUTE_LANES"], p, 50.0,
            sc.get_route_roadblock_ids(), lights)
        driven = get_roadblock_ids_from_trajectory(sc.map_api, list(sc.get_expert_ego_trajectory()))
        on_route = set(driven) <= set(sc.get_route_roadblock_ids())
        return (f"vector map: {len(coords.to_vector())} lane segments, {len(conns.to_vector())} connections; "
                f"vector sets: {', '.join(f'{k.lower()} {len(v.to_vector())}' for k, v in sets.items())}; "
                f"expert drives through {len(driven)} roadblocks, {'all' if on_route else 'NOT all'} on the route")

    ok = rep.check(f"{name}/ego_states", basics)
    if not ok:
        return
    rep.check(f"{name}/objects_lights", objects)
    rep.check(f"{name}/mission", mission)
    if rep.check(f"{name}/vector_features", features) and not holder["near_lanes"]:
        rep.add("WARN", f"{name}/vector_features", "no lane within 50 m of the ego: the log is not on its map")
    if rep.check(f"{name}/past_future", horizons) and holder["fut_last"] < holder["fut_want"]:
        rep.add("WARN", f"{name}/past_future", f"only {holder['fut_last']} of {holder['fut_want']} future states "
                "after the last iteration (the log ends too soon after this scenario)")
    if holder.get("route_len", 2) < 2:
        rep.add("WARN", f"{name}/mission", f"route has {holder['route_len']} roadblock(s): devkit's IDMPlanner "
                "asserts >= 2 (`_route_roadblocks should have at least 2 elements!`)")
    if holder.get("route_unknown"):
        rep.add("WARN", f"{name}/mission", f"{holder['route_unknown']} route roadblock ids are not on the map")

    if dp is not None:
        def compare() -> str:
            s = dp.load_scenario((sc._log_file, sc.token), history_s=0.0)
            n = holder["n"]
            _expect(s.num_iterations == n, f"distiplan has {s.num_iterations} iterations, devkit {n}")
            ego = [sc.get_ego_state_at_iteration(i) for i in range(n)]
            dk = [(e.rear_axle.x, e.rear_axle.y, e.rear_axle.heading, e.dynamic_car_state.rear_axle_velocity_2d.x)
                  for e in ego]
            ours = [s.ego.pose[s.index(i)].tolist() + [float(s.ego.velocity[s.index(i), 0])] for i in range(n)]
            err = max(max(abs(a[0] - b[0]), abs(a[1] - b[1]), abs(math.remainder(a[2] - b[2], 2 * math.pi)),
                          abs(a[3] - b[3])) for a, b in zip(dk, ours, strict=True))
            _expect(err < 1e-6, f"ego states differ by up to {err:.3g}")
            worst_obj = 0.0
            for i in sorted({0, n // 2, n - 1}):
                theirs = {o.track_token: o for o in sc.get_tracked_objects_at_iteration(i).tracked_objects}
                k = s.index(i)
                mine = {str(s.tracks.token[j]): s.tracks.pose[j, k] for j in range(len(s.tracks.token))
                        if s.tracks.valid[j, k]}
                _expect(set(theirs) == set(mine), f"iteration {i}: tracks differ: devkit {len(theirs)}, "
                        f"distiplan {len(mine)}, common {len(set(theirs) & set(mine))}")
                for tok, pose in mine.items():
                    c = theirs[tok].center
                    worst_obj = max(worst_obj, abs(c.x - pose[0]), abs(c.y - pose[1]),
                                    abs(math.remainder(c.heading - pose[2], 2 * math.pi)))
                lights = {(t.lane_connector_id, t.status.name) for t in sc.get_traffic_light_status_at_iteration(i)}
                st = s.traffic_lights.status[k]
                ids = s.traffic_lights.lane_connector_id
                mine_l = {(int(c), dp.light_name(int(v))) for c, v in zip(ids, st, strict=True)
                          if dp.light_name(int(v)) != "UNKNOWN"}
                _expect(lights == mine_l, f"iteration {i}: traffic lights differ: devkit {sorted(lights)[:3]}, "
                        f"distiplan {sorted(mine_l)[:3]}")
            _expect(worst_obj < 1e-6, f"object poses differ by up to {worst_obj:.3g}")
            route = [int(r) for r in sc.get_route_roadblock_ids()]
            _expect(route == list(s.route_roadblock_ids), f"route: devkit {route}, distiplan {s.route_roadblock_ids}")
            goal = sc.get_mission_goal()
            _expect((goal is None) == (s.mission_goal is None), "mission goal presence differs")
            if goal is not None:
                _expect(abs(goal.x - s.mission_goal[0]) + abs(goal.y - s.mission_goal[1]) < 1e-6, "goal differs")
            return (f"ego states, objects and lights at 0/mid/last, route and goal identical over {n} iterations "
                    f"(ego max diff {err:.1e}, objects {worst_obj:.1e})")

        rep.check(f"{name}/same_as_distiplan", compare)


# ------------------------------------------------------------------------------------------- main
def _distiplan(path: str | None) -> Any | None:
    """A namespace of the distiplan functions used for cross-checks, or None when not asked / not importable."""
    if not path:
        return None
    sys.path.insert(0, str(Path(path).resolve()))
    try:
        from types import SimpleNamespace

        from sim.categories import TrafficLightStatus
        from sim.nuplan_db.filter import ScenarioFilter
        from sim.nuplan_db.reader import list_scenarios, load_scenario
        from sim.nuplan_map.loader import load_map
        return SimpleNamespace(load_map=load_map, load_scenario=load_scenario, list_scenarios=list_scenarios,
                               ScenarioFilter=ScenarioFilter,
                               light_name=lambda v: TrafficLightStatus(v).name)
    except Exception as err:  # noqa: BLE001
        print(f"WARN  distiplan not importable from {path} ({err}); cross-checks skipped")
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", action="append", required=True, help="a log .db or a folder of them (repeatable)")
    ap.add_argument("--maps-root", required=True, type=Path)
    ap.add_argument("--map-version", default="nuplan-maps-v1.0")
    ap.add_argument("--scenario-types", nargs="*", default=None, help="default: every tag type in the logs")
    ap.add_argument("--max-scenarios", type=int, default=6, help="scenarios checked in depth (spread over types)")
    ap.add_argument("--mapping", type=Path, default=None,
                    help="devkit scenario-mapping yaml (default: the challenge mapping of the devkit source)")
    ap.add_argument("--future-s", type=float, default=8.0)
    ap.add_argument("--past-s", type=float, default=2.0)
    ap.add_argument("--distiplan", default=None, help="path of a distiplan checkout: also compare with distiplan")
    args = ap.parse_args(argv)

    import warnings

    import nuplan
    # devkit casts nullable id columns (baseline_paths.lane_fid is NULL on connector rows, as in real maps) with
    # astype(int): numpy warns about the NaN; the comparison still works.
    warnings.filterwarnings("ignore", message="invalid value encountered in cast", category=RuntimeWarning)
    rep = Report()
    rep.add("INFO", "devkit", f"{Path(nuplan.__file__).parent}")
    dbs: list[Path] = []
    for d in args.db:
        p = Path(d)
        dbs += sorted(p.glob("*.db")) if p.is_dir() else [p]
    if not dbs:
        rep.add("FAIL", "logs", f"no .db file in {args.db}")
        return 1
    dp = _distiplan(args.distiplan)
    t0 = time.perf_counter()
    for db in dbs:
        check_log_schema(rep, db)
        check_log_orm(rep, db)
    check_maps(rep, args.maps_root, args.map_version, dp)
    types = args.scenario_types
    if types is None:  # every tag type present in the logs ("unknown" untagged frames are not inspected)
        found: set[str] = set()
        for db in dbs:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            found |= {r[0] for r in con.execute("SELECT DISTINCT type FROM scenario_tag") if r[0]}
            con.close()
        types = sorted(found) or None
    mapping = args.mapping
    if mapping is None:
        mapping = (Path(nuplan.__file__).parent / "planning/script/config/common/scenario_builder/scenario_mapping/"
                   "nuplan_challenge_scenario_mapping.yaml")
    rep.add("INFO", "scenario_mapping", str(mapping))
    scenarios = build_scenarios(rep, dbs, args.maps_root, args.map_version, types, mapping, dp)
    by_type: dict[str, list] = {}
    for s in sorted(scenarios, key=lambda s: (s.scenario_type, s.token)):
        by_type.setdefault(s.scenario_type, []).append(s)
    picked: list = []
    while len(picked) < args.max_scenarios and any(by_type.values()):
        for t in sorted(by_type):
            if by_type[t] and len(picked) < args.max_scenarios:
                picked.append(by_type[t].pop(0))
    for sc in picked:
        check_scenario(rep, sc, args.maps_root, dp, args.future_s, args.past_s)
    counts = Counter(s for s, _, _ in rep.rows)
    print(f"\nSUMMARY {dict(counts)} in {time.perf_counter() - t0:.1f} s")
    return 1 if rep.failures else 0


if __name__ == "__main__":
    sys.exit(main())
