"""End-to-end: :func:`compute_closed_loop_metrics` and :func:`compute_open_loop_metrics` on 0.1 s rollouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.categories import Category
from sim.errors import DataError
from sim.metrics import (
    CLS_METRICS,
    OLS_METRICS,
    aggregate,
    compute_closed_loop_metrics,
    compute_open_loop_metrics,
    final_score,
    score_rows,
)
from sim.nuplan_map.map_api import MapAPI
from sim.scenario import Tracks
from sim.trajectory import Trajectory
from tests.sim.metrics.scenes import ego_at_center, make_ego, make_tracks, town_layers


@pytest.fixture(scope="module")
def town() -> MapAPI:
    return MapAPI.from_layers(town_layers())


def test_nominal_lane_following_scores_one(town):
    """Ego = expert following lane 1 then connector 11 into lane 3 at 8 m/s (limits 10 / 15 m/s), no objects.
    nuPlan's quirk: the rollout has the N-1 = 150 history samples (119.2 m) while the expert has all 151
    iterations (120 m), so progress = 119.2 / 120; every other metric is 1.
    CLS = (5 * 119.2/120 + 5 + 4 + 2) / 16."""
    t = np.arange(151) * 0.1
    ego = ego_at_center(60 + 8 * t, 1.75, 0.0, 8.0)
    out = compute_closed_loop_metrics(ego.slice(0, 150), Tracks.empty(150), ego, town, (100, 200, 300))
    ratio = 119.2 / 120.0
    want = dict.fromkeys(CLS_METRICS, 1.0)
    want["ego_progress_along_expert_route"] = pytest.approx(ratio)
    assert {m: out[m] for m in CLS_METRICS} == want
    assert out["ego_progress_along_expert_route.expert_progress"] == pytest.approx(120.0)
    assert out["ego_expert_l2_error.max"] == 0.0
    table = pd.DataFrame(score_rows("s", "nominal", out, "cls_nr"))
    assert final_score(aggregate(table, "cls_nr")) == pytest.approx((5 * ratio + 11) / 16)


def test_rollout_with_a_rear_end_collision(town):
    """Ego drives into a parked vehicle in lane 1 while the expert stops short of it: the stopped-track
    collision zeroes the collision multiplier, hence the score; TTC fails before the impact."""
    t = np.arange(51) * 0.1
    x = 20 + 8 * t
    ego = ego_at_center(x, 1.75, 0.0, 8.0)
    expert = ego_at_center(np.minimum(x, 40.0), 1.75, 0.0, 8.0)
    parked = make_tracks(np.broadcast_to([[[58.0, 1.75, 0.0]]], (1, 50, 3)), [0.0], [Category.VEHICLE])
    out = compute_closed_loop_metrics(ego.slice(0, 50), parked, expert, town)
    assert out["no_ego_at_fault_collisions"] == 0.0
    assert out["time_to_collision_within_bound"] == 0.0
    assert out["time_to_collision_within_bound.min_ttc"] == 0.0
    table = pd.DataFrame(score_rows("s", "crash", out, "cls_nr"))
    assert final_score(aggregate(table, "cls_nr")) == 0.0


def test_misaligned_tracks_are_rejected(town):
    ego = make_ego([0, 1], 0, 0, 1)
    with pytest.raises(DataError, match="tracks cover 3 samples"):
        compute_closed_loop_metrics(ego, Tracks.empty(3), ego, town)


def _expert(n: int):
    t = np.arange(n) * 0.1
    return make_ego(5 * t, 0.0, 0.0, 5.0)


def _plans(expert, offset_y: float, n_samples: int = 150):
    plans = []
    for i in range(n_samples):
        sl = slice(i, i + 81)
        pose = expert.pose[sl].copy()
        pose[:, 1] += offset_y
        plans.append(Trajectory(expert.time_s[sl], pose))
    return plans


def test_open_loop_perfect_and_offset_plans():
    """151 scenario iterations + 8 s of logged future; plans over 8 s at 0.1 s from each of the 150 samples.
    Perfect plans: all errors 0 -> every OLS score 1. Plans shifted 1 m sideways: ADE = FDE = 1 m ->
    1 - 1/8 = 0.875, headings exact -> 1, max displacement 1 m < 6 m -> no miss.
    OLS = (0.875 + 0.875 + 2 + 2) / 6."""
    expert = _expert(151 + 80)
    perfect = compute_open_loop_metrics(_plans(expert, 0.0), expert, num_iterations=151)
    assert {m: perfect[m] for m in OLS_METRICS} == dict.fromkeys(OLS_METRICS, 1.0)
    shifted = compute_open_loop_metrics(_plans(expert, 1.0), expert, num_iterations=151)
    assert shifted["planner_expert_average_l2_error_within_bound"] == pytest.approx(0.875)
    assert shifted["planner_expert_final_l2_error_within_bound"] == pytest.approx(0.875)
    assert shifted["planner_expert_average_heading_error_within_bound"] == pytest.approx(1.0)
    assert shifted["planner_miss_rate_within_bound"] == 1.0
    table = pd.DataFrame(score_rows("s", "t", shifted, "ols"))
    assert final_score(aggregate(table, "ols")) == pytest.approx((0.875 * 2 + 4) / 6)


def test_open_loop_miss_rate():
    """Plans 7 m off: every frame's max displacement (7 m) exceeds 6 m at the 3 s horizon -> rate 1 > 0.3 -> 0;
    the 8 m and 16 m horizons do not miss. ADE score max(0, 1 - 7/8) = 0.125."""
    expert = _expert(151 + 80)
    out = compute_open_loop_metrics(_plans(expert, 7.0), expert, num_iterations=151)
    assert out["planner_miss_rate.horizon_3"] == 1.0 and out["planner_miss_rate.horizon_5"] == 0.0
    assert out["planner_miss_rate_within_bound"] == 0.0
    assert out["planner_expert_average_l2_error_within_bound"] == pytest.approx(0.125)
