"""Fixtures: the junction dataset written once per session (real map.gpkg + two real log .db files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sim.runner.disk_world import write_junction_dataset

#: The tagged scenarios of the junction dataset (the untagged rows are left out).
TYPES_OVERRIDE = "scenario_filter.scenario_types=[following_lane_with_lead,stopping_with_lead]"


@pytest.fixture(scope="session")
def junction_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_junction_dataset(tmp_path_factory.mktemp("junction_dataset"))
