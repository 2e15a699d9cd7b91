"""IDM proposals along paths: obstacle forecasts in path coordinates, speed caps, and the batched IDM unroll.

Every proposal k follows one *lane* (a :class:`experts.route.Path`) at a constant lateral offset, with an IDM
longitudinal policy toward its own target speed. Obstacles are the forecast boxes of the tracked objects
(constant velocity for agents, fixed for static objects), red lights on the path and the path end. An obstacle
leads proposal k when its box overlaps k's corridor (the path shifted by the offset, ½ ego width + margin each
side) and its front is ahead of ego's rear axle. The unroll is explicit Euler at 0.1 s, the leader
re-evaluated every ``FORECAST_STEPS`` steps as PDM-Closed does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from experts.route import Path
from sim.categories import AGENT_CATEGORIES
from sim.geometry import box_corners
from sim.scenario import Tracks
from sim.vehicle import PACIFICA

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Steps (of 0.1 s) between leader updates / forecast samples.
FORECAST_STEPS = 2
#: Extra lateral margin of the corridor on each side of the ego half width (m).
CORRIDOR_MARGIN = 0.15
#: Objects whose nearest path vertex is farther than this are ignored (m).
MAX_PATH_DISTANCE = 8.0


def _scalar(value: float) -> F64:
    """``value`` as a 0-d float64 array (numpy's per-call overhead with it is lower than with a Python float)."""
    return np.array(value, np.float64)


def nan_to_num(x: F64) -> F64:
    """``np.nan_to_num(x)``; ``x`` itself (not a copy) when it is all finite, skipping nan_to_num's overhead."""
    return x if bool(np.isfinite(x).all()) else np.nan_to_num(x)


def isin_small(values: npt.ArrayLike, choices: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """``np.isin(values, choices)`` for a few choices: one broadcast comparison (np.isin's setup costs more)."""
    v = np.asarray(values)
    return (v[..., None] == np.asarray(choices)).any(-1)


@dataclass(frozen=True)
class IDMParams:
    """PDM-Closed's IDM constants (tuplan_garage ``pdm_closed_planner.yaml``)."""

    min_gap: float = 1.0  # s0, m
    headway: float = 1.5  # T, s
    accel_max: float = 1.5  # a, m/s²
    decel_max: float = 3.0  # b, m/s²
    exponent: float = 10.0  # δ


IDM_DEFAULT = IDMParams()


@dataclass(frozen=True)
class Forecast:
    """Constant-velocity forecast of N objects at J times ``t0 + j·dt_j``.

    ``corners``: ``(N, 4, 2)`` now; ``center``: ``(N, J, 3)``; ``length``, ``width``: ``(N,)`` m;
    ``velocity``: ``(N, 2)`` global m/s (0 for static objects);
    ``is_agent``: ``(N,)``; ``speed``: ``(N,)`` m/s.
    """

    corners: F64
    center: F64
    length: F64
    width: F64
    velocity: F64
    is_agent: npt.NDArray[np.bool_]
    speed: F64
    category: npt.NDArray[np.int8]
    speed_scale: F64 | None = None  # (N, J) speed at sample j / current speed (None: constant velocity)


def forecast(tracks: Tracks, num_samples: int, dt: float, decel: F64 | None = None) -> Forecast:
    """Forecast of the objects of a one-step ``tracks`` at ``j·dt``, ``j = 0..num_samples-1``.

    Static categories stay where they are; agents move with their current global velocity (heading kept), or,
    where ``decel`` ``(N,)`` (m/s², ≥ 0) is positive, slow down at that rate to a stop along that direction
    (a braking leader: a constant-velocity forecast sees the danger only when it is too late).
    """
    pose = tracks.pose[:, -1, :]  # (N, 3)
    is_agent = isin_small(tracks.category, AGENT_CATEGORIES)
    vel = np.where(is_agent[:, None], nan_to_num(tracks.velocity[:, -1, :]), 0.0)
    speed = np.hypot(vel[:, 0], vel[:, 1])
    t = np.arange(num_samples) * dt
    center = np.repeat(pose[:, None, :], num_samples, axis=1)
    scale = None
    if decel is not None and (np.asarray(decel) > 0.0).any() and len(pose):
        b = np.where(is_agent, np.maximum(np.asarray(decel, np.float64), 0.0), 0.0)[:, None]  # (N, 1)
        t_stop = np.where(b > 0.0, speed[:, None] / np.maximum(b, 1e-9), np.inf)
        tc = np.minimum(t[None, :], t_stop)  # (N, J)
        scale = np.where(b > 0.0, 1.0 - b * tc / np.maximum(speed[:, None], 1e-9), 1.0)
        dist_factor = tc - 0.5 * b * tc**2 / np.maximum(speed[:, None], 1e-9)  # distance / current speed
        dist_factor = np.where(b > 0.0, dist_factor, t[None, :])
        center[..., :2] += vel[:, None, :] * dist_factor[..., None]
        scale = np.clip(scale, 0.0, 1.0)
    else:
        center[..., :2] += vel[:, None, :] * t[None, :, None]
    corners = box_corners(pose, tracks.size[:, 0], tracks.size[:, 1]) if len(pose) else np.zeros((0, 4, 2))
    return Forecast(corners, center, tracks.size[:, 0], tracks.size[:, 1], vel, is_agent, speed, tracks.category,
                    scale)


@dataclass(frozen=True)
class PathObstacles:
    """Obstacles of one path in its arc-length frame, for D lateral offsets, J forecast times, M obstacles.

    ``s_min``/``s_max``: ``(D, J, M)`` rear-most / front-most arc length of the obstacle where it overlaps the
    corridor of offset d at time j, +inf / -inf elsewhere. ``speed``: ``(J, M)`` speed along the path (≥ 0).
    """

    s_min: F64
    s_max: F64
    speed: F64


def project_forecast(path: Path, fc: Forecast) -> tuple[F64, F64, F64]:
    """``path.project`` of the forecast box centres ``(N, J)``; objects that do not move are projected once."""
    n, j = fc.center.shape[:2]
    moving = np.flatnonzero((fc.velocity != 0.0).any(1))
    still = np.flatnonzero((fc.velocity == 0.0).all(1))
    out = [np.empty((n, j)) for _ in range(3)]
    if len(moving):
        for o, r in zip(out, path.project(fc.center[moving, :, :2]), strict=True):
            o[moving] = r
    if len(still):
        for o, r in zip(out, path.project(fc.center[still, 0, :2]), strict=True):
            o[still] = r[:, None]
    return out[0], out[1], out[2]


def path_obstacles(path: Path, offsets: F64, fc: Forecast, red_light_s: F64, ignore: npt.NDArray[np.bool_],
                   half_width: float = PACIFICA.width / 2 + CORRIDOR_MARGIN, stopped_extra_gap: float = 0.0,
                   projection: tuple[F64, F64, F64] | None = None) -> PathObstacles:
    """Project the forecast onto ``path``; add red lights (arc lengths ``red_light_s``) and the path end.

    ``ignore``: ``(N,)`` objects to leave out (e.g. those ego already overlaps). ``stopped_extra_gap``: metres
    added to the IDM stopping distance behind stationary objects (room to steer around them later).
    ``projection``: :func:`project_forecast` of ``fc`` on ``path`` if the caller has it already.
    """
    d_off = np.asarray(offsets, np.float64)
    n, j = fc.center.shape[:2]
    if n:
        # Project box centres; the box's extent along / across the path follows from its relative heading.
        cs, clat, dist = projection if projection is not None else project_forecast(path, fc)  # (N, J)
        h = np.interp(cs, path.s, path.heading)
        rel = fc.center[..., 2] - h
        c, s_ = np.abs(np.cos(rel)), np.abs(np.sin(rel))
        half_l, half_w = fc.length[:, None] / 2.0, fc.width[:, None] / 2.0
        ext_s = half_l * c + half_w * s_
        ext_lat = half_l * s_ + half_w * c
        s_lo, s_hi = cs - ext_s, cs + ext_s
        if stopped_extra_gap:
            s_lo = s_lo - np.where(fc.speed < 0.5, stopped_extra_gap, 0.0)[:, None]
        lat_lo, lat_hi = clat - ext_lat, clat + ext_lat
        near = (dist < MAX_PATH_DISTANCE + ext_lat) & (s_hi > 0.0) & (s_lo < path.length) & ~ignore[:, None]
        inside = (near[None] & (lat_hi[None] > d_off[:, None, None] - half_width)
                  & (lat_lo[None] < d_off[:, None, None] + half_width))  # (D, N, J)
        s_min = np.where(inside, s_lo[None], np.inf).transpose(0, 2, 1)
        s_max = np.where(inside, s_hi[None], -np.inf).transpose(0, 2, 1)
        along = fc.velocity[:, None, 0] * np.cos(h) + fc.velocity[:, None, 1] * np.sin(h)
        if fc.speed_scale is not None:
            along = along * fc.speed_scale
        speed = np.maximum(along, 0.0).T  # (J, N)
    else:
        s_min = np.full((len(d_off), j, 0), np.inf)
        s_max = np.full((len(d_off), j, 0), -np.inf)
        speed = np.zeros((j, 0))
    fixed = np.concatenate([np.asarray(red_light_s, np.float64), [path.length]])
    f_min = np.broadcast_to(fixed, (len(d_off), j, len(fixed)))
    f_max = f_min + 0.5
    return PathObstacles(np.concatenate([s_min, f_min], -1), np.concatenate([s_max, f_max], -1),
                         np.concatenate([speed, np.zeros((j, len(fixed)))], -1))


def speed_cap(path: Path, points_s: npt.ArrayLike, points_v: npt.ArrayLike, decel: float = 1.5,
              max_lat_accel: float = 2.5) -> F64:
    """``(P,)`` speed cap (m/s) per vertex: curvature (lateral acceleration ≤ ``max_lat_accel``) and caution
    points (arc ``points_s`` where the speed must be ≤ ``points_v`` ≥ 0), each anticipated by a comfortable
    deceleration ``decel``: cap(s) = min over points r ≥ s of sqrt(v_r² + 2·decel·(r − s)).
    """
    ds = np.gradient(path.s) if len(path) > 1 else np.ones(1)
    kappa = np.abs(np.gradient(path.heading) / np.maximum(ds, 1e-6))
    kappa = np.convolve(kappa, np.ones(5) / 5.0, mode="same")  # curvature of resampled baselines is noisy
    local = np.sqrt(max_lat_accel / np.maximum(kappa, 1e-4))
    # The minimum is taken over squared speeds and one square root follows: sqrt is monotonic and correctly
    # rounded, so sqrt(min(x)) = min(sqrt(x)) exactly (and sqrt(v²) = v), for one sqrt per vertex, not per pair.
    # Vertices on straight parts (curvature at the 1e-4 floor) all share one cap: of those ahead, the nearest
    # gives the smallest v² + 2·decel·gap, so it is the only one evaluated (most vertices of most paths).
    straight = kappa <= 1e-4
    curved = np.flatnonzero(~straight)
    best = _reach2_min(path.s, path.s[curved], local[curved], points_s, points_v, decel)
    if straight.any():
        s_straight = path.s[straight]
        ahead = np.searchsorted(s_straight, path.s, side="left")  # the first straight vertex at or after s
        gap = s_straight[np.minimum(ahead, len(s_straight) - 1)] - path.s
        v2 = np.square(local[straight][:1]) + 2.0 * decel * np.maximum(gap, 0.0)
        best = np.minimum(best, np.where(ahead < len(s_straight), v2, np.inf))
    return np.sqrt(best)


def _reach2_min(s: F64, vertex_s: F64, vertex_v: F64, points_s: npt.ArrayLike, points_v: npt.ArrayLike,
                decel: float) -> F64:
    """``(P,)`` min over the given vertices (arc ``vertex_s``, cap ``vertex_v``) and caution points ahead of
    each arc ``s`` of the squared speed that reaches them at ``decel``; inf where there is none."""
    r_s = np.concatenate([vertex_s, np.asarray(points_s, np.float64)])
    r_v = np.concatenate([vertex_v, np.asarray(points_v, np.float64)])
    if len(r_s) == 0:
        return np.full(len(s), np.inf)
    gap = r_s[None, :] - s[:, None]  # (P, R)
    reach2 = np.where(gap >= 0.0, r_v[None, :] ** 2 + 2.0 * decel * np.maximum(gap, 0.0), np.inf)
    # points a little behind the vertex (ego still beside them) keep their own cap
    n = len(vertex_s)
    gap_pts = gap[:, n:]
    reach2[:, n:] = np.where((gap_pts < 0.0) & (gap_pts > -3.0), r_v[None, n:] ** 2, reach2[:, n:])
    return reach2.min(1)


@dataclass(frozen=True)
class ProposalSet:
    """K proposals: which path (index into the caller's list of paths), lateral offset, IDM target speed.

    ``combo``: ``(K,)`` index of the (path, offset) pair whose obstacles the proposal reacts to.
    """

    path: I64
    offset: F64
    target_speed: F64
    combo: I64


def unroll_idm(
    s0: F64,
    v0: float,
    proposals: ProposalSet,
    s_min: F64,
    s_max: F64,
    speed: F64,
    caps: F64,
    num_steps: int,
    dt: float = 0.1,
    params: IDMParams = IDM_DEFAULT,
    front_length: float = PACIFICA.front_length,
    a0: float = 0.0,
    max_jerk: float | None = None,
    return_accel: bool = False,
) -> tuple[F64, F64] | tuple[F64, F64, F64]:
    """Progress ``(K, num_steps+1)`` (m along each proposal's path) and speed ``(K, num_steps+1)``; with
    ``return_accel`` also the last commanded acceleration ``(K,)`` (the state :func:`idm_tail` goes on from).

    ``a0``: ego's current acceleration; ``max_jerk`` (m/s³, None: unlimited as PDM-Closed) limits how fast the
    commanded acceleration may change from ``a0`` on while no leader is close, so that switching proposals or
    speed caps do not jerk the car (nuPlan's comfort bound on longitudinal jerk is 4.13 m/s³).

    ``s0``: ``(K,)`` start arc of ego's rear axle on each proposal's path. ``s_min``/``s_max``: ``(C, J, M)``
    obstacle extents per (path, offset) combo; ``speed``: ``(C, J, M)``. ``caps``: ``(B, G)`` speed cap per
    proposal path on a 1 m grid (index = floor(s)).
    """
    k = len(proposals.path)
    s = np.empty((num_steps + 1, k))
    v = np.empty((num_steps + 1, k))
    s[0] = s0
    v[0] = max(float(v0), 0.0)
    combo = proposals.combo
    target = np.maximum(proposals.target_speed, 1e-3)
    sqrt_ab = 2.0 * np.sqrt(params.accel_max * params.decel_max)
    rows = np.arange(k)
    j_max = s_min.shape[1] - 1
    width = caps.shape[1]
    flat_caps = np.maximum(caps, 1e-3).ravel()
    cap_base = proposals.path * width
    # The loop's constants as 0-d arrays: numpy combines (K,) arrays with them faster than with Python floats
    # (same results).
    s0_gap, headway, a_max, b_max, delta = (_scalar(x) for x in (params.min_gap, params.headway,
                                                                 params.accel_max, params.decel_max, params.exponent))
    one, zero, dt_0d, sqrt_ab = _scalar(1.0), _scalar(0.0), _scalar(dt), _scalar(sqrt_ab)
    neg_b_max, last_cell, inf = _scalar(-params.decel_max), _scalar(width - 1), _scalar(np.inf)
    lead_s = lead_v = None
    acc = np.full(k, float(np.clip(a0, -params.decel_max, params.accel_max)))
    da = None if max_jerk is None or max_jerk * dt == np.inf else _scalar(max_jerk * dt)  # None: no limit
    # Each proposal's obstacles, time-major (J, K, M): the leader search below slices instead of gathering.
    n_upd = min((num_steps - 1) // FORECAST_STEPS, j_max) + 1 if num_steps > 0 else 0
    k_smin = s_min[combo, :n_upd].transpose(1, 0, 2)
    k_smax = s_max[combo, :n_upd].transpose(1, 0, 2)
    k_speed = speed[combo, :n_upd].transpose(1, 0, 2)
    num_m = s_min.shape[2]
    # Tight loop: ~35 small ufunc calls per step on (K,) arrays; the leader search every FORECAST_STEPS.
    for i in range(num_steps):
        si, vi = s[i], v[i]
        if i % FORECAST_STEPS == 0:
            j = min(i // FORECAST_STEPS, j_max)
            cand = np.where(k_smax[j] > si[:, None], k_smin[j], inf)  # (K, M)
            pick = rows * num_m + cand.argmin(axis=1)  # flat index of each row's leader
            lead_s = cand.take(pick) - front_length
            lead_v = k_speed[j].take(pick)
        idx = np.minimum(np.maximum(si, zero), last_cell).astype(np.int64)
        vt = np.minimum(target, flat_caps.take(cap_base + idx))
        gap = np.maximum(lead_s - si, s0_gap)
        s_star = np.maximum(s0_gap + vi * (headway + (vi - lead_v) / sqrt_ab), zero)
        interaction = np.square(s_star / gap)
        accel = a_max * (one - (vi / vt) ** delta - interaction)
        accel = np.minimum(np.maximum(accel, neg_b_max), a_max)
        if da is not None:
            # Smooth changes of the free-road command (new target speed, a speed cap); braking for a leader
            # that comes close (interaction term >= 0.25) stays immediate, as in PDM-Closed.
            free = interaction < 0.25
            accel = np.where(free, np.minimum(np.maximum(accel, acc - da), acc + da), accel)
            acc = np.where(vi <= zero, zero, accel)  # at rest the command restarts from 0
        v_next = np.maximum(vi + dt_0d * accel, zero, out=v[i + 1])
        np.add(si, dt_0d * v_next, out=s[i + 1])
    if return_accel:
        return s.T.copy(), v.T.copy(), acc
    return s.T.copy(), v.T.copy()


def idm_tail(s0: float, v0: float, acc0: float, start_step: int, num_steps: int, target_speed: float,
             s_min: F64, s_max: F64, speed: F64, caps: F64, dt: float = 0.1, params: IDMParams = IDM_DEFAULT,
             front_length: float = PACIFICA.front_length, max_jerk: float | None = None) -> tuple[F64, F64]:
    """One proposal's :func:`unroll_idm` continued from step ``start_step`` (even: a leader update) for
    ``num_steps`` more steps, in scalar arithmetic (the same operations, so the same numbers).

    Only the chosen proposal needs the part of the horizon beyond what is scored; for one proposal, plain
    floats are ~10x cheaper per step than numpy calls. ``s0``, ``v0``, ``acc0``: its state at ``start_step``;
    ``s_min``/``s_max``/``speed``: ``(J, M)`` its combo's obstacles; ``caps``: ``(G,)`` its path's cap grid.
    Returns progress and speed ``(num_steps,)`` at steps ``start_step+1 ..``.
    """
    s_out = np.empty(num_steps)
    v_out = np.empty(num_steps)
    target = max(float(target_speed), 1e-3)
    sqrt_ab = 2.0 * np.sqrt(params.accel_max * params.decel_max)
    caps_l = np.maximum(caps, 1e-3).tolist()
    width = len(caps_l)
    s0_gap, headway, a_max, b_max, delta = (params.min_gap, params.headway, params.accel_max, params.decel_max,
                                            params.exponent)
    j_max = s_min.shape[0] - 1
    da = np.inf if max_jerk is None else max_jerk * dt
    si, vi, acc = float(s0), max(float(v0), 0.0), float(acc0)
    lead_s = lead_v = 0.0
    for n in range(num_steps):
        i = start_step + n
        if i % FORECAST_STEPS == 0:
            j = min(i // FORECAST_STEPS, j_max)
            cand = np.where(s_max[j] > si, s_min[j], np.inf)
            m = int(np.argmin(cand))
            lead_s = float(cand[m]) - front_length
            lead_v = float(speed[j, m])
        vt = min(target, caps_l[int(min(max(si, 0.0), width - 1))])
        gap = max(lead_s - si, s0_gap)
        s_star = max(s0_gap + vi * (headway + (vi - lead_v) / sqrt_ab), 0.0)
        interaction = (s_star / gap) ** 2
        accel = a_max * (1.0 - (vi / vt) ** delta - interaction)
        accel = min(max(accel, -b_max), a_max)
        if da != np.inf:
            if interaction < 0.25:
                accel = min(max(accel, acc - da), acc + da)
            acc = 0.0 if vi <= 0.0 else accel
        vi = max(vi + dt * accel, 0.0)
        si = si + dt * vi
        s_out[n] = si
        v_out[n] = vi
    return s_out, v_out


def braking_profile(s0: float, v0: float, num_steps: int, decel: float, dt: float = 0.1) -> tuple[F64, F64]:
    """Progress and speed ``(num_steps+1,)`` of a constant deceleration ``decel`` (m/s²) to a stop."""
    t = np.arange(num_steps + 1) * dt
    v0 = max(float(v0), 0.0)
    t_stop = v0 / decel
    tc = np.minimum(t, t_stop)
    return s0 + v0 * tc - 0.5 * decel * tc**2, np.maximum(v0 - decel * t, 0.0)
