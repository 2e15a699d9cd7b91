"""Session-wide fixtures shared by every test package."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of the tiny synthetic dataset (nuPlan layout: ``maps/``, ``nuplan-v1.1/splits/{train,val,corner_cases}``,
    ``manifest.json``), written once per test session.

    Set ``DISTIPLAN_TINY_DATASET`` to an existing root to reuse it (it must have been written by
    ``write_dataset(root, seed=0, preset='tiny')``).
    """
    cached = os.environ.get("DISTIPLAN_TINY_DATASET")
    if cached and (Path(cached) / "manifest.json").is_file():
        return Path(cached)
    from sim.synth.dataset import write_dataset

    root = tmp_path_factory.mktemp("synth_tiny")
    write_dataset(root, seed=0, preset="tiny", workers=min(2, os.cpu_count() or 1), progress=False)
    return root
