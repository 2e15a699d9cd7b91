"""The trajectory vocabulary: k-means centres of logged expert futures in the ego frame (Hydra-MDP's V_k).

Sampling: **40 poses at 0.1 s = 4 s** (t = 0.1 … 4.0 s, the current pose excluded), rear-axle x, y, heading
in the frame of the current rear-axle pose. This is the horizon the PDM scorer simulates; the network's 8-pose
imitation target is the subsample at indices 4, 9, …, 39 (0.5 s).

Clustering: k-means on the 80 position coordinates (seeded k-means++ initialisation, Lloyd iterations,
chunked distances so memory stays flat); each centre's heading is the circular mean of its members'
headings. The same futures, config and seed give the same bytes.

When the data hold fewer distinct futures than the requested size (tiny datasets), the futures are mirrored
(y → −y) and then jittered (seeded longitudinal and lateral scaling) until there are enough; the saved
config records it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sim.errors import DataError
from sim.geometry import to_local
from sim.scenario import Scenario

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

#: Bump when the construction changes: vocabularies with another version are rebuilt.
VOCABULARY_VERSION = 1


@dataclass(frozen=True)
class VocabularyConfig:
    """``size`` trajectories of ``num_poses`` poses every ``interval_s`` seconds.

    ``stride``: iterations (0.1 s) between sampled futures of a scenario; ``max_samples``: futures kept for
    clustering (an even, seeded subsample beyond); ``iterations``: Lloyd iterations.
    """

    size: int = 4096
    num_poses: int = 40
    interval_s: float = 0.1
    stride: int = 5
    max_samples: int = 100_000
    iterations: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.size <= 65536:
            raise DataError(None, f"vocabulary.size={self.size}", "an integer in [1, 65536] (256..8192 usual)")
        if self.num_poses < 1 or self.stride < 1 or self.iterations < 1:
            raise DataError(None, f"vocabulary config {self}", "num_poses, stride, iterations >= 1")
        if abs(self.interval_s / 0.1 - round(self.interval_s / 0.1)) > 1e-9 or self.interval_s <= 0:
            raise DataError(None, f"vocabulary.interval_s={self.interval_s}", "a positive multiple of 0.1 s")


@dataclass(frozen=True)
class Vocabulary:
    """``trajectories``: ``(V, T, 3)`` float32 ego-frame rear-axle poses at ``interval_s·(1..T)``."""

    trajectories: F32
    config: VocabularyConfig
    data_hash: str
    num_futures: int
    augmented: bool

    def __len__(self) -> int:
        return len(self.trajectories)

    @property
    def times_s(self) -> F64:
        return self.config.interval_s * np.arange(1, self.config.num_poses + 1)

    @property
    def digest(self) -> str:
        """Hash of the vocabulary content (used in label-cache paths)."""
        return hashlib.sha256(np.ascontiguousarray(self.trajectories).tobytes()).hexdigest()[:16]

    def save(self, path: str | Path) -> Path:
        """Write an ``.npz`` atomically (temp file + rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"config": asdict(self.config), "data_hash": self.data_hash, "num_futures": self.num_futures,
                "augmented": self.augmented, "version": VOCABULARY_VERSION}
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        with open(tmp, "wb") as f:
            np.savez(f, trajectories=self.trajectories, meta=np.array(json.dumps(meta, sort_keys=True)))
        os.replace(tmp, path)
        return path

    @staticmethod
    def load(path: str | Path) -> Vocabulary:
        path = Path(path)
        if not path.is_file():
            raise DataError(path, "vocabulary file not found", "an .npz written by build_vocabulary")
        try:
            with np.load(path) as z:
                traj = z["trajectories"].astype(np.float32)
                meta = json.loads(str(z["meta"]))
        except (KeyError, ValueError, OSError) as err:
            raise DataError(path, f"not a vocabulary file ({err})", "arrays 'trajectories' and 'meta'") from err
        cfg = VocabularyConfig(**meta["config"])
        if traj.ndim != 3 or traj.shape[1:] != (cfg.num_poses, 3) or len(traj) != cfg.size:
            raise DataError(path, f"trajectories have shape {traj.shape}", f"({cfg.size}, {cfg.num_poses}, 3)")
        return Vocabulary(traj, cfg, meta["data_hash"], int(meta["num_futures"]), bool(meta["augmented"]))


