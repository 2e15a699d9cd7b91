"""Cut-in anticipation: agents beside ego's lane that are moving into it are forecast to finish the move.

A constant-velocity forecast (PDM-Closed's) carries a car that has just started to change lanes diagonally
across ego's lane at the small lateral speed it has so far, so the IDM proposals see it as a leader only when it
is already in front of ego, often braking, with no room left. A driver watching the same car opens a gap as
soon as it starts to move over. This forecast does that: such an agent keeps its progress along ego's path
(its own forecast projected onto the path) and is put on ego's lane centre at once, so the proposals follow it
from now. It only feeds the IDM proposals; the scorer keeps the constant-velocity world, so nothing is scored
against a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from experts.proposals import Forecast
from experts.route import Path

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CutInParams:
    """When an agent counts as cutting in (SI units)."""

    min_lateral_speed: float = 0.25  # m/s towards ego's lane centre, measured now
    min_offset: float = 1.5  # m, |lateral offset| of its centre: closer is already in ego's lane
    max_offset: float = 5.5  # m: farther is beyond the next lane
    max_heading_error: float = np.deg2rad(35.0)  # rad, w.r.t. the path: not crossing traffic
    behind: float = 2.0  # m its centre may be behind ego's rear axle
    ahead: float = 50.0  # m its centre may be ahead of ego's rear axle
    min_speed: float = 1.0  # m/s


def cutting_in(fc: Forecast, path: Path, s_ego: float, params: CutInParams = CutInParams()
               ) -> tuple[npt.NDArray[np.bool_], F64, F64]:
    """``(N,)`` which agents of ``fc`` are moving into ``path``'s lane, with their lateral offset ``(N,)`` (m,
    left > 0) and lateral speed ``(N,)`` (m/s, left > 0) w.r.t. the path now. ``s_ego``: ego's arc length."""
    n = len(fc.speed)
    if n == 0:
        return np.zeros(0, bool), np.zeros(0), np.zeros(0)
    s0, lat0, _ = path.project(fc.center[:, 0, :2])
    h = np.interp(s0, path.s, path.heading)
    v_lat = -fc.velocity[:, 0] * np.sin(h) + fc.velocity[:, 1] * np.cos(h)
    rel = np.angle(np.exp(1j * (fc.center[:, 0, 2] - h)))
    p = params
    flagged = (fc.is_agent & (fc.speed > p.min_speed)
               & (np.abs(lat0) > p.min_offset) & (np.abs(lat0) < p.max_offset)
               & (lat0 * v_lat < 0.0) & (np.abs(v_lat) > p.min_lateral_speed)
               & (np.abs(rel) < p.max_heading_error)
               & (s0 - s_ego > -p.behind) & (s0 - s_ego < p.ahead))
    return flagged, lat0, v_lat


def cut_in_forecast(fc: Forecast, path: Path, s_ego: float, params: CutInParams = CutInParams()) -> Forecast:
    """``fc`` with the agents that are cutting into ``path``'s lane (:func:`cutting_in`) moved onto it: their
    centres ``(J, 3)`` keep the arc length of their own forecast along the path, on the centre line, heading
    along it."""
    flagged, _, _ = cutting_in(fc, path, s_ego, params)
    rows = np.flatnonzero(flagged)
    if len(rows) == 0:
        return fc
    s_j, _, _ = path.project(fc.center[rows, :, :2])  # (R, J)
    center = fc.center.copy()
    center[rows] = path.poses_at(s_j)
    return replace(fc, center=center)
