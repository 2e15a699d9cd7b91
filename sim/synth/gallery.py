"""One rendered scenario per family (``docs/families/<family>.png``): written to a log, read back, drawn."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import numpy as np

from sim.nuplan_db.filter import ScenarioFilter
from sim.nuplan_db.reader import list_scenarios, load_scenario
from sim.nuplan_db.writer import write_log
from sim.nuplan_map.map_api import MapAPI
from sim.render import RenderOptions, render_scenario
from sim.synth.families import FAMILIES
from sim.synth.generate import generate_log
from sim.synth.layers import town_layers
from sim.synth.town import build_town
from sim.trajectory import Trajectory

#: Seconds after the tag at which the event is easiest to see.
FOCUS_S = {"lane_follow": 0.0, "following_lead": 0.0, "red_light_stop": 0.0, "start_at_green": 2.0,
           "left_turn": 2.5, "right_turn": 2.0, "cut_in": 1.5, "hard_braking_lead": 1.5, "stopped_vehicle": 2.5,
           "construction_zone": 3.5, "occluded_pedestrian": 0.5, "unprotected_left": 0.0,
           "red_light_runner": 0.5, "dense_merge": 3.0}
CLOSE_UP = {"construction_zone": 28.0, "stopped_vehicle": 58.0}  # distance (m) to the tagged object
RADIUS = {"stopped_vehicle": 62.0, "dense_merge": 55.0}  # view radius (m) when not the default 45 m
WINDOW = (-3.0, 15.0)  # the scenario window: 3 s before the tag, 15 s long


def render_families(out_dir: str | Path, town_seed: int = 0, seed: int = 11,
                    families: list[str] | None = None) -> list[Path]:
    """Render one scenario of each family (the tagged agent's path drawn over the 15 s window)."""
    town = build_town(town_seed)
    layers = town_layers(town)
    api = MapAPI.from_layers(layers)
    out = []
    for name in families or list(FAMILIES):
        k = list(FAMILIES).index(name)  # the same picture whether all families or a few are rendered
        rec, _ = generate_log(name, seed + k, town, layers, f"gallery-{name}", k)
        with tempfile.TemporaryDirectory() as tmp:
            db = write_log(rec, Path(tmp) / f"gallery-{name}.db")
            ref = list_scenarios(db, ScenarioFilter(scenario_types=(FAMILIES[name].tag,)))[0]
            scenario = load_scenario(ref, offset_s=WINDOW[0], duration_s=WINDOW[1])
            with sqlite3.connect(db) as con:
                agent = con.execute("SELECT agent_track_token FROM scenario_tag").fetchone()[0]
        trajectories = {}
        tokens = [str(t) for t in scenario.tracks.token]
        if agent is not None and bytes(agent).hex() in tokens:
            j = tokens.index(bytes(agent).hex())
            ok = scenario.tracks.valid[j]
            if ok.sum() >= 2:
                trajectories["tagged agent"] = Trajectory(scenario.ego.time_s[ok], scenario.tracks.pose[j, ok])
        iteration = int(round((-WINDOW[0] + FOCUS_S.get(name, 0.0)) / 0.1))
        if name in CLOSE_UP and trajectories:
            # Static obstacles: show the ego approaching the tagged object, its swerve in the expert path.
            j = tokens.index(bytes(agent).hex())
            d = np.hypot(*(scenario.tracks.pose[j, :, :2] - scenario.ego.pose[:, :2]).T)
            after = np.arange(len(d)) >= scenario.index(30)
            k = np.flatnonzero(after & (np.nan_to_num(d, nan=1e9) < CLOSE_UP[name]))
            if len(k):
                iteration = int(k[0]) - scenario.history_steps
        path = Path(out_dir) / f"{name}.png"
        render_scenario(scenario, api, iteration, path, RenderOptions(radius=RADIUS.get(name, 45.0), size_px=800),
                        trajectories=trajectories)
        out.append(path)
    _write_index(Path(out_dir), list(FAMILIES))
    return out


def _write_index(out_dir: Path, names: list[str]) -> None:
    """``README.md`` next to the images: one line per family with its nuPlan scenario type."""
    lines = ["# Scenario families of the synthetic generator", "",
             "One rendered scenario per family (`python -m sim.synth.gallery docs/families`). The ego is blue, its",
             "logged future the dashed green line, the tagged agent's path over the 15 s window the brown line.", "",
             "| family | scenario_tag type | corner case | what happens |", "|---|---|---|---|"]
    for name in names:
        f = FAMILIES[name]
        lines.append(f"| [{name}]({name}.png) | `{f.tag}` | {'yes' if f.corner else 'no'} | {f.description} |")
    (out_dir / "README.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    import sys

    paths = render_families(sys.argv[1] if len(sys.argv) > 1 else "docs/families")
    print("\n".join(str(p) for p in paths))
