"""experts.scorer: LQR + bicycle tracking of candidate poses, then PDM scoring."""

from __future__ import annotations

import numpy as np
import pytest

from experts.scorer import build_scoring_world, score, simulate
from sim.categories import Category
from sim.errors import DataError
from sim.geometry import to_local
from sim.metrics.pdm_score import score_trajectories
from sim.nuplan_map.map_api import MapAPI
from sim.scenario import EgoStates, Tracks
from tests.sim.map_fixtures import two_lane_junction_layers

DT = 0.1
T = 40
TIMES = DT * np.arange(T + 1)


@pytest.fixture(scope="module")
def junction() -> MapAPI:
    return MapAPI.from_layers(two_lane_junction_layers())


def _ego(v: float = 8.0) -> EgoStates:
    return EgoStates(np.array([5.0]), np.array([[10.0, -1.75, 0.0]]), np.array([[v, 0.0]]), np.zeros((1, 2)),
                     np.zeros(1), np.zeros(1))


def _parked_car() -> Tracks:
    return Tracks(np.array(["00000000000000aa"]), np.array([Category.VEHICLE], np.int8), np.array([[4.5, 2.0, 1.5]]),
                  np.array([[[40.0, -1.75, 0.0]]]), np.zeros((1, 1, 2)), np.ones((1, 1), bool))


def _candidates() -> np.ndarray:
    """(3, T, 3) global poses after now: keep lane at 8 m/s (into the car), change to the left lane, stop."""
    t = TIMES[1:]
    keep = np.stack([10.0 + 8.0 * t, np.full(T, -1.75), np.zeros(T)], -1)
    u = np.clip(t / 4.0, 0.0, 1.0)
    shift = 3.5 * u * u * (3.0 - 2.0 * u)  # smoothstep over 4 s: nuPlan's LQR lags, then overshoots a little
    change = np.stack([10.0 + 8.0 * t, -1.75 + shift, np.zeros(T)], -1)
    change[:, 2] = np.arctan2(np.gradient(change[:, 1]), np.gradient(change[:, 0]))
    stop_s = np.minimum(8.0 * t - 2.0 * t**2, 8.0)  # brake at 4 m/s² to a stop after 2 s
    stop = np.stack([10.0 + stop_s, np.full(T, -1.75), np.zeros(T)], -1)
    return np.stack([keep, change, stop])


def test_tracked_candidates_are_scored(junction: MapAPI) -> None:
    ego = _ego()
    world = build_scoring_world(junction, (100, 200, 300), ego, _parked_car(), {}, TIMES)
    timings: dict[str, float] = {}
    s = score(_candidates(), ego, world, timings=timings)
    nc = s.column("no_at_fault_collision")
    assert list(nc) == [0.0, 1.0, 1.0]  # only the lane keeper drives into the parked car
    assert list(s.column("drivable_area")) == [1.0, 1.0, 1.0]
    assert s.column("comfort")[0] == 1.0  # steady 8 m/s: comfortable
    assert s.column("ego_progress")[1] == 1.0  # the lane change goes farthest among the survivors
    assert s.pdm_score[1] > s.pdm_score[2] > s.pdm_score[0] == 0.0
    assert {"tracking", "drivable_area", "overlaps", "collision_rules", "ttc_rules", "comfort", "total"} <= set(timings)
    assert timings["total"] >= timings["tracking"]


def test_scores_are_those_of_the_simulated_states(junction: MapAPI) -> None:
    ego = _ego()
    world = build_scoring_world(junction, (100, 200, 300), ego, _parked_car(), {}, TIMES)
    rollout = simulate(_candidates(), ego, world)
    assert rollout.pose.shape == (3, T + 1, 3)
    assert np.allclose(rollout.pose[:, 0], ego.pose[-1])
    # the tracker follows the lane change (with nuPlan's LQR lag)
    assert np.abs(rollout.pose[1, -1, 1] - 1.75) < 0.5
    direct = score_trajectories(rollout, world)
    assert np.array_equal(direct.scores, score(_candidates(), ego, world).scores)


def test_ego_frame_input_equals_global(junction: MapAPI) -> None:
    ego = EgoStates(np.array([0.0]), np.array([[12.0, -1.5, 0.05]]), np.array([[8.0, 0.0]]), np.zeros((1, 2)),
                    np.zeros(1), np.zeros(1))
    world = build_scoring_world(junction, (100, 200, 300), ego, _parked_car(), {}, TIMES)
    glob = _candidates()
    local = to_local(glob, ego.pose[-1])
    a = score(glob, ego, world)
    b = score(local, ego, world, frame="ego")
    assert np.allclose(a.scores, b.scores) and np.allclose(a.raw_progress, b.raw_progress)


def test_bad_candidate_shapes(junction: MapAPI) -> None:
    ego = _ego()
    world = build_scoring_world(junction, (100, 200, 300), ego, _parked_car(), {}, TIMES)
    with pytest.raises(DataError, match="poses"):
        score(np.zeros((2, 10, 3)), ego, world)
    with pytest.raises(DataError, match="shape"):
        score(np.zeros((2, T)), ego, world)
    with pytest.raises(DataError, match="frame"):
        score(_candidates(), ego, world, frame="map")


def test_navsim_sampling_is_interpolated_onto_the_grid(junction: MapAPI) -> None:
    from experts.scorer import resample

    ego = _ego()
    world = build_scoring_world(junction, (100, 200, 300), ego, _parked_car(), {}, TIMES)
    fine = _candidates()  # (3, 40, 3) at 0.1 s
    coarse = fine[:, 4::5]  # NAVSIM-like: 8 poses at 0.5 s
    up = resample(coarse, ego.pose[-1], 0.5, DT, T)
    assert up.shape == fine.shape
    assert np.allclose(up[:, 4::5], coarse)  # the samples themselves are kept
    assert np.allclose(up[0, :, 0], fine[0, :, 0])  # linear motion is recovered exactly
    assert np.abs(up - fine).max() < 0.3  # curves: close to the fine trajectory
    a = score(coarse, ego, world, interval_s=0.5)
    b = score(up, ego, world)
    assert np.array_equal(a.scores, b.scores)
