"""The trajectory scorer for the expert and the labeler: track K trajectories with LQR + bicycle, then score.

``score`` is NAVSIM's recipe: the candidate poses are re-simulated from the current ego state with the same
LQR tracker and kinematic bicycle the closed-loop simulator uses (:func:`sim.dynamics.controller.
simulate_trajectories`), and the simulated states are scored by :func:`sim.metrics.pdm_score.
score_trajectories` (the PDM rules). The world comes from :func:`sim.metrics.pdm_score.build_scoring_world`.
"""

from __future__ import annotations

from time import process_time

import numpy as np
import numpy.typing as npt

from sim.dynamics.controller import Rollout, simulate_trajectories
from sim.errors import DataError
from sim.geometry import to_global, wrap_angle
from sim.metrics.pdm_score import (
    DEFAULT_SCORING,
    PDMScores,
    ScoringParameters,
    ScoringWorld,
    build_scoring_world,
    score_trajectories,
)
from sim.scenario import EgoStates
from sim.vehicle import PACIFICA, VehicleParameters

__all__ = ["build_scoring_world", "score", "simulate", "resample", "ScoringWorld", "PDMScores"]

F64 = npt.NDArray[np.float64]


def resample(poses: npt.ArrayLike, current: npt.ArrayLike, interval_s: float, dt: float, num_steps: int) -> F64:
    """Poses ``(K, T', 3)`` at ``interval_s * (1..T')`` after now, linearly interpolated (heading unwrapped,
    starting from the ``current`` pose ``(3,)`` at time 0) at ``dt * (1..num_steps)``; clamped at the end.

    NAVSIM scores its 8 poses at 0.5 s this way on a 0.1 s grid.
    """
    p = np.asarray(poses, np.float64)
    k, t_in = p.shape[:2]
    full = np.concatenate([np.broadcast_to(np.asarray(current, np.float64), (k, 1, 3)), p], axis=1)
    heading = np.unwrap(full[..., 2], axis=1)
    query = np.minimum(dt * np.arange(1, num_steps + 1) / interval_s, t_in)  # in units of input samples
    i = np.minimum(np.floor(query).astype(np.int64), t_in - 1)
    frac = (query - i)[None, :]
    out = np.empty((k, num_steps, 3))
    for c, series in enumerate((full[..., 0], full[..., 1], heading)):
        out[..., c] = series[:, i] + frac * (series[:, i + 1] - series[:, i])
    out[..., 2] = wrap_angle(out[..., 2])
    return out


def simulate(trajectories: npt.ArrayLike, ego: EgoStates, world: ScoringWorld, *, frame: str = "global",
             interval_s: float | None = None, vehicle: VehicleParameters = PACIFICA) -> Rollout:
    """Track ``trajectories`` ``(K, T, 3)`` (rear-axle poses at ``world.dt``, ``T = world.num_steps - 1``
    poses after now) from the last state of ``ego``; returns the simulated :class:`Rollout` ``(K, T+1)``.

    ``frame='ego'``: the poses are in the current rear-axle frame (a trajectory vocabulary) and are moved to
    the global frame first. ``interval_s``: the poses are sampled at this interval instead (e.g. NAVSIM's
    8 poses at 0.5 s) and are interpolated onto the world's grid first (:func:`resample`).
    """
    poses = np.asarray(trajectories, np.float64)
    if poses.ndim != 3 or poses.shape[2] != 3 or poses.shape[1] == 0:
        raise DataError(None, f"trajectories to score have shape {poses.shape}", "(K, T, 3) rear-axle poses")
    if frame == "ego":
        poses = to_global(poses, ego.pose[-1])
    elif frame != "global":
        raise DataError(None, f"trajectory frame {frame!r}", "'global' or 'ego'")
    if interval_s is not None:
        poses = resample(poses, ego.pose[-1], interval_s, world.dt, world.num_steps - 1)
    if poses.shape[1] != world.num_steps - 1:
        raise DataError(None, f"trajectories to score have {poses.shape[1]} poses but the scoring world expects "
                        f"{world.num_steps - 1}", f"{world.num_steps - 1} poses at {world.dt} s after now")
    return simulate_trajectories(ego, poses, dt=world.dt, vehicle=vehicle)


def score(
    trajectories: npt.ArrayLike,
    ego: EgoStates,
    world: ScoringWorld,
    *,
    frame: str = "global",
    interval_s: float | None = None,
    vehicle: VehicleParameters = PACIFICA,
    params: ScoringParameters = DEFAULT_SCORING,
    reference_progress: float | None = None,
    timings: dict[str, float] | None = None,
) -> PDMScores:
    """PDM scores of K candidate trajectories ``(K, T, 3)`` (see :func:`simulate` for the input).

    ``timings``: if given, filled with CPU seconds per stage (``tracking`` plus the scorer's stages, see
    :func:`sim.metrics.pdm_score.score_trajectories`; ``total`` covers both).
    """
    start = process_time()
    rollout = simulate(trajectories, ego, world, frame=frame, interval_s=interval_s, vehicle=vehicle)
    tracked = process_time()
    result = score_trajectories(rollout, world, vehicle, params=params, reference_progress=reference_progress,
                                timings=timings)
    if timings is not None:
        timings["tracking"] = tracked - start
        timings["total"] = process_time() - start
    return result
