"""Scenario families: nominal driving (nuPlan scenario types) and corner cases, each a seeded distribution.

A family ``setup(world, rng, plan)`` places the ego and the actors and returns a *director*, called before
every 0.1 s step, that triggers the event and records ``world.events['tag']`` (the tagged time) and
``world.tag_agent``. ``check(rec, layers)`` verifies from the log alone that the event really happened (the
tests run it on files read back). Corner-case tags are prefixed ``corner_``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sim.categories import Category, TrafficLightStatus
from sim.geometry import to_local
from sim.nuplan_map.layers import MapLayers
from sim.synth.checks import LogView
from sim.synth.record import ScenePlan
from sim.synth.scene import (
    arc_to_seg,
    lane_path,
    lanes,
    on_segment,
    place_ego,
    populate,
    remove_vehicles_on,
    road,
    spawn_clear,
)
from sim.synth.world import DriverParams, World, agent_params

Director = Callable[[World], None]


@dataclass(frozen=True)
class Family:
    name: str
    tag: str
    corner: bool
    setup: Callable[[World, np.random.Generator, ScenePlan], Director]
    check: Callable[[LogView, MapLayers], str | None]
    description: str = ""


FAMILIES: dict[str, Family] = {}


def _family(name: str, tag: str, corner: bool, check: Callable, description: str):
    def deco(setup: Callable) -> Callable:
        FAMILIES[name] = Family(name, tag, corner, setup, check, description)
        return setup
    return deco


def _tag(world: World, track: int = -1, delay: float = 0.0) -> None:
    """Tag the current time (plus ``delay``: 0.1 to tag the sample the coming step records)."""
    if "tag" not in world.events:
        world.events["tag"] = round(world.t + delay, 6)
        world.tag_agent = track


def _ego_start_west(world: World, rng: np.random.Generator, lane_index: int | None = None,
                    turns: tuple[str, ...] = (), s: float | None = None) -> list[int]:
    town = world.town
    west = lanes(town, "arterial-west", True)
    k = int(rng.integers(len(west))) if lane_index is None else lane_index
    segs = lane_path(town, west[k], turns)
    place_ego(world, segs, float(rng.uniform(0.0, 15.0)) if s is None else s,
              town.segments[west[k]].speed_limit * float(rng.uniform(0.75, 0.95)))
    return segs


def _ahead(world: World, pose: np.ndarray, dist: float, lateral: float = 1.6) -> bool:
    """Whether ``pose`` is within ``dist`` m ahead of the ego centre and within ``lateral`` m of its axis."""
    loc = to_local(np.asarray(pose, float), world.ego.center_pose())
    return bool(0.0 < loc[0] < dist and abs(loc[1]) < lateral)


def _tag_track(rec: LogView) -> int:
    return rec.tag_agent


def _tag_frame(rec: LogView) -> int:
    return rec.tag


def _agent_in_ego_frame(rec: LogView, track: int, frame: int, ego_frame: int | None = None) -> np.ndarray:
    """``(F, 3)`` poses of ``track`` in the ego frame at ``ego_frame`` (default: each frame's own ego)."""
    p = rec.tracks.pose[track]
    if ego_frame is None:
        return to_local(p, rec.ego.center())
    return to_local(p, rec.ego.center()[ego_frame])


# ------------------------------------------------------------------------------------------ nominal
def _check_no_lead(rec: LogView, layers: MapLayers) -> str | None:
    f = _tag_frame(rec)
    if rec.ego.speed[f] < 3.0:
        return f"ego speed {rec.ego.speed[f]:.1f} m/s at the tag"
    tr = rec.tracks
    loc = to_local(np.nan_to_num(tr.pose[:, f]), rec.ego.center()[f])
    ahead = tr.valid[:, f] & (loc[:, 0] > 0.0) & (loc[:, 0] < 40.0) & (np.abs(loc[:, 1]) < 1.5)
    return f"{int(ahead.sum())} objects ahead in the ego lane at the tag" if ahead.any() else None


@_family("lane_follow", "following_lane_without_lead", False, _check_no_lead,
         "Ego follows its lane along the arterial with no vehicle ahead.")
def _lane_follow(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    turns = tuple(rng.choice(["straight", "left", "right"], p=[0.6, 0.2, 0.2]) for _ in range(1))
    k = 0 if turns[0] == "left" else 1 if turns[0] == "right" else None
    segs = _ego_start_west(world, rng, k, turns)
    populate(world, rng, density=float(rng.uniform(0.6, 1.2)),
             keep_clear=tuple((s, -1e9, 1e9) for s in segs[:1]))
    t_min = plan.before_tag + float(rng.uniform(0.0, 3.0))

    def director(w: World) -> None:
        if w.t < t_min or "tag" in w.events:
            return
        ego = w.ego
        seg, _ = on_segment(ego)
        if ego.v < 4.0 or w.town.segments[seg].is_connector:
            return
        for tgt in w._targets(ego):
            if tgt.who >= 0 and tgt.gap < 40.0:
                return
        _tag(w)
    return director


def _tagged_ahead_in_lane(rec: LogView, what: str, max_ahead_m: float, lateral_m: float = 1.5
                          ) -> tuple[int, int, str | None]:
    """``(tag frame, tagged track, problem)``: the tagged agent must be 0..max_ahead_m ahead in the ego lane
    (within ``lateral_m`` of ego's axis)."""
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0:
        return f, j, f"no {what} tagged"
    loc = _agent_in_ego_frame(rec, j, f, f)[f]
    if not (0.0 < loc[0] < max_ahead_m and abs(loc[1]) < lateral_m):
        return f, j, f"{what} not ahead in the ego lane at the tag: {loc[:2].round(1)}"
    return f, j, None


def _check_lead(rec: LogView, layers: MapLayers) -> str | None:
    return _tagged_ahead_in_lane(rec, "lead vehicle", 45.0)[2]


def _spawn_lead(world: World, rng: np.random.Generator, segs: list[int], gap: float, speed_factor: float):
    ego = world.ego
    params = agent_params(rng)
    params.speed_factor = speed_factor
    lead = world.add_vehicle(segs, ego.sc + gap, ego.v, params)
    return lead


@_family("following_lead", "following_lane_with_lead", False, _check_lead,
         "Ego follows a slower lead vehicle in its lane.")
def _following_lead(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    segs = _ego_start_west(world, rng)
    lead = _spawn_lead(world, rng, segs, float(rng.uniform(25, 40)), float(rng.uniform(0.7, 0.88)))
    populate(world, rng, density=float(rng.uniform(0.6, 1.2)), keep_clear=((segs[0], -1e9, 1e9),))
    t_min = plan.before_tag + float(rng.uniform(0.0, 3.0))

    def director(w: World) -> None:
        if w.t < t_min or "tag" in w.events or not lead.active:
            return
        ego = w.ego
        if ego.v < 3.5 or lead.v < 3.0:
            return
        if on_segment(ego)[0] != on_segment(lead)[0]:
            return
        _tag(w, lead.track)
    return director


def _check_stop_at_light(rec: LogView, layers: MapLayers) -> str | None:
    f = _tag_frame(rec)
    if rec.ego.speed[f] > 0.5:
        return f"ego not stopped at the tag ({rec.ego.speed[f]:.1f} m/s)"
    red = (rec.lights.status[f] == TrafficLightStatus.RED).any()
    return None if red else "no red light at the tag"


def _approach_signal(world: World, rng: np.random.Generator, segs: list[int]) -> tuple[int, int]:
    """The first signalised connector on ``segs`` and its node."""
    conn = next(i for i in segs if world.town.segments[i].phase >= 0)
    return conn, world.town.segments[conn].node


@_family("red_light_stop", "stopping_at_traffic_light_without_lead", False, _check_stop_at_light,
         "Ego approaches a signalised intersection; the light turns yellow then red and the ego stops.")
def _red_light_stop(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    segs = _ego_start_west(world, rng)
    conn, node = _approach_signal(world, rng, segs)
    populate(world, rng, density=float(rng.uniform(0.5, 1.0)), keep_clear=((segs[0], -1e9, 1e9),))
    b_trigger = float(rng.uniform(1.3, 1.9))
    state = {"forced": False}

    def director(w: World) -> None:
        ego = w.ego
        d = arc_to_seg(ego, conn) - ego.length / 2
        ours_green = w.signals.status(conn) == TrafficLightStatus.GREEN
        if not state["forced"] and w.t > 5.0 and d > 0 and (d < ego.v * ego.v / (2 * b_trigger) + ego.v + 5.0
                                                         or (not ours_green and d < 150.0)):
            state["forced"] = True
            phase = w.town.segments[conn].phase
            cur, stage = w.signals.phase_of(node)
            if cur == phase and stage == "green":
                w.signals.force_yellow(node)
        if state["forced"] and "tag" not in w.events:
            cur, stage = w.signals.phase_of(node)
            if cur != w.town.segments[conn].phase and stage == "green":
                w.signals.hold(node, w.t + 8.0)  # keep the crossing traffic's green until we have stopped
            if ego.v < 0.3 and 0 < d < 25.0:
                _tag(w)
    return director


@_family("start_at_green", "starting_straight_traffic_light_intersection_traversal", False,
         lambda rec, layers: None if rec.ego.speed[rec.tag] < 0.5 and
         rec.ego.speed[min(rec.tag + rec.steps(10), rec.num_frames - 1)] > 3.0 else "ego did not start at green",
         "Ego waits at a red light, the light turns green and the ego starts from standstill.")
def _start_at_green(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    segs = _ego_start_west(world, rng)
    conn, node = _approach_signal(world, rng, segs)
    populate(world, rng, density=float(rng.uniform(0.5, 1.0)), keep_clear=((segs[0], -1e9, 1e9),))
    wait = float(rng.uniform(3.0, 9.0))
    state = {"forced": False, "stopped": None, "released": False}

    def director(w: World) -> None:
        ego = w.ego
        d = arc_to_seg(ego, conn) - ego.length / 2
        phase = w.town.segments[conn].phase
        cur, stage = w.signals.phase_of(node)
        ours_green = w.signals.status(conn) == TrafficLightStatus.GREEN
        if not state["forced"] and w.t > 5.0 and d > 0 and (d < ego.v * ego.v / 3.0 + ego.v + 5.0
                                                         or (not ours_green and d < 150.0)):
            state["forced"] = True
            if cur == phase and stage == "green":
                w.signals.force_yellow(node)
        if state["forced"] and not state["released"] and cur != phase and stage == "green":
            w.signals.hold(node, w.t + 8.0)  # the crossing traffic keeps its green until we release it
        if state["forced"] and state["stopped"] is None and ego.v < 0.1 and 0 < d < 25.0:
            state["stopped"] = w.t
        if (state["stopped"] is not None and not state["released"] and
                w.t > max(state["stopped"] + wait, plan.before_tag - 0.5)):
            state["released"] = True
            w.signals.hold(node, w.t)  # end the hold: the cycle moves on to our phase
            if cur != phase and stage == "green":
                w.signals.force_yellow(node)
        if state["released"] and "tag" not in w.events and cur == phase and stage == "green":
            _tag(w)
    return director


# ------------------------------------------------------------------------------------------ corner cases
def _check_cut_in(rec: LogView, layers: MapLayers) -> str | None:
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0:
        return "no cut-in vehicle tagged"
    at_tag = _agent_in_ego_frame(rec, j, f, f)[f]
    if not (2.0 < abs(at_tag[1]) < 5.0 and at_tag[0] > 0.0):
        return f"cut-in vehicle not beside/ahead in the next lane at the tag: {at_tag[:2].round(1)}"
    loc = _agent_in_ego_frame(rec, j, 0)
    later = np.arange(f + rec.steps(1), min(f + rec.steps(10), rec.num_frames))
    ok = rec.tracks.valid[j, later] & (np.abs(loc[later, 1]) < 1.0) & (loc[later, 0] > 0.0)
    return None if ok.any() else "cut-in vehicle never ended ahead in the ego lane"


@_family("cut_in", "corner_cut_in", True, _check_cut_in,
         "A vehicle in the next lane cuts into the ego lane a few metres ahead of the ego and slows down.")
def _cut_in(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    town = world.town
    west = lanes(town, "arterial-west", True)
    k = int(rng.integers(2))
    segs = _ego_start_west(world, rng, k)
    other = lane_path(town, west[1 - k])
    rel_target = float(rng.uniform(6.5, 9.0))  # centre to centre along the lanes when it cuts in
    # As it starts across it brakes (3.5-4.5 m/s²) to 60-80 % of the ego's speed: a planner that reacts only once
    # the car is in its lane closes in too fast; one that forecasts the lane change slows down in time.
    slow = float(rng.uniform(0.6, 0.8))
    decel = float(rng.uniform(3.5, 4.5))
    params = agent_params(rng)
    params.speed_factor = 1.1
    cutter = world.add_vehicle(other, world.ego.sc + rel_target, world.ego.v, params)
    populate(world, rng, density=float(rng.uniform(0.5, 1.0)),
             keep_clear=((segs[0], -1e9, 1e9), (other[0], -1e9, 1e9)))
    t_trig = plan.before_tag + float(rng.uniform(0.0, 2.0))
    lc_time = float(rng.uniform(2.0, 3.0))
    state: dict = {"cut": None, "v_end": 0.0, "braked": False}

    def director(w: World) -> None:
        ego = w.ego
        if not cutter.active:
            return
        rel = cutter.sc - ego.sc
        if state["cut"] is None:
            cutter.v_target = max(0.0, ego.v + 0.5 * (rel_target - rel))
            seg, s_on = on_segment(ego)
            me = w.town.segments[seg]
            room = me.length - s_on
            if (w.t >= t_trig and ego.v > 6.0 and not me.is_connector and room > 70.0
                    and on_segment(cutter)[0] in (me.left, me.right)):
                rest = w.town.lane_route(seg, ego.route[ego.route.index(w.town.segments[seg].roadblock):])
                if rest is None or abs(rel - rel_target) > 3.0:
                    return
                state["cut"], state["v_end"] = w.t, ego.v * slow
                side = 1 if on_segment(cutter)[0] == me.left else -1
                w.start_lane_change(cutter, rest, side, max(12.0, cutter.v * lc_time))
                cutter.v_target = ego.v
                _tag(w, cutter.track)
            return
        since = w.t - state["cut"]
        if since >= 0.3 * lc_time and not state["braked"]:
            state["braked"] = True
            cutter.a_override = -decel
        if cutter.a_override is not None and cutter.v <= state["v_end"]:
            cutter.a_override, cutter.a, cutter.v_target = None, 0.0, state["v_end"]
        if since > lc_time + 4.0:
            cutter.v_target = None
    return director


def _check_hard_brake(rec: LogView, layers: MapLayers) -> str | None:
    f, j, problem = _tagged_ahead_in_lane(rec, "lead", 50.0)
    if problem:
        return problem
    v = np.hypot(*rec.tracks.velocity[j, f:f + rec.steps(3)].T)
    dv = np.nanmax(v[:rec.steps(1)]) - np.nanmin(v)
    return None if dv > 4.0 else f"lead slowed by only {dv:.1f} m/s"


@_family("hard_braking_lead", "corner_hard_braking_lead", True, _check_hard_brake,
         "The lead vehicle brakes hard (4.5-6.5 m/s²), to a stop or a crawl.")
def _hard_braking_lead(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    segs = _ego_start_west(world, rng)
    lead = _spawn_lead(world, rng, segs, float(rng.uniform(25, 35)), float(rng.uniform(0.8, 0.9)))
    populate(world, rng, density=float(rng.uniform(0.5, 1.0)), keep_clear=((segs[0], -1e9, 1e9),))
    decel = float(rng.uniform(4.5, 6.5))
    v_end = float(rng.choice([0.0, rng.uniform(1.0, 4.0)]))
    t_trig = plan.before_tag + float(rng.uniform(0.0, 2.0))
    state = {"brake": None}

    def director(w: World) -> None:
        ego = w.ego
        if not lead.active:
            return
        if state["brake"] is None:
            seg, s_on = on_segment(lead)
            room = w.town.segments[seg].length - s_on
            gap = lead.sc - ego.sc - (lead.length + ego.length) / 2
            if (w.t >= t_trig and ego.v > 7.0 and lead.v > 7.0 and room > 45.0 and on_segment(ego)[0] == seg
                    and gap > 1.3 * ego.v):
                state["brake"] = w.t
                lead.a_override = -decel
                _tag(w, lead.track)
        elif lead.a_override is not None and lead.v <= v_end + 0.2:
            lead.a_override = None
            lead.v_target = v_end
            lead.a = 0.0
        elif lead.a_override is None and w.t > state["brake"] + 8.0:
            lead.v_target = None
    return director


def _check_blocked(rec: LogView, layers: MapLayers) -> str | None:
    f, j, problem = _tagged_ahead_in_lane(rec, "blocking vehicle", 110.0, lateral_m=BLOCKED_LATERAL_M)
    if problem:
        return problem
    own = _agent_in_ego_frame(rec, j, 0)
    end = min(f + rec.steps(12), rec.num_frames - 1)
    passed = (own[f:end, 0] < -3.0).any()
    waited = (rec.ego.speed[f:end] < 0.2).any()
    return None if passed or waited else "ego neither passed nor waited behind the blocker"


#: A blocked lane is tagged when the blockage is this far ahead (m, from ego's centre; a stalled car's rear) and
#: within BLOCKED_LATERAL_M of ego's axis, just before the ego moves over (world.EGO_PASS_LOOKAHEAD_M), so that
#: a planner that waits behind it stands still for half of the scenario.
TAG_AHEAD_M = {"stopped_vehicle": 60.0, "construction_zone": 55.0}
BLOCKED_LATERAL_M = 1.6


def _blocked_lane_setup(world: World, rng: np.random.Generator, plan: ScenePlan) -> tuple[list[int], int, float]:
    """Ego on the arterial from the curve eastwards; returns its path, the blocked lane and the arc there."""
    town = world.town
    start_lanes = lanes(town, "arterial-curve", True)
    k = int(rng.integers(2))
    segs = lane_path(town, start_lanes[k])
    place_ego(world, segs, float(rng.uniform(0, 20)), town.segments[start_lanes[k]].speed_limit * 0.85)
    east = lanes(town, "arterial-east", True)
    blocked = next(i for i in segs if i in east)
    s_block = float(rng.uniform(70.0, 140.0))
    return segs, blocked, s_block


def _blocked_lane_traffic(world: World, rng: np.random.Generator, segs: list[int], blocked: int, s_block: float,
                          zone: float) -> None:
    """Background traffic with ego's way to the blockage clear (no queue hides it) and the next lane free around
    it at the start (traffic flowing in later may still close the gap: then ego waits)."""
    lane = world.town.segments[blocked]
    free = lane.left if lane.left >= 0 else lane.right
    populate(world, rng, density=float(rng.uniform(0.6, 1.2)),
             keep_clear=tuple((x, -1e9, 1e9) for x in segs[:segs.index(blocked)])
             + ((blocked, -1e9, s_block + zone + 20.0), (free, s_block - 90.0, s_block + zone + 30.0)))


def _blocked_lane_director(world: World, segs: list[int], blocked_pose: Callable[[], np.ndarray],
                           track: int, tag_ahead_m: float) -> Director:
    """Keeps ego's junction green (a red light would stop it before the blockage) and tags the moving ego when
    the blockage (``blocked_pose()``) is ``tag_ahead_m`` ahead."""
    signalised = [i for i in segs if world.town.segments[i].phase >= 0]

    def director(w: World) -> None:
        ego = w.ego
        for conn in signalised:
            d = arc_to_seg(ego, conn)
            if np.isfinite(d) and d > 0 and d / max(ego.v, 1.0) < 12.0:
                _ensure_green(w, w.town.segments[conn].node, w.town.segments[conn].phase, w.t + 20.0)
        if "tag" not in w.events and ego.v > 4.0 and _ahead(w, blocked_pose(), tag_ahead_m, BLOCKED_LATERAL_M):
            _tag(w, track)
    return director


@_family("stopped_vehicle", "corner_stopped_vehicle_blocking_lane", True, _check_blocked,
         "A stalled vehicle blocks the ego lane; the ego changes lane when the next lane has room, or waits.")
def _stopped_vehicle(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    segs, blocked, s_block = _blocked_lane_setup(world, rng, plan)
    blocker = world.add_vehicle([blocked], s_block, 0.0, DriverParams(), static=True,
                                size=np.array([float(rng.uniform(4.5, 6.5)), 2.0, 1.8]))
    _blocked_lane_traffic(world, rng, segs, blocked, s_block, blocker.length)
    return _blocked_lane_director(world, segs, blocker.center_pose, blocker.track,
                                  TAG_AHEAD_M["stopped_vehicle"] + blocker.length / 2)


def _check_czone(rec: LogView, layers: MapLayers) -> str | None:
    f = _tag_frame(rec)
    cones = np.flatnonzero(np.isin(rec.tracks.category, [Category.TRAFFIC_CONE, Category.BARRIER]))
    if len(cones) == 0:
        return "no cones or barriers"
    loc = to_local(np.nan_to_num(rec.tracks.pose[cones, f]), rec.ego.center()[f])
    ahead = (loc[:, 0] > 0) & (loc[:, 0] < 110) & (np.abs(loc[:, 1]) < BLOCKED_LATERAL_M) & rec.tracks.valid[cones, f]
    if not ahead.any():
        return "no cone / barrier ahead in the ego lane at the tag"
    near = loc[ahead, 0].min()
    end = min(f + rec.steps(12), rec.num_frames - 1)
    travelled = np.sum(rec.ego.speed[f:end]) * rec.dt
    waited = (rec.ego.speed[f:end] < 4.0).any()  # slowed right down, waiting for a gap in the next lane
    # Reaching the closure means leaving the closed lane (the standstill gap to it is 10 m); or it waited.
    return None if travelled > near - 5.0 or waited else "ego neither reached the closure nor waited for a gap"


@_family("construction_zone", "corner_construction_zone", True, _check_czone,
         "Cones and a barrier close the ego lane for 25-50 m; the ego merges into the open lane.")
def _construction_zone(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    segs, blocked, s_block = _blocked_lane_setup(world, rng, plan)
    lane = world.town.segments[blocked]
    zone = float(rng.uniform(25.0, 50.0))
    for i, s in enumerate(np.arange(s_block, s_block + zone, float(rng.uniform(4.0, 6.0)))):
        k = int(s / 0.5)
        p, h = lane.xy[k], lane.heading[k]
        nrm = np.array([-np.sin(h), np.cos(h)])
        if i == 0:
            world.add_static([*p, h + np.pi / 2], [0.4, 2.2, 1.0], Category.BARRIER)
            continue
        for side in (-0.9, 0.9):
            q = p + side * nrm
            world.add_static([*q, h], [0.4, 0.4, 0.7], Category.TRAFFIC_CONE)
    # The sign stands 1 m beyond the right edge of the road (not of the closed lane: that would put it in the
    # open lane when the closed one is not the outer lane).
    k = int(max(s_block - 30.0, 1.0) / 0.5)
    outer = lane
    while outer.right >= 0:
        outer = world.town.segments[outer.right]
    j = int(np.argmin(np.hypot(*(outer.xy - lane.xy[k]).T)))
    out = outer.right_edge[j] - outer.xy[j]
    edge = outer.right_edge[j] + out / np.linalg.norm(out)
    world.add_static([*edge, lane.heading[k]], [0.3, 0.9, 1.5], Category.CZONE_SIGN)
    _blocked_lane_traffic(world, rng, segs, blocked, s_block, zone)
    return _blocked_lane_director(world, segs, lambda: world.statics[0].pose, world.statics[0].track,
                                  TAG_AHEAD_M["construction_zone"])


# ------------------------------------------------------------------------------------------ registry helpers
def nominal_families() -> list[str]:
    return [n for n, f in FAMILIES.items() if not f.corner]


def corner_families() -> list[str]:
    return [n for n, f in FAMILIES.items() if f.corner]


__all__ = ["FAMILIES", "Family", "corner_families", "nominal_families", "remove_vehicles_on", "road",
           "spawn_clear"]


# ------------------------------------------------------------------------------------------ turns
def _check_turn(sign: float) -> Callable[[LogView, MapLayers], str | None]:
    def check(rec: LogView, layers: MapLayers) -> str | None:
        f = _tag_frame(rec)
        end = min(f + rec.steps(12), rec.num_frames - 1)
        dh = float(np.unwrap(rec.ego.pose[f:end + 1, 2])[-1] - rec.ego.pose[f, 2])
        return None if sign * dh > np.deg2rad(50) else f"ego heading changed by {np.rad2deg(dh):.0f} deg"
    return check


def _turn_setup(turn: str) -> Callable[[World, np.random.Generator, ScenePlan], Director]:
    def setup(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
        segs = _ego_start_west(world, rng, 0 if turn == "left" else 1, (turn,))
        conn = next(i for i in segs if world.town.segments[i].turn == turn)
        populate(world, rng, density=float(rng.uniform(0.6, 1.2)), keep_clear=((segs[0], -1e9, 1e9),))

        h0 = float(world.town.segments[conn].heading[0])
        state = {"start": None}

        def director(w: World) -> None:
            # "starting" the turn: tagged when the heading has begun to change; placed (afterwards) at most
            # 4 s before the ego is half-way round, so that the turn is completed inside the window.
            if "tag" in w.events or w.ego.seg() != conn:
                return
            dh = abs(np.angle(np.exp(1j * (w.ego.center_pose()[2] - h0))))
            if state["start"] is None and dh > 0.12:
                state["start"] = w.t
            if state["start"] is not None and dh > 0.8:
                _tag(w, delay=-round(w.t - max(state["start"], w.t - 4.0), 1))
        return director
    return setup


_family("left_turn", "starting_left_turn", False, _check_turn(1.0),
        "Ego turns left at a signalised intersection (permissive green: it yields to oncoming traffic).")(
    _turn_setup("left"))
_family("right_turn", "starting_right_turn", False, _check_turn(-1.0),
        "Ego turns right at a signalised intersection.")(_turn_setup("right"))


# ------------------------------------------------------------------------------------------ more corner cases
def _check_occluded_ped(rec: LogView, layers: MapLayers) -> str | None:
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0 or rec.tracks.category[j] != Category.PEDESTRIAN:
        return "no pedestrian tagged"
    if rec.tracks.valid[j, : max(f - rec.steps(0.2), 0)].any():
        return "pedestrian observed long before it stepped out"
    loc = _agent_in_ego_frame(rec, j, f, f)
    if not (0.0 < loc[f, 0] < 70.0 and loc[f, 1] < -1.0):
        return f"pedestrian not ahead on the right at the tag: {loc[f, :2].round(1)}"
    later = rec.tracks.valid[j] & (loc[:, 1] > 1.0)
    return None if later[f:].any() else "pedestrian never crossed the ego path"


@_family("occluded_pedestrian", "corner_occluded_pedestrian_crossing", True, _check_occluded_ped,
         "A pedestrian steps out between parked vehicles (hidden until then) and crosses in front of the ego.")
def _occluded_pedestrian(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    town = world.town
    west = road(town, "arterial-west")
    k = int(rng.choice([0, 1], p=[0.3, 0.7]))
    segs = _ego_start_west(world, rng, k, s=float(rng.uniform(0.0, 10.0)))
    lane = town.segments[segs[0]]
    v_lim = lane.speed_limit
    t_rel = float(rng.uniform(4.3, 5.3))
    s_x = float(np.clip(v_lim * (plan.before_tag + 0.8) + 0.9 * v_lim * t_rel, 300.0, lane.length - 45.0))
    ref = west.ref_trim
    from sim.synth.curves import arc_length as _arc
    ra = _arc(ref)
    p = np.array([np.interp(s_x, ra, ref[:, 0]), np.interp(s_x, ra, ref[:, 1])])
    h = float(np.interp(s_x, ra, np.unwrap(np.arctan2(np.gradient(ref[:, 1]), np.gradient(ref[:, 0])))))
    nrm = np.array([-np.sin(h), np.cos(h)])
    w = lane.width
    from sim.synth.town import PARKING_WIDTH
    gap_pt = p - (2 * w + PARKING_WIDTH / 2) * nrm
    far_pt = p + (2 * w + 1.75) * nrm
    # Parked cars along the strip, a van right before the gap the pedestrian steps out of.
    spots = town.parking_spots
    spot_s = (spots[:, :2] - p) @ np.array([np.cos(h), np.sin(h)])
    for i in np.argsort(np.abs(spot_s)):
        ds = spot_s[i]
        if abs(ds) < 3.5:
            continue
        van = -9.0 < ds < -3.5
        if van or (abs(ds) < 80.0 and rng.random() < 0.75) or rng.random() < 0.3:
            size = [6.0, 2.1, 2.6] if van else [float(rng.uniform(4.3, 5.0)), 1.9, 1.6]
            world.add_static(spots[i], size, Category.VEHICLE)
    ped = world.add_ped(np.stack([gap_pt, far_pt]), float(rng.uniform(1.2, 1.7)), waits=[(0.0, -1)])
    ped.hold, ped.hidden, ped.unobserved_while_hidden = True, True, True
    populate(world, rng, density=float(rng.uniform(0.5, 1.0)), keep_clear=((segs[0], -1e9, 1e9),), parked=False)
    state = {"released": None}

    def director(w: World) -> None:
        ego = w.ego
        if state["released"] is None:
            loc = to_local(np.array([*gap_pt, 0.0]), ego.center_pose())
            eta = (loc[0] - ego.length / 2) / max(ego.v, 0.1)
            if eta < t_rel and w.t > plan.before_tag - 1.0 and loc[0] > 0:
                state["released"] = w.t
                ped.hold = False
        elif ped.hidden and w.t >= state["released"] + 1.0:
            ped.hidden = False
            _tag(w, ped.track, delay=0.1)
    return director


def _check_unprotected_left(rec: LogView, layers: MapLayers) -> str | None:
    why = _check_turn(1.0)(rec, layers)
    if why:
        return why
    f = _tag_frame(rec)
    h0 = rec.ego.pose[f, 2]
    win = slice(max(f - rec.steps(2), 0), min(f + rec.steps(12), rec.num_frames))
    tr = rec.tracks
    opp = np.abs(np.angle(np.exp(1j * (tr.pose[:, win, 2] - h0 - np.pi)))) < 0.5
    near = np.hypot(tr.pose[:, win, 0] - rec.ego.pose[win, 0][None], tr.pose[:, win, 1] - rec.ego.pose[win, 1][None])
    moving = np.hypot(tr.velocity[:, win, 0], tr.velocity[:, win, 1]) > 3.0
    hit = tr.valid[:, win] & opp & (np.nan_to_num(near, nan=1e9) < 30.0) & moving
    return None if hit.any() else "no oncoming traffic met during the turn"


def _ensure_green(w: World, node: int, phase: int, until: float) -> None:
    cur, stage = w.signals.phase_of(node)
    if cur == phase and stage == "green":
        w.signals.hold(node, until)
    elif cur != phase and stage == "green":
        w.signals.force_yellow(node)


@_family("unprotected_left", "corner_unprotected_left_turn", True, _check_unprotected_left,
         "Ego turns left on a permissive green across a stream of oncoming vehicles and must find a gap.")
def _unprotected_left(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    town = world.town
    segs = _ego_start_west(world, rng, 0, ("left",))
    conn = next(i for i in segs if town.segments[i].turn == "left")
    node = town.segments[conn].node
    oncoming = lanes(town, "arterial-curve", False)
    populate(world, rng, density=float(rng.uniform(0.5, 0.9)),
             keep_clear=((segs[0], -1e9, 1e9),) + tuple((lane, -1e9, 1e9) for lane in oncoming))
    n = int(rng.integers(2, 5))
    headways = rng.uniform(2.0, 3.0, size=n)
    lanes_of = rng.integers(0, len(oncoming), size=n)
    state = {"spawned": False, "first": -1, "entered": None}
    h0 = float(town.segments[conn].heading[0])

    def director(w: World) -> None:
        ego = w.ego
        d = arc_to_seg(ego, conn) - ego.length / 2
        eta = d / max(ego.v, 1.0)
        if np.isfinite(d) and eta < 14.0 and d > 0:
            _ensure_green(w, node, town.segments[conn].phase, w.t + 30.0)
        if not state["spawned"] and np.isfinite(d) and eta < 9.0 and w.t > plan.before_tag - 12.0:
            state["spawned"] = True
            t_arr = eta - 1.0
            for m in range(n):
                lane = oncoming[int(lanes_of[m])]
                seg = town.segments[lane]
                v_o = seg.speed_limit * 0.9
                s = seg.length - v_o * t_arr
                t_arr += float(headways[m])
                if s < 5.0 or not spawn_clear(w, lane, s, 12.0):
                    continue
                params = agent_params(rng)
                params.speed_factor = 0.95
                veh = w.add_vehicle(lane_path(town, lane), s, v_o, params)
                if state["first"] < 0:
                    state["first"] = veh.track
        if state["spawned"] and state["entered"] is None and ego.seg() == conn:
            state["entered"] = w.t
        # Tag when the ego is half-way round, placed up to 7 s back (the wait for a gap falls in the window).
        if state["entered"] is not None and "tag" not in w.events and \
                abs(np.angle(np.exp(1j * (ego.center_pose()[2] - h0)))) > 0.8:
            _tag(w, state["first"], delay=-round(min(7.0, w.t - state["entered"]), 1))
    return director


def _check_runner(rec: LogView, layers: MapLayers) -> str | None:
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0:
        return "no runner tagged"
    dh = np.angle(np.exp(1j * (rec.tracks.pose[j, f, 2] - rec.ego.pose[f, 2])))
    if abs(np.cos(dh)) > 0.5:
        return "runner not crossing the ego's direction"
    loc = _agent_in_ego_frame(rec, j, f, f)
    w = slice(f, f + rec.steps(5))
    seen = rec.tracks.valid[j, w] & (np.abs(loc[w, 1]) < 2.0) & (loc[w, 0] > 0)
    if not seen.any():
        return "runner never crossed the ego's path ahead"
    red = (rec.lights.status[f] == TrafficLightStatus.RED).any()
    return None if red else "no red light when the runner entered"


@_family("red_light_runner", "corner_red_light_runner", True, _check_runner,
         "Ego crosses on green; a cross-street vehicle runs its red light across the ego's path.")
def _red_light_runner(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    town = world.town
    segs = _ego_start_west(world, rng)
    ego_conn = next(i for i in segs if town.segments[i].phase >= 0)
    node = town.segments[ego_conn].node
    sb = lanes(town, "north-1", False)
    lane = sb[int(rng.integers(len(sb)))]
    r_path = lane_path(town, lane)
    r_conn = r_path[1]
    hit = [c for c in town.conflicts.get(ego_conn, []) if c[0] == r_conn]
    s_self, s_other = (hit[0][1], hit[0][2]) if hit else (15.0, 12.0)
    populate(world, rng, density=float(rng.uniform(0.5, 0.9)),
             keep_clear=((segs[0], -1e9, 1e9),) + tuple((x, -1e9, 1e9) for x in sb), no_inflow=tuple(sb))
    v_r = float(rng.uniform(11.0, 14.0))
    # The runner reaches the crossing point from 0.6 s before to 0.2 s after the ego would (undisturbed): a
    # planner that brakes only once the runner is in its lane arrives while the crossing is still occupied.
    delta = float(rng.uniform(-0.2, 0.6))
    t_spawn = float(rng.uniform(5.5, 7.0))
    state = {"runner": None}

    def director(w: World) -> None:
        ego = w.ego
        d = arc_to_seg(ego, ego_conn)
        if np.isfinite(d) and d > 0 and d / max(ego.v, 1.0) < 14.0:
            _ensure_green(w, node, town.segments[ego_conn].phase, w.t + 25.0)
        eta = (d + s_self) / max(ego.v, 1.0) if np.isfinite(d) else np.inf
        if state["runner"] is None and eta < t_spawn and w.t > plan.before_tag - 6.0:
            seg = town.segments[lane]
            s = seg.length + s_other - v_r * (eta - delta)
            if s < 0:
                return
            params = DriverParams(speed_factor=1.3, a_max=2.0, b_max=6.0, jerk=6.0, ignore_lights=True,
                                  ignore_others=True)
            runner = w.add_vehicle(r_path, s, v_r, params)
            runner.v_target = v_r
            state["runner"] = runner
        runner = state["runner"]
        if runner is not None and "tag" not in w.events and runner.active and runner.seg() == r_conn:
            _tag(w, runner.track)
    return director


def _check_merge(rec: LogView, layers: MapLayers) -> str | None:
    f = _tag_frame(rec)
    win = slice(f, min(f + rec.steps(8), rec.num_frames))
    tr = rec.tracks
    same = np.abs(np.angle(np.exp(1j * (tr.pose[:, win, 2] - rec.ego.pose[win, 2][None])))) < 0.5
    near = np.hypot(tr.pose[:, win, 0] - rec.ego.pose[win, 0][None], tr.pose[:, win, 1] - rec.ego.pose[win, 1][None])
    moving = np.hypot(tr.velocity[:, win, 0], tr.velocity[:, win, 1]) > 1.0
    around = tr.valid[:, win] & same & (np.nan_to_num(near, nan=1e9) < 40.0) & moving
    n = int((around & (tr.category == Category.VEHICLE)[:, None]).sum(0).max())
    return None if n >= 3 else f"only {n} vehicles around the ego during the merge"


@_family("dense_merge", "corner_dense_merge", True, _check_merge,
         "Ego on the on-ramp merges into a dense platoon in the rightmost lane.")
def _dense_merge(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    town = world.town
    ramp = lanes(town, "on-ramp", True)[0]
    segs = lane_path(town, ramp)
    place_ego(world, segs, float(rng.uniform(0.0, 10.0)), town.segments[ramp].speed_limit * 0.8)
    conn = segs[1]
    main = lanes(town, "arterial-mid", True)
    merge_s = min((c[1] for c in town.conflicts.get(conn, [])), default=20.0)
    populate(world, rng, density=float(rng.uniform(0.5, 0.9)), keep_clear=tuple((x, -1e9, 1e9) for x in main))
    v_p = float(rng.uniform(7.5, 10.5))
    gaps = rng.uniform(5.0, 10.0, size=14)
    state = {"spawned": False}

    def director(w: World) -> None:
        ego = w.ego
        d = arc_to_seg(ego, conn)
        if not state["spawned"] and np.isfinite(d) and d / max(ego.v, 1.0) < 7.0:
            state["spawned"] = True
            # Place the platoon so that its middle reaches the merge point when the ego does.
            eta = (d + merge_s) / max(ego.v, 1.0)
            for li, lane in enumerate(main):
                seg = town.segments[lane]
                dist = v_p * eta + 60.0
                for m in range(14):
                    length = float(rng.uniform(4.3, 5.2))
                    s = seg.length + merge_s - dist
                    dist -= length + float(gaps[m]) * (1.0 if li == len(main) - 1 else 1.6)
                    if s > seg.length - 3.0:
                        break
                    if s > 5.0 and spawn_clear(w, lane, s, 8.0):
                        params = agent_params(rng)
                        params.headway = 0.9
                        veh = w.add_vehicle(lane_path(town, lane), s, v_p, params,
                                            size=np.array([length, 1.9, 1.6]))
                        veh.v_target = v_p
        if state["spawned"] and "tag" not in w.events and w.ego.seg() == conn:
            # No agent named: the hazard is the whole platoon (a single one kept on log replay in CLS-R would
            # be the one car that ignores the ego merging in front of it).
            _tag(w)
    return director
