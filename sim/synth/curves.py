"""Smooth planar curves for roads, connectors and lane changes (metres, radians).

Everything a driver follows is built from quintic Hermite pieces with zero second derivative at both ends,
so curvature starts and ends at zero: the yaw rate of a vehicle entering a turn ramps up instead of jumping
(nuPlan's comfort metrics bound yaw acceleration at 1.93 rad/s²).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def quintic_hermite(p0: npt.ArrayLike, h0: float, p1: npt.ArrayLike, h1: float, scale: float = 1.0,
                    n: int = 400) -> F64:
    """``(n, 2)`` points of the quintic from ``p0`` (heading ``h0``) to ``p1`` (heading ``h1``).

    Tangent magnitudes are ``scale`` times the chord length; second derivatives are zero at both ends.
    """
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    chord = float(np.hypot(*(p1 - p0)))
    v0 = scale * chord * np.array([np.cos(h0), np.sin(h0)])
    v1 = scale * chord * np.array([np.cos(h1), np.sin(h1)])
    t = np.linspace(0.0, 1.0, n)[:, None]
    t3, t4, t5 = t**3, t**4, t**5
    h00 = 1 - 10 * t3 + 15 * t4 - 6 * t5
    h10 = t - 6 * t3 + 8 * t4 - 3 * t5
    h11 = -4 * t3 + 7 * t4 - 3 * t5
    h01 = 10 * t3 - 15 * t4 + 6 * t5
    return h00 * p0 + h10 * v0 + h11 * v1 + h01 * p1


def smoothstep5(u: npt.ArrayLike) -> F64:
    """Quintic 0 -> 1 ramp on ``[0, 1]`` with zero first and second derivatives at both ends (clamped outside)."""
    u = np.clip(np.asarray(u, float), 0.0, 1.0)
    return u**3 * (10 - 15 * u + 6 * u**2)


def arc_length(points: npt.ArrayLike) -> F64:
    p = np.asarray(points, float)
    return np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p[:, :2], axis=0).T))])


def resample(points: npt.ArrayLike, step: float = 0.5) -> F64:
    """Resample a polyline ``(P, 2)`` at (nearly) uniform arc-length spacing ``<= step``; keeps both ends."""
    p = np.asarray(points, float)[:, :2]
    s = arc_length(p)
    keep = np.concatenate([[True], np.diff(s) > 1e-9])
    p, s = p[keep], s[keep]
    n = max(2, int(np.ceil(s[-1] / step)) + 1)
    q = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(q, s, p[:, 0]), np.interp(q, s, p[:, 1])], -1)


def headings(points: npt.ArrayLike) -> F64:
    """Tangent heading ``(P,)`` of a polyline by central differences (one-sided at the ends)."""
    p = np.asarray(points, float)
    d = np.gradient(p[:, :2], axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def curvature(points: npt.ArrayLike) -> F64:
    """Signed curvature ``(P,)`` (1/m, left positive) of a polyline with roughly uniform spacing."""
    p = np.asarray(points, float)
    if len(p) < 3:
        return np.zeros(len(p))
    h = np.unwrap(headings(p))
    s = arc_length(p)
    return np.gradient(h, s)


def offset(points: npt.ArrayLike, d: npt.ArrayLike) -> F64:
    """Offset a polyline ``(P, 2)`` by ``d`` (m, scalar or ``(P,)``) to its left (negative: right)."""
    p = np.asarray(points, float)
    h = headings(p)
    d = np.broadcast_to(np.asarray(d, float), (len(p),))
    return p + d[:, None] * np.stack([-np.sin(h), np.cos(h)], -1)


def bump_road(p0: npt.ArrayLike, p1: npt.ArrayLike, amplitude: float, step: float = 0.5) -> F64:
    """Polyline from ``p0`` to ``p1`` that bows sideways by ``amplitude`` m at mid-length (left positive).

    The lateral profile ``64 u³ (1-u)³`` has zero slope and curvature at both ends, so the road meets the
    straight arms of the intersections it joins without a kink.
    """
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    length = float(np.hypot(*(p1 - p0)))
    u = np.linspace(0.0, 1.0, max(2, int(length / 0.25)))
    t = (p1 - p0) / length
    nrm = np.array([-t[1], t[0]])
    lat = amplitude * 64.0 * u**3 * (1 - u) ** 3
    pts = p0 + u[:, None] * (p1 - p0) + lat[:, None] * nrm
    return resample(pts, step)


def cut(points: npt.ArrayLike, s0: float, s1: float, step: float = 0.5) -> F64:
    """The part of a polyline between arc lengths ``s0`` and ``s1`` (clamped), resampled at ``step``."""
    p = np.asarray(points, float)
    s = arc_length(p)
    s0, s1 = max(0.0, s0), min(s[-1], s1)
    q = np.linspace(s0, s1, max(2, int(np.ceil((s1 - s0) / step)) + 1))
    return np.stack([np.interp(q, s, p[:, 0]), np.interp(q, s, p[:, 1])], -1)
