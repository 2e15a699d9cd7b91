"""nuplan-devkit's metric fixtures reproduced within 0.01 (their tolerance), with the fixtures' parameters.

Map-free fixtures are reproduced exactly as the devkit computes them. For the collision and TTC fixtures the
Las Vegas map only decides whether ego is inside one lane; each case states the lane state it implies.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.metrics import collisions, comfort, open_loop, ttc
from sim.metrics.common import MetricParams, series_stats
from sim.metrics.speed_limit import speed_limit_metric
from tests.sim.metrics.scenes import expected_stats, fixture, rollout_from_scene, simple_planner

ATOL = 0.01
STAT_KEYS = {"MAX": "max", "MIN": "min", "MEAN": "mean", "P90": "p90"}


def _check_series(rel: str, series: np.ndarray, bounds: tuple[float, float] | None) -> None:
    scene = fixture(rel)
    stats = series_stats(series)
    for kind, value in expected_stats(scene):
        if kind == "BOOLEAN":
            assert bounds is not None
            assert comfort.within(series, *bounds) == bool(value), rel
        else:
            assert stats[STAT_KEYS[kind]] == pytest.approx(value, abs=ATOL), (rel, kind)
    expected_series = scene["expected"]["time_series"]["values"]
    np.testing.assert_allclose(np.round(series, 2), expected_series, atol=ATOL)


@pytest.mark.parametrize(("name", "signal", "coordinate", "bounds"), [
    ("ego_acceleration", "acceleration", "magnitude", None),
    ("ego_lon_acceleration", "acceleration", "x", (0.0, 10.0)),
    ("ego_lat_acceleration", "acceleration", "y", (-10.0, 10.0)),
    ("ego_jerk", "jerk", "magnitude", (-7.0, 7.0)),
    ("ego_lon_jerk", "jerk", "x", (-8.0, 8.0)),
    ("ego_lat_jerk", "jerk", "y", None),
])
def test_acceleration_and_jerk_fixtures(name, signal, coordinate, bounds):
    scene = fixture(f"{name}/{name}.json")
    ego = rollout_from_scene(scene).ego
    series = getattr(comfort, signal)(ego, coordinate)
    _check_series(f"{name}/{name}.json", series, bounds)


def test_yaw_rate_fixture():
    """5 samples: window 5, polyorder 2; p90 of 5 values is the maximum under nuPlan's numpy rounding."""
    rel = "ego_yaw_rate/ego_yaw_rate.json"
    ego = rollout_from_scene(fixture(rel)).ego
    _check_series(rel, comfort.yaw_rate(ego), (-5.0, 5.0))


def test_mean_speed_fixture():
    scene = fixture("ego_mean_speed/ego_mean_speed.json")
    value = comfort.non_scored_kinematics(rollout_from_scene(scene).ego)["ego_mean_speed"]
    assert value == pytest.approx(expected_stats(scene)[0][1], abs=ATOL)


@pytest.mark.parametrize(("rel", "key"), [
    ("ego_expert_l2_error/ego_expert_l2_error.json", "ego_expert_l2_error"),
    ("ego_expert_l2_error_with_yaw/ego_expert_l2_error_with_yaw.json", "ego_expert_l2_error_with_yaw"),
    ("ego_expert_l2_error_with_yaw/ego_expert_l2_error_with_yaw_zero.json", "ego_expert_l2_error_with_yaw"),
])
def test_expert_l2_fixtures(rel, key):
    scene = fixture(rel)
    r = rollout_from_scene(scene)
    out = open_loop.ego_expert_errors(r.ego, r.expert, heading_weight=2.5)
    for kind, value in expected_stats(scene):
        assert out[f"{key}.{STAT_KEYS[kind]}"] == pytest.approx(value, abs=ATOL), (rel, kind)


@pytest.mark.parametrize(("rel", "error", "threshold"), [
    ("planner_expert_average_l2_error_within_bound/high_average_l2_error.json", "ade", 8.0),
    ("planner_expert_average_heading_error_within_bound/low_average_heading_error.json", "ahe", 0.8),
    ("planner_expert_final_heading_error_within_bound/low_final_heading_error.json", "fhe", 0.8),
])
def test_open_loop_fixtures(rel, error, threshold):
    """Statistics: mean per horizon (3, 5, 8 s), within-bound flag, mean over all horizons and frames."""
    scene = fixture(rel)
    r = rollout_from_scene(scene)
    plans = [simple_planner(r.ego, i) for i in range(len(r.ego))]
    values = open_loop.open_loop_errors(plans, r.expert)[error]
    got = [values[0].mean(), values[1].mean(), values[2].mean(), float(values.mean() <= threshold), values.mean()]
    for (kind, want), have in zip(expected_stats(scene), got, strict=True):
        assert have == pytest.approx(want, abs=ATOL), (rel, kind)
    # and the scores derived from them
    scores = open_loop.compute_open_loop_metrics(plans, r.expert)
    name = {"ade": "planner_expert_average_l2_error_within_bound",
            "ahe": "planner_expert_average_heading_error_within_bound",
            "fhe": "planner_expert_final_heading_error_within_bound"}[error]
    assert scores[name] == pytest.approx(max(0.0, 1.0 - values.mean() / threshold))


