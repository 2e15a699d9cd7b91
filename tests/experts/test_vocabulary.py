"""Trajectory vocabulary: k-means of logged futures in the ego frame, deterministic, saved and loaded."""

from __future__ import annotations

import numpy as np
import pytest

from experts.vocabulary import (
    Vocabulary,
    VocabularyConfig,
    build_vocabulary,
    kmeans,
    scenario_futures,
)
from sim.errors import DataError
from sim.geometry import to_global
from sim.scenario import EgoStates, Scenario, Tracks, TrafficLights


def arcs(n: int, seed: int = 0, num_poses: int = 40) -> np.ndarray:
    """``(n, T, 3)`` constant-speed, constant-curvature futures at 0.1 s in the ego frame."""
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.0, 15.0, n)
    k = rng.normal(0.0, 0.01, n)
    t = 0.1 * np.arange(1, num_poses + 1)
    h = k[:, None] * v[:, None] * t[None]
    safe_k = np.where(np.abs(k) < 1e-9, 1e-9, k)[:, None]
    x = np.sin(h) / safe_k
    y = (1.0 - np.cos(h)) / safe_k
    return np.stack([x, y, h], -1)


def test_shape_and_config() -> None:
    cfg = VocabularyConfig(size=64, iterations=10, seed=3)
    voc = build_vocabulary(arcs(2000), cfg)
    assert voc.trajectories.shape == (64, 40, 3) and voc.trajectories.dtype == np.float32
    assert len(voc) == 64 and not voc.augmented and voc.num_futures == 2000
    np.testing.assert_allclose(voc.times_s, 0.1 * np.arange(1, 41))
    # centres are plausible futures: forward, within the data's reach, headings consistent with motion
    assert voc.trajectories[:, -1, 0].max() <= 60.5 and voc.trajectories[:, -1, 0].min() >= -0.5
    assert np.all(np.abs(voc.trajectories[..., 2]) < np.pi)


def test_deterministic_and_seed_dependent() -> None:
    data = arcs(1500, seed=1)
    a = build_vocabulary(data, VocabularyConfig(size=32, iterations=8, seed=0))
    b = build_vocabulary(data, VocabularyConfig(size=32, iterations=8, seed=0))
    c = build_vocabulary(data, VocabularyConfig(size=32, iterations=8, seed=1))
    assert a.trajectories.tobytes() == b.trajectories.tobytes() and a.digest == b.digest
    assert a.digest != c.digest
    assert a.data_hash == c.data_hash  # same data, different clustering


def test_kmeans_recovers_separated_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([c + 0.1 * rng.standard_normal((50, 2)) for c in centres])
    found, labels = kmeans(x, 3, iterations=20, seed=0)
    assert sorted(map(tuple, np.round(found))) == sorted(map(tuple, centres))
    assert len(np.unique(labels[:50])) == 1 and len(np.unique(labels)) == 3
    with pytest.raises(DataError, match="clusters"):
        kmeans(x[:2], 3)


def test_save_load_round_trip(tmp_path) -> None:
    voc = build_vocabulary(arcs(600), VocabularyConfig(size=16, iterations=5))
    path = voc.save(tmp_path / "v.npz")
    back = Vocabulary.load(path)
    assert back.trajectories.tobytes() == voc.trajectories.tobytes()
    assert back.config == voc.config and back.data_hash == voc.data_hash
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "missing.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError):
        Vocabulary.load(tmp_path / "bad.npz")


def test_too_few_futures_are_augmented() -> None:
    voc = build_vocabulary(arcs(20), VocabularyConfig(size=64, iterations=5))
    assert voc.augmented and voc.trajectories.shape == (64, 40, 3)
    # mirrored copies: both left and right turns appear
    assert voc.trajectories[:, -1, 1].min() < -0.5 and voc.trajectories[:, -1, 1].max() > 0.5


def test_bad_config_and_shapes() -> None:
    with pytest.raises(DataError, match="vocabulary.size"):
        VocabularyConfig(size=0)
    with pytest.raises(DataError, match="interval_s"):
        VocabularyConfig(interval_s=0.25)
    with pytest.raises(DataError, match="shape"):
        build_vocabulary(np.zeros((10, 8, 3)), VocabularyConfig(size=4))


def test_scenario_futures_are_in_the_ego_frame() -> None:
    n = 171
    t = 0.1 * np.arange(n)
    local = np.stack([5.0 * t, np.zeros(n), np.zeros(n)], -1)  # straight at 5 m/s
    origin = np.array([100.0, 50.0, 0.7])
    pose = to_global(local, origin)
    ego = EgoStates(t, pose, np.tile([5.0, 0.0], (n, 1)), np.zeros((n, 2)), np.zeros(n), np.zeros(n))
    scen = Scenario("0" * 16, "log", "town", "lane_following", (t * 1e6).astype(np.int64), ego, Tracks.empty(n),
                    TrafficLights.empty(n), (1,), None)
    fut = scenario_futures(scen, num_poses=40, interval_s=0.1, stride=10)
    assert fut.shape == (12, 40, 3)  # iterations 0, 10, ..., 110 have 4 s of future within 151 samples
    np.testing.assert_allclose(fut[:, :, 0], np.tile(0.5 * np.arange(1, 41), (12, 1)), atol=1e-9)
    np.testing.assert_allclose(fut[..., 1:], 0.0, atol=1e-9)
    coarse = scenario_futures(scen, num_poses=8, interval_s=0.5, stride=10)
    np.testing.assert_allclose(coarse[0, :, 0], 2.5 * np.arange(1, 9), atol=1e-9)
