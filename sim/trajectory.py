"""Planner output: rear-axle poses at known times."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.geometry import interpolate_poses


@dataclass(frozen=True)
class Trajectory:
    """``time_s`` ``(T,)`` absolute seconds (increasing), ``pose`` ``(T, 3)`` rear-axle x, y, heading (global).

    Planners return 8 s at 0.1 s (81 poses including the current one) by default; any sampling with
    ``T >= 2`` that covers the current time is accepted and interpolated like nuPlan's
    ``InterpolatedTrajectory``.
    """

    time_s: npt.NDArray[np.float64]
    pose: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.time_s)

    @property
    def start_s(self) -> float:
        return float(self.time_s[0])

    @property
    def end_s(self) -> float:
        return float(self.time_s[-1])

    def at(self, query_s: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Poses ``(..., 3)`` at query times, linearly interpolated (heading unwrapped); clamped at the ends."""
        return interpolate_poses(self.time_s, self.pose, query_s)
