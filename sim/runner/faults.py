"""What makes a planner's output unusable: the checks the runner applies to every returned trajectory.

A fault ends the scenario (status ``failed``, the reason recorded); the run goes on with the next scenario.
"""

from __future__ import annotations

import numpy as np

from sim.trajectory import Trajectory

#: Tolerance on "covers the current time" (s): timestamps are microsecond integers turned into float seconds.
TIME_TOLERANCE_S = 1e-6


def trajectory_fault(trajectory: object, now_s: float) -> str | None:
    """Why ``trajectory`` cannot be tracked from ``now_s`` (one line), or None if it can.

    Accepted: a :class:`Trajectory` with ``>= 2`` finite poses, strictly increasing times, starting at or before
    ``now_s`` and ending after it (the controller reads the plan at the current time and steps forward).
    """
    if not isinstance(trajectory, Trajectory):
        return f"planner returned {type(trajectory).__name__}, expected a sim.trajectory.Trajectory"
    t = np.asarray(trajectory.time_s, dtype=np.float64)
    p = np.asarray(trajectory.pose, dtype=np.float64)
    if t.ndim != 1 or p.shape != (len(t), 3):
        return f"trajectory has time_s shape {t.shape} and pose shape {p.shape}, expected (T,) and (T, 3)"
    if len(t) < 2:
        return f"trajectory has {len(t)} pose(s), expected at least 2"
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        bad = int(np.count_nonzero(~np.isfinite(p).all(-1) | ~np.isfinite(t)))
        return f"trajectory has {bad} non-finite (NaN/inf) pose(s)"
    if np.any(np.diff(t) <= 0.0):
        k = int(np.flatnonzero(np.diff(t) <= 0.0)[0])
        return f"trajectory times are not strictly increasing (t[{k}]={t[k]:.6f} s, t[{k + 1}]={t[k + 1]:.6f} s)"
    if t[0] > now_s + TIME_TOLERANCE_S:
        return f"trajectory starts at {t[0]:.6f} s, after the current time {now_s:.6f} s"
    if t[-1] <= now_s + TIME_TOLERANCE_S:
        return f"trajectory ends at {t[-1]:.6f} s, not after the current time {now_s:.6f} s"
    return None
