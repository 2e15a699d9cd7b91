"""The synthetic world in motion: vehicles (ego included), pedestrians, static objects and signals, 0.1 s steps.

Every vehicle follows a :class:`Path` (a chain of town segments, optionally shifted sideways while it changes
lane) and is driven by one longitudinal law: free-road speed tracking, gap keeping behind leaders (same lane,
merging, crossing), stopping for red / yellow lights, yielding to pedestrians, slowing for curves; then clipped
to the vehicle's acceleration and jerk limits. The ego is a vehicle with cautious parameters (the imitation
target); a scenario family's *director* spawns actors and triggers the corner case.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sim.categories import Category, TrafficLightStatus
from sim.synth.curves import smoothstep5
from sim.synth.town import Town
from sim.vehicle import PACIFICA

F64 = npt.NDArray[np.float64]
DT = 0.1
SIBLING = -2  # approach-index marker: listed on a sibling connector (see World._build_approach)
FAR = 130.0  # vehicles farther than this from the ego are simulated with less detail (m)


# ----------------------------------------------------------------------------------------------- paths
@dataclass
class Path:
    """A chain of segments with concatenated centreline; ``shift`` moves it sideways (lane change).

    ``xy`` ``(P, 2)``, ``s`` ``(P,)``, ``heading`` / ``kappa`` ``(P,)``; ``segs`` ``(K,)`` segment indices and
    ``seg_start`` ``(K + 1,)`` their start arc lengths (last = total length). ``shift`` = ``(d0, s0, length)``:
    the lateral offset is ``d0`` before ``s0`` and fades to 0 over ``length`` (smoothstep).
    """

    xy: F64
    s: F64
    heading: F64
    kappa: F64
    segs: npt.NDArray[np.int64]
    seg_start: F64
    limit: F64
    shift: tuple[float, float, float] | None = None
    _starts: list | None = None
    _lists: tuple | None = None
    _caps: dict = field(default_factory=dict)

    @staticmethod
    def build(town: Town, segs: list[int]) -> Path:
        xy, hd, ka, lim, starts = [], [], [], [], [0.0]
        for k, i in enumerate(segs):
            seg = town.segments[i]
            sl = slice(1, None) if k else slice(None)
            xy.append(seg.xy[sl])
            hd.append(seg.heading[sl])
            ka.append(seg.kappa[sl])
            lim.append(np.full(len(seg.xy[sl]), seg.speed_limit))
            starts.append(starts[-1] + seg.length)
        pts = np.concatenate(xy)
        s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
        return Path(pts, s, np.unwrap(np.concatenate(hd)), np.concatenate(ka), np.asarray(segs, np.int64),
                    np.asarray(starts), np.concatenate(lim))

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def lateral(self, s: F64) -> tuple[F64, F64, F64]:
        """Lateral shift, its first and second derivative w.r.t. arc length at ``s``."""
        if self.shift is None:
            z = np.zeros_like(s)
            return z, z, z
        d0, s0, length = self.shift
        u = (s - s0) / length
        inside = (u > 0) & (u < 1)
        uc = np.clip(u, 0, 1)
        d = d0 * (1 - smoothstep5(uc))
        d1 = np.where(inside, -d0 * 30 * uc**2 * (1 - uc) ** 2 / length, 0.0)
        d2 = np.where(inside, -d0 * 60 * uc * (1 - uc) * (1 - 2 * uc) / length**2, 0.0)
        return d, d1, d2

    def pose(self, s: npt.ArrayLike) -> tuple[F64, F64]:
        """``(N, 3)`` poses and ``(N,)`` curvature at arc lengths ``s`` (clamped to the path)."""
        s = np.clip(np.atleast_1d(np.asarray(s, float)), 0.0, self.s[-1])
        x = np.interp(s, self.s, self.xy[:, 0])
        y = np.interp(s, self.s, self.xy[:, 1])
        h = np.interp(s, self.s, self.heading)
        k = np.interp(s, self.s, self.kappa)
        if self.shift is not None:
            d, d1, d2 = self.lateral(s)
            x, y = x - d * np.sin(h), y + d * np.cos(h)
            h = h + np.arctan(d1)
            k = k + d2
        return np.stack([x, y, h], -1), k

    def pose1(self, s: float) -> tuple[float, float, float, float]:
        """Scalar :meth:`pose`: ``x, y, heading, curvature`` at arc ``s`` (fast path for the simulation loop)."""
        if self._lists is None:
            self._lists = (self.s.tolist(), self.xy[:, 0].tolist(), self.xy[:, 1].tolist(), self.heading.tolist(),
                           self.kappa.tolist())
        sa, xs, ys, hs, ks = self._lists
        s = min(max(s, 0.0), sa[-1])
        k = min(max(bisect.bisect_right(sa, s) - 1, 0), len(sa) - 2)
        u = (s - sa[k]) / max(sa[k + 1] - sa[k], 1e-9)
        x = xs[k] + u * (xs[k + 1] - xs[k])
        y = ys[k] + u * (ys[k + 1] - ys[k])
        h = hs[k] + u * (hs[k + 1] - hs[k])
        kap = ks[k] + u * (ks[k + 1] - ks[k])
        if self.shift is not None:
            d, d1, d2 = (float(v[0]) for v in self.lateral(np.array([s])))
            x, y = x - d * math.sin(h), y + d * math.cos(h)
            h, kap = h + math.atan(d1), kap + d2
        return x, y, h, kap

    def seg_index(self, s: float) -> int:
        """Index into ``segs`` of the segment at arc length ``s``."""
        if self._starts is None:
            self._starts = self.seg_start.tolist()
        return max(0, min(bisect.bisect_right(self._starts, s) - 1, len(self.segs) - 1))

    def speed_caps(self, params: DriverParams) -> F64:
        """``(P,)`` the speed each vertex allows: speed limit and lateral-acceleration / yaw-rate caps."""
        key = (params.speed_factor, params.a_lat, params.yaw_rate)
        if key not in self._caps:
            kap = np.abs(self.kappa) + 1e-6
            self._caps[key] = np.minimum(self.limit * params.speed_factor,
                                         np.minimum(np.sqrt(params.a_lat / kap), params.yaw_rate / kap))
        return self._caps[key]


# ----------------------------------------------------------------------------------------------- actors
@dataclass
class DriverParams:
    """Longitudinal behaviour (SI units). ``headway`` s, ``s0`` m standstill gap, ``jerk`` m/s³ limit."""

    speed_factor: float = 1.0
    a_max: float = 1.5
    b_comf: float = 2.0
    b_max: float = 4.0
    jerk: float = 4.0
    headway: float = 1.5
    s0: float = 2.5
    a_lat: float = 2.5
    yaw_rate: float = 0.8
    gap_accept: float = 4.0
    ignore_lights: bool = False
    ignore_others: bool = False
    yield_courtesy: float = 0.0


#: Gap (m) to a stalled vehicle or a closure in its lane at which the ego starts to look for a way around it.
EGO_PASS_LOOKAHEAD_M = 50.0

EGO_PARAMS = DriverParams(speed_factor=0.97, a_max=1.4, b_comf=2.0, b_max=3.6, jerk=2.8, headway=1.7, s0=3.0,
                          a_lat=2.0, yaw_rate=0.5, gap_accept=5.0)


@dataclass
class Vehicle:
    """A vehicle (or cyclist) on a path. ``s`` is the arc of its reference point; the box centre is at
    ``s + ref_to_center`` (the ego's reference is its rear axle)."""

    vid: int
    category: int
    size: F64  # length, width, height
    path: Path
    s: float
    v: float
    params: DriverParams
    route: list[int] = field(default_factory=list)  # roadblock fids the path follows
    a: float = 0.0
    ref_to_center: float = 0.0
    is_ego: bool = False
    static: bool = False  # stalled / parked: never moves, blocks its lane
    active: bool = True
    track: int = -1
    lc_side: int = 0  # +1: changing from the left lane, -1 from the right, 0 none
    lc_mid: float = 0.0
    lc_cooldown: float = 0.0
    v_target: float | None = None  # director override of the desired speed
    a_override: float | None = None  # director override of the acceleration (hard braking)
    last_lc_check: float = -1.0
    finished_route: bool = False
    a_cmd: float | None = None
    _cache_key: tuple | None = None
    _cache_pose: F64 | None = None

    @property
    def length(self) -> float:
        return float(self.size[0])

    @property
    def width(self) -> float:
        return float(self.size[1])

    @property
    def sc(self) -> float:
        return self.s + self.ref_to_center

    def seg(self) -> int:
        return int(self.path.segs[self.path.seg_index(self.sc)])

    def center_pose(self) -> F64:
        key = (id(self.path), self.sc)
        if self._cache_key != key:
            self._cache_key = key
            self._cache_pose = np.array(self.path.pose1(self.sc)[:3])
        return self._cache_pose


@dataclass
class Pedestrian:
    """A walker along a polyline; waits at ``waits`` (arc, crosswalk index or -1 = director hold)."""

    pid: int
    path: F64  # (P, 2)
    speed: float
    s: float = 0.0
    waits: list[tuple[float, int]] = field(default_factory=list)
    hold: bool = False  # held by the director at its next director wait
    hidden: bool = False  # drivers do not see it (occluded)
    limit_s: float = np.inf  # it will not walk past this arc for now (waiting point ahead)
    unobserved_while_hidden: bool = False  # also absent from the log (perception) while hidden
    active: bool = True
    track: int = -1
    size: F64 = field(default_factory=lambda: np.array([0.6, 0.6, 1.75]))
    category: int = int(Category.PEDESTRIAN)
    moving: bool = False

    def __post_init__(self) -> None:
        self.arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(self.path, axis=0).T))])

    def pos(self, s: float | None = None) -> F64:
        s = self.s if s is None else s
        return np.array([np.interp(s, self.arc, self.path[:, 0]), np.interp(s, self.arc, self.path[:, 1])])

    def heading(self) -> float:
        k = int(np.clip(np.searchsorted(self.arc, self.s, side="right") - 1, 0, len(self.path) - 2))
        d = self.path[k + 1] - self.path[k]
        return float(np.arctan2(d[1], d[0]))


