"""Polyline paths with arc length: what an IDM agent drives along (concatenated lane / connector baselines)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Path:
    """``xyh`` ``(P, 3)`` vertices (x, y, heading with headings unwrapped), ``arc`` ``(P,)`` cumulative
    length from 0; ``suffix_min`` / ``suffix_max`` ``(P, 2)``: x, y bounds of the vertices from each index on
    (a quick bounding box of the path still ahead)."""

    xyh: F64
    arc: F64
    suffix_min: F64
    suffix_max: F64

    @property
    def length(self) -> float:
        return float(self.arc[-1])

    @cached_property
    def segments(self) -> tuple[F64, F64, F64, F64]:
        """``(start (S, 2), direction (S, 2), squared length (S,), length (S,))`` of the S = P-1 edges (cached:
        the agents project onto the same path every step)."""
        base = self.xyh[:, :2]
        ab = np.diff(base, axis=0)
        seg_len2 = (ab**2).sum(-1)
        return base[:-1], ab, seg_len2, np.sqrt(seg_len2)


def make_path(xyh: npt.ArrayLike) -> Path:
    """A path from vertices ``(P, 3)`` (``P >= 1``); repeated vertices are dropped, headings unwrapped."""
    p = np.array(xyh, dtype=np.float64).reshape(-1, 3)
    step = np.hypot(*np.diff(p[:, :2], axis=0).T)
    keep = np.concatenate([[True], step > 1e-6])
    p = p[keep]
    p[:, 2] = np.unwrap(p[:, 2])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(p[:, :2], axis=0).T))])
    suffix_min = np.minimum.accumulate(p[::-1, :2], axis=0)[::-1].copy()
    suffix_max = np.maximum.accumulate(p[::-1, :2], axis=0)[::-1].copy()
    return Path(p, arc, suffix_min, suffix_max)


def simplify_polyline(xyh: npt.ArrayLike, tolerance: float) -> F64:
    """The vertices ``(Q, 3)`` of ``xyh`` ``(P, 3)`` that Douglas-Peucker keeps at ``tolerance`` (m); the
    kept vertices are unchanged (headings included), the first and last always kept."""
    p = np.asarray(xyh, dtype=np.float64)
    if len(p) <= 2:
        return p.copy()
    keep = np.zeros(len(p), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(p) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b = p[i, :2], p[j, :2]
        ab = b - a
        norm = np.hypot(*ab)
        rel = p[i + 1 : j, :2] - a
        cross = np.abs(ab[0] * rel[:, 1] - ab[1] * rel[:, 0])
        dist = np.hypot(rel[:, 0], rel[:, 1]) if norm < 1e-9 else cross / norm
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            m = i + 1 + k
            keep[m] = True
            stack.extend([(i, m), (m, j)])
    return p[keep]


def poses_at(path: Path, s: npt.ArrayLike) -> F64:
    """Poses ``(..., 3)`` at arc lengths ``s`` (clamped to the path), heading interpolated between vertices
    and wrapped to ``[-pi, pi)``."""
    q = np.clip(np.asarray(s, dtype=np.float64), 0.0, path.arc[-1])
    if len(path.arc) == 1:
        out = np.broadcast_to(path.xyh[0], q.shape + (3,)).copy()
    else:
        out = np.empty(q.shape + (3,))
        xyh = path.xyh
        out[..., 0] = np.interp(q, path.arc, xyh[:, 0])
        out[..., 1] = np.interp(q, path.arc, xyh[:, 1])
        out[..., 2] = np.interp(q, path.arc, xyh[:, 2])
    out[..., 2] = (out[..., 2] + np.pi) % (2.0 * np.pi) - np.pi
    return out


def sub_path(path: Path, start: float, stop: float | None = None) -> Path:
    """The part of ``path`` between arc lengths ``start`` and ``stop`` (default the end), re-based at 0."""
    end = path.length if stop is None else min(stop, path.length)
    start = float(np.clip(start, 0.0, end))
    inner = (path.arc > start) & (path.arc < end)
    pts = np.concatenate([poses_at(path, [start]), path.xyh[inner], poses_at(path, [end])])
    return make_path(pts)


def concatenate(first: Path, second_xyh: npt.ArrayLike) -> Path:
    """``first`` followed by the vertices ``second_xyh`` ``(Q, 3)`` (a duplicated joint vertex is dropped)."""
    return make_path(np.concatenate([first.xyh, np.asarray(second_xyh, dtype=np.float64)]))


def band_polygon(path: Path, lo: float, hi: float, half_width: float, samples: int,
                 center: float | None = None) -> F64 | tuple[F64, F64]:
    """Vertices ``(2·samples, 2)`` of the band ``half_width`` either side of the path between arc lengths
    ``lo`` and ``hi``: the left side forward then the right side backward (a closed ring without repeat).
    With ``center`` (an arc length) also returns the pose there, from the same interpolation:
    ``(pose (3,), band)``."""
    # np.linspace(lo, hi, samples) (+ center): the same arithmetic (i·step + lo, last = hi) without its overhead
    if samples < 2:
        s = np.append(np.linspace(lo, hi, samples), [] if center is None else [center])
    else:
        s = _ramp(samples + (center is not None)) * ((hi - lo) / (samples - 1)) + lo
        s[samples - 1] = hi
    if center is not None:
        s[samples] = center
    p = poses_at(path, s)
    nx, ny = -np.sin(p[:samples, 2]) * half_width, np.cos(p[:samples, 2]) * half_width
    band = np.empty((2 * samples, 2))
    band[:samples, 0] = p[:samples, 0] + nx
    band[:samples, 1] = p[:samples, 1] + ny
    band[samples:, 0] = (p[:samples, 0] - nx)[::-1]
    band[samples:, 1] = (p[:samples, 1] - ny)[::-1]
    return band if center is None else (p[samples], band)


@lru_cache(maxsize=8)
def _ramp(n: int) -> F64:
    out = np.arange(n, dtype=np.float64)
    out.setflags(write=False)
    return out


def project(path: Path, points: F64, first: int = 0) -> tuple[F64, F64]:
    """Arc length and signed lateral offset (left > 0) of points ``(N, 2)`` on the path from vertex ``first``.

    Points before that vertex or after the end project on the extensions of the first / last segment (arc
    length below ``arc[first]`` or above the length), so they never fall inside a corridor ahead.
    """
    if len(path.xyh) - first == 1:
        d = points - path.xyh[first, :2]
        return np.full(len(points), -np.inf), np.hypot(d[:, 0], d[:, 1])
    a_all, ab_all, len2_all, seg_len_all = path.segments
    a, ab, seg_len2 = a_all[first:], ab_all[first:], len2_all[first:]
    # x and y as separate (N, S) arrays (same arithmetic as (N, S, 2) arrays summed over the last axis)
    ax, ay, abx, aby = a[:, 0], a[:, 1], ab[:, 0], ab[:, 1]
    px, py = points[:, 0:1], points[:, 1:2]
    relx, rely = px - ax, py - ay
    t = (relx * abx + rely * aby) / seg_len2
    t_in = np.clip(t, 0.0, 1.0)
    t_in[:, 0] = np.minimum(t[:, 0], 1.0)
    t_in[:, -1] = np.maximum(t[:, -1], 0.0) if len(ab) > 1 else t[:, -1]
    dx = px - (ax + t_in * abx)
    dy = py - (ay + t_in * aby)
    d2 = dx * dx + dy * dy
    k = np.argmin(d2, axis=1)
    rows = np.arange(len(points))
    arc = path.arc[first + k] + t_in[rows, k] * seg_len_all[first + k]
    cross = abx[k] * rely[rows, k] - aby[k] * relx[rows, k]
    return arc, np.sign(cross) * np.sqrt(d2[rows, k])


def first_in_corridor(path: Path, start: float, half_width: float, polygons: F64) -> tuple[int, float]:
    """The polygon (index into ``polygons`` ``(O, V, 2)``) entering the corridor ahead first, and where
    (arc length); ``(-1, inf)`` when none does. Same answer as ``argmin`` of :func:`corridor_entry`, cheaper:
    a bounding-circle test on the polygons' centres discards most before their vertices are projected."""
    if len(polygons) == 0:
        return -1, np.inf
    first = max(int(np.searchsorted(path.arc, start, side="right")) - 1, 0)
    lo, hi = polygons.min(axis=1), polygons.max(axis=1)
    centre = (lo + hi) / 2.0
    radius = np.hypot(*(hi - lo).T) / 2.0
    arc_c, lat_c = project(path, centre, first)
    keep = (np.abs(lat_c) <= half_width + radius) & (arc_c + radius >= start) & (arc_c - radius <= path.length)
    if not keep.any():
        return -1, np.inf
    # A polygon whose centre is in the corridor enters it at or before its centre: an upper bound that
    # rules out every polygon starting beyond it.
    sure = keep & (np.abs(lat_c) <= half_width)
    if sure.any():
        bound = max(float(arc_c[sure].min()), start)
        keep &= arc_c - radius <= bound
    idx = np.flatnonzero(keep)
    entry = corridor_entry(path, start, half_width, polygons[idx], first)
    j = int(np.argmin(entry))
    return (int(idx[j]), float(entry[j])) if np.isfinite(entry[j]) else (-1, np.inf)


