"""A simulated roof LiDAR: 2-D ray casting against object boxes and static structures, layers in elevation.

Model (2.5-D): each azimuth ray stops at the nearest edge it crosses (object boxes, static polygons); the beam
layers of that azimuth (elevation angles ``elevation_deg``) return points where they meet that vertical face,
``z = sensor_height + d·tan(elevation)``, kept when ``0 <= z <= object height``. So near objects get many
layers, far ones few, and anything behind the nearest face in an azimuth is not seen (occlusion). Beams that
pass over the nearest object are lost (no second return). Optionally, beams pointing down that reach the
ground before any object return ground points (z = 0).

Vectorized: all rays × all edges in one array (edges farther than ``max_range`` dropped first).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely

from sim.geometry import box_corners
from sim.scenario import Tracks

F64 = npt.NDArray[np.float64]

SENSOR_HEIGHT_M = 2.0  # roof of the Pacifica (1.777 m) plus the sensor mount
STATIC_HEIGHT_M = 3.0  # height given to static polygons (walls, buildings)


def _edges_of_polygons(static: Sequence | None) -> F64:
    """Edges ``(E, 2, 2)`` of static structures: shapely (multi)polygons or ``(k, 2)`` vertex rings."""
    if static is None or not isinstance(static, (list, tuple, np.ndarray)):
        return np.zeros((0, 2, 2))  # e.g. a MapAPI: nuPlan maps hold no walls or buildings
    edges = []
    for item in static:
        if isinstance(item, shapely.Geometry):
            rings = shapely.get_rings(item) if item.geom_type in ("Polygon", "MultiPolygon") else [item]
            for ring in rings:
                xy = np.asarray(shapely.get_coordinates(ring))
                if len(xy) >= 2:
                    edges.append(np.stack([xy[:-1], xy[1:]], 1))
        else:
            xy = np.asarray(item, dtype=np.float64)[:, :2]
            if len(xy) >= 2:
                closed = np.concatenate([xy, xy[:1]])
                edges.append(np.stack([closed[:-1], closed[1:]], 1))
    return np.concatenate(edges) if edges else np.zeros((0, 2, 2))


def simulate_lidar(
    sensor_pose: npt.ArrayLike,
    tracks: Tracks,
    static: Sequence | object | None = None,
    *,
    sensor_height: float = SENSOR_HEIGHT_M,
    num_azimuth: int = 720,
    num_layers: int = 32,
    max_range: float = 80.0,
    min_range: float = 0.5,
    elevation_deg: tuple[float, float] = (-25.0, 5.0),
    static_height: float = STATIC_HEIGHT_M,
    ground: bool = False,
) -> F64:
    """Point cloud ``(P, 3)`` x, y (global, m) and z (m above ground) seen from ``sensor_pose`` ``(3,)``.

    ``tracks``: the objects now, ``(N, 1)`` centred boxes with heights (``size[:, 2]``); invalid or NaN rows
    are ignored. ``static``: extra occluders as shapely polygons or ``(k, 2)`` rings (any other object, such
    as a ``MapAPI``, adds none: nuPlan maps have no walls). Azimuths start at the sensor heading; layers are
    spread uniformly over ``elevation_deg`` (degrees, negative = down).
    """
    pose = np.asarray(sensor_pose, dtype=np.float64)
    origin = pose[:2]

    # Edges of all occluders with their heights.
    ok = tracks.valid[:, 0] & np.isfinite(tracks.pose[:, 0]).all(axis=1) if len(tracks) else np.zeros(0, bool)
    corners = box_corners(tracks.pose[ok, 0], tracks.size[ok, 0], tracks.size[ok, 1])  # (N, 4, 2)
    box_edges = np.stack([corners, np.roll(corners, -1, axis=1)], 2).reshape(-1, 2, 2)
    box_heights = np.repeat(tracks.size[ok, 2], 4)
    static_edges = _edges_of_polygons(static)
    edges = np.concatenate([box_edges, static_edges])
    heights = np.concatenate([box_heights, np.full(len(static_edges), static_height)])

    # Drop edges entirely out of range (distance from the sensor to the segment).
    if len(edges):
        p, q = edges[:, 0] - origin, edges[:, 1] - origin
        e = q - p
        t = np.clip(-(p * e).sum(-1) / np.maximum((e * e).sum(-1), 1e-12), 0.0, 1.0)
        near = np.hypot(*(p + t[:, None] * e).T) <= max_range
        edges, heights = edges[near], heights[near]

    azimuth = pose[2] + 2.0 * np.pi * np.arange(num_azimuth) / num_azimuth
    d = np.stack([np.cos(azimuth), np.sin(azimuth)], -1)  # (A, 2)
    hit = np.full(num_azimuth, np.inf)
    hit_height = np.zeros(num_azimuth)
    if len(edges):
        p = edges[:, 0] - origin  # (E, 2)
        e = edges[:, 1] - edges[:, 0]
        denom = d[:, None, 0] * e[None, :, 1] - d[:, None, 1] * e[None, :, 0]  # d × e  (A, E)
        p_cross_e = p[:, 0] * e[:, 1] - p[:, 1] * e[:, 0]  # (E,)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = p_cross_e[None, :] / denom  # distance along the ray
            u = (p[None, :, 0] * d[:, None, 1] - p[None, :, 1] * d[:, None, 0]) / denom  # position on the edge
        valid = (np.abs(denom) > 1e-12) & (u >= 0.0) & (u <= 1.0) & (t >= min_range) & (t <= max_range)
        t = np.where(valid, t, np.inf)
        nearest = np.argmin(t, axis=1)
        rows = np.arange(num_azimuth)
        hit = t[rows, nearest]
        hit_height = heights[nearest]

    elevation = np.deg2rad(np.linspace(elevation_deg[0], elevation_deg[1], num_layers))
    tan_el = np.tan(elevation)
    points = []
    seen = np.isfinite(hit)
    if seen.any():
        z = sensor_height + hit[seen, None] * tan_el[None, :]  # (A', L)
        keep = (z >= 0.0) & (z <= hit_height[seen, None])
        a_idx, _ = np.nonzero(keep)
        r = hit[seen][a_idx]
        dirs = d[seen][a_idx]
        points.append(np.column_stack([origin + r[:, None] * dirs, z[keep]]))
    if ground:
        down = tan_el < 0.0
        ground_range = sensor_height / -tan_el[down]  # (Ld,)
        reach = (ground_range[None, :] <= max_range) & (ground_range[None, :] < hit[:, None])
        a_idx, l_idx = np.nonzero(reach)
        r = ground_range[l_idx]
        points.append(np.column_stack([origin + r[:, None] * d[a_idx], np.zeros(len(r))]))
    return np.concatenate(points) if points else np.zeros((0, 3))