@dataclass
class Static:
    """A static object (cone, barrier, sign, parked car): centre pose, size, category."""

    pose: F64
    size: F64
    category: int
    track: int = -1
    blocks: list[tuple[int, float]] = field(default_factory=list)  # (segment, arc of its centre)


# ----------------------------------------------------------------------------------------------- signals
class Signals:
    """Fixed-time two-phase controllers per signalised node, which a director may re-time.

    Stages cycle green(p) -> yellow(p) -> all-red -> green(next p). ``force_yellow(node)`` ends the current
    green now; ``hold(node, until)`` keeps the current green until ``until``; ``set_green`` re-times it.
    """

    def __init__(self, town: Town) -> None:
        self.town = town
        self.nodes = [n for n in town.nodes if n.kind == "signal"]
        self.state: dict[int, list] = {}
        for n in self.nodes:
            # Start mid-cycle according to the node's offset.
            phase, stage, t_in = 0, "green", 0.0
            t = n.offset
            while True:
                dur = self._duration(n, phase, stage)
                if t < dur:
                    t_in = t
                    break
                t -= dur
                phase, stage = self._next(phase, stage)
            self.state[n.idx] = [phase, stage, t_in, None]  # last: green hold-until time
        self.connectors = np.array([s.idx for s in town.segments if s.phase >= 0], np.int64)

    @staticmethod
    def _duration(n, phase: int, stage: str) -> float:
        return {"green": n.green[phase], "yellow": n.yellow, "red": n.all_red}[stage]

    @staticmethod
    def _next(phase: int, stage: str) -> tuple[int, str]:
        if stage == "green":
            return phase, "yellow"
        if stage == "yellow":
            return phase, "red"
        return 1 - phase, "green"

    def step(self, dt: float, t: float) -> None:
        for n in self.nodes:
            st = self.state[n.idx]
            st[2] += dt
            hold = st[3]
            if st[1] == "green" and hold is not None and t < hold:
                continue
            if st[2] >= self._duration(n, st[0], st[1]):
                st[0], st[1] = self._next(st[0], st[1])
                st[2], st[3] = 0.0, None

    def force_yellow(self, node: int) -> None:
        st = self.state[node]
        if st[1] == "green":
            st[1], st[2], st[3] = "yellow", 0.0, None

    def hold(self, node: int, until: float) -> None:
        """Keep the current green (if any) until time ``until``."""
        self.state[node][3] = until

    def phase_of(self, node: int) -> tuple[int, str]:
        return tuple(self.state[node][:2])

    def set_green(self, node: int, phase: int, remaining: float) -> None:
        """Put ``phase`` in green now with ``remaining`` seconds left (a director re-timing the cycle)."""
        n = self.town.nodes[node]
        self.state[node] = [phase, "green", max(0.0, n.green[phase] - remaining), None]

    def status(self, seg: int) -> int:
        s = self.town.segments[seg]
        if s.phase < 0:
            return int(TrafficLightStatus.UNKNOWN)
        phase, stage = self.state[s.node][:2]
        if phase != s.phase or stage == "red":
            return int(TrafficLightStatus.RED)
        return int(TrafficLightStatus.GREEN if stage == "green" else TrafficLightStatus.YELLOW)

    def remaining(self, seg: int) -> float:
        s = self.town.segments[seg]
        n = self.town.nodes[s.node]
        phase, stage, t_in = self.state[s.node][:3]
        return self._duration(n, phase, stage) - t_in

    def pedestrians_may_cross(self, crosswalk: int) -> bool:
        cw = self.town.crosswalks[crosswalk]
        phase, stage, t_in = self.state[cw.node][:3]
        n = self.town.nodes[cw.node]
        return phase != cw.blocked_phase and stage == "green" and n.green[phase] - t_in > 8.0


