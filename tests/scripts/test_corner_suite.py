"""The corner-case suite separates the expert from nuPlan's IDM planner (tiny dataset, closed loop, both modes).

A regression guard for what the suite is for: on the families whose hazard is a scripted agent, the IDM planner
(which reacts only to what is already in its lane) fails and the expert does not, in CLS-NR and in CLS-R, where
the tagged agent stays on log replay. With ``replay_tagged=false`` (nuPlan's CLS-R) the red-light runner becomes
an IDM agent that stops for its light, and the IDM planner gets through.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scripts.cli import main

HAZARDS = ["corner_cut_in", "corner_hard_braking_lead", "corner_red_light_runner",
           "corner_stopped_vehicle_blocking_lane"]


def _evaluate(root: Path, out: Path, types: list[str], *extra: str) -> pd.DataFrame:
    assert main(["evaluate", f"data_root={root}", f"out={out}", f"cache_root={out.parent / 'cache'}",
                 "planners=[idm,pdm]", "worker=sequential", f"scenario_filter.scenario_types=[{','.join(types)}]",
                 "progress=false", "print_table=false", "report.html=false", *extra]) == 0
    return pd.read_parquet(out / "scenarios.parquet")


@pytest.mark.slow
def test_expert_beats_idm_on_scripted_hazards_in_both_modes(tiny_dataset: Path, tmp_path: Path) -> None:
    scores = _evaluate(tiny_dataset, tmp_path / "eval", HAZARDS)
    table = scores.pivot_table(index=["mode", "family"], columns="planner", values="score")
    assert len(table) == 2 * len(HAZARDS)
    assert (table["pdm"] >= 0.95).all(), table
    for mode in ("CLS-NR", "CLS-R"):
        assert table.loc[mode, "pdm"].mean() - table.loc[mode, "idm"].mean() > 0.3, table
    # the hazards the IDM planner cannot see coming: a hard-braking lead and a red-light runner
    for family in ("hard_braking_lead", "red_light_runner"):
        assert (table.xs(family, level="family")["idm"] < 0.5).all(), table


@pytest.mark.slow
def test_nuplan_cls_r_turns_the_runner_into_a_law_abiding_agent(tiny_dataset: Path, tmp_path: Path) -> None:
    scores = _evaluate(tiny_dataset, tmp_path / "eval", ["corner_red_light_runner"], "modes=[reactive]",
                       "replay_tagged=false")
    idm = scores[scores["planner"] == "idm"]["score"]
    assert len(idm) == 1 and idm.iloc[0] > 0.9