# ---------------------------------------------------------------------------------------------- futures
def scenario_futures(scenario: Scenario, num_poses: int = 40, interval_s: float = 0.1, stride: int = 5) -> F64:
    """Logged ego futures ``(M, num_poses, 3)`` in the frame of each sampled current pose.

    Current poses are iterations 0, stride, 2·stride, … whose whole future lies in the scenario.
    """
    step = int(round(interval_s / 0.1))
    pose = scenario.expert.pose  # (N, 3) from iteration 0
    horizon = num_poses * step
    starts = np.arange(0, len(pose) - horizon, stride)
    if len(starts) == 0:
        return np.zeros((0, num_poses, 3))
    idx = starts[:, None] + step * np.arange(1, num_poses + 1)[None]
    return to_local(pose[idx], pose[starts][:, None, :])


def collect_futures(scenarios: Iterable[Scenario], config: VocabularyConfig) -> F64:
    parts = [scenario_futures(s, config.num_poses, config.interval_s, config.stride) for s in scenarios]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise DataError(None, "no scenario has a logged future long enough for the vocabulary",
                        f"scenarios longer than {config.num_poses * config.interval_s:.1f} s")
    return np.concatenate(parts)


def futures_hash(futures: F64) -> str:
    """Content hash of futures (rounded to mm / mrad so float noise does not change it)."""
    q = np.round(np.asarray(futures, np.float64) * 1000.0).astype(np.int64)
    return hashlib.sha256(q.tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- k-means
def _sq_dists(x: F32, centers: F32, x_sq: F32, chunk: int = 8192) -> tuple[npt.NDArray[np.int64], F32]:
    """Nearest centre and squared distance of every row of ``x``, in chunks (memory ``chunk × K``)."""
    c_sq = (centers**2).sum(1)
    labels = np.empty(len(x), np.int64)
    best = np.empty(len(x), np.float32)
    for a in range(0, len(x), chunk):
        d = x_sq[a:a + chunk, None] - 2.0 * (x[a:a + chunk] @ centers.T) + c_sq[None]
        labels[a:a + chunk] = np.argmin(d, 1)
        best[a:a + chunk] = np.maximum(d[np.arange(len(d)), labels[a:a + chunk]], 0.0)
    return labels, best


def kmeans(x: npt.ArrayLike, k: int, iterations: int = 20, seed: int = 0) -> tuple[F32, npt.NDArray[np.int64]]:
    """k-means++ initialisation then Lloyd iterations. ``x``: ``(M, D)`` with ``M >= k``.

    Returns centres ``(k, D)`` float32 and labels ``(M,)``. Empty clusters are re-seeded with the points
    farthest from their centres. Deterministic for a given seed.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    m = len(x)
    if m < k:
        raise DataError(None, f"k-means with {m} points for {k} clusters", "at least as many points as clusters")
    rng = np.random.default_rng(seed)
    x_sq = (x**2).sum(1)
    centers = np.empty((k, x.shape[1]), np.float32)
    centers[0] = x[rng.integers(m)]
    closest = ((x - centers[0]) ** 2).sum(1)
    # k-means++: sample proportionally to the squared distance to the chosen centres (a few candidates each).
    for i in range(1, k):
        total = float(closest.sum())
        if total <= 0.0:
            centers[i] = x[rng.integers(m)]
            continue
        cand = np.searchsorted(np.cumsum(closest, dtype=np.float64), rng.random(3) * total)
        cand = np.minimum(cand, m - 1)
        d = np.maximum(x_sq[:, None] - 2.0 * (x @ x[cand].T) + x_sq[cand][None], 0.0)  # (M, 3)
        pick = int(np.argmin(np.minimum(closest[:, None], d).sum(0)))
        centers[i] = x[cand[pick]]
        closest = np.minimum(closest, d[:, pick])
    labels = np.zeros(m, np.int64)
    for _ in range(iterations):
        labels, dist = _sq_dists(x, centers, x_sq)
        counts = np.bincount(labels, minlength=k)
        order = np.argsort(labels, kind="stable")
        present = np.flatnonzero(counts)
        sums = np.zeros(centers.shape, np.float64)
        sums[present] = np.add.reduceat(x[order].astype(np.float64), np.cumsum(counts)[present] - counts[present])
        new = centers.copy()
        filled = counts > 0
        new[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        empty = np.flatnonzero(~filled)
        if len(empty):
            far = np.argsort(-dist, kind="stable")[: len(empty)]
            new[empty] = x[far]
        if np.array_equal(new, centers):
            break
        centers = new
    labels, _ = _sq_dists(x, centers, x_sq)
    return centers, labels


def _augment(futures: F64, needed: int, seed: int) -> F64:
    """Mirrored and then jittered copies of ``futures`` until there are at least ``needed`` rows."""
    mirrored = futures.copy()
    mirrored[..., 1] *= -1.0
    mirrored[..., 2] *= -1.0
    out = np.concatenate([futures, mirrored])
    rng = np.random.default_rng(seed + 1)
    parts = [out]
    total = len(out)
    while total < needed:
        base = out[rng.integers(len(out), size=min(len(out), needed - total))]
        sx = rng.uniform(0.6, 1.4, size=(len(base), 1))
        sy = rng.uniform(0.3, 1.7, size=(len(base), 1))
        dy = rng.normal(0.0, 0.5, size=(len(base), 1)) * np.linspace(0, 1, base.shape[1])[None]
        jit = base.copy()
        jit[..., 0] *= sx
        jit[..., 1] = jit[..., 1] * sy + dy
        jit[..., 2] = np.arctan2(np.sin(base[..., 2]) * sy, np.cos(base[..., 2]) * sx)
        parts.append(jit)
        total += len(jit)
    return np.concatenate(parts)


def build_vocabulary(futures: npt.ArrayLike, config: VocabularyConfig = VocabularyConfig()) -> Vocabulary:
    """Cluster ``futures`` ``(M, T, 3)`` (ego frame) into ``config.size`` trajectories."""
    f = np.asarray(futures, np.float64)
    if f.ndim != 3 or f.shape[1:] != (config.num_poses, 3):
        raise DataError(None, f"futures have shape {f.shape}", f"(M, {config.num_poses}, 3)")
    data_hash = futures_hash(f)
    rng = np.random.default_rng(config.seed)
    if len(f) > config.max_samples:
        f = f[np.sort(rng.choice(len(f), config.max_samples, replace=False))]
    distinct = len(np.unique(np.round(f[..., :2].reshape(len(f), -1), 2), axis=0))
    augmented = distinct < config.size
    if augmented:
        f = _augment(f, 2 * config.size, config.seed)
    x = f[..., :2].reshape(len(f), -1)
    centers, labels = kmeans(x, config.size, config.iterations, config.seed)
    xy = centers.reshape(config.size, config.num_poses, 2).astype(np.float64)
    # Circular mean of the members' headings; fall back to the path direction for singleton-free centres.
    sin = np.zeros((config.size, config.num_poses))
    cos = np.zeros((config.size, config.num_poses))
    np.add.at(sin, labels, np.sin(f[..., 2]))
    np.add.at(cos, labels, np.cos(f[..., 2]))
    heading = np.arctan2(sin, cos)
    traj = np.concatenate([xy, heading[..., None]], -1).astype(np.float32)
    return Vocabulary(traj, config, data_hash, int(len(np.asarray(futures))), bool(augmented))


def vocabulary_path(root: str | Path, config: VocabularyConfig, data_tag: str) -> Path:
    """Canonical file name: ``<root>/vocabulary_<size>_<poses>x<interval ms>_<tag>.npz``."""
    ms = int(round(config.interval_s * 1000))
    return Path(root) / f"vocabulary_{config.size}_{config.num_poses}x{ms}ms_s{config.seed}_{data_tag}.npz"