# ----------------------------------------------------------------------------------------------- world
@dataclass
class Target:
    """Something to keep a gap to: ``gap`` m from our front to its back, moving at ``speed`` along our path."""

    gap: float
    speed: float
    stop: bool = False  # a stop point (line / yield point): no headway, small standstill gap
    who: int = -1
    s0: float | None = None  # standstill gap override (room to steer around a blocking object)


class World:
    """Mutable simulation state; :meth:`step` advances it by :data:`DT` and records every actor."""

    def __init__(self, town: Town, rng: np.random.Generator) -> None:
        self.town = town
        self.rng = rng
        self.t = 0.0
        self.vehicles: list[Vehicle] = []
        self.peds: list[Pedestrian] = []
        self.statics: list[Static] = []
        self.signals = Signals(town)
        self.director: Callable[[World], None] | None = None
        self.events: dict[str, float] = {}
        self.tag_agent: int = -1  # track index of the actor the scenario is about
        self.inflow: list[tuple[int, float]] = []  # (entry lane, rate 1/s)
        self.spawn_block_radius = 45.0  # no spawning this close to the ego
        self.max_vehicles = 26
        self._n_tracks = 0
        self.history: list[dict] = []
        self._approach: dict[int, list] = {}
        self.lc_log: list[tuple[float, int, int]] = []  # (time, vehicle id, side)

    # ---------------------------------------------------------------- creation
    def _new_track(self) -> int:
        self._n_tracks += 1
        return self._n_tracks - 1

    @property
    def ego(self) -> Vehicle:
        return self.vehicles[0]

    def add_vehicle(self, segs: list[int], s: float, v: float, params: DriverParams, size: F64 | None = None,
                    category: int = int(Category.VEHICLE), is_ego: bool = False, static: bool = False,
                    route: list[int] | None = None) -> Vehicle:
        path = Path.build(self.town, segs)
        if size is None:
            size = np.array([float(self.rng.uniform(4.3, 5.2)), float(self.rng.uniform(1.8, 2.0)),
                             float(self.rng.uniform(1.5, 1.9))])
        veh = Vehicle(len(self.vehicles), category, np.asarray(size, float), path, s, v, params,
                      route=route or [self.town.segments[i].roadblock for i in segs], is_ego=is_ego,
                      static=static)
        if is_ego:
            veh.ref_to_center = PACIFICA.rear_axle_to_center
            veh.size = np.array([PACIFICA.length, PACIFICA.width, PACIFICA.height])
        else:
            veh.track = self._new_track()
        self.vehicles.append(veh)
        return veh

    def add_static(self, pose: npt.ArrayLike, size: npt.ArrayLike, category: int) -> Static:
        st = Static(np.asarray(pose, float), np.asarray(size, float), int(category), track=self._new_track())
        # Which lanes it blocks: centre within the lane's half width plus its own half extent, minus 0.3 m.
        half = 0.5 * st.size[1]
        for seg in self.town.segments:
            if seg.is_connector:
                continue
            d = np.hypot(seg.xy[:, 0] - st.pose[0], seg.xy[:, 1] - st.pose[1])
            k = int(np.argmin(d))
            if d[k] < seg.width / 2 + half - 0.3:
                st.blocks.append((seg.idx, float(seg.s[k])))
        self.statics.append(st)
        return st

    def add_ped(self, path: npt.ArrayLike, speed: float, waits: list[tuple[float, int]] | None = None,
                s: float = 0.0) -> Pedestrian:
        ped = Pedestrian(len(self.peds), np.asarray(path, float), speed, s=s, waits=sorted(waits or []))
        ped.track = self._new_track()
        self.peds.append(ped)
        return ped

    # ---------------------------------------------------------------- routing
    def random_route(self, start_lane: int, min_len: float = 0.0) -> list[int]:
        """Segments from ``start_lane`` to a map exit, choosing successors at random (straight favoured)."""
        segs = [start_lane]
        while True:
            succ = self.town.segments[segs[-1]].succ
            if not succ or len(segs) > 12:
                return segs
            weights = np.array([{"straight": 3.0, "merge": 3.0}.get(self.town.segments[j].turn, 1.0)
                                for j in succ])
            segs.append(int(succ[self.rng.choice(len(succ), p=weights / weights.sum())]))

    # ---------------------------------------------------------------- stepping
    def run(self, until: float, stop: Callable[[World], bool] | None = None) -> None:
        while self.t < until - 1e-9:
            self.step()
            if stop is not None and stop(self):
                break

    def step(self) -> None:
        if self.director is not None:
            self.director(self)
        self._build_approach()
        self._ped_list = [p for p in self.peds if p.active and not p.hidden]
        self._ped_xy = np.array([p.pos() for p in self._ped_list]).reshape(-1, 2)
        accel = {}
        ego_xy = self.ego.center_pose()[:2]
        tick = int(round(self.t / DT))
        for veh in self.vehicles:
            if veh.active and not veh.static:
                xy = veh.center_pose()
                far = not veh.is_ego and (xy[0] - ego_xy[0]) ** 2 + (xy[1] - ego_xy[1]) ** 2 > FAR**2
                if far and (tick + veh.vid) % 3 and veh.a_cmd is not None:
                    accel[veh.vid] = veh.a_cmd  # far from the ego: re-plan every third step, simply
                    continue
                self._maybe_change_lane(veh)
                accel[veh.vid] = veh.a_cmd = self._control(veh, lite=far)
        for veh in self.vehicles:
            if veh.vid in accel:
                self._integrate(veh, accel[veh.vid])
        for ped in self.peds:
            if ped.active:
                self._step_ped(ped)
        self.signals.step(DT, self.t)
        self.t = round(self.t + DT, 6)
        self._spawn_inflow()
        self._record()

    def _integrate(self, veh: Vehicle, a: float) -> None:
        p = veh.params
        a_prev = veh.a
        if veh.a_override is None:
            if veh.is_ego:
                # A human-like pedal: the jerk fades as the acceleration nears its target (no jerk steps).
                gain = 4.0 if a < a_prev - 1.5 else 2.5
                a = a_prev + gain * (a - a_prev) * DT
            a = min(max(a, a_prev - p.jerk * DT), a_prev + p.jerk * DT)
        a = min(max(a, -p.b_max), p.a_max)
        if veh.v <= 0.0 and a < 0.0:
            a = 0.0  # standing still
        v_new = veh.v + a * DT
        if v_new < 0.05 and a < 0.0:
            veh.s += veh.v * veh.v / (2 * -a)
            veh.v = 0.0
            veh.a = 0.0
        else:
            veh.s += veh.v * DT + 0.5 * a * DT * DT
            veh.v = v_new
            veh.a = a
        if veh.lc_side and veh.sc > veh.path.shift[1] + veh.path.shift[2]:
            veh.lc_side = 0
        end = veh.path.length
        if veh.sc >= end - 0.5:
            if veh.is_ego:
                veh.s = end - 0.5 - veh.ref_to_center
                veh.v = 0.0
                veh.finished_route = True
            else:
                veh.active = False

    # ---------------------------------------------------------------- approach index
    def _build_approach(self) -> None:
        """seg -> [(vehicle id, distance from its centre to the segment start, segment before it or -1)].

        A vehicle near the start of a connector is also listed (with ``SIBLING``) on the connectors that leave
        the same lane, which overlap there: followers see it, crossing traffic does not.
        """
        app: dict[int, list] = {}
        town = self.town
        for veh in self.vehicles:
            if not veh.active:
                continue
            path, sc = veh.path, veh.sc
            k0 = path.seg_index(sc)
            horizon = 30.0 + 4.0 * veh.v
            for k in range(k0, len(path.segs)):
                d = path.seg_start[k] - sc
                if d > horizon:
                    break
                seg = int(path.segs[k])
                app.setdefault(seg, []).append((veh.vid, d, int(path.segs[k - 1]) if k > k0 else -1))
                if k == k0:
                    s_on = -d
                    cur = town.segments[seg]
                    if veh.lc_side and sc < veh.lc_mid:  # still partly in the lane it leaves
                        side = cur.left if veh.lc_side > 0 else cur.right
                        if side >= 0:
                            app.setdefault(side, []).append((veh.vid, d, -1))
                    if cur.is_connector and s_on < 15.0:  # diverging siblings overlap near the start
                        for p in cur.pred:
                            for sib in town.segments[p].succ:
                                if sib != seg:
                                    app.setdefault(sib, []).append((veh.vid, d, SIBLING))
        self._approach = app
        self._static_by_seg: dict[int, list[tuple[int, float]]] = {}
        for i, st in enumerate(self.statics):
            for seg, s_on in st.blocks:
                self._static_by_seg.setdefault(seg, []).append((i, s_on))

    # ---------------------------------------------------------------- control
    def _targets(self, veh: Vehicle, lite: bool = False) -> list[Target]:
        town = self.town
        path, sc = veh.path, veh.sc
        half = veh.length / 2
        out: list[Target] = []
        k0 = path.seg_index(sc)
        horizon = 30.0 + 4.0 * veh.v + veh.v * veh.v / 2.0
        for k in range(k0, len(path.segs)):
            d_i = path.seg_start[k] - sc
            if d_i > horizon:
                break
            seg = int(path.segs[k])
            sobj = town.segments[seg]
            pred_i = int(path.segs[k - 1]) if k > k0 else -1
            # Vehicles on or approaching this segment.
            if not veh.params.ignore_others:
                for vid, d_j, pred_j in self._approach.get(seg, ()):
                    if vid == veh.vid:
                        continue
                    other = self.vehicles[vid]
                    if pred_j >= 0 and pred_j != pred_i and k > k0:
                        continue  # merging from another connector: handled as a conflict below
                    if d_j < d_i:
                        gap = (d_i - d_j) - half - other.length / 2
                        out.append(Target(gap, self._speed_along(other, veh), who=vid,
                                          s0=10.0 if other.static else None))
                # Static objects blocking this lane (stop well back: room to steer around them).
                for i, s_on in self._static_by_seg.get(seg, ()):
                    gap = d_i + s_on - half - self.statics[i].size[0] / 2
                    if gap > -half:
                        out.append(Target(gap, 0.0, who=-2 - i, s0=10.0))
            # Signals: stop before a signalled connector that is red (or yellow when we can still stop).
            if sobj.phase >= 0 and d_i > 0 and not veh.params.ignore_lights:
                status = self.signals.status(seg)
                gap = d_i - half - 0.6
                if status == TrafficLightStatus.RED:
                    out.append(Target(gap, 0.0, stop=True, who=-100))
                elif status == TrafficLightStatus.YELLOW:
                    need = veh.v * veh.v / (2 * max(gap - 0.5, 0.1))
                    t_reach = (gap + half) / max(veh.v, 0.1)
                    if need < 3.0 or t_reach > self.signals.remaining(seg) - 0.3:
                        out.append(Target(gap, 0.0, stop=True, who=-100))
            # Conflicts with other connectors at the node.
            if sobj.is_connector and not veh.params.ignore_others:
                for c2, s_self, s_other, kind in town.conflicts.get(seg, ()):
                    tgt = self._conflict(veh, seg, d_i + s_self, c2, s_self, s_other, kind)
                    if tgt is not None:
                        out.append(tgt)
        # End of the path (the ego's route end): stop there.
        if veh.is_ego:
            out.append(Target(path.length - sc - half - 2.0, 0.0, stop=True, who=-101))
        if not lite:
            out += self._ped_targets(veh)
        return out

    def _speed_along(self, other: Vehicle, veh: Vehicle) -> float:
        if other.static:
            return 0.0
        h_other = other.center_pose()[2]
        h_me = veh.center_pose()[2]
        return max(0.0, other.v * float(np.cos(h_other - h_me)))

    def _conflict(self, veh: Vehicle, seg: int, dist_i: float, c2: int, s_self: float, s_other: float,
                  kind: int) -> Target | None:
        """A stop point (or a leader) for ``veh`` at a conflict point ``dist_i`` m ahead of its centre."""
        town = self.town
        half = veh.length / 2
        me = town.segments[seg]
        best: Target | None = None
        for vid, d_j, pred_j in self._approach.get(c2, ()):
            if vid == veh.vid or pred_j == SIBLING:
                continue
            other = self.vehicles[vid]
            dist_j = d_j + s_other
            clear = other.length / 2 + veh.width / 2 + 1.0
            oseg = town.segments[c2]
            if kind == 1:  # converging paths: zipper, the lower-priority path yields
                main = me.priority >= oseg.priority
                if dist_j < dist_i:  # it is ahead of us along the converging lanes: follow it
                    if main and dist_i - dist_j < 2.0 and dist_j > 0.0:
                        continue  # side by side before the converging point: the merging vehicle yields
                    gap = dist_i - dist_j - half - other.length / 2
                    tgt = Target(gap, self._speed_along(other, veh), who=vid)
                else:  # it is behind us: a merging vehicle waits unless the gap is large enough
                    if main or dist_i < 0.0:
                        continue
                    spacing = dist_j - dist_i - half - other.length / 2
                    need = 4.0 + other.v * 1.0 + max(0.0, other.v - veh.v) * 1.0
                    if spacing >= need or other.v < 0.5:
                        continue  # enough room, or it stands still to let us in
                    tgt = Target(dist_i - half - 3.0, 0.0, stop=True, who=vid)
                if best is None or tgt.gap < best.gap:
                    best = tgt
                continue
            # Crossing paths: the lower-priority path (or the later arrival) waits before the crossing point.
            # Clearances along each path grow as the crossing gets more oblique.
            h_me = me.heading[min(int(s_self / 0.5), len(me.heading) - 1)]
            h_ot = oseg.heading[min(int(s_other / 0.5), len(oseg.heading) - 1)]
            ang = abs(float(np.angle(np.exp(1j * (h_me - h_ot)))))
            ang = max(min(ang, np.pi - ang), 0.25)
            my_clear = min(9.0, (other.width / 2 + 0.7) / np.sin(ang) + (veh.width / 2) / np.tan(ang))
            ot_clear = min(9.0, (veh.width / 2 + 0.7) / np.sin(ang) + (other.width / 2) / np.tan(ang))
            clear = other.length / 2 + ot_clear
            if dist_j < -clear or dist_i < -(half + my_clear):
                continue  # one of us is past the crossing point
            in_zone = abs(dist_j) < clear
            t_j = dist_j / max(other.v, 0.5)
            committed_me = dist_i < half + 1.0 and veh.v > 1.0
            st_other = self.signals.status(c2)
            other_runs = (st_other == TrafficLightStatus.RED and d_j > 0 and
                          other.v * other.v / (2 * max(d_j - other.length / 2, 0.1)) > 3.0)
            if d_j > 0 and st_other == TrafficLightStatus.RED and not other_runs:
                continue  # it will stop at its line
            if in_zone:
                yield_ = True
            elif other.v < 0.3:
                yield_ = False  # standing outside the conflict area: no threat until it moves
            elif committed_me:
                yield_ = False
            elif other_runs or d_j <= 0:
                t_i = max(dist_i, 0.0) / max(veh.v, 1.0)
                yield_ = t_j < t_i + 3.0
            elif me.priority < oseg.priority:
                yield_ = t_j < veh.params.gap_accept
            elif me.priority > oseg.priority:
                yield_ = False
            else:
                yield_ = t_j < dist_i / max(veh.v, 0.5)
            if not yield_:
                continue
            tgt = Target(dist_i - half - my_clear - 0.8, 0.0, stop=True, who=vid)
            if tgt.gap < -1.0 and not in_zone:
                continue  # already inside the conflict area: clear it
            if best is None or tgt.gap < best.gap:
                best = tgt
        return best

    def _ped_targets(self, veh: Vehicle) -> list[Target]:
        out = []
        if not len(self._ped_xy):
            return out
        me = veh.center_pose()
        near = np.hypot(self._ped_xy[:, 0] - me[0], self._ped_xy[:, 1] - me[1]) < 35.0 + 2.5 * veh.v
        for i in np.flatnonzero(near):
            ped = self._ped_list[i]
            # Where it will be over the next 3 s (standing still while it waits).
            speed = ped.speed if ped.moving else 0.0
            samples = np.array([ped.pos(min(ped.s + speed * t, ped.limit_s)) for t in (0.0, 1.0, 2.0, 3.0)])
            s_ahead = np.linspace(veh.sc, min(veh.sc + 40.0 + 2.5 * veh.v, veh.path.length), 40)
            poses, _ = veh.path.pose(s_ahead)
            d = np.hypot(poses[None, :, 0] - samples[:, None, 0], poses[None, :, 1] - samples[:, None, 1])
            k = d.argmin(1)
            lat = d[np.arange(len(samples)), k]
            inside = lat < veh.width / 2 + 1.3
            if not inside.any():
                continue
            arc = s_ahead[k[inside]].min() - veh.sc
            if arc <= 0.5 and not inside[0]:
                continue
            out.append(Target(arc - veh.length / 2 - 1.5, 0.0, stop=True, who=-1000 - ped.pid))
        return out

    def _control(self, veh: Vehicle, lite: bool = False) -> float:
        if veh.a_override is not None:
            return veh.a_override
        p = veh.params
        seg = self.town.segments[veh.seg()]
        limit = seg.speed_limit * p.speed_factor
        v0 = limit if veh.v_target is None else veh.v_target
        v = veh.v
        a = min(p.a_max, 0.6 * (v0 - v))
        # Curves and speed-limit changes ahead: decelerate to reach each point's cap in time.
        path = veh.path
        k0 = int(np.searchsorted(path.s, veh.sc))
        k1 = int(np.searchsorted(path.s, veh.sc + 10.0 + v * v / 2.0 + 3.0 * v))
        if k1 > k0:
            caps = path.speed_caps(p)[k0:k1:2]
            if veh.v_target is not None:
                caps = np.maximum(caps, veh.v_target)
            dist = np.maximum(path.s[k0:k1:2] - veh.sc - 1.0, 0.5)
            worst = float(((v * v - caps * caps) / (2 * dist)).max())
            if worst > 0.2:
                a = min(a, -worst)
        for tgt in self._targets(veh, lite):
            a = min(a, self._follow(veh, tgt))
        return a

    @staticmethod
    def _follow(veh: Vehicle, tgt: Target) -> float:
        """Acceleration to keep ``tgt`` at a safe distance (time-gap follower + kinematic braking)."""
        p = veh.params
        v, vl = veh.v, tgt.speed
        s0 = tgt.s0 if tgt.s0 is not None else (1.0 if tgt.stop else p.s0)
        headway = 0.0 if tgt.stop else p.headway
        free = tgt.gap - s0
        if free < 0.3 and v < 0.5:
            return -p.b_max
        desired = vl * headway + (v - vl) * 0.5 * headway
        err = free - desired
        a = 0.2 * err + 0.6 * (vl - v)
        if vl >= v - 0.1 and not tgt.stop:
            a = max(a, -1.5) if err < 0 else a
        if v > vl:
            b_kin = (v * v - vl * vl) / (2 * max(free - vl * headway * 0.5, 0.1))
            if b_kin > 0.7:
                a = min(a, -b_kin)
        if vl < 0.5 and v < 2.0 and free > 0.0:
            a = max(a, -1.5 * v - 0.1)  # ease off the brake while coming to a stop (no jerk at standstill)
        return float(min(a, p.a_max))

    # ---------------------------------------------------------------- lane changes
    def _maybe_change_lane(self, veh: Vehicle) -> None:
        """Leave a lane blocked by a static object (or stalled vehicle) when the neighbour lane has room."""
        if veh.lc_side or self.t - veh.last_lc_check < 0.5 or veh.params.ignore_others:
            return
        veh.last_lc_check = self.t
        town = self.town
        k0 = veh.path.seg_index(veh.sc)
        seg = town.segments[int(veh.path.segs[k0])]
        if seg.is_connector:
            return
        # The ego decides later than background drivers: a human-like driver moves over once the blockage is
        # close (the corner-case families tag the scenario just before).
        gap = self._blocker_ahead(veh, int(veh.path.segs[k0]), reach=EGO_PASS_LOOKAHEAD_M if veh.is_ego else 85.0)
        if gap is None:
            return
        dist = gap
        rest = veh.route[veh.route.index(seg.roadblock):] if seg.roadblock in veh.route else [seg.roadblock]
        for side, nb in ((1, seg.left), (-1, seg.right)):
            if nb < 0:
                continue
            if self._blocker_ahead(veh, nb, reach=85.0 + dist + 30.0) is not None:
                continue
            segs = town.lane_route(nb, rest)
            if segs is None:
                continue
            s_on = veh.sc - veh.path.seg_start[k0]
            if not self._gap_ok(veh, nb, s_on):
                continue
            # The ego moves over more gently: nuPlan's LQR tracks a sharp low-speed lane change with a swing
            # of half a metre past the target lane (off the road when it is the outer lane).
            length = float(np.clip(3.5 * veh.v + 14.0, 24.0, 50.0) if veh.is_ego else np.clip(3.0 * veh.v + 8.0,
                                                                                               14.0, 45.0))
            if 0.75 * length > min(gap, self._lead_gap(veh, int(veh.path.segs[k0]))) - 0.5:
                continue  # not enough room to steer out (blocker or a queued car ahead): slow down / wait
            self.start_lane_change(veh, segs, side, length)
            return

    def _blocker_ahead(self, veh: Vehicle, seg: int, reach: float = 85.0) -> float | None:
        """Gap from ``veh``'s front to the first blocking object within ``reach`` m on lane ``seg`` (or None)."""
        k0 = veh.path.seg_index(veh.sc)
        s_on = veh.sc - veh.path.seg_start[k0]
        half = veh.length / 2
        best = None
        for i, s_st in self._static_by_seg.get(seg, ()):
            d = s_st - s_on - half - self.statics[i].size[0] / 2
            if -self.statics[i].size[0] - veh.length < d < reach:
                best = d if best is None else min(best, d)
        for vid, d_j, _ in self._approach.get(seg, ()):
            other = self.vehicles[vid]
            d = -d_j - s_on - half - other.length / 2
            if other.static and vid != veh.vid and -other.length - veh.length < d < reach:
                best = d if best is None else min(best, d)
        return best

    def _lead_gap(self, veh: Vehicle, lane: int) -> float:
        """Bumper gap to the nearest vehicle ahead of ``veh`` on ``lane`` (its current lane); inf if none."""
        k0 = veh.path.seg_index(veh.sc)
        s_on = veh.sc - veh.path.seg_start[k0]
        best = np.inf
        for vid, d_j, _ in self._approach.get(lane, ()):
            if vid == veh.vid:
                continue
            rel = -d_j - s_on
            if rel > 0:
                best = min(best, rel - (veh.length + self.vehicles[vid].length) / 2)
        return best

    def _gap_ok(self, veh: Vehicle, lane: int, s_on: float) -> bool:
        for vid, d_j, _ in self._approach.get(lane, ()):
            other = self.vehicles[vid]
            if vid == veh.vid or other.static:
                continue
            rel = -d_j - s_on  # its centre ahead of ours along the lane
            need_ahead = veh.length / 2 + other.length / 2 + max(6.0, 1.0 * veh.v + 2.0 * (veh.v - other.v))
            need_behind = veh.length / 2 + other.length / 2 + max(8.0, 1.5 * other.v + 2.5 * (other.v - veh.v))
            if -need_behind < rel < need_ahead:
                return False
        return True

    def start_lane_change(self, veh: Vehicle, segs: list[int], side: int, length: float) -> None:
        """Switch ``veh`` to the lane path ``segs`` (a neighbour lane), blending sideways over ``length`` m."""
        new = Path.build(self.town, segs)
        pose = veh.center_pose()
        # Arc on the new path of the vehicle's centre and its lateral offset from the new centreline.
        d = np.hypot(new.xy[:, 0] - pose[0], new.xy[:, 1] - pose[1])
        k = int(np.argmin(d[: max(2, int(len(d)))]))
        s_new = float(new.s[k])
        h = new.heading[k]
        lat = float(-(pose[0] - new.xy[k, 0]) * np.sin(h) + (pose[1] - new.xy[k, 1]) * np.cos(h))
        new.shift = (lat, s_new, length)
        veh.path = new
        veh.s = s_new - veh.ref_to_center
        veh.route = [self.town.segments[i].roadblock for i in segs]
        veh.lc_side = side
        veh.lc_mid = s_new + length / 2
        self.lc_log.append((self.t, veh.vid, side))

    # ---------------------------------------------------------------- pedestrians
    def _step_ped(self, ped: Pedestrian) -> None:
        nxt = ped.s + ped.speed * DT
        ped.moving = True
        ped.limit_s = np.inf
        for w_s, cw in ped.waits:
            if w_s >= ped.s - 1e-6:
                allowed = (not ped.hold) if cw < 0 else self.signals.pedestrians_may_cross(cw)
                if not allowed:
                    ped.limit_s = w_s
                    break
        if nxt > ped.limit_s:
            ped.s = ped.limit_s
            ped.moving = False
            return
        ped.s = nxt
        if ped.s >= ped.arc[-1]:
            ped.active = False

    # ---------------------------------------------------------------- spawning
    def _spawn_inflow(self) -> None:
        n_active = sum(v.active for v in self.vehicles)
        for lane, rate in self.inflow:
            if n_active >= self.max_vehicles or self.rng.random() > rate * DT:
                continue
            seg = self.town.segments[lane]
            if np.hypot(*(seg.xy[0] - self.ego.center_pose()[:2])) < self.spawn_block_radius:
                continue
            if any(d_j > -14.0 for _, d_j, _ in self._approach.get(lane, ()) if d_j < 5.0):
                continue
            if self._static_by_seg.get(lane):
                continue
            route = self.random_route(lane)
            v0 = seg.speed_limit * float(self.rng.uniform(0.7, 0.95))
            self.add_vehicle(route, 0.0, v0, agent_params(self.rng))
            n_active += 1

    # ---------------------------------------------------------------- recording
    def _record(self) -> None:
        vs = []
        for veh in self.vehicles:
            if not veh.active:
                vs.append(None)
                continue
            center = veh.center_pose().copy()
            if veh.is_ego:
                x, y, h, kap = veh.path.pose1(veh.s)
                vs.append((np.array([x, y, h]), veh.v, veh.a, kap, veh.seg(), center))
            else:
                vs.append((center, veh.v, veh.a, 0.0, -1, center))
        ps = []
        for ped in self.peds:
            seen = ped.active and not (ped.hidden and ped.unobserved_while_hidden)
            ps.append((ped.pos(), ped.heading(), ped.speed if ped.moving else 0.0) if seen else None)
        lights = np.array([self.signals.status(int(c)) for c in self.signals.connectors], np.int8)
        self.history.append({"t": self.t, "veh": vs, "ped": ps, "lights": lights})

    def record_initial(self) -> None:
        self._build_approach()
        self._record()
        self.history[-1]["t"] = self.t


def agent_params(rng: np.random.Generator) -> DriverParams:
    """A background driver: a little more assertive and varied than the ego."""
    return DriverParams(speed_factor=float(rng.uniform(0.85, 1.05)), a_max=float(rng.uniform(1.2, 2.0)),
                        b_comf=2.5, b_max=6.0, jerk=6.0, headway=float(rng.uniform(1.1, 1.8)),
                        s0=float(rng.uniform(2.0, 3.0)), gap_accept=float(rng.uniform(3.5, 5.0)))
