"""Open-loop metrics (nuPlan OLS) and the informational ego-vs-expert errors.

OLS compares the planned trajectory at 1 Hz frames with the logged expert, both as **centre** poses:
- frames: every ``step = 1/interval/frequency`` samples (every 10th at 0.1 s);
- expert list: the expert states of every ``step``-th scenario iteration, followed by the ``max(horizons)``
  expert states ``k * step`` iterations (k = 1..8) after the last frame — nuPlan's exact construction, including
  its repeated entry when the number of samples is a multiple of ``step``;
- at frame ``f`` the plan is sampled at the next ``max(horizons)`` stamps of that list; if it ends earlier, its
  last pose is compared with the expert interpolated at the plan's end time;
- per horizon ``h``: ADE = mean L2 over the first ``h`` points, FDE = L2 at point ``h``, AHE / FHE the same for
  the absolute wrapped heading error, and the max L2 for the miss rate.
Scores: ``max(0, 1 - mean / threshold)`` over all horizons and frames for ADE (8 m), FDE (8 m), AHE (0.8 rad),
FHE (0.8 rad); miss rate per horizon = share of frames whose max L2 exceeds 6 / 8 / 16 m, score 1 iff every rate
is ``<= 0.3``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.errors import DataError
from sim.geometry import interpolate_poses, rear_axle_to_center, wrap_angle
from sim.metrics.common import DEFAULT_PARAMS, F64, MetricParams, ego_center, series_stats, time_us
from sim.scenario import EgoStates
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA, VehicleParameters

OLS_METRICS = (
    "planner_expert_average_l2_error_within_bound",
    "planner_expert_average_heading_error_within_bound",
    "planner_expert_final_l2_error_within_bound",
    "planner_expert_final_heading_error_within_bound",
    "planner_miss_rate_within_bound",
)


def ego_expert_errors(ego: EgoStates, expert: EgoStates, heading_weight: float = 2.5,
                      vehicle: VehicleParameters = PACIFICA) -> dict[str, float]:
    """``ego_expert_l2_error`` and ``ego_expert_l2_error_with_yaw`` (discount 1): max / mean / p90 of the
    per-sample centre distance (plus ``heading_weight`` x absolute heading error) between the rollout and the
    expert at the same sample index."""
    n = len(ego)
    if len(expert) not in (n, n + 1):
        raise DataError(None, f"expert has {len(expert)} samples for an ego of {n}", f"{n} or {n + 1} samples")
    e, x = ego_center(ego, vehicle), ego_center(expert, vehicle)[:n]
    dist = np.hypot(e[:, 0] - x[:, 0], e[:, 1] - x[:, 1])
    with_yaw = dist + heading_weight * np.abs(wrap_angle(e[:, 2] - x[:, 2]))
    out: dict[str, float] = {}
    for name, series in (("ego_expert_l2_error", dist), ("ego_expert_l2_error_with_yaw", with_yaw)):
        stats = series_stats(series)
        for key in ("max", "mean", "p90"):
            out[f"{name}.{key}"] = stats[key]
    return out


def open_loop_errors(planned: Sequence[Trajectory], expert: EgoStates, num_iterations: int | None = None,
                     params: MetricParams = DEFAULT_PARAMS,
                     vehicle: VehicleParameters = PACIFICA) -> dict[str, F64]:
    """Per-horizon, per-frame error arrays ``(H, F)``: ``ade``, ``fde``, ``ahe``, ``fhe``, ``max_displacement``.

    ``planned[i]``: the plan computed at simulation sample ``i`` (rear-axle poses, absolute times).
    ``expert``: the logged ego from scenario iteration 0, ``num_iterations`` states (default: all) followed by any
    logged future (needed for the 8 s after the last frame; missing future states repeat the last one).
    """
    if len(planned) == 0:
        raise DataError(None, "no planned trajectories", "one per simulation sample")
    n_iter = len(expert) if num_iterations is None else int(num_iterations)
    stamps = time_us(expert)
    interval_us = float(np.mean(np.diff(stamps[:max(n_iter, 2)])))
    step = max(1, int(1e6 / interval_us / params.ols_frequency))
    horizons = [int(h * params.ols_frequency) for h in params.ols_horizons]
    h_max = max(horizons)
    frames = np.arange(0, len(planned), step)
    future_idx = np.minimum(frames[-1] + step * np.arange(1, int(max(params.ols_horizons)) + 1), len(expert) - 1)
    idx = np.concatenate([np.arange(0, n_iter, step), future_idx])
    exp_t = stamps[idx]
    exp_center = rear_axle_to_center(expert.pose[idx], vehicle.rear_axle_to_center)

    shape = (len(horizons), len(frames))
    out = {k: np.zeros(shape) for k in ("ade", "fde", "ahe", "fhe", "max_displacement")}
    for f, sample in enumerate(frames):  # <= 15 frames per scenario; each frame is vectorized over points
        traj = planned[int(sample)]
        traj_us = np.round(np.asarray(traj.time_s) * 1e6).astype(np.int64)
        window = exp_t[f:f + h_max + 1]
        keep = window[window <= traj_us[-1]]
        plan = interpolate_poses(traj_us.astype(np.float64), traj.pose, keep.astype(np.float64))
        if len(keep) < h_max + 1:
            plan = np.concatenate([plan, traj.pose[-1:]])
            end = interpolate_poses(exp_t.astype(np.float64), expert.pose[idx], [float(traj_us[-1])])
            ref = np.concatenate([exp_center[f + 1:f + h_max],
                                  rear_axle_to_center(end, vehicle.rear_axle_to_center)])
        else:
            ref = exp_center[f + 1:f + h_max + 1]
        plan_c = rear_axle_to_center(plan, vehicle.rear_axle_to_center)[1:]
        m = min(len(plan_c), len(ref))
        dist = np.hypot(plan_c[:m, 0] - ref[:m, 0], plan_c[:m, 1] - ref[:m, 1])
        head = np.abs(wrap_angle(plan_c[:m, 2] - ref[:m, 2]))
        if m < h_max:  # plans shorter than the horizon (nuPlan asserts here): hold the last error
            dist = np.concatenate([dist, np.full(h_max - m, dist[-1])])
            head = np.concatenate([head, np.full(h_max - m, head[-1])])
        for k, h in enumerate(horizons):
            out["ade"][k, f] = np.mean(dist[:h])
            out["max_displacement"][k, f] = np.max(dist[:h])
            out["fde"][k, f] = dist[h - 1]
            out["ahe"][k, f] = np.mean(head[:h])
            out["fhe"][k, f] = head[h - 1]
    return out


def compute_open_loop_metrics(planned: Sequence[Trajectory], expert: EgoStates, num_iterations: int | None = None,
                              params: MetricParams = DEFAULT_PARAMS,
                              vehicle: VehicleParameters = PACIFICA) -> dict[str, float]:
    """nuPlan's five OLS metric scores plus statistics.

    Score keys: :data:`OLS_METRICS`. Statistics: ``<metric>.horizon_<h>`` (mean over frames) and
    ``<metric>.mean`` (over horizons and frames) for the four error metrics, ``planner_miss_rate.horizon_<h>``.
    """
    err = open_loop_errors(planned, expert, num_iterations, params, vehicle)
    out: dict[str, float] = {}
    for name, key, threshold in (
        ("planner_expert_average_l2_error_within_bound", "ade", params.max_average_l2),
        ("planner_expert_final_l2_error_within_bound", "fde", params.max_final_l2),
        ("planner_expert_average_heading_error_within_bound", "ahe", params.max_average_heading),
        ("planner_expert_final_heading_error_within_bound", "fhe", params.max_final_heading),
    ):
        values = err[key]
        for k, h in enumerate(params.ols_horizons):
            out[f"{name}.horizon_{h}"] = float(np.mean(values[k]))
        mean = float(np.mean(values))
        out[f"{name}.mean"] = mean
        out[f"{name}.within_bound"] = float(mean <= threshold)
        out[name] = max(0.0, 1.0 - mean / threshold)
    rates = np.array([np.mean(err["max_displacement"][k] > params.miss_displacement[k])
                      for k in range(len(params.ols_horizons))])
    for k, h in enumerate(params.ols_horizons):
        out[f"planner_miss_rate.horizon_{h}"] = float(rates[k])
    out["planner_miss_rate_within_bound"] = float(np.all(rates <= params.max_miss_rate))
    return out
