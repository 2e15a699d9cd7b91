"""``no_ego_at_fault_collisions`` (nuPlan multiplier): detection, classification, at-fault rules, score.

Detection: at each sample every observed object not yet collided is tested against the ego box (centre distance
below the sum of half-diagonals, then an exact overlap test); a track counts once, at its first overlapping
sample. The test is vectorized over ``(N, T)``: a distance broad phase, then :func:`sim.geometry.boxes_overlap`
on the surviving pairs.

Classification (first match wins, stopped = speed <= 0.05 m/s):
0 STOPPED_EGO, 1 STOPPED_TRACK (static objects always), 3 ACTIVE_REAR (object centre more than 150 deg from
the ego rear-axle heading), 2 ACTIVE_FRONT (the front bumper segment FL-FR touches the object box),
4 ACTIVE_LATERAL otherwise.
At fault: STOPPED_TRACK and ACTIVE_FRONT always; ACTIVE_LATERAL when ego is not inside a single lane at that
sample (see :func:`sim.metrics.route.in_single_lane`).
Score: 1 without at-fault collisions, else ``prod_g max(0, 1 - n_g / (threshold_g + 1))`` over VRUs
(pedestrian, bicycle; threshold 0), vehicles (0) and static objects (1).
Energy (ego delta-V): ``0.5 * sqrt(v_e^2 + v_o^2 - 2 v_e v_o cos(heading_e - heading_o))`` with equal masses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from sim.categories import STATIC_CATEGORIES, VRU_CATEGORIES, Category
from sim.geometry import box_corners, boxes_overlap
from sim.metrics.common import DEFAULT_PARAMS, F64, I64, MetricParams, angle_to, ego_center
from sim.scenario import EgoStates, Tracks
from sim.vehicle import PACIFICA, VehicleParameters


class CollisionType(IntEnum):
    """nuPlan's ``CollisionType`` values."""

    STOPPED_EGO_COLLISION = 0
    STOPPED_TRACK_COLLISION = 1
    ACTIVE_FRONT_COLLISION = 2
    ACTIVE_REAR_COLLISION = 3
    ACTIVE_LATERAL_COLLISION = 4


#: Angle (deg) beyond which an object is behind the ego (nuPlan's ``is_agent_behind``).
BEHIND_DEG = 150.0
#: Angle (deg) below which an object is ahead of the ego (nuPlan's ``is_agent_ahead``).
AHEAD_DEG = 30.0


@dataclass(frozen=True)
class Collisions:
    """Every first-contact collision of a rollout, one entry per collided track, ordered by (step, track).

    - ``track``: ``(K,)`` row index into the tracks; ``step``: ``(K,)`` sample index
    - ``kind``: ``(K,)`` :class:`CollisionType`; ``at_fault``: ``(K,)`` bool
    - ``category``: ``(K,)`` :class:`sim.categories.Category`; ``energy``: ``(K,)`` ego delta-V, m/s
    """

    track: I64
    step: I64
    kind: npt.NDArray[np.int8]
    at_fault: npt.NDArray[np.bool_]
    category: npt.NDArray[np.int8]
    energy: F64

    def __len__(self) -> int:
        return len(self.track)


def track_speed(tracks: Tracks) -> F64:
    """``(N, T)`` object speeds; static objects count 0 (nuPlan gives them no velocity)."""
    speed = np.hypot(tracks.velocity[..., 0], tracks.velocity[..., 1])
    static = np.isin(tracks.category, STATIC_CATEGORIES)
    return np.where(static[:, None], 0.0, np.nan_to_num(speed))


def track_corners(tracks: Tracks) -> F64:
    """``(N, T, 4, 2)`` object box corners (NaN where invalid)."""
    n, t = tracks.valid.shape
    length = np.broadcast_to(tracks.size[:, 0:1], (n, t))
    width = np.broadcast_to(tracks.size[:, 1:2], (n, t))
    return box_corners(tracks.pose, length, width)