# Collisions. ``in_lane``: whether the devkit's map puts ego inside a single lane at the collision sample
# (it matters only for lateral collisions; the lateral fixture's ego straddles lanes, the multiple-collision
# fixture's ego drives inside its lane).
COLLISION_CASES = [
    ("active_front_collision", False, [collisions.CollisionType.ACTIVE_FRONT_COLLISION]),
    ("active_lateral_collision", False, [collisions.CollisionType.ACTIVE_LATERAL_COLLISION]),
    ("active_rear_collision", True, [collisions.CollisionType.ACTIVE_REAR_COLLISION]),
    ("multiple_collisions", True, None),
    ("no_collision", True, []),
    ("stopped_ego_collision", True, [collisions.CollisionType.STOPPED_EGO_COLLISION]),
    ("stopped_track_collision", True, [collisions.CollisionType.STOPPED_TRACK_COLLISION]),
]


@pytest.mark.parametrize(("name", "in_lane", "kinds"), COLLISION_CASES)
def test_collision_fixtures(name, in_lane, kinds):
    scene = fixture(f"no_ego_at_fault_collision/{name}.json")
    r = rollout_from_scene(scene)
    found = collisions.find_collisions(r.ego, r.tracks, np.full(len(r.ego), in_lane))
    if kinds is not None:
        assert found.kind.tolist() == [int(k) for k in kinds]
    out = collisions.collision_metric(found)
    key = "no_ego_at_fault_collisions"
    want = expected_stats(scene)
    assert out[key] == pytest.approx(float(want[0][1]))  # the boolean equals the score here (0 or 1)
    counts = [out[f"{key}.count"], out[f"{key}.vru"], out[f"{key}.vehicle"], out[f"{key}.object"]]
    assert counts == [v for _, v in want[1:5]]
    if len(want) > 5:
        group = next(g for g, c in zip(("vru", "vehicle", "object"), counts[1:], strict=True) if c)
        got = [out[f"{key}.{group}_energy_max"], out[f"{key}.{group}_energy_min"], out[f"{key}.{group}_energy_mean"]]
        np.testing.assert_allclose(got, [v for _, v in want[5:8]], atol=ATOL)


@pytest.mark.parametrize("name", ["ego_stopped", "in_collision", "no_collisions", "no_relevant_tracks",
                                  "time_to_collision_above_threshold"])
@pytest.mark.parametrize("in_lane", [False, True])
def test_ttc_fixtures(name, in_lane):
    """The fixtures' tracks are ahead of ego or irrelevant, so the lane state does not change the result."""
    scene = fixture(f"time_to_collision_within_bound/{name}.json")
    mp = scene["metric_parameters"]
    params = MetricParams(ttc_step=mp["time_step_size"], ttc_horizon=mp["time_horizon"],
                          least_min_ttc=mp["least_min_ttc"])
    r = rollout_from_scene(scene)
    n = len(r.ego)
    found = collisions.find_collisions(r.ego, r.tracks, np.full(n, in_lane), params)
    series = ttc.time_to_collision(r.ego, r.tracks, found, np.full(n, in_lane), np.zeros(n, bool), params)
    out = ttc.ttc_metric(series, params)
    (_, min_ttc), (_, ok) = expected_stats(scene)
    assert out["time_to_collision_within_bound.min_ttc"] == pytest.approx(min_ttc, abs=ATOL)
    assert out["time_to_collision_within_bound"] == float(ok)
    np.testing.assert_allclose(series, scene["expected"]["time_series"]["values"], atol=ATOL)


def test_speed_limit_fixture_statistics():
    """The devkit's over-speed series of ``speed_limit_violation`` (the limits come from the real map) gives its
    expected run statistics: one run, max = min = 11.28, mean = (6.59 + 8.86 + 11.28) / 3 = 8.91."""
    scene = fixture("speed_limit_compliance/speed_limit_violation.json")
    ts = scene["expected"]["time_series"]
    out = speed_limit_metric(np.array(ts["values"], float), np.array(ts["time_stamps"], np.int64),
                             MetricParams(max_overspeed=2.23))
    want = dict(zip(["count", "max", "min", "mean"], [v for _, v in expected_stats(scene)[:4]], strict=True))
    for key, value in want.items():
        assert out[f"speed_limit_compliance.{key}"] == pytest.approx(value, abs=ATOL)
    # score: 1 - sum(depth) * dt / (2.23 * duration) = 1 - 26.73 * 1 / (2.23 * 4) < 0 -> 0
    assert out["speed_limit_compliance"] == 0.0
