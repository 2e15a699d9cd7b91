"""Scenarios read back from the tiny synthetic dataset through the same readers users use."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely

from sim.layout import split_dbs
from sim.nuplan_db.reader import list_scenarios, load_scenario
from sim.nuplan_map.loader import load_map


@pytest.fixture(scope="module")
def corner_scenarios(tiny_dataset: Path):
    refs = [r for r in list_scenarios(split_dbs(tiny_dataset, "corner_cases")) if r.scenario_type != "unknown"]
    return [load_scenario(r) for r in refs]


def test_a_15_s_scenario_has_151_states_at_0_1_s(corner_scenarios) -> None:
    assert len(corner_scenarios) >= 8
    for sc in corner_scenarios:
        assert sc.num_iterations == 151
        np.testing.assert_allclose(np.diff(sc.expert.time_s), 0.1, atol=1e-3)
        assert sc.history_steps == 20 and len(sc.ego) == 171


def test_route_connects_and_goal_lies_on_it(corner_scenarios, tiny_dataset: Path, tmp_path: Path) -> None:
    for sc in corner_scenarios:
        town = load_map(tiny_dataset / "maps", sc.map_location, cache_root=tmp_path)
        route = sc.route_roadblock_ids
        assert len(route) >= 2, sc.scenario_type
        for a, b in zip(route[:-1], route[1:], strict=True):
            assert b in town.roadblock_successors(a), f"{sc.scenario_type}: {a} -> {b} not connected"
        goal = shapely.points(sc.mission_goal[:2])
        route_area = shapely.union_all([town.rb_polygon[town.roadblock_index(r)] for r in route])
        assert route_area.distance(goal) < 0.5, sc.scenario_type
        start = sc.expert.center()[0, :2]
        assert route_area.distance(shapely.points(start)) < 1.0
