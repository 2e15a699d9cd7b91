"""Log replay reproduces the log whatever the ego does."""

from __future__ import annotations

import numpy as np
import pytest

from sim.agents.log_replay import LogReplayAgents
from sim.categories import Category
from sim.errors import DataError
from tests.sim.agents.world import ego_states, scenario, tracks


def test_log_replay_reproduces_the_log() -> None:
    steps = 12
    valid = np.ones(steps, bool)
    valid[4:7] = False
    objs = tracks([
        {"token": "car", "pose": np.column_stack([np.arange(steps) * 0.5, np.zeros(steps), np.zeros(steps)]),
         "velocity": (5.0, 0.0)},
        {"token": "ped", "pose": (3.0, 4.0, 1.0), "category": Category.PEDESTRIAN, "valid": valid},
    ], steps)
    sc = scenario(ego_states(np.zeros((steps, 3))), objs)
    model = LogReplayAgents()
    model.reset(sc, None)
    for i in range(steps - 1):
        obs = model.observe()
        expected = objs.at(i)
        np.testing.assert_array_equal(obs.token, expected.token)
        np.testing.assert_array_equal(obs.pose, expected.pose)
        np.testing.assert_array_equal(obs.velocity, expected.velocity)
        assert obs.pose.shape[1] == 1
        model.advance(i, np.array([100.0, 100.0, 0.0]), 30.0, {})  # the ego has no influence
    assert list(model.observe().token) == ["car", "ped"]
    model.reset(sc, None, start_iteration=5)
    assert list(model.observe().token) == ["car"]
    with pytest.raises(DataError, match="start iteration"):
        model.reset(sc, None, start_iteration=steps)
