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
from sim.nuplan_db.recording import LogRecording
from sim.nuplan_map.layers import MapLayers
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
    check: Callable[[LogRecording, MapLayers], str | None]
    description: str = ""


FAMILIES: dict[str, Family] = {}


def _family(name: str, tag: str, corner: bool, check: Callable, description: str):
    def deco(setup: Callable) -> Callable:
        FAMILIES[name] = Family(name, tag, corner, setup, check, description)
        return setup
    return deco


def _tag(world: World, track: int = -1) -> None:
    if "tag" not in world.events:
        world.events["tag"] = world.t
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


def _tag_track(rec: LogRecording) -> int:
    return int(rec.tag_agent[0]) if len(rec.tag_agent) else -1


def _tag_frame(rec: LogRecording) -> int:
    return int(rec.tag_frame[0])


def _agent_in_ego_frame(rec: LogRecording, track: int, frame: int, ego_frame: int | None = None) -> np.ndarray:
    """``(F, 3)`` poses of ``track`` in the ego frame at ``ego_frame`` (default: each frame's own ego)."""
    p = rec.tracks.pose[track]
    if ego_frame is None:
        return to_local(p, rec.ego.center())
    return to_local(p, rec.ego.center()[ego_frame])


# ------------------------------------------------------------------------------------------ nominal
def _check_no_lead(rec: LogRecording, layers: MapLayers) -> str | None:
    f = _tag_frame(rec)
    if rec.ego.speed[f] < 3.0:
        return f"ego speed {rec.ego.speed[f]:.1f} m/s at the tag"
    return None


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


def _check_lead(rec: LogRecording, layers: MapLayers) -> str | None:
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0:
        return "no lead vehicle tagged"
    loc = _agent_in_ego_frame(rec, j, f, f)[f]
    if not (0.0 < loc[0] < 45.0 and abs(loc[1]) < 1.5):
        return f"lead at {loc[:2].round(1)} in the ego frame at the tag"
    return None


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


def _check_stop_at_light(rec: LogRecording, layers: MapLayers) -> str | None:
    f = _tag_frame(rec)
    if rec.ego.speed[f] > 0.5:
        return f"ego not stopped at the tag ({rec.ego.speed[f]:.1f} m/s)"
    red = (rec.traffic_lights.status[f] == TrafficLightStatus.RED).any()
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
        if not state["forced"] and w.t > 5.0 and d < ego.v * ego.v / (2 * b_trigger) + ego.v * 1.0 + 5.0:
            state["forced"] = True
            phase = w.town.segments[conn].phase
            cur, stage = w.signals.phase_of(node)
            if cur == phase and stage == "green":
                w.signals.force_yellow(node)
            elif cur != phase and stage == "green":
                w.signals.hold(node, w.t + 12.0)  # keep the crossing traffic's green: ours stays red
        if state["forced"] and "tag" not in w.events and ego.v < 0.3 and 0 < d < 25.0:
            _tag(w)
    return director


