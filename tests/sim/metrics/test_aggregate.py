"""The weighted-average aggregator with hand-computed numbers.

CLS: score = C * D * P * Dir * (5 progress + 5 TTC + 4 speed + 2 comfort) / 16.
OLS: score = miss * (ADE + 2 AHE + FDE + 2 FHE) / 6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sim.errors import DataError
from sim.metrics import METRICS_VERSION, aggregate, final_score, scenario_score, score_rows

CLS_ONES = {"no_ego_at_fault_collisions": 1.0, "drivable_area_compliance": 1.0, "ego_is_making_progress": 1.0,
            "driving_direction_compliance": 1.0, "ego_progress_along_expert_route": 1.0,
            "time_to_collision_within_bound": 1.0, "speed_limit_compliance": 1.0, "ego_is_comfortable": 1.0}


def _table() -> pd.DataFrame:
    """A (type x): speed 0.5 -> (5 + 5 + 2 + 2) / 16 = 0.875.
    B (type x): collisions 0.5, TTC 0 -> 0.5 * (5 + 0 + 4 + 2) / 16 = 0.34375.
    C (type y): failed -> 0."""
    a = dict(CLS_ONES, speed_limit_compliance=0.5)
    b = dict(CLS_ONES, no_ego_at_fault_collisions=0.5, time_to_collision_within_bound=0.0)
    rows = (score_rows("A", "x", a, "cls_nr") + score_rows("B", "x", b, "cls_nr")
            + score_rows("C", "y", {}, "cls_nr", status="error: planner crashed"))
    return pd.DataFrame(rows)


def test_cls_scores_per_scenario_type_and_final():
    out = aggregate(_table(), "closed_loop_nonreactive_agents").set_index("scenario")
    assert out.loc["A", "score"] == pytest.approx(0.875)
    assert out.loc["B", "score"] == pytest.approx(0.34375)
    assert out.loc["C", "score"] == 0.0
    # type rows: mean score, summed metric columns
    assert out.loc["x", "score"] == pytest.approx((0.875 + 0.34375) / 2)
    assert out.loc["x", "speed_limit_compliance"] == pytest.approx(1.5)
    assert out.loc["x", "num_scenarios"] == 2
    assert out.loc["y", "score"] == 0.0
    # final: plain mean over the 3 scenarios (not the mean of type means), metric columns = sum / 3
    assert out.loc["final_score", "score"] == pytest.approx((0.875 + 0.34375 + 0.0) / 3)
    assert out.loc["final_score", "speed_limit_compliance"] == pytest.approx(1.5 / 3)
    assert out.loc["final_score", "num_scenarios"] == 3


def test_failed_scenarios_are_listed():
    out = aggregate(_table(), "cls_r")
    assert out.attrs["failed_scenarios"] == ["C"]
    assert out.attrs["metrics_version"] == METRICS_VERSION
    assert final_score(out) == pytest.approx((0.875 + 0.34375) / 3)
    assert out.set_index("scenario").loc["C", "status"].startswith("error")


def test_ols_weights_and_miss_rate_multiplier():
    """ADE 0.5, AHE 1, FDE 0.25, FHE 0.75, miss 1 -> (0.5 + 2 + 0.25 + 1.5) / 6 = 0.708333; miss 0 -> 0."""
    m = {"planner_expert_average_l2_error_within_bound": 0.5,
         "planner_expert_average_heading_error_within_bound": 1.0,
         "planner_expert_final_l2_error_within_bound": 0.25,
         "planner_expert_final_heading_error_within_bound": 0.75, "planner_miss_rate_within_bound": 1.0}
    assert scenario_score(m, "ols") == pytest.approx(4.25 / 6)
    assert scenario_score(dict(m, planner_miss_rate_within_bound=0.0), "open_loop_boxes") == 0.0
    rows = score_rows("s1", "t", m, "ols") + score_rows("s2", "t", dict(m, planner_miss_rate_within_bound=0.0), "ols")
    assert final_score(aggregate(pd.DataFrame(rows), "ols")) == pytest.approx(4.25 / 12)


def test_missing_metrics_are_skipped_and_foreign_metrics_ignored():
    """Only progress (1) and TTC (0) present: (5 * 1 + 5 * 0) / 10 = 0.5; a metric outside the challenge does
    not count."""
    df = pd.DataFrame([
        {"scenario": "s", "scenario_type": "t", "metric": "ego_progress_along_expert_route", "score": 1.0},
        {"scenario": "s", "scenario_type": "t", "metric": "time_to_collision_within_bound", "score": 0.0},
        {"scenario": "s", "scenario_type": "t", "metric": "ego_mean_speed", "score": 7.0},
    ])
    out = aggregate(df, "cls_nr")
    assert final_score(out) == pytest.approx(0.5)
    assert "ego_mean_speed" not in out.columns
    assert np.isnan(out.set_index("scenario").loc["s", "ego_is_comfortable"])


def test_per_planner_tables_and_bad_input():
    rows = [dict(r, planner_name=p) for p in ("p1", "p2") for r in score_rows("A", "x", CLS_ONES, "cls_nr")]
    out = aggregate(pd.DataFrame(rows), "cls_nr")
    finals = out[out["scenario"] == "final_score"]
    assert finals["planner_name"].tolist() == ["p1", "p2"] and finals["score"].tolist() == [1.0, 1.0]
    with pytest.raises(DataError, match="lacks columns"):
        aggregate(pd.DataFrame({"scenario": ["a"]}), "cls_nr")
    with pytest.raises(DataError, match="unknown challenge"):
        aggregate(pd.DataFrame(rows), "nonsense")
