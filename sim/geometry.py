"""SE2 poses and oriented boxes, vectorized over any leading shape.

A pose is an array ``(..., 3)`` of ``x, y, heading`` (metres, radians). A box is a centre pose plus
``length`` (along the heading) and ``width``. Corner order is nuPlan's: front-left, rear-left, rear-right,
front-right.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def wrap_angle(angle: npt.ArrayLike) -> FloatArray:
    """Wrap angles to ``[-pi, pi)`` (nuPlan's ``principal_value``)."""
    a = np.asarray(angle, dtype=np.float64)
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def rotation_matrices(heading: npt.ArrayLike) -> FloatArray:
    """``(..., 2, 2)`` rotation matrices for headings ``(...)``."""
    h = np.asarray(heading, dtype=np.float64)
    c, s = np.cos(h), np.sin(h)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def to_local(poses: npt.ArrayLike, origin: npt.ArrayLike) -> FloatArray:
    """Express global poses ``(..., 3)`` in the frame of ``origin`` ``(3,)`` (or broadcastable ``(..., 3)``)."""
    p = np.asarray(poses, dtype=np.float64)
    o = np.asarray(origin, dtype=np.float64)
    dx, dy = p[..., 0] - o[..., 0], p[..., 1] - o[..., 1]
    c, s = np.cos(o[..., 2]), np.sin(o[..., 2])
    return np.stack([c * dx + s * dy, -s * dx + c * dy, wrap_angle(p[..., 2] - o[..., 2])], -1)


def to_global(poses: npt.ArrayLike, origin: npt.ArrayLike) -> FloatArray:
    """Inverse of :func:`to_local`: poses ``(..., 3)`` given in the frame of ``origin`` to the global frame."""
    p = np.asarray(poses, dtype=np.float64)
    o = np.asarray(origin, dtype=np.float64)
    c, s = np.cos(o[..., 2]), np.sin(o[..., 2])
    x = o[..., 0] + c * p[..., 0] - s * p[..., 1]
    y = o[..., 1] + s * p[..., 0] + c * p[..., 1]
    return np.stack([x, y, wrap_angle(p[..., 2] + o[..., 2])], -1)


def points_to_local(points: npt.ArrayLike, origin: npt.ArrayLike) -> FloatArray:
    """Points ``(..., 2)`` into the frame of ``origin`` ``(3,)``."""
    p = np.asarray(points, dtype=np.float64)
    o = np.asarray(origin, dtype=np.float64)
    dx, dy = p[..., 0] - o[0], p[..., 1] - o[1]
    c, s = np.cos(o[2]), np.sin(o[2])
    return np.stack([c * dx + s * dy, -s * dx + c * dy], -1)


def translate_longitudinally(poses: npt.ArrayLike, distance: npt.ArrayLike) -> FloatArray:
    """Move poses ``(..., 3)`` by ``distance`` (m, broadcastable) along their heading."""
    p = np.asarray(poses, dtype=np.float64)
    d = np.asarray(distance, dtype=np.float64)
    return np.stack([p[..., 0] + d * np.cos(p[..., 2]), p[..., 1] + d * np.sin(p[..., 2]), p[..., 2]], -1)


def box_corners(center: npt.ArrayLike, length: npt.ArrayLike, width: npt.ArrayLike) -> FloatArray:
    """Corners ``(..., 4, 2)`` (FL, RL, RR, FR) of boxes with centre poses ``(..., 3)``."""
    c = np.asarray(center, dtype=np.float64)
    half_l = np.asarray(length, dtype=np.float64)[..., None] / 2.0
    half_w = np.asarray(width, dtype=np.float64)[..., None] / 2.0
    sign_l = np.array([1.0, -1.0, -1.0, 1.0])
    sign_w = np.array([1.0, 1.0, -1.0, -1.0])
    lx = sign_l * half_l  # (..., 4)
    ly = sign_w * half_w
    cos, sin = np.cos(c[..., 2])[..., None], np.sin(c[..., 2])[..., None]
    x = c[..., 0][..., None] + cos * lx - sin * ly
    y = c[..., 1][..., None] + sin * lx + cos * ly
    return np.stack([x, y], -1)


def boxes_overlap(corners_a: npt.ArrayLike, corners_b: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether convex quadrilaterals overlap (separating-axis test), broadcast over leading dims.

    ``corners_a``, ``corners_b``: ``(..., 4, 2)`` in FL, RL, RR, FR order. Touching counts as overlap,
    like shapely's ``intersects``.
    """
    a = np.asarray(corners_a, dtype=np.float64)
    b = np.asarray(corners_b, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    edges = np.concatenate([a[..., [1, 2], :] - a[..., [0, 1], :], b[..., [1, 2], :] - b[..., [0, 1], :]], -2)
    axes = np.stack([-edges[..., 1], edges[..., 0]], -1)  # (..., 4, 2) normals
    proj_a = np.einsum("...kd,...cd->...kc", axes, a)
    proj_b = np.einsum("...kd,...cd->...kc", axes, b)
    separated = (proj_a.max(-1) < proj_b.min(-1)) | (proj_b.max(-1) < proj_a.min(-1))
    return ~separated.any(-1)


def rear_axle_to_center(rear_axle: npt.ArrayLike, rear_axle_to_center_dist: float) -> FloatArray:
    """Centre poses of the ego box from rear-axle poses ``(..., 3)``."""
    return translate_longitudinally(rear_axle, rear_axle_to_center_dist)


def polyline_arc_length(points: npt.ArrayLike) -> FloatArray:
    """Cumulative arc length ``(P,)`` of a polyline ``(P, 2+)``, starting at 0."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    if len(p) == 0:
        return np.zeros(0)
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p, axis=0).T))])


def polyline_headings(points: npt.ArrayLike) -> FloatArray:
    """Heading of each vertex of ``(P, 2)`` toward the next; the last repeats the previous (nuPlan's rule)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    if len(p) < 2:
        return np.zeros(len(p))
    d = np.diff(p, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([h, h[-1:]])


def interpolate_poses(times: npt.ArrayLike, poses: npt.ArrayLike, query: npt.ArrayLike) -> FloatArray:
    """Linear interpolation of poses ``(T, 3)`` at ``query`` times; headings interpolated unwrapped.

    ``times`` must be increasing. Queries outside ``[times[0], times[-1]]`` are clamped.
    """
    t = np.asarray(times, dtype=np.float64)
    p = np.asarray(poses, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    heading = np.unwrap(p[:, 2])
    out = np.stack([np.interp(q, t, p[:, 0]), np.interp(q, t, p[:, 1]), np.interp(q, t, heading)], -1)
    out[..., 2] = wrap_angle(out[..., 2])
    return out
