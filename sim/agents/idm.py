"""Reactive agents: nuPlan's IDM agents on map rails (``IDMAgents`` observation, CLS-R).

Behaviour (../shared/reference/nuplan.md §4.4):

- Built once from the **vehicles** present at the start iteration. Each is snapped to the baseline of the lane
  containing its centre (else, inside an intersection, of a lane connector containing it) whose heading is
  closest to the vehicle's, and skipped if its snapped box overlaps the ego, an open-loop object or an agent already
  placed. Speed = |velocity| (the ego speed when NaN); target speed = the speed limit of the last segment of
  its route (updated every step; 10 m/s until a segment with a limit is reached).
- Pedestrians and static objects are replayed from the log (open loop). Bicycles disappear, as in nuPlan.
  With ``replay_tagged`` (not nuPlan) the vehicles the scenario's tag names are replayed too.
- Each step, for every agent in turn (later agents see earlier agents' new footprints, as nuPlan's sequential
  loop does): extend the route while less than ``20 m + v0·T`` of path is left (successor with the smallest
  curvature; segments with a traffic light in the map only when GREEN, others unless RED); find the
  leader = the obstacle that enters the agent's corridor (its path ahead, ± half its width) first — the ego
  box, open-loop boxes of the next
  iteration, other agents' projected footprints, and stop lines of RED connectors on its own route; one IDM
  forward-Euler step. Agents farther than 100 m from the ego are removed for good.
- IDM: ``s* = s0 + v·T + v·(v − v_lead)/(2√(a·b))``, ``v̇ = a·(1 − (v/v0)^4 − (s*/gap)²)`` clipped to
  ``[−b, a]``, progress += v·dt, speed floored at 0. With a leader the gap is the distance from the front of the
  agent's projected footprint (box + ``v·T`` of path) to where the leader enters the corridor, at least s0;
  without one it is the path left minus half the agent's length. The leader's speed counts along the agent's
  heading (ego: its speed; agents: their IDM speed; open-loop objects and stop lines: 0).

Geometry is done in path coordinates with numpy (obstacles as small polygons clipped to the corridor) instead of
nuPlan's shapely occupancy map: same decisions for boxes and footprints on lanes, at a fraction of the cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely

from sim.agents.paths import (
    Path,
    band_polygon,
    concatenate,
    first_in_corridor,
    make_path,
    poses_at,
    project,
    simplify_polyline,
    sub_path,
)
from sim.categories import Category, TrafficLightStatus
from sim.errors import DataError
from sim.geometry import box_corners, boxes_overlap, wrap_angle
from sim.scenario import Scenario, Tracks
from sim.vehicle import PACIFICA, VehicleParameters

if TYPE_CHECKING:
    from sim.nuplan_map.map_api import MapAPI

F64 = npt.NDArray[np.float64]

#: Vertices per obstacle polygon: projected footprints are bands sampled at VERTICES/2 arc lengths.
VERTICES = 12
#: How far back an extended path keeps the driven part (m): the footprint behind the centre stays whole.
KEEP_BEHIND_M = 10.0
#: Baselines are simplified to this tolerance (m) before agents drive on them.
BASELINE_TOLERANCE_M = 0.02


@dataclass(frozen=True)
class IDMParameters:
    """nuPlan's ``idm_agents_observation.yaml``."""

    target_velocity: float = 10.0  # m/s, when the lane has no speed limit
    min_gap: float = 1.0  # s0, m
    headway_time: float = 1.5  # T, s
    accel_max: float = 1.0  # a, m/s²
    decel_max: float = 2.0  # b, m/s²
    exponent: float = 4.0  # δ
    minimum_path_length: float = 20.0  # m
    radius: float = 100.0  # m, agents farther from the ego are removed
    open_loop_categories: tuple[int, ...] = (Category.PEDESTRIAN, Category.BARRIER, Category.CZONE_SIGN,
                                             Category.TRAFFIC_CONE, Category.GENERIC_OBJECT)