def overlap_pairs(ego_poses: F64, ego_length: float, ego_width: float, tracks: Tracks,
                  mask: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.bool_]:
    """``(N, T)`` whether the ego box (centre poses ``(T, 3)``) overlaps each valid object box.

    Broad phase: centre distance strictly below the sum of half-diagonals (nuPlan's ``in_collision`` radius
    check); narrow phase: separating-axis test on the surviving pairs only.
    """
    n, t = tracks.valid.shape
    valid = tracks.valid if mask is None else tracks.valid & mask
    d = np.hypot(tracks.pose[..., 0] - ego_poses[None, :, 0], tracks.pose[..., 1] - ego_poses[None, :, 1])
    radius = (np.hypot(ego_length, ego_width) + np.hypot(tracks.size[:, 0], tracks.size[:, 1])) / 2.0
    with np.errstate(invalid="ignore"):
        near = valid & (d < radius[:, None])
    out = np.zeros((n, t), bool)
    ii, tt = np.nonzero(near)
    if len(ii):
        a = box_corners(ego_poses[tt], np.full(len(tt), ego_length), np.full(len(tt), ego_width))
        b = box_corners(tracks.pose[ii, tt], tracks.size[ii, 0], tracks.size[ii, 1])
        out[ii, tt] = boxes_overlap(a, b)
    return out


def _segment_hits_box(p0: F64, p1: F64, corners: F64) -> npt.NDArray[np.bool_]:
    """Whether segments ``p0-p1`` ``(K, 2)`` touch convex boxes ``(K, 4, 2)`` (separating-axis test)."""
    seg = np.stack([p0, p1], 1)  # (K, 2, 2)
    edges = np.concatenate([(p1 - p0)[:, None], corners[:, [1, 2]] - corners[:, [0, 1]]], 1)  # (K, 3, 2)
    axes = np.stack([-edges[..., 1], edges[..., 0]], -1)
    ps = np.einsum("kad,kcd->kac", axes, seg)
    pb = np.einsum("kad,kcd->kac", axes, corners)
    separated = (ps.max(-1) < pb.min(-1)) | (pb.max(-1) < ps.min(-1))
    return ~separated.any(-1)


def delta_v(ego_speed: F64, ego_heading: F64, obj_speed: F64, obj_heading: F64) -> F64:
    """Ego delta-V (m/s) of a collision with equal masses (nuPlan's collision 'energy')."""
    sq = ego_speed**2 + obj_speed**2 - 2.0 * ego_speed * obj_speed * np.cos(ego_heading - obj_heading)
    return 0.5 * np.sqrt(np.maximum(sq, 0.0))


def classify(ego: EgoStates, tracks: Tracks, track: I64, step: I64, params: MetricParams = DEFAULT_PARAMS,
             vehicle: VehicleParameters = PACIFICA) -> npt.NDArray[np.int8]:
    """:class:`CollisionType` of collisions ``(K,)`` between the ego at ``step`` and track rows ``track``."""
    track, step = np.asarray(track, np.int64), np.asarray(step, np.int64)
    kind = np.full(len(track), CollisionType.ACTIVE_LATERAL_COLLISION, np.int8)
    if len(track) == 0:
        return kind
    ego_speed = ego.speed[step]
    obj_speed = track_speed(tracks)[track, step]
    static = np.isin(tracks.category[track], STATIC_CATEGORIES)
    behind = angle_to(ego.pose[step], tracks.pose[track, step, :2]) > np.deg2rad(BEHIND_DEG)
    c = ego_center(ego, vehicle)[step]
    ego_box = box_corners(c, np.full(len(step), vehicle.length), np.full(len(step), vehicle.width))
    obj_box = box_corners(tracks.pose[track, step], tracks.size[track, 0], tracks.size[track, 1])
    front = _segment_hits_box(ego_box[:, 0], ego_box[:, 3], obj_box)
    # first match wins: assign in reverse priority
    kind[front] = CollisionType.ACTIVE_FRONT_COLLISION
    kind[behind] = CollisionType.ACTIVE_REAR_COLLISION
    kind[static | (obj_speed <= params.stopped_speed)] = CollisionType.STOPPED_TRACK_COLLISION
    kind[ego_speed <= params.stopped_speed] = CollisionType.STOPPED_EGO_COLLISION
    return kind


