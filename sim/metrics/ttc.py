"""``time_to_collision_within_bound`` (nuPlan weight 5).

Per sample ``t``:
- an at-fault collision at ``t`` gives TTC 0;
- candidates: valid objects not collided at or before ``t`` (any collision type) that are ahead (centre less
  than 30 deg off the ego rear-axle heading), or — when ego is not inside a single lane or its rear axle is in an
  intersection — not behind (at most 150 deg);
- no candidate or ego speed <= 0.005 m/s gives TTC = inf;
- constant-velocity projection along the current headings (ego centre at its speed, objects at |v|, static
  objects still); pre-filter: the boxes stretched over the whole horizon must touch; then for
  ``tau in arange(step, horizon, step)`` (0.1 .. 2.9 s) the first tau at which a projected pair touches.
Score 1 iff ``TTC > 0.95 s`` at every sample.

Vectorized over the (sample, object) pairs that survive the stretched-box pre-filter and all projection steps.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sim.geometry import box_corners, boxes_overlap
from sim.metrics.collisions import AHEAD_DEG, BEHIND_DEG, Collisions, track_speed
from sim.metrics.common import DEFAULT_PARAMS, F64, MetricParams, angle_to, ego_center
from sim.scenario import EgoStates, Tracks
from sim.vehicle import PACIFICA, VehicleParameters


def _touch(ca: F64, la: F64, wa: F64, cb: F64, lb: F64, wb: F64) -> npt.NDArray[np.bool_]:
    """nuPlan's ``in_collision`` for centre poses ``(..., 3)`` and sizes: radius check then exact overlap."""
    d = np.hypot(ca[..., 0] - cb[..., 0], ca[..., 1] - cb[..., 1])
    near = d < (np.hypot(la, wa) + np.hypot(lb, wb)) / 2.0
    out = np.zeros(near.shape, bool)
    if near.any():
        idx = np.nonzero(near)
        sel = [np.broadcast_to(x, near.shape)[idx] for x in (la, wa, lb, wb)]
        a = box_corners(ca[idx], sel[0], sel[1])
        b = box_corners(cb[idx], sel[2], sel[3])
        out[idx] = boxes_overlap(a, b)
    return out


def time_to_collision(ego: EgoStates, tracks: Tracks, collisions: Collisions, ego_in_single_lane: npt.ArrayLike,
                      ego_in_intersection: npt.ArrayLike, params: MetricParams = DEFAULT_PARAMS,
                      vehicle: VehicleParameters = PACIFICA) -> F64:
    """``(T,)`` time to collision (s), ``inf`` where none is projected within the horizon."""
    n, t = tracks.valid.shape
    ttc = np.full(t, np.inf)
    # tracks collided at or before each sample are excluded
    first = np.full(n, t, np.int64)
    first[collisions.track] = collisions.step
    not_collided = np.arange(t)[None, :] < first[:, None]
    angle = angle_to(ego.pose[None], tracks.pose[..., :2])  # (N, T), NaN where coincident
    with np.errstate(invalid="ignore"):
        ahead = angle < np.deg2rad(AHEAD_DEG)
        behind = angle > np.deg2rad(BEHIND_DEG)
    lateral_mode = ~np.asarray(ego_in_single_lane, bool) | np.asarray(ego_in_intersection, bool)
    candidate = tracks.valid & not_collided & (ahead | (lateral_mode[None] & ~behind))
    moving = ego.speed > params.ttc_stopped_speed
    candidate &= moving[None]

    center = ego_center(ego, vehicle)
    e_step = np.stack([np.cos(center[:, 2]), np.sin(center[:, 2])], -1) * (ego.speed * params.ttc_step)[:, None]
    speed = track_speed(tracks)
    o_step = np.stack([np.cos(tracks.pose[..., 2]), np.sin(tracks.pose[..., 2])], -1) * (speed * params.ttc_step)[
        ..., None]
    n_steps = params.ttc_horizon / params.ttc_step
    ii, tt = np.nonzero(candidate)
    if len(ii):
        # stretched boxes covering the whole horizon, centred half-way
        e_len = vehicle.length + np.hypot(*(e_step[tt] * n_steps).T)
        e_c = center[tt].copy()
        e_c[:, :2] += e_step[tt] * n_steps / 2.0
        o_len = tracks.size[ii, 0] + np.hypot(*(o_step[ii, tt] * n_steps).T)
        o_c = tracks.pose[ii, tt].copy()
        o_c[:, :2] += o_step[ii, tt] * n_steps / 2.0
        relevant = _touch(e_c, e_len, np.full(len(tt), vehicle.width), o_c, o_len, tracks.size[ii, 1])
        ii, tt = ii[relevant], tt[relevant]
    if len(ii):
        taus = np.arange(params.ttc_step, params.ttc_horizon, params.ttc_step)
        k = np.arange(1, len(taus) + 1)[:, None, None]  # (K, 1, 1)
        e_c = np.broadcast_to(center[tt], (len(taus), len(tt), 3)).copy()
        e_c[..., :2] += k * e_step[tt][None]
        o_c = np.broadcast_to(tracks.pose[ii, tt], (len(taus), len(tt), 3)).copy()
        o_c[..., :2] += k * o_step[ii, tt][None]
        hit = _touch(e_c, np.float64(vehicle.length), np.float64(vehicle.width), o_c,
                     tracks.size[ii, 0][None], tracks.size[ii, 1][None])  # (K, P)
        any_hit = hit.any(0)
        first_k = np.argmax(hit, 0)
        pair_ttc = np.where(any_hit, taus[first_k], np.inf)
        np.minimum.at(ttc, tt, pair_ttc)
    fault_steps = collisions.step[collisions.at_fault]
    ttc[fault_steps] = 0.0
    return ttc


def ttc_metric(ttc: F64, params: MetricParams = DEFAULT_PARAMS) -> dict[str, float]:
    """Score (``least_min_ttc < TTC`` at every sample) and the minimum TTC."""
    name = "time_to_collision_within_bound"
    return {name: float(np.all(params.least_min_ttc < ttc)), f"{name}.min_ttc": float(np.min(ttc))}
