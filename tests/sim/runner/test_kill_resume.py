"""A run killed with SIGKILL mid-way, then resumed, gives the table of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.sim.runner.conftest import TYPES_OVERRIDE

TIMING = ["latency_mean_s", "latency_p90_s", "latency_max_s"]
ROOT = Path(__file__).resolve().parents[3]


def _cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "scripts.cli", "simulate", f"data_root={data}", f"out={out}",
            f"cache_root={out.parent / 'cache'}", TYPES_OVERRIDE,
            "planner=idm", "agents=reactive", "worker=sequential", "progress=false", "print_table=false", *extra]


@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(junction_dataset: Path, tmp_path: Path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_cmd(junction_dataset, full), cwd=ROOT, check=True, capture_output=True)

    proc = subprocess.Popen(_cmd(junction_dataset, killed), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((killed / "scenarios").glob("*.npz"))) >= 1:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = len(list((killed / "scenarios").glob("*.npz")))
    assert 1 <= done < 4 and not (killed / "metrics.parquet").exists()

    resumed = subprocess.run(_cmd(junction_dataset, killed, "resume=true"), cwd=ROOT, check=True,
                             capture_output=True, text=True)
    assert f"{done} already done" in resumed.stdout
    a = pd.read_parquet(full / "metrics.parquet").drop(columns=TIMING)
    b = pd.read_parquet(killed / "metrics.parquet").drop(columns=TIMING)
    pd.testing.assert_frame_equal(a, b)
    agg_a = pd.read_parquet(full / "aggregate.parquet")
    agg_b = pd.read_parquet(killed / "aggregate.parquet")
    pd.testing.assert_frame_equal(agg_a, agg_b)
