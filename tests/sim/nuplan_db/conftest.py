"""Fixtures: a 60 s synthetic recording (10 agents, 3 lights, 8 scenes, a few tags) written once as a real .db."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.nuplan_db.recording import LogRecording
from sim.nuplan_db.sample import sample_recording
from sim.nuplan_db.writer import write_log


@pytest.fixture(scope="session")
def recording() -> LogRecording:
    return sample_recording(duration_s=60.0, num_agents=10, num_lights=3, num_scenes=8, seed=0)


@pytest.fixture(scope="session")
def db_path(recording: LogRecording, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_log(recording, tmp_path_factory.mktemp("logs") / f"{recording.log_name}.db")
