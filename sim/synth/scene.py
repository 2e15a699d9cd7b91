"""Shared scenario building blocks: routes through the town, the ego, background traffic and pedestrians."""

from __future__ import annotations

import numpy as np

from sim.categories import Category
from sim.synth.curves import arc_length
from sim.synth.town import Road, Town
from sim.synth.world import EGO_PARAMS, DriverParams, Vehicle, World, agent_params


def road(town: Town, name: str) -> Road:
    return next(r for r in town.roads if r.name == name)


def lanes(town: Town, name: str, forward: bool) -> list[int]:
    r = road(town, name)
    return r.lanes_fwd if forward else r.lanes_bwd


def lane_path(town: Town, lane: int, turns: tuple[str, ...] = ()) -> list[int] | None:
    """Segments from ``lane`` to a map exit, taking the connector of kind ``turns[i]`` at the i-th node
    (straight, or the only option, once ``turns`` is used up); None if a requested turn does not exist."""
    segs = [lane]
    turns = list(turns)
    while True:
        succ = town.segments[segs[-1]].succ
        if not succ:
            return segs
        if len(succ) == 1 and not town.segments[succ[0]].is_connector:
            segs.append(succ[0])
            continue
        want = turns.pop(0) if turns else "straight"
        options = [j for j in succ if town.segments[j].turn == want]
        if not options:
            options = [j for j in succ if town.segments[j].turn == "merge"] if want == "straight" else []
            if not options:
                return None
        segs.append(options[0])


def place_ego(world: World, segs: list[int], s: float, v: float) -> Vehicle:
    """The ego (vehicle 0), rear axle at arc ``s`` of the path ``segs``."""
    assert not world.vehicles, "the ego must be the first vehicle"
    return world.add_vehicle(segs, s, v, EGO_PARAMS, is_ego=True)


def arc_to_seg(veh: Vehicle, seg: int) -> float:
    """Distance (m) from ``veh``'s centre to the start of segment ``seg`` on its path (inf if not on it)."""
    hit = np.flatnonzero(veh.path.segs == seg)
    if len(hit) == 0:
        return np.inf
    return float(veh.path.seg_start[hit[0]] - veh.sc)


def on_segment(veh: Vehicle) -> tuple[int, float]:
    """(segment, arc of the centre on it)."""
    k = veh.path.seg_index(veh.sc)
    return int(veh.path.segs[k]), float(veh.sc - veh.path.seg_start[k])


def populate(world: World, rng: np.random.Generator, density: float = 1.0,
             keep_clear: tuple[tuple[int, float, float], ...] = (), no_inflow: tuple[int, ...] = (),
             peds: bool = True, parked: bool = True) -> None:
    """Background traffic: vehicles along lanes, inflow at the map edges, a few cyclists, parked cars in the
    parking strip, pedestrians on sidewalks and at crosswalks. ``keep_clear``: (lane, s0, s1) stretches left
    empty at the start."""
    town = world.town
    if parked:
        fill = float(rng.uniform(0.2, 0.6))
        for spot in town.parking_spots:
            if rng.random() < fill:
                size = [float(rng.uniform(4.3, 5.2)), float(rng.uniform(1.8, 2.0)), float(rng.uniform(1.5, 2.0))]
                world.add_static(spot, size, Category.VEHICLE)
    ego = world.ego
    ego_xy = ego.center_pose()[:2]
    for seg in town.segments:
        if seg.is_connector:
            continue
        s = float(rng.uniform(10.0, 40.0))
        while s < seg.length - 30.0:
            clear = all(not (lane == seg.idx and a - 12.0 < s < b + 12.0) for lane, a, b in keep_clear)
            far = np.hypot(*(seg.xy[int(s / 0.5)] - ego_xy)) > 25.0
            if clear and far and rng.random() < 0.55 * density:
                route = world.random_route(seg.idx)
                is_bike = town.roads[seg.road].kind == "side" and seg.right < 0 and rng.random() < 0.12
                if is_bike:
                    params = DriverParams(speed_factor=float(rng.uniform(0.35, 0.45)), a_max=1.0, b_max=4.0,
                                          jerk=4.0, headway=1.0, s0=2.0)
                    world.add_vehicle(route, s, 4.5, params, size=np.array([1.8, 0.7, 1.7]),
                                      category=int(Category.BICYCLE))
                else:
                    world.add_vehicle(route, s, seg.speed_limit * float(rng.uniform(0.6, 0.9)),
                                      agent_params(rng))
            s += float(rng.uniform(28.0, 60.0)) / max(density, 0.2)
    for seg in town.segments:
        if not seg.is_connector and not seg.pred and seg.idx not in no_inflow:
            world.inflow.append((seg.idx, density * float(rng.uniform(0.04, 0.10))))
    if not peds:
        return
    n_walkers = int(rng.integers(4, 9) * density)
    for _ in range(n_walkers):
        path = town.sidewalk_paths[int(rng.integers(len(town.sidewalk_paths)))]
        if rng.random() < 0.5:
            path = path[::-1]
        length = arc_length(path)[-1]
        world.add_ped(path, float(rng.uniform(1.0, 1.5)), s=float(rng.uniform(0, length * 0.8)))
    # Pedestrians crossing at signalised crosswalks, waiting at the kerb for their walk phase.
    for cw_i, cw in enumerate(town.crosswalks):
        if rng.random() < 0.5 * density:
            path = cw.path if rng.random() < 0.5 else cw.path[::-1]
            world.add_ped(path, float(rng.uniform(1.1, 1.5)), waits=[(0.6, cw_i)])


def spawn_clear(world: World, seg: int, s: float, margin: float = 10.0) -> bool:
    """Whether no vehicle is within ``margin`` m of arc ``s`` of lane ``seg``."""
    for veh in world.vehicles:
        if veh.active:
            k = veh.path.seg_index(veh.sc)
            if int(veh.path.segs[k]) == seg and abs(veh.sc - veh.path.seg_start[k] - s) < margin + veh.length / 2:
                return False
    return True


def remove_vehicles_on(world: World, segs: set[int], keep: tuple[int, ...] = (0,)) -> None:
    """Deactivate agents currently on ``segs`` (used before the first recorded frame only)."""
    for veh in world.vehicles:
        if veh.vid not in keep and veh.active and veh.seg() in segs:
            veh.active = False
