"""nuPlan's IDM planner: follow the route's lanes, keep the Intelligent Driver Model's distance to what is ahead.

1. Path (once, rebuilt if the ego ends up more than ``replan_lateral_m`` off it): the route's lanes found by
   Dijkstra over the lane graph restricted to the route roadblocks (:mod:`experts.route`), baselines
   concatenated.
2. Obstacles ahead, each as an arc-length position on the path and a speed along it: observed boxes whose
   corners reach into the corridor (path +- half the ego width), stop points at the start of red-light lane
   connectors on the path, and the path's end.
3. IDM (target speed = the lane's speed limit, else ``target_velocity``; ``s0``, ``T``, ``a``, ``b`` as nuPlan's
   ``idm_planner.yaml``), forward Euler at ``interval_s`` for ``horizon_s``; acceleration clipped to
   ``[-decel_max, accel_max]``, speed floored at 0. The leader at each step is the nearest obstacle ahead.
   Unlike nuPlan (which keeps the leader where it is now), a moving leader advances at its current speed along
   the path over the horizon.
4. Output: 8 s at 0.1 s on the path; the ego's present lateral offset fades out over ``offset_fade_s``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from experts.route import Path, lane_sequence, on_route_mask, path_from_segments, starting_segment
from sim.categories import AGENT_CATEGORIES, TrafficLightStatus
from sim.geometry import box_corners
from sim.planning import Planner, PlannerInitialization, PlannerInput
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA

F64 = npt.NDArray[np.float64]


def idm_acceleration(v: F64 | float, v_target: float, gap: F64 | float, v_lead: F64 | float, s0: float,
                     headway: float, accel_max: float, decel_max: float) -> F64:
    """IDM: ``a·(1 − (v/v0)⁴ − (s*/gap)²)``, ``s* = s0 + v·T + v·(v − v_lead)/(2√(a·b))``, gap floored at ``s0``."""
    v = np.asarray(v, np.float64)
    s_star = s0 + v * headway + v * (v - v_lead) / (2.0 * np.sqrt(accel_max * decel_max))
    gap = np.maximum(gap, s0)
    acc = accel_max * (1.0 - (v / max(v_target, 1e-3)) ** 4 - (s_star / gap) ** 2)
    return np.clip(acc, -decel_max, accel_max)


def _poses_along(path: Path, s: F64, offset: F64) -> F64:
    """Poses at arc lengths ``s`` shifted ``offset`` m left; beyond the path's ends along its end tangents (an ego
    that starts before the first lane vertex must not see its plan jump onto it)."""
    poses = path.poses_at(s, offset)
    for beyond, end in ((s < 0.0, 0), (s > path.length, -1)):
        if beyond.any():
            extra = s[beyond] - path.s[end]
            h = path.heading[end]
            poses[beyond, 0] += extra * np.cos(h)
            poses[beyond, 1] += extra * np.sin(h)
    return poses


class IDMPlanner(Planner):
    """Lane following with IDM; parameters are nuPlan's ``idm_planner.yaml`` (decel 3.0 m/s²)."""

    def __init__(self, target_velocity: float = 10.0, min_gap_to_lead_agent: float = 1.0, headway_time: float = 1.5,
                 accel_max: float = 1.0, decel_max: float = 3.0, horizon_s: float = 8.0, interval_s: float = 0.1,
                 lookahead_m: float = 120.0, corridor_margin_m: float = 0.0, offset_fade_s: float = 2.0,
                 replan_lateral_m: float = 4.0) -> None:
        self.target_velocity = float(target_velocity)
        self.s0 = float(min_gap_to_lead_agent)
        self.headway = float(headway_time)
        self.accel_max = float(accel_max)
        self.decel_max = float(decel_max)
        self.horizon_s = float(horizon_s)
        self.interval_s = float(interval_s)
        self.lookahead_m = float(lookahead_m)
        self.half_width = PACIFICA.width / 2.0 + float(corridor_margin_m)
        self.offset_fade_s = float(offset_fade_s)
        self.replan_lateral_m = float(replan_lateral_m)
        self._map = None
        self._route: tuple[int, ...] = ()
        self._path: Path | None = None

    def initialize(self, initialization: PlannerInitialization) -> None:
        self._map = initialization.map_api
        self._route = tuple(int(r) for r in initialization.route_roadblock_ids)
        self._path = None

    # ------------------------------------------------------------------ path
    def _build_path(self, pose: F64) -> Path:
        on_route = on_route_mask(self._map, self._route)
        start = starting_segment(self._map, pose, on_route)
        return path_from_segments(self._map, lane_sequence(self._map, start, on_route, self._route))

    def _obstacles(self, path: Path, s_ego: float, s_front: float,
                   current_input: PlannerInput) -> tuple[F64, F64]:
        """Arc positions (m, rear edge along the path) and speeds along the path (m/s) of what is ahead."""
        pos, vel = [path.length], [0.0]  # the end of the path: stop there
        tracks = current_input.current_observation.tracks
        if len(tracks):
            corners = box_corners(tracks.pose[:, 0], tracks.size[:, 0], tracks.size[:, 1])  # (N, 4, 2)
            pts = np.concatenate([corners, tracks.pose[:, 0, None, :2]], 1)  # corners + centre
            arc, lat, dist = path.project(pts)
            near = dist.min(1) < 25.0  # far from every path vertex: the local projection means nothing
            inside = (lat.min(1) <= self.half_width) & (lat.max(1) >= -self.half_width)
            ahead = (arc.max(1) >= s_front) & (arc.min(1) <= s_front + self.lookahead_m)
            keep = near & inside & ahead
            if keep.any():
                k = np.clip(np.searchsorted(path.s, arc[keep, 4]), 0, len(path) - 1)
                h = path.heading[k]
                v = tracks.velocity[keep, 0]
                along = v[:, 0] * np.cos(h) + v[:, 1] * np.sin(h)
                moving = np.isin(tracks.category[keep], AGENT_CATEGORIES)
                pos += list(arc[keep].min(1))
                vel += list(np.where(moving, np.maximum(along, 0.0), 0.0))
        lights = current_input.traffic_lights
        if lights:
            segs, first = np.unique(path.segment, return_index=True)
            for seg, i in zip(segs, first, strict=True):
                if seg < 0 or not self._map.seg_is_connector[seg]:
                    continue
                status = lights.get(int(self._map.seg_id[seg]))
                # a red connector the rear axle has not entered yet is a wall at its start (even if the bumper
                # overshot the line: then the gap is 0 and IDM holds the car)
                if status == TrafficLightStatus.RED and path.s[i] >= s_ego:
                    pos.append(float(path.s[i]))
                    vel.append(0.0)
        return np.asarray(pos), np.asarray(vel)

    # ------------------------------------------------------------------ plan
    def _integrate(self, s_ego: float, v: float, v_target: float, obst_s: F64, obst_v: F64, steps: int) -> F64:
        """Arc positions ``(steps + 1,)`` of the rear axle under IDM (forward Euler; scalar loop: a few obstacles
        and 80 steps are far cheaper in plain floats than in numpy calls)."""
        dt, front, length = self.interval_s, PACIFICA.front_length, PACIFICA.length
        obstacles = list(zip(obst_s.tolist(), obst_v.tolist(), strict=True))
        root = 2.0 * math.sqrt(self.accel_max * self.decel_max)
        v0 = max(v_target, 1e-3)
        out = [s_ego]
        pos = s_ego
        for k in range(steps):
            tk = k * dt
            gap, v_lead = math.inf, 0.0
            for p, w in obstacles:  # the nearest obstacle not yet passed leads
                g = p + w * tk - (pos + front)
                if -length < g < gap:
                    gap, v_lead = g, w
            s_star = self.s0 + v * self.headway + v * (v - v_lead) / root
            ratio = s_star / max(gap, self.s0) if gap < math.inf else 0.0
            acc = self.accel_max * (1.0 - (v / v0) ** 4 - ratio * ratio)
            acc = min(max(acc, -self.decel_max), self.accel_max)
            pos += v * dt
            v = max(v + acc * dt, 0.0)
            out.append(pos)
        return np.asarray(out)

    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        ego = current_input.current_ego
        pose = ego.pose[0]
        if self._path is None:
            self._path = self._build_path(pose)
        path = self._path
        s_ego, lat, _ = path.project(pose[None, :2])
        if abs(lat[0]) > self.replan_lateral_m:
            self._path = path = self._build_path(pose)
            s_ego, lat, _ = path.project(pose[None, :2])
        s_ego, lat0 = float(s_ego[0]), float(lat[0])
        s_front = s_ego + PACIFICA.front_length
        obst_s, obst_v = self._obstacles(path, s_ego, s_front, current_input)

        k_here = int(np.clip(np.searchsorted(path.s, s_ego), 0, len(path) - 1))
        limit = path.speed_limit[k_here]
        v_target = float(limit) if np.isfinite(limit) and limit > 0 else self.target_velocity

        steps = int(round(self.horizon_s / self.interval_s))
        s = self._integrate(s_ego, max(float(ego.velocity[0, 0]), 0.0), v_target, obst_s, obst_v, steps)
        dt = self.interval_s
        t = np.arange(steps + 1) * dt
        offset = lat0 * np.clip(1.0 - t / self.offset_fade_s, 0.0, 1.0)
        poses = _poses_along(path, s, offset)
        poses[0] = pose
        return Trajectory(current_input.time_s + t, poses)