def _pad(ring: F64, n: int = VERTICES) -> F64:
    """A ring ``(k, 2)`` as exactly ``n`` vertices: repeat the last one (zero-length edges), or keep the
    oriented bounding rectangle when there are more than ``n``."""
    if len(ring) > n:
        ring = np.asarray(shapely.get_coordinates(shapely.oriented_envelope(shapely.MultiPoint(ring))))[:-1]
    return np.concatenate([ring, np.repeat(ring[-1:], n - len(ring), axis=0)])


def _polygon_ring(geom: shapely.Geometry) -> F64:
    """Exterior ring (without the closing repeat) of a polygon, or of the convex hull of anything else."""
    g = geom if geom.geom_type == "Polygon" else shapely.convex_hull(geom)
    if g.geom_type != "Polygon":
        g = g.buffer(0.1)
    return np.asarray(g.exterior.coords)[:-1, :2]


class IDMAgents:
    """nuPlan's IDM agents. Use through :class:`sim.agents.AgentModel`: ``reset``, then ``observe``/``advance``."""

    def __init__(self, params: IDMParameters = IDMParameters(), vehicle: VehicleParameters = PACIFICA,
                 replay_tagged: bool = False) -> None:
        """``replay_tagged``: the agents the scenario's tag names (``Scenario.tagged_track_tokens``: the vehicle
        that cuts in, the lead that brakes, the runner of the red light) are replayed from the log like
        pedestrians instead of becoming IDM agents. An IDM agent keeps its lane and obeys lights, so in nuPlan's
        CLS-R (``False``) the scripted hazard of a corner case vanishes; ``True`` keeps it, every other vehicle
        reacts to the ego."""
        self.params = params
        self.vehicle = vehicle
        self.replay_tagged = replay_tagged
        self._scenario: Scenario | None = None

    # ------------------------------------------------------------------ set-up
    def reset(self, scenario: Scenario, map_api: MapAPI, start_iteration: int = 0) -> None:
        if not 0 <= start_iteration < scenario.num_iterations:
            raise DataError(None, f"scenario {scenario.token}: start iteration {start_iteration}",
                            f"0 <= start < {scenario.num_iterations}")
        p = self.params
        self._scenario = scenario
        self._map = map_api
        self._iteration = start_iteration
        self._stop_line_cache: dict[int, list[F64]] = {}
        self._curvature_cache: dict[int, float] = {}
        self._baseline_cache: dict[int, F64] = {}
        tracks = scenario.tracks
        open_loop = np.isin(tracks.category, np.asarray(p.open_loop_categories))
        if self.replay_tagged:
            open_loop |= np.isin(tracks.token, np.asarray(scenario.tagged_track_tokens, dtype=tracks.token.dtype))
        self._open_loop_rows = np.flatnonzero(open_loop)
        rows_ol = self._open_loop_rows
        # Open-loop boxes at every step, once (box_corners is elementwise: same corners as per step).
        self._open_loop_boxes = box_corners(tracks.pose[rows_ol], tracks.size[rows_ol, 0][:, None],
                                            tracks.size[rows_ol, 1][:, None])  # (R, T, 4, 2)
        self._tl_connector: dict[int, bool] = {}
        step = scenario.index(start_iteration)

        ego_pose = scenario.ego.pose[step]
        ego_box = box_corners(self._ego_center(ego_pose), self.vehicle.length, self.vehicle.width)
        ol = self._open_loop_at(step)
        placed = [ego_box] + list(box_corners(tracks.pose[ol, step], tracks.size[ol, 0], tracks.size[ol, 1]))
        ego_speed = float(np.hypot(*scenario.ego.velocity[step]))

        rows = np.flatnonzero((tracks.category == Category.VEHICLE) & tracks.valid[:, step] & ~open_loop)
        tokens, sizes, paths, routes, progress, speed, target = [], [], [], [], [], [], []
        for r in rows:
            snapped = self._snap(tracks.pose[r, step])
            if snapped is None:
                continue
            seg, path, s = snapped
            pose = poses_at(path, s)
            length, width = tracks.size[r, 0], tracks.size[r, 1]
            box = box_corners(pose, length, width)
            if np.any(boxes_overlap(box[None], np.asarray(placed))):
                continue
            placed.append(box)
            v = float(np.hypot(*tracks.velocity[r, step]))
            limit = float(map_api.seg_speed_limit[seg])
            tokens.append(tracks.token[r])
            sizes.append(tracks.size[r])
            paths.append(path)
            routes.append([seg])
            progress.append(s)
            speed.append(ego_speed if not np.isfinite(v) else v)
            target.append(limit if np.isfinite(limit) and limit > 0 else p.target_velocity)
        n = len(tokens)
        self.token = np.asarray(tokens, dtype=tracks.token.dtype)
        self.size = np.asarray(sizes, dtype=np.float64).reshape(n, 3)
        self.target_velocity = np.asarray(target, dtype=np.float64)
        self.progress = np.asarray(progress, dtype=np.float64)
        self.speed = np.asarray(speed, dtype=np.float64)
        self.active = np.ones(n, dtype=bool)
        self.paths: list[Path] = paths
        self.routes: list[list[int]] = routes
        self.pose = np.array([poses_at(self.paths[i], self.progress[i]) for i in range(n)]).reshape(n, 3)
        # Before the first step an agent occupies its box (nuPlan inserts boxes at initialisation).
        self.footprint = np.stack([_pad(box_corners(self.pose[i], self.size[i, 0], self.size[i, 1]))
                                   for i in range(n)]) if n else np.zeros((0, VERTICES, 2))

    def _ego_center(self, rear_pose: F64) -> F64:
        d = self.vehicle.rear_axle_to_center
        return np.array([rear_pose[0] + d * np.cos(rear_pose[2]), rear_pose[1] + d * np.sin(rear_pose[2]),
                         rear_pose[2]])

    def _open_loop_at(self, step: int) -> npt.NDArray[np.int64]:
        tracks = self._scenario.tracks
        step = min(step, tracks.num_steps - 1)
        rows = self._open_loop_rows
        return rows[tracks.valid[rows, step]]

    def _snap(self, pose: F64) -> tuple[int, Path, float] | None:
        """Starting segment, its baseline path and the progress of ``pose`` (centre) on it; None off-road."""
        m = self._map
        point = pose[None, :2]
        candidates = m.segments_containing(point)[0]
        if len(candidates) == 0:
            return None
        # nuPlan's order: a lane containing the centre, else (inside an intersection) a lane connector.
        lanes = candidates[~m.seg_is_connector[candidates]]
        if len(lanes):
            candidates = lanes
        elif m.in_layer("intersections", point)[0] >= 0:
            candidates = candidates[m.seg_is_connector[candidates]]
        else:
            return None
        best, best_err = None, np.inf
        for seg in candidates:
            path = make_path(self._baseline(int(seg)))
            arc, _ = project(path, point)
            s = float(np.clip(arc[0], 0.0, path.length))
            err = abs(float(wrap_angle(poses_at(path, s)[2] - pose[2])))
            if err < best_err:
                best, best_err = (int(seg), path, s), err
        return best

    # ------------------------------------------------------------------ observation
    def observe(self) -> Tracks:
        """Active IDM agents (VEHICLE) followed by the open-loop objects of the current iteration."""
        if self._scenario is None:
            raise RuntimeError("IDMAgents.observe called before reset")
        tracks = self._scenario.tracks
        step = min(self._scenario.index(self._iteration), tracks.num_steps - 1)
        a = np.flatnonzero(self.active)
        ol = self._open_loop_at(step)
        heading = self.pose[a, 2]
        agent_velocity = np.stack([self.speed[a] * np.cos(heading), self.speed[a] * np.sin(heading)], -1)
        return Tracks(
            token=np.concatenate([self.token[a], tracks.token[ol]]).astype(tracks.token.dtype),
            category=np.concatenate([np.full(len(a), Category.VEHICLE, np.int8), tracks.category[ol]]),
            size=np.concatenate([self.size[a], tracks.size[ol]]),
            pose=np.concatenate([self.pose[a], tracks.pose[ol, step]])[:, None, :],
            velocity=np.concatenate([agent_velocity, tracks.velocity[ol, step]])[:, None, :],
            valid=np.ones((len(a) + len(ol), 1), dtype=bool),
        )

    # ------------------------------------------------------------------ dynamics
    def advance(self, iteration: int, ego_pose_rear: npt.ArrayLike, ego_speed: float,
                traffic_lights: dict[int, int]) -> None:
        """Move every agent from ``iteration`` to ``iteration + 1`` (dt from the scenario's time stamps)."""
        if self._scenario is None:
            raise RuntimeError("IDMAgents.advance called before reset")
        sc = self._scenario
        p = self.params
        cur, nxt = sc.index(iteration), sc.index(iteration + 1)
        last = len(sc.time_us) - 1
        dt = float(sc.time_us[min(nxt, last)] - sc.time_us[min(cur, last)]) * 1e-6
        if not dt > 0.0:
            dt = sc.interval_s
        self._iteration = iteration + 1
        n = len(self.token)
        if n == 0:
            return
        ego_rear = np.asarray(ego_pose_rear, dtype=np.float64)
        ego_center = self._ego_center(ego_rear)

        # Agents far from the ego leave the simulation for good (nuPlan filters before propagating).
        far = np.hypot(self.pose[:, 0] - ego_center[0], self.pose[:, 1] - ego_center[1]) > p.radius
        self.active &= ~far

        # Obstacles for this step, one array updated in place: ego box, open-loop objects of the next
        # iteration, then the agents' footprints (nuPlan's occupancy map).
        tracks = sc.tracks
        ol_step = min(nxt, tracks.num_steps - 1)
        ol_valid = tracks.valid[self._open_loop_rows, ol_step]
        ol_boxes = self._open_loop_boxes[ol_valid, ol_step]
        num_fixed = 1 + len(ol_boxes)
        polys = np.empty((num_fixed + n, VERTICES, 2))
        polys[0] = _pad(box_corners(ego_center, self.vehicle.length, self.vehicle.width))
        polys[1:num_fixed, :4] = ol_boxes
        polys[1:num_fixed, 4:] = ol_boxes[:, 3:4] if len(ol_boxes) else 0.0
        polys[num_fixed:] = self.footprint
        lo_all, hi_all = polys.min(axis=1), polys.max(axis=1)
        excluded = np.zeros(num_fixed + n, dtype=bool)
        excluded[num_fixed:] = ~self.active

        a_coef = 1.0 / (2.0 * np.sqrt(p.accel_max * p.decel_max))
        for i in np.flatnonzero(self.active):
            self._plan_route(i, traffic_lights)
            # The target speed follows the speed limit of the route's last segment when it has one.
            limit = float(self._map.seg_speed_limit[self.routes[i][-1]])
            if math.isfinite(limit) and limit > 0.0:
                self.target_velocity[i] = limit
            path = self.paths[i]
            s = float(self.progress[i])
            v = float(self.speed[i])
            length, width = float(self.size[i, 0]), float(self.size[i, 1])
            half = width / 2.0
            heading = float(self.pose[i, 2])

            # Candidates: bounding boxes overlapping the bounding box of the corridor ahead.
            k = int(np.searchsorted(path.arc, s, side="right")) - 1
            lo_xy = np.minimum(path.suffix_min[k], self.pose[i, :2]) - half
            hi_xy = np.maximum(path.suffix_max[k], self.pose[i, :2]) + half
            near = ((lo_all <= hi_xy) & (hi_all >= lo_xy)).all(axis=1) & ~excluded
            near[num_fixed + i] = False
            idx = np.flatnonzero(near)
            candidates = polys[idx]
            stop_lines = self._red_stop_lines(i, traffic_lights)
            if stop_lines:  # only this agent sees the stop lines of its own route
                candidates = np.concatenate([candidates, np.stack(stop_lines)])

            front = min(s + length / 2.0 + v * p.headway_time, path.length)
            leader_gap, lead_speed = None, 0.0
            if len(candidates):
                j, entry = first_in_corridor(path, s, half, candidates)
                if j >= 0:
                    leader_gap = max(entry - front, 0.0)
                    o = int(idx[j]) if j < len(idx) else -1  # -1: a stop line
                    if o == 0:  # ego
                        lead_speed = ego_speed * np.cos(ego_rear[2] - heading)
                    elif o >= num_fixed:  # another IDM agent
                        other = o - num_fixed
                        lead_speed = self.speed[other] * np.cos(self.pose[other, 2] - heading)
            if leader_gap is not None:
                gap = max(leader_gap, p.min_gap)
            else:
                gap = max(path.length - s - length / 2.0, p.min_gap)
                lead_speed = 0.0
            s_star = p.min_gap + v * p.headway_time + v * (v - lead_speed) * a_coef
            accel = p.accel_max * (1.0 - (v / self.target_velocity[i]) ** p.exponent - (s_star / gap) ** 2)
            accel = min(max(accel, -p.decel_max), p.accel_max)
            s_new = s + v * dt
            v_new = max(v + accel * dt, 0.0)
            self.progress[i] = s_new
            self.speed[i] = v_new

            # New pose and projected footprint (box + v·T of path ahead), seen by the agents after it.
            lo = max(s_new - length / 2.0, 0.0)
            hi = max(min(s_new + length / 2.0 + v_new * p.headway_time, path.length), lo + 1e-3)
            pose, band = band_polygon(path, lo, hi, half, VERTICES // 2, center=s_new)
            self.pose[i] = pose
            self.footprint[i] = band
            row = num_fixed + i
            polys[row] = band
            lo_all[row] = band.min(axis=0)
            hi_all[row] = band.max(axis=0)

    def _plan_route(self, i: int, traffic_lights: dict[int, int]) -> None:
        """Extend agent ``i``'s path while less than ``minimum_path_length + v0·T`` is left."""
        m = self._map
        p = self.params
        needed = p.minimum_path_length + self.target_velocity[i] * p.headway_time
        for _ in range(8):  # a few short segments at most per step
            path = self.paths[i]
            if path.length - self.progress[i] >= needed:
                return
            options = [int(e) for e in m.successors(self.routes[i][-1]) if self._allowed(int(e), traffic_lights)]
            if not options:
                return
            nxt = min(options, key=lambda e: self._start_curvature(e))
            keep_from = max(self.progress[i] - KEEP_BEHIND_M, 0.0)
            self.paths[i] = concatenate(sub_path(path, keep_from), self._baseline(nxt))
            self.progress[i] -= keep_from
            self.routes[i].append(nxt)

    def _baseline(self, seg: int) -> F64:
        """Segment ``seg``'s baseline without the vertices that a 2 cm tolerance can drop (kept vertices
        keep their map headings): fewer vertices make every projection cheaper."""
        if seg not in self._baseline_cache:
            self._baseline_cache[seg] = simplify_polyline(self._map.baseline(seg), BASELINE_TOLERANCE_M)
        return self._baseline_cache[seg]

    def _allowed(self, seg: int, traffic_lights: dict[int, int]) -> bool:
        """nuPlan's rule: a segment with a traffic light in the map only when GREEN; any other unless RED."""
        m = self._map
        status = traffic_lights.get(int(m.seg_id[seg]), TrafficLightStatus.UNKNOWN)
        if m.seg_has_traffic_light[seg]:
            return status == TrafficLightStatus.GREEN
        return status != TrafficLightStatus.RED

    def _start_curvature(self, seg: int) -> float:
        """Mean |curvature| over the first 10 m of a segment's baseline (1/m): smaller = straighter."""
        if seg not in self._curvature_cache:
            path = make_path(self._baseline(seg))
            reach = min(10.0, path.length)
            turn = float(wrap_angle(poses_at(path, reach)[2] - path.xyh[0, 2])) if reach > 1e-6 else 0.0
            self._curvature_cache[seg] = abs(turn) / max(reach, 1e-6)
        return self._curvature_cache[seg]

    def _red_stop_lines(self, i: int, traffic_lights: dict[int, int]) -> list[F64]:
        """Stop-line polygons ``(VERTICES, 2)`` of the RED connectors on agent ``i``'s route."""
        m = self._map
        out: list[F64] = []
        is_tl = self._tl_connector
        for seg in self.routes[i]:
            flag = is_tl.get(seg)
            if flag is None:
                flag = is_tl[seg] = bool(m.seg_is_connector[seg] and m.seg_has_traffic_light[seg])
            if not flag:
                continue
            if traffic_lights.get(int(m.seg_id[seg])) != TrafficLightStatus.RED:
                continue
            if seg not in self._stop_line_cache:
                self._stop_line_cache[seg] = [_pad(_polygon_ring(g)) for g in m.connector_stop_lines(seg)]
            out.extend(self._stop_line_cache[seg])
        return out