@_family("start_at_green", "starting_straight_traffic_light_intersection_traversal", False,
         lambda rec, layers: None if rec.ego.speed[_tag_frame(rec)] < 0.5 and
         rec.ego.speed[min(_tag_frame(rec) + 200, rec.num_frames - 1)] > 3.0 else "ego did not start at green",
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
        if not state["forced"] and w.t > 5.0 and d < ego.v * ego.v / 3.0 + ego.v + 5.0:
            state["forced"] = True
            if cur == phase and stage == "green":
                w.signals.force_yellow(node)
            elif cur != phase and stage == "green":
                w.signals.hold(node, w.t + 30.0)
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
def _check_cut_in(rec: LogRecording, layers: MapLayers) -> str | None:
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0:
        return "no cut-in vehicle tagged"
    at_tag = _agent_in_ego_frame(rec, j, f, f)[f]
    if not (2.0 < abs(at_tag[1]) < 5.0 and at_tag[0] > 0.0):
        return f"cut-in vehicle not beside/ahead in the next lane at the tag: {at_tag[:2].round(1)}"
    loc = _agent_in_ego_frame(rec, j, 0)
    later = np.arange(f + 20, min(f + 200, rec.num_frames))
    ok = rec.tracks.valid[j, later] & (np.abs(loc[later, 1]) < 1.0) & (loc[later, 0] > 0.0)
    return None if ok.any() else "cut-in vehicle never ended ahead in the ego lane"


@_family("cut_in", "corner_cut_in", True, _check_cut_in,
         "A vehicle in the next lane cuts into the ego lane a few metres ahead of the ego.")
def _cut_in(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    town = world.town
    west = lanes(town, "arterial-west", True)
    k = int(rng.integers(2))
    segs = _ego_start_west(world, rng, k)
    other = lane_path(town, west[1 - k])
    rel_target = float(rng.uniform(9.0, 14.0))
    params = agent_params(rng)
    params.speed_factor = 1.1
    cutter = world.add_vehicle(other, world.ego.sc + rel_target, world.ego.v, params)
    populate(world, rng, density=float(rng.uniform(0.5, 1.0)),
             keep_clear=((segs[0], -1e9, 1e9), (other[0], -1e9, 1e9)))
    t_trig = plan.before_tag + float(rng.uniform(0.0, 2.0))
    lc_time = float(rng.uniform(2.0, 3.0))
    state = {"cut": None}

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
                state["cut"] = w.t
                side = 1 if on_segment(cutter)[0] == me.left else -1
                w.start_lane_change(cutter, rest, side, max(12.0, cutter.v * lc_time))
                cutter.v_target = ego.v * 1.05
                _tag(w, cutter.track)
        elif w.t > state["cut"] + lc_time + 2.0:
            cutter.v_target = None
    return director


def _check_hard_brake(rec: LogRecording, layers: MapLayers) -> str | None:
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0:
        return "no lead tagged"
    loc = _agent_in_ego_frame(rec, j, f, f)[f]
    if not (0.0 < loc[0] < 50.0 and abs(loc[1]) < 1.5):
        return f"lead not ahead in the ego lane at the tag: {loc[:2].round(1)}"
    v = np.hypot(*rec.tracks.velocity[j, f:f + 60].T)
    dv = np.nanmax(v[:20]) - np.nanmin(v)
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


def _check_blocked(rec: LogRecording, layers: MapLayers) -> str | None:
    f, j = _tag_frame(rec), _tag_track(rec)
    if j < 0:
        return "no blocking vehicle tagged"
    loc = _agent_in_ego_frame(rec, j, f, f)[f]
    if not (0.0 < loc[0] < 80.0 and abs(loc[1]) < 1.5):
        return f"blocker not ahead in the ego lane at the tag: {loc[:2].round(1)}"
    own = _agent_in_ego_frame(rec, j, 0)
    end = min(f + 240, rec.num_frames - 1)
    passed = (own[f:end, 0] < -3.0).any()
    waited = (rec.ego.speed[f:end] < 0.2).any()
    return None if passed or waited else "ego neither passed nor waited behind the blocker"


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


@_family("stopped_vehicle", "corner_stopped_vehicle_blocking_lane", True, _check_blocked,
         "A stalled vehicle blocks the ego lane; the ego changes lane when the next lane has room, or waits.")
def _stopped_vehicle(world: World, rng: np.random.Generator, plan: ScenePlan) -> Director:
    segs, blocked, s_block = _blocked_lane_setup(world, rng, plan)
    blocker = world.add_vehicle([blocked], s_block, 0.0, DriverParams(), static=True,
                                size=np.array([float(rng.uniform(4.5, 6.5)), 2.0, 1.8]))
    populate(world, rng, density=float(rng.uniform(0.6, 1.2)), keep_clear=((blocked, s_block - 60, s_block),))

    def director(w: World) -> None:
        if "tag" not in w.events and _ahead(w, blocker.center_pose(), 66.0 + blocker.length / 2):
            _tag(w, blocker.track)
    return director


def _check_czone(rec: LogRecording, layers: MapLayers) -> str | None:
    f = _tag_frame(rec)
    cones = np.flatnonzero(np.isin(rec.tracks.category, [Category.TRAFFIC_CONE, Category.BARRIER]))
    if len(cones) == 0:
        return "no cones or barriers"
    loc = to_local(np.nan_to_num(rec.tracks.pose[cones, f]), rec.ego.center()[f])
    ahead = (loc[:, 0] > 0) & (loc[:, 0] < 80) & (np.abs(loc[:, 1]) < 1.6) & rec.tracks.valid[cones, f]
    if not ahead.any():
        return "no cone / barrier ahead in the ego lane at the tag"
    far = loc[ahead, 0].max()
    end = min(f + 300, rec.num_frames - 1)
    travelled = np.sum(rec.ego.speed[f:end]) * 0.05
    return None if travelled > far + 5.0 else "ego did not get past the construction zone"


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
    k = int(max(s_block - 30.0, 1.0) / 0.5)
    edge = lane.right_edge[k] + 1.0 * (lane.right_edge[k] - lane.xy[k]) / np.linalg.norm(lane.right_edge[k]
                                                                                          - lane.xy[k])
    world.add_static([*edge, lane.heading[k]], [0.3, 0.9, 1.5], Category.CZONE_SIGN)
    populate(world, rng, density=float(rng.uniform(0.6, 1.2)), keep_clear=((blocked, s_block - 60, s_block + 60),))
    first_static = world.statics[0].track

    def director(w: World) -> None:
        if "tag" not in w.events and _ahead(w, world.statics[0].pose, 66.0):
            _tag(w, first_static)
    return director


# ------------------------------------------------------------------------------------------ registry helpers
def nominal_families() -> list[str]:
    return [n for n, f in FAMILIES.items() if not f.corner]


def corner_families() -> list[str]:
    return [n for n, f in FAMILIES.items() if f.corner]


__all__ = ["FAMILIES", "Family", "corner_families", "nominal_families", "remove_vehicles_on", "road",
           "spawn_clear"]