def corridor_entry(path: Path, start: float, half_width: float, polygons: F64, first: int = 0) -> F64:
    """Smallest arc length ``>= start`` at which each polygon enters the corridor of ``half_width`` around
    the path from ``start`` to its end (``inf`` where it does not).

    ``polygons`` ``(O, V, 2)`` closed rings (vertex V-1 connects back to 0; repeated vertices allowed). Each
    edge is mapped to (arc, lateral) path coordinates through its end vertices and clipped to
    ``|lateral| <= half_width``, so an edge crossing the corridor counts even when both its vertices are outside.
    ``first``: project on the path from that vertex on (any vertex at or before ``start``'s segment).
    """
    o, v, _ = polygons.shape
    if o == 0:
        return np.zeros(0)
    arc, lat = project(path, polygons.reshape(-1, 2), first)
    a1, l1 = arc.reshape(o, v), lat.reshape(o, v)
    nxt = np.arange(1, v + 1) % v
    a2, l2 = a1[:, nxt], l1[:, nxt]
    dl = l2 - l1
    flat = np.abs(dl) < 1e-12
    safe = np.where(flat, 1.0, dl)
    ta = (-half_width - l1) / safe
    tb = (half_width - l1) / safe
    inside_flat = np.abs(l1) <= half_width
    t_lo = np.where(flat, np.where(inside_flat, 0.0, 1.0), np.maximum(np.minimum(ta, tb), 0.0))
    t_hi = np.where(flat, np.where(inside_flat, 1.0, 0.0), np.minimum(np.maximum(ta, tb), 1.0))
    hit = t_lo <= t_hi
    da = a2 - a1
    e_lo = a1 + t_lo * da
    e_hi = a1 + t_hi * da
    amin = np.minimum(e_lo, e_hi)
    amax = np.maximum(e_lo, e_hi)
    relevant = hit & (amax >= start) & (amin <= path.length)
    entry = np.where(relevant, np.maximum(amin, start), np.inf)
    return entry.min(axis=1)
