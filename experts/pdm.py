"""PDM-Closed-style expert: IDM proposals along the route, simulated with the simulator's controller, scored
with the shared PDM scorer, the best one returned (8 s at 0.1 s).

One step (10 Hz), after tuplan_garage's PDM-Closed (see ../shared/reference/planners_sota.md §1.1):

1. centerline: on-route lanes from the lane containing the rear axle (least heading error), Dijkstra over the
   route's lanes (cached between steps while ego stays on it) — :mod:`experts.route`;
2. paths: the centerline at lateral offsets (default −1, 0, +1 m) and, where the current lane has an on-route
   neighbour in its roadblock, a lane change onto the neighbour lane's centerline (passing a stopped vehicle
   that blocks the lane — what PDM-Closed cannot do);
3. obstacles: tracked objects within ``observation_radius`` forecast at constant velocity (static objects
   fixed), red-light lane connectors on a path, the path end — :mod:`experts.proposals`;
4. caution (occlusion risk, not in PDM-Closed): a speed cap near stationary vehicles beside the corridor and
   near crosswalks that an occluder or a pedestrian is close to, and on curves (lateral acceleration);
5. IDM unroll of every (path, target speed) pair, target speeds = ``speed_fractions`` × the lane's speed limit
   (15 m/s without one), plus an emergency-braking proposal;
6. the first ``proposal_horizon_s`` of every proposal simulated in one batch by the LQR + bicycle controller
   (:func:`sim.dynamics.controller.simulate_trajectories`), scored by :func:`experts.scorer.score`;
7. the best proposal wins; a lane change must beat the best lane-keeping proposal by ``lane_change_margin``,
   an off-centre one the best centred one by ``offset_margin`` (near-ties would swing ego from side to side);
   If every proposal has an at-fault collision: within ``emergency_time_s`` the braking proposal is returned
   (PDM-Closed's emergency brake), later the proposal that collides last (constant-velocity forecasts are
   often wrong that far ahead).

Differences from PDM-Closed, for comfort and our corner cases: the IDM command is jerk-limited from ego's
current acceleration (``max_jerk``; switching proposals otherwise jerks the car beyond nuPlan's 4.13 m/s³),
lane changes, caution speed caps, a larger stopping gap behind stationary objects (room to pass them), the
centerline rebuilt whenever ego leaves the cached lane sequence (PDM-Closed builds it once per scenario);
agents that brake hard (speed drop over ``braking_window_s`` in the observation history) are forecast to keep
braking to a stop (``anticipate_braking``); when the mission's route starts after the roadblock ego is in, the
roadblocks leading into it are prepended (:func:`experts.route.extend_route_to_ego`), or every proposal would
look like driving off-route until ego reaches it.

Cost (one core): every proposal is unrolled and scored over ``proposal_horizon_s`` only; the chosen one is
continued to ``horizon_s`` in scalar arithmetic (:func:`experts.proposals.idm_tail`); the scorer reuses its
area rasters, red-light unions and route centerline between steps (:mod:`sim.metrics.pdm_score` caches).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from experts.cut_in import cut_in_forecast
from experts.proposals import (
    Forecast,
    IDMParams,
    PathObstacles,
    ProposalSet,
    braking_profile,
    forecast,
    idm_tail,
    path_obstacles,
    project_forecast,
    speed_cap,
    unroll_idm,
)
from experts.route import (
    Path,
    blend_paths,
    extend_route_to_ego,
    lane_sequence,
    offset_path,
    on_route_mask,
    path_from_segments,
    starting_segment,
    trim_path,
)
from sim.categories import Category, TrafficLightStatus
from sim.dynamics.controller import simulate_trajectories
from sim.geometry import box_corners, boxes_overlap
from sim.planning import Planner, PlannerInitialization, PlannerInput
from sim.scenario import EgoStates, Tracks
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Speed used when the lane has no speed limit (PDM-Closed's ``fallback_target_velocity``).
FALLBACK_SPEED = 15.0


def _unique_rows(key: F64) -> tuple[I64, I64]:
    """First index of each distinct row of ``key`` ``(K, D)`` (in order of appearance) and, per row, the index
    of its distinct row (a dict of row bytes: ~10x cheaper than ``np.unique(axis=0)`` for a few dozen rows)."""
    seen: dict[bytes, int] = {}
    first: list[int] = []
    inverse = np.empty(len(key), np.int64)
    for i, row in enumerate(np.ascontiguousarray(key)):
        j = seen.setdefault(row.tobytes(), len(first))
        if j == len(first):
            first.append(i)
        inverse[i] = j
    return np.asarray(first, np.int64), inverse


@dataclass(frozen=True)
class Plan:
    """What one expert step produced (kept on the planner as ``last_plan`` for tests, labels and debugging).

    ``poses``, ``speed``: ``(K, H+1, 3)``, ``(K, H+1)`` every proposal on its path over the scored horizon H
    (``proposal_horizon_s``; the returned trajectory continues the best one); ``scores``: ``(K,)``; ``best``:
    chosen index;
    ``kind``: ``(K,)`` 0 keep lane, 1 lane change, 2 emergency brake; ``target_speed``, ``offset``: ``(K,)``.
    """

    poses: F64
    speed: F64
    scores: F64
    best: int
    kind: I64
    target_speed: F64
    offset: F64
    emergency: bool


class PDMExpert(Planner):
    """PDM-Closed-style rule-based planner (the teacher). Parameters default to PDM-Closed's values."""

    def __init__(
        self,
        lateral_offsets: tuple[float, ...] = (-1.0, 0.0, 1.0),
        speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0),
        fallback_speed: float = FALLBACK_SPEED,
        lane_changes: bool = True,
        lane_change_margin: float = 0.1,
        offset_margin: float = 0.01,
        lane_change_duration_s: float = 3.0,
        lane_change_bias: float = 0.6,
        pass_lookahead: float = 80.0,
        pass_speed: float = 2.0,
        prune_offsets: bool = False,
        stopped_extra_gap: float = 5.0,
        proposal_horizon_s: float = 4.0,
        horizon_s: float = 8.0,
        interval_s: float = 0.1,
        observation_radius: float = 60.0,
        lookahead_m: float = 160.0,
        min_gap: float = 1.0,
        headway: float = 1.5,
        accel_max: float = 1.5,
        decel_max: float = 3.0,
        exponent: float = 10.0,
        emergency_decel: float = 4.0,
        emergency_time_s: float = 2.0,
        max_jerk: float | None = 1.0,
        caution: bool = True,
        occluder_speed: float = 9.5,
        crosswalk_speed: float = 6.0,
        pedestrian_speed: float = 3.0,
        caution_decel: float = 1.5,
        max_lateral_accel: float = 2.5,
        raster_half_size: float = 64.0,
        raster_resolution: float = 0.5,
        anticipate_braking: bool = True,
        braking_window_s: float = 0.2,
        braking_threshold: float = 2.0,
        anticipate_cut_ins: bool = True,
    ) -> None:
        self.lateral_offsets = tuple(float(o) for o in lateral_offsets)
        self.speed_fractions = np.asarray(speed_fractions, np.float64)
        self.fallback_speed = float(fallback_speed)
        self.lane_changes = bool(lane_changes)
        self.lane_change_margin = float(lane_change_margin)
        self.offset_margin = float(offset_margin)
        self.lane_change_duration_s = float(lane_change_duration_s)
        self.lane_change_bias = float(lane_change_bias)
        self.pass_lookahead = float(pass_lookahead)
        self.pass_speed = float(pass_speed)
        self.prune_offsets = bool(prune_offsets)
        self.stopped_extra_gap = float(stopped_extra_gap)
        self.proposal_steps = int(round(proposal_horizon_s / interval_s))
        self.steps = int(round(horizon_s / interval_s))
        self.dt = float(interval_s)
        self.observation_radius = float(observation_radius)
        self.lookahead_m = float(lookahead_m)
        self.idm = IDMParams(min_gap, headway, accel_max, decel_max, exponent)
        self.emergency_decel = float(emergency_decel)
        self.emergency_time_s = float(emergency_time_s)
        self.max_jerk = None if max_jerk is None else float(max_jerk)
        self.caution = bool(caution)
        self.occluder_speed = float(occluder_speed)
        self.crosswalk_speed = float(crosswalk_speed)
        self.pedestrian_speed = float(pedestrian_speed)
        self.caution_decel = float(caution_decel)
        self.max_lateral_accel = float(max_lateral_accel)
        self.raster_half_size = float(raster_half_size)
        self.raster_resolution = float(raster_resolution)
        self.anticipate_braking = bool(anticipate_braking)
        self.braking_window_s = float(braking_window_s)
        self.braking_threshold = float(braking_threshold)
        self.anticipate_cut_ins = bool(anticipate_cut_ins)
        self.last_scores = None
        #: Set to a dict to collect the scorer's CPU seconds per stage (off by default: reading the clock costs).
        self.timings: dict[str, float] | None = None
        self._map = None
        self._route: tuple[int, ...] = ()
        self._on_route = None
        self._lanes: dict[int, tuple[list[int], Path]] = {}
        self._lc_target = -1
        self.last_plan: Plan | None = None
        self.step_times: list[float] = []

    # ------------------------------------------------------------------ lifecycle
    def initialize(self, initialization: PlannerInitialization) -> None:
        self._map = initialization.map_api
        self._route = tuple(int(r) for r in initialization.route_roadblock_ids)
        self._on_route = on_route_mask(self._map, self._route)
        self._lanes = {}
        self._lc_target = -1
        self.last_plan = None
        self.step_times = []

    # ------------------------------------------------------------------ paths
    def _lane_path(self, start: int) -> Path:
        """The centerline from segment ``start`` along the route; cached while the sequence is still ahead."""
        for seq, path in self._lanes.values():
            if start in seq:
                return path
        seq = lane_sequence(self._map, start, self._on_route, self._route)
        path = path_from_segments(self._map, seq)
        if len(self._lanes) > 16:
            self._lanes.clear()
        self._lanes[start] = (seq, path)
        return path

    def _blocked(self, main: Path, s_ego: float, fc: Forecast, ignore: npt.NDArray[np.bool_]) -> bool:
        """Whether a (nearly) stationary object stands in ego's lane within ``pass_lookahead`` metres."""
        n = len(fc.speed)
        if n == 0:
            return False
        obs = path_obstacles(main, np.zeros(1), fc, np.zeros(0), ignore, projection=self._projection(main, fc))
        lo, hi = obs.s_min[0, 0, :n], obs.s_max[0, 0, :n]
        return bool(((hi > s_ego) & (lo < s_ego + self.pass_lookahead) & (fc.speed < self.pass_speed)).any())

    def _paths(self, pose: F64, speed: float, lights: dict[int, int], fc: Forecast,
               ignore: npt.NDArray[np.bool_]) -> tuple[list[Path], list[int], F64, list[int]]:
        """Trimmed base paths (main lane first, then lane changes), their kinds, ego's arc on each and the
        target lane (segment) of each lane change (-1 for the main path).

        Lane changes are proposed only while a stationary object blocks ego's lane ahead (or a change is under
        way): they exist to pass blockers, and every proposal costs simulation and scoring time."""
        start = starting_segment(self._map, pose, self._on_route)
        full = self._lane_path(start)
        s_full = float(full.project(pose[None, :2])[0][0])
        if s_full > full.length - 40.0:  # nearly used up: rebuild from here
            self._lanes.clear()
            full = self._lane_path(start)
            s_full = float(full.project(pose[None, :2])[0][0])
        main = trim_path(full, max(s_full - 2.0, 0.0), s_full + self.lookahead_m)
        paths, kinds, targets = [main], [0], [-1]
        s_main, lat_main, _ = main.project(pose[None, :2])
        s_on = [float(s_main[0])]
        if self._lc_target >= 0 and (start == self._lc_target or self._map.seg_roadblock_id[start]
                                     != self._map.seg_roadblock_id[self._lc_target]):
            self._lc_target = -1  # arrived in the target lane (or left its roadblock): the change is over
        # No lane change toward a red light on ego's lane: the stop is for the light, not for a blocker.
        red_ahead = self._red_light_arcs(main, s_on[0], lights)
        red_near = bool(len(red_ahead)) and float(red_ahead.min()) < s_on[0] + 60.0
        want = self.lane_changes and not self._map.seg_is_connector[start] and not red_near
        if want and (self._lc_target >= 0 or self._blocked(main, s_on[0], fc, ignore)):
            # A lane change starts where ego is now (its lateral offset from the lane centre), not on the centre.
            here = offset_path(main, float(lat_main[0]))
            for nb in (self._map.seg_left[start], self._map.seg_right[start]):
                if nb < 0 or not self._on_route[nb]:
                    continue
                other = self._lane_path(int(nb))
                s_nb, side, _ = other.project(pose[None, :2])
                # nuPlan's LQR overshoots a lateral step by ~0.6 m: aim a little short of the neighbour's centre
                # (the next steps re-centre on it once ego's rear axle is in that lane).
                bias = float(np.sign(side[0])) * self.lane_change_bias
                other = offset_path(other, bias)
                remaining = abs(float(side[0]) - bias)
                ramp = float(np.clip(speed * self.lane_change_duration_s * np.clip(remaining / 3.5, 0.4, 1.0),
                                     8.0, 50.0))
                lc = blend_paths(here, s_on[0], other, float(s_nb[0]), 0.0, ramp)
                if lc.length < 10.0:
                    continue
                paths.append(lc)
                kinds.append(1)
                targets.append(int(nb))
                s_on.append(0.0)
        return paths, kinds, np.asarray(s_on), targets

    def _projection(self, path: Path, fc: Forecast) -> tuple[F64, F64, F64]:
        """The forecast projected on ``path``, memoised for the current step (the main path is used twice)."""
        key = id(path)
        if key not in self._step_projections:
            self._step_projections[key] = (path, project_forecast(path, fc))  # keep path alive: ids stay unique
        return self._step_projections[key][1]

    def _red_light_arcs(self, path: Path, s_front: float, lights: dict[int, int]) -> F64:
        if not lights:
            return np.zeros(0)
        segs, first = np.unique(path.segment, return_index=True)
        out = []
        for seg, i in zip(segs, first, strict=True):
            if seg < 0 or not self._map.seg_is_connector[seg]:
                continue
            if lights.get(int(self._map.seg_id[seg])) == TrafficLightStatus.RED and path.s[i] > s_front - 1.0:
                out.append(float(path.s[i]))
        return np.asarray(out)

    def _caution_points(self, path: Path, s_ego: float, tracks: Tracks, lat_lo: F64, lat_hi: F64,
                        arc_lo: F64, arc_hi: F64) -> tuple[F64, F64]:
        """Arc positions and speeds where occluded road users may appear (crosswalks, parked vehicles)."""
        half = PACIFICA.width / 2.0 + 0.15
        speed = np.hypot(tracks.velocity[:, -1, 0], tracks.velocity[:, -1, 1]) if len(tracks) else np.zeros(0)
        gap = np.maximum(lat_lo - half, -half - lat_hi)  # lateral gap between corridor edge and the box
        ahead = (arc_hi > s_ego) & (arc_lo < s_ego + 80.0)
        is_vehicle = tracks.category == Category.VEHICLE
        occluder = is_vehicle & (np.nan_to_num(speed) < 0.5) & (gap > 0.0) & (gap < 3.0) & ahead
        pts_s, pts_v = [], []
        for lo, hi in zip(arc_lo[occluder], arc_hi[occluder], strict=True):
            marks = np.arange(lo, hi + 2.0, 2.0)
            pts_s.append(marks)
            pts_v.append(np.full(len(marks), self.occluder_speed))
        is_ped = np.isin(tracks.category, (Category.PEDESTRIAN, Category.BICYCLE))
        # Road users close to the corridor that walk toward it (or almost touch it): slow down. Pedestrians
        # walking along the sidewalk are left alone, or the expert would crawl through every street.
        h = np.interp(0.5 * (arc_lo + arc_hi), path.s, path.heading)
        vel = np.nan_to_num(tracks.velocity[:, -1]) if len(tracks) else np.zeros((0, 2))
        v_lat = -vel[:, 0] * np.sin(h) + vel[:, 1] * np.cos(h)
        toward = (0.5 * (lat_lo + lat_hi)) * v_lat < -0.3 * np.abs(0.5 * (lat_lo + lat_hi))
        ped = is_ped & ahead & (((gap < 2.5) & toward) | (gap < 0.8))
        if ped.any():
            pts_s.append(arc_lo[ped])
            pts_v.append(np.full(int(ped.sum()), self.pedestrian_speed))
        # Crosswalks on the path: slow down only when something hides or stands near them.
        hidden = occluder | (is_ped & (gap < 6.0) & ahead)
        if hidden.any():
            ahead_v = (path.s > s_ego) & (path.s < s_ego + 80.0)
            in_cw = np.full(len(path), -1, np.int64)
            in_cw[ahead_v] = self._map.in_layer("crosswalks", path.xy[ahead_v])
            if (in_cw >= 0).any():
                centers = 0.5 * (arc_lo[hidden] + arc_hi[hidden])
                starts = np.flatnonzero((in_cw >= 0) & (np.concatenate([[-1], in_cw[:-1]]) != in_cw))
                for i in starts:
                    if np.min(np.abs(centers - path.s[i])) < 20.0:
                        pts_s.append(np.array([path.s[i]]))
                        pts_v.append(np.array([self.crosswalk_speed]))
        if not pts_s:
            return np.zeros(0), np.zeros(0)
        # The caps apply to the rear axle: the front bumper must be slow when it reaches the point.
        return np.concatenate(pts_s) - PACIFICA.front_length, np.concatenate(pts_v)

    # ------------------------------------------------------------------ plan
    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        t_start = time.perf_counter()
        ego = current_input.current_ego
        pose = ego.pose[0]
        v0 = float(ego.velocity[0, 0])
        tracks = current_input.current_observation.tracks
        self._step_projections: dict[int, tuple[Path, tuple[F64, F64, F64]]] = {}
        route = extend_route_to_ego(self._map, self._route, pose)
        if route != self._route:  # ego starts before the route's first roadblock: lead it in
            self._route = route
            self._on_route = on_route_mask(self._map, route)
            self._lanes = {}
        if len(tracks):
            d = np.hypot(tracks.pose[:, -1, 0] - pose[0], tracks.pose[:, -1, 1] - pose[1])
            tracks = tracks.select(d < self.observation_radius)
        num_samples = self.steps // 2 + 1
        decel = self._braking_rates(current_input, tracks) if self.anticipate_braking else None
        fc = forecast(tracks, num_samples, 2 * self.dt, decel)
        # Objects ego already overlaps are ignored (PDM-Closed does the same), or the expert would freeze.
        ego_box = box_corners(ego.center()[0], PACIFICA.length, PACIFICA.width)
        ignore = boxes_overlap(ego_box[None], fc.corners) if len(tracks) else np.zeros(0, bool)
        paths, kinds, s_ego, lane_targets = self._paths(pose, v0, current_input.traffic_lights, fc, ignore)
        if self.anticipate_cut_ins and len(tracks):
            fc_cut = cut_in_forecast(fc, paths[0], float(s_ego[0]))
            if fc_cut is not fc:  # the paths' projections of the old forecast are stale
                fc, self._step_projections = fc_cut, {}

        # Obstacles per (path, offset) combo, caps per path.
        offsets_per_path = [self.lateral_offsets if k == 0 else (0.0,) for k in kinds]
        combos_s_min, combos_s_max, combos_speed, combo_path, combo_offset = [], [], [], [], []
        caps = []
        main_pts = (np.zeros(0), np.zeros(0))
        for b, path in enumerate(paths):
            s_front = s_ego[b] + PACIFICA.front_length
            red = self._red_light_arcs(path, s_front, current_input.traffic_lights)
            obs: PathObstacles = path_obstacles(path, np.asarray(offsets_per_path[b]), fc, red, ignore,
                                                stopped_extra_gap=self.stopped_extra_gap,
                                                projection=self._projection(path, fc))
            offs = offsets_per_path[b]
            center = offs.index(0.0) if 0.0 in offs else -1
            for d_i, off in enumerate(offs):
                if (self.prune_offsets and center >= 0 and d_i != center
                        and np.array_equal(obs.s_min[d_i], obs.s_min[center])):
                    continue  # same obstacles as the centre line: the same speed profile, only off-centre
                combos_s_min.append(obs.s_min[d_i])
                combos_s_max.append(obs.s_max[d_i])
                combos_speed.append(obs.speed)
                combo_path.append(b)
                combo_offset.append(off)
            pts_s, pts_v = np.zeros(0), np.zeros(0)
            if self.caution and len(tracks):
                s_now, lat_now, _ = path.project(fc.corners)
                pts_s, pts_v = self._caution_points(path, s_ego[b], tracks, lat_now.min(-1), lat_now.max(-1),
                                                    s_now.min(-1), s_now.max(-1))
                if b == 0:
                    main_pts = (pts_s - s_ego[0], pts_v)  # relative to ego
                else:  # a lane change must not be a way around the caution of ego's own lane
                    pts_s = np.concatenate([pts_s, main_pts[0] + s_ego[b]])
                    pts_v = np.concatenate([pts_v, main_pts[1]])
            cap = speed_cap(path, pts_s, pts_v, self.caution_decel, self.max_lateral_accel)
            grid = np.arange(int(path.length) + 2, dtype=np.float64)
            caps.append(np.interp(grid, path.s, cap))
        width = max(len(c) for c in caps)
        cap_grid = np.empty((len(caps), width))
        for b, c in enumerate(caps):  # (np.pad is slow for this many small arrays)
            cap_grid[b, :len(c)] = c
            cap_grid[b, len(c):] = c[-1]

        # Proposals: every combo × every target speed.
        k_here = int(np.clip(np.searchsorted(paths[0].s, s_ego[0]), 0, len(paths[0]) - 1))
        limit = paths[0].speed_limit[k_here]
        v_max = float(limit) if np.isfinite(limit) and limit > 0 else self.fallback_speed
        targets = self.speed_fractions * v_max
        n_c, n_v = len(combo_path), len(targets)
        combo = np.repeat(np.arange(n_c), n_v)
        props = ProposalSet(np.asarray(combo_path)[combo], np.asarray(combo_offset)[combo],
                            np.tile(targets, n_c), combo)
        m = max(a.shape[-1] for a in combos_s_min)  # paths may hold different numbers of red lights

        def pad(arrays: list[F64], fill: float) -> F64:
            out = np.full((len(arrays), arrays[0].shape[0], m), fill)
            for i, a in enumerate(arrays):
                out[i, :, :a.shape[-1]] = a
            return out

        # Every proposal is unrolled over the scored horizon only; the chosen one is continued afterwards.
        obstacles = (pad(combos_s_min, np.inf), pad(combos_s_max, -np.inf), pad(combos_speed, 0.0))
        head_steps = min(self.proposal_steps, self.steps)
        s, v, acc_end = unroll_idm(s_ego[props.path], v0, props, *obstacles, cap_grid, head_steps, self.dt,
                                   self.idm, a0=float(ego.acceleration[0, 0]), max_jerk=self.max_jerk,
                                   return_accel=True)
        sb_full, vb_full = braking_profile(s_ego[0], v0, self.steps, self.emergency_decel, self.dt)
        s = np.concatenate([s, sb_full[None, :head_steps + 1]])
        v = np.concatenate([v, vb_full[None, :head_steps + 1]])
        prop_path = np.concatenate([props.path, [0]])
        prop_offset = np.concatenate([props.offset, [0.0]])
        kind = np.concatenate([np.asarray(kinds)[props.path], [2]])
        lane_target = np.concatenate([np.asarray(lane_targets)[props.path], [-1]])
        target = np.concatenate([props.target_speed, [0.0]])
        poses = np.empty(s.shape + (3,))
        for b, path in enumerate(paths):
            rows = prop_path == b
            poses[rows] = path.poses_at(s[rows], prop_offset[rows][:, None])
        # The braking proposal keeps ego's present lateral position (no swerve while braking hard).
        _, lat0, _ = paths[0].project(pose[None, :2])
        poses[-1] = paths[0].poses_at(s[-1], float(lat0[0]))

        # Proposals that end up identical (every target speed stuck behind the same leader) are scored once.
        head = poses
        key = np.round(head[:, ::4, :2] * 20.0).reshape(len(head), -1)
        first, inverse = _unique_rows(key)
        scores_u, coll_u = self._score(head[first], ego, tracks, current_input)
        scores, collision_time = scores_u[inverse], coll_u[inverse]
        best = self._choose(scores, kind, lane_target, prop_offset)
        emergency = False
        if np.isinf(collision_time).any():
            pass  # some proposal is free of at-fault collisions: the scores decide
        elif collision_time.max() <= self.emergency_time_s:
            emergency, best = True, len(scores) - 1  # every proposal collides soon: brake hard
        else:
            # Every proposal collides, but not soon (constant-velocity forecasts often cry wolf): the one
            # that collides latest, best score among those.
            # The braking proposal is kept for real emergencies (it jerks the car).
            t = collision_time[:-1]
            late = np.flatnonzero(t >= t.max() - 1e-9)
            best = int(late[np.argmax(scores[late])])
        # The chosen proposal over the whole returned horizon.
        if best == len(scores) - 1:  # braking: a closed form
            s_best = sb_full
        else:
            c = props.combo[best]
            tail_s, _ = idm_tail(s[best, -1], v[best, -1], float(acc_end[best]), head_steps,
                                 self.steps - head_steps, float(props.target_speed[best]), obstacles[0][c],
                                 obstacles[1][c], obstacles[2][c], cap_grid[props.path[best]], self.dt, self.idm,
                                 max_jerk=self.max_jerk)
            s_best = np.concatenate([s[best], tail_s])
        lateral = float(lat0[0]) if best == len(scores) - 1 else prop_offset[best]
        best_poses = paths[prop_path[best]].poses_at(s_best, lateral)
        self.last_plan = Plan(poses, v, scores, best, kind, target, prop_offset, emergency)
        self._step_projections = {}
        self.step_times.append(time.perf_counter() - t_start)
        return Trajectory(current_input.time_s + self.dt * np.arange(self.steps + 1), best_poses)

    def _braking_rates(self, current_input: PlannerInput, tracks: Tracks) -> F64 | None:
        """``(N,)`` deceleration (m/s², ≥ 0) of each object over the last ``braking_window_s``, from the
        observation history (0 where unknown or not braking clearly)."""
        history = current_input.observation_history
        lag = int(round(self.braking_window_s / self.dt))
        if len(tracks) == 0 or len(history) <= lag:
            return None
        past = history[-1 - lag].tracks
        if len(past) == 0:
            return None
        index = {tok: i for i, tok in enumerate(past.token)}
        rows = np.array([index.get(tok, -1) for tok in tracks.token])
        known = rows >= 0
        if not known.any():
            return None
        v_now = np.hypot(tracks.velocity[:, -1, 0], tracks.velocity[:, -1, 1])
        v_past = np.full(len(tracks), np.nan)
        v_past[known] = np.hypot(past.velocity[rows[known], -1, 0], past.velocity[rows[known], -1, 1])
        rate = np.nan_to_num((v_past - v_now) / (lag * self.dt), nan=0.0)
        # Only clear, hard braking counts (noise and gentle slowing stay constant-velocity, as PDM-Closed).
        return np.where(rate > self.braking_threshold, np.minimum(rate, 10.0), 0.0)

    def _choose(self, scores: F64, kind: I64, target: I64, offset: F64) -> int:
        """Best lane-keeping proposal unless a lane change beats it by ``lane_change_margin`` (a change that is
        under way only needs to match it, so the expert does not swing back half-way); among lane-keeping ones,
        an off-centre proposal must beat the best centred one by ``offset_margin``."""
        keep = kind != 1
        best_keep = int(np.flatnonzero(keep)[np.argmax(scores[keep])])
        centred = np.flatnonzero(keep & (offset == 0.0))
        if len(centred) and offset[best_keep] != 0.0:
            best_centred = int(centred[np.argmax(scores[centred])])
            if scores[best_keep] <= scores[best_centred] + self.offset_margin:
                best_keep = best_centred
        lc = np.flatnonzero(kind == 1)
        if len(lc):
            best_lc = int(lc[np.argmax(scores[lc])])
            ongoing = self._lc_target >= 0 and target[best_lc] == self._lc_target
            margin = -1e-9 if ongoing else self.lane_change_margin
            if scores[best_lc] > 0.0 and scores[best_lc] > scores[best_keep] + margin:
                self._lc_target = int(target[best_lc])
                return best_lc
        return best_keep

    def _score(self, poses: F64, ego: EgoStates, tracks: Tracks, current_input: PlannerInput
               ) -> tuple[F64, F64]:
        """Simulate ``poses`` ``(K, T+1, 3)`` (first pose = now) and score them with the shared scorer.

        Returns the PDM score ``(K,)`` and the time of each proposal's first at-fault collision ``(K,)`` (s
        from now, inf if none).
        """
        from sim.metrics.pdm_score import build_scoring_world, score_trajectories

        rollout = simulate_trajectories(ego, poses, self.dt, reference_includes_current=True)
        world = build_scoring_world(self._map, self._route, ego, tracks, current_input.traffic_lights,
                                    self.dt * np.arange(poses.shape[1]), raster_half_size=self.raster_half_size,
                                    resolution=self.raster_resolution)
        result = score_trajectories(rollout, world, timings=self.timings)
        self.last_scores = result
        return result.pdm_score, np.asarray(result.collision_time_s, np.float64)
