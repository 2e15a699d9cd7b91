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
from sim.geometry import to_global
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

__all__ = ["build_scoring_world", "score", "simulate", "ScoringWorld", "PDMScores"]


def simulate(trajectories: npt.ArrayLike, ego: EgoStates, world: ScoringWorld, *, frame: str = "global",
             vehicle: VehicleParameters = PACIFICA) -> Rollout:
    """Track ``trajectories`` ``(K, T, 3)`` (rear-axle poses at ``world.dt``, ``T = world.num_steps - 1``
    poses after now) from the last state of ``ego``; returns the simulated :class:`Rollout` ``(K, T+1)``.

    ``frame='ego'``: the poses are in the current rear-axle frame (a trajectory vocabulary) and are moved to
    the global frame first.
    """
    poses = np.asarray(trajectories, np.float64)
    if poses.ndim != 3 or poses.shape[2] != 3:
        raise DataError(None, f"trajectories to score have shape {poses.shape}", "(K, T, 3) rear-axle poses")
    if poses.shape[1] != world.num_steps - 1:
        raise DataError(None, f"trajectories to score have {poses.shape[1]} poses but the scoring world expects "
                        f"{world.num_steps - 1}", f"{world.num_steps - 1} poses at {world.dt} s after now")
    if frame == "ego":
        poses = to_global(poses, ego.pose[-1])
    elif frame != "global":
        raise DataError(None, f"trajectory frame {frame!r}", "'global' or 'ego'")
    return simulate_trajectories(ego, poses, dt=world.dt, vehicle=vehicle)


def score(
    trajectories: npt.ArrayLike,
    ego: EgoStates,
    world: ScoringWorld,
    *,
    frame: str = "global",
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
    rollout = simulate(trajectories, ego, world, frame=frame, vehicle=vehicle)
    tracked = process_time()
    result = score_trajectories(rollout, world, vehicle, params=params, reference_progress=reference_progress,
                                timings=timings)
    if timings is not None:
        timings["tracking"] = tracked - start
        timings["total"] = process_time() - start
    return result
