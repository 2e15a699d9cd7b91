"""The labeler on the tiny synthetic dataset: cache written, manifest complete, resume after a kill is identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experts.labeler import (
    LabelCache,
    LabelConfig,
    _write_npz_atomic,
    load_shard,
    read_manifest,
    run_labeling,
    sample_from_shard,
    shard_path,
    stack_samples,
)
from experts.vocabulary import VocabularyConfig
from sim.errors import DataError
from sim.metrics.pdm_score import RULES

VOCAB = VocabularyConfig(size=32, iterations=5, stride=10)


def data_paths(tiny_dataset) -> tuple[Path, Path]:
    root = Path(getattr(tiny_dataset, "data_root", tiny_dataset))
    maps = Path(getattr(tiny_dataset, "maps_root", root / "maps"))
    return root, maps


def config(tiny_dataset, out: Path, **kw) -> LabelConfig:
    root, maps = data_paths(tiny_dataset)
    base = dict(data_root=str(root), maps_root=str(maps), split="train", out=str(out), vocabulary=VOCAB,
                shard_size=1, sample_interval_s=2.0, worker="sequential", progress=False,
                scenario_filter={"limit_total_scenarios": 2})
    base.update(kw)
    return LabelConfig(**base)


def test_stack_and_cut_ragged_samples(tmp_path: Path) -> None:
    a = {"token": np.array("a"), "scores": np.ones((4, 7), np.float16), "agent_pose": np.zeros((2, 3)),
         "agent_size": np.zeros((2, 3)), "agent_velocity": np.zeros((2, 2)), "agent_category": np.zeros(2, np.int8),
         "agent_token": np.array(["x", "y"]), "light_connector_id": np.zeros(0, np.int64),
         "light_status": np.zeros(0, np.int8), "route_roadblock_ids": np.array([1, 2])}
    b = {k: (v[:1] if v.ndim and k.startswith("agent") else v) for k, v in a.items()}
    b["token"] = np.array("b")
    shard = stack_samples([a, b])
    assert shard["scores"].shape == (2, 4, 7) and list(shard["agent_offsets"]) == [0, 2, 3]
    path = tmp_path / "s.npz"
    _write_npz_atomic(path, shard)
    first = path.read_bytes()
    _write_npz_atomic(path, shard)
    assert path.read_bytes() == first  # deterministic bytes
    back = sample_from_shard(load_shard(path), 1)
    assert str(back["token"]) == "b" and back["agent_pose"].shape == (1, 3) and list(back["agent_token"]) == ["x"]


def test_label_cache_and_manifest(tiny_dataset, tmp_path: Path) -> None:
    report = run_labeling(config(tiny_dataset, tmp_path))
    cache = report.cache_dir
    assert cache.parent == tmp_path and cache.name.startswith("labels-")
    assert (cache / "config.json").is_file() and (cache / "failures.csv").is_file()
    assert report.num_shards == 2 and report.num_failures == 0 and report.num_samples > 0
    manifest = read_manifest(cache)
    assert len(manifest["token"]) == report.num_samples == len(set(manifest["token"]))
    for shard in np.unique(manifest["shard"]):
        data = load_shard(shard_path(cache, int(shard)))
        rows = manifest["row"][manifest["shard"] == shard]
        assert list(rows) == list(range(len(data["token"])))
        n = len(rows)
        assert data["scores"].shape == (n, VOCAB.size, len(RULES)) and data["scores"].dtype == np.float16
        assert np.all((data["scores"] >= 0) & (data["scores"] <= 1))
        assert data["pdm_score"].shape == (n, VOCAB.size)
        assert data["logged_future"].shape == (n, 80, 3) and data["expert_trajectory"].shape == (n, 80, 3)
        assert data["ego_history"].shape == (n, 21, 3)
        np.testing.assert_allclose(data["ego_history"][:, -1], 0.0, atol=1e-5)  # ego frame: current pose = 0
        # the logged future is driven forward; the expert's plan starts at ego
        assert np.all(np.nan_to_num(data["logged_future"][:, 39, 0], nan=1.0) > -1.0)
        assert np.abs(data["expert_trajectory"][:, 0, :2]).max() < 3.0
        assert data["agent_offsets"][-1] == len(data["agent_pose"])
        # some vocabulary trajectory is fully acceptable in every sample (the teacher has a good answer)
        assert np.all(data["pdm_score"].astype(np.float32).max(1) > 0.5)
    cache_reader = LabelCache(cache)
    assert len(cache_reader) == report.num_samples and len(cache_reader.vocabulary()) == VOCAB.size
    last = cache_reader[-1]
    assert str(last["token"]) == manifest["token"][-1] and last["scores"].shape == (VOCAB.size, len(RULES))
    # a second run with the same config does nothing and changes nothing
    before = {p.name: p.read_bytes() for p in (cache / "shards").glob("*.npz")}
    again = run_labeling(config(tiny_dataset, tmp_path))
    assert again.cache_dir == cache and again.num_skipped == again.num_shards
    assert {p.name: p.read_bytes() for p in (cache / "shards").glob("*.npz")} == before


def test_failures_are_recorded_and_the_threshold_stops_the_run(tiny_dataset, tmp_path: Path) -> None:
    cfg = config(tiny_dataset, tmp_path, maps_root=str(tmp_path / "no-maps"), expert=False)
    with pytest.raises(DataError, match="failed"):
        run_labeling(cfg)
    cache = next(tmp_path.glob("labels-*"))
    lines = (cache / "failures.csv").read_text().strip().splitlines()
    assert lines[0] == "shard,token,error" and len(lines) == 3  # both scenarios, each with its error
    assert all("no-maps" in line or "Error" in line for line in lines[1:])


@pytest.mark.slow
def test_resume_after_kill_gives_an_identical_cache(tiny_dataset, tmp_path: Path) -> None:
    root, maps = data_paths(tiny_dataset)
    args = [sys.executable, "-m", "scripts.cli", "label", f"data_root={root}", f"maps_root={maps}", "split=train",
            "vocabulary.size=32", "vocabulary.iterations=5", "vocabulary.stride=10", "shard_size=1",
            "sample_interval_s=2.0", "worker=sequential", "progress=false",
            "+scenario_filter.limit_total_scenarios=3"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    # reference: one uninterrupted run
    subprocess.run(args + [f"out={tmp_path / 'ref'}"], check=True, env=env, capture_output=True)
    ref_cache = next((tmp_path / "ref").glob("labels-*"))
    # killed with SIGKILL once the first shard is on disk, then resumed
    out = tmp_path / "killed"
    proc = subprocess.Popen(args + [f"out={out}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob("labels-*/shards/shard-*.npz")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = list(out.glob("labels-*/shards/shard-*.npz"))
    assert 1 <= len(done) < 3, "the run must be killed part-way"
    subprocess.run(args + [f"out={out}"], check=True, env=env, capture_output=True)
    cache = next(out.glob("labels-*"))
    assert cache.name == ref_cache.name
    ref = {p.name: p.read_bytes() for p in (ref_cache / "shards").glob("*.npz")}
    got = {p.name: p.read_bytes() for p in (cache / "shards").glob("*.npz")}
    assert got == ref and len(ref) == 3
    assert read_manifest(cache)["token"].tolist() == read_manifest(ref_cache)["token"].tolist()
    assert not list(cache.rglob("*.tmp*"))