def is_at_fault(kind: npt.ArrayLike, ego_in_single_lane: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """nuPlan's at-fault rule for collision types and the lane state at their samples."""
    k = np.asarray(kind)
    lateral_fault = (k == CollisionType.ACTIVE_LATERAL_COLLISION) & ~np.asarray(ego_in_single_lane, bool)
    return (k == CollisionType.ACTIVE_FRONT_COLLISION) | (k == CollisionType.STOPPED_TRACK_COLLISION) | lateral_fault


def find_collisions(ego: EgoStates, tracks: Tracks, ego_in_single_lane: npt.ArrayLike,
                    params: MetricParams = DEFAULT_PARAMS, vehicle: VehicleParameters = PACIFICA) -> Collisions:
    """All first-contact collisions of a rollout. ``tracks`` ``(N, T)`` aligned with the ``T`` ego samples;
    ``ego_in_single_lane`` ``(T,)`` from :func:`sim.metrics.route.in_single_lane`."""
    hit = overlap_pairs(ego_center(ego, vehicle), vehicle.length, vehicle.width, tracks)
    has = hit.any(1)
    track = np.flatnonzero(has).astype(np.int64)
    step = np.argmax(hit[has], 1).astype(np.int64)
    order = np.lexsort((track, step))
    track, step = track[order], step[order]
    kind = classify(ego, tracks, track, step, params, vehicle)
    fault = is_at_fault(kind, np.asarray(ego_in_single_lane, bool)[step])
    ego_speed, ego_heading = ego.speed[step], ego.pose[step, 2]
    energy = delta_v(ego_speed, ego_heading, track_speed(tracks)[track, step], tracks.pose[track, step, 2])
    return Collisions(track, step, kind, fault, tracks.category[track].astype(np.int8), energy)


def collision_groups(category: npt.ArrayLike) -> tuple[npt.NDArray[np.bool_], ...]:
    """Masks (VRU, vehicle, object) of categories."""
    c = np.asarray(category)
    return np.isin(c, VRU_CATEGORIES), c == Category.VEHICLE, np.isin(c, STATIC_CATEGORIES)


def collision_metric(collisions: Collisions, params: MetricParams = DEFAULT_PARAMS) -> dict[str, float]:
    """Score and statistics of ``no_ego_at_fault_collisions``.

    Keys: the score; ``.count`` (at-fault), ``.vru`` / ``.vehicle`` / ``.object`` counts, per group with
    collisions ``.<group>_energy_max/min/mean``, and ``.all_collisions`` (at fault or not).
    """
    name = "no_ego_at_fault_collisions"
    fault = collisions.at_fault
    out: dict[str, float] = {f"{name}.all_collisions": float(len(collisions)),
                             f"{name}.count": float(fault.sum())}
    factors = []
    for group, mask, threshold in zip(("vru", "vehicle", "object"), collision_groups(collisions.category),
                                      (params.max_violation_vru, params.max_violation_vehicle,
                                       params.max_violation_object), strict=True):
        sel = mask & fault
        count = int(sel.sum())
        out[f"{name}.{group}"] = float(count)
        if count:
            e = collisions.energy[sel]
            out[f"{name}.{group}_energy_max"] = float(e.max())
            out[f"{name}.{group}_energy_min"] = float(e.min())
            out[f"{name}.{group}_energy_mean"] = float(e.mean())
        factors.append(max(0.0, 1.0 - count / (threshold + 1)))
    out[name] = 1.0 if not fault.any() else float(np.prod(factors))
    return out
