"""Check a written synthetic dataset, read back through the readers users use.

``python -m sim.synth.verify DATA_ROOT``: for every log, the tagged 15 s scenario is loaded from the ``.db``
and its map from the ``.gpkg``; the logged ego must drive like a competent human (no collision, all corners on
the drivable area, no red-light entry, no speeding, within nuPlan's comfort bounds) and the family's corner case
must really happen. Prints one line per problem and a per-split summary; exit status 1 on any problem.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

from sim.nuplan_db.filter import ScenarioFilter
from sim.nuplan_db.reader import list_scenarios, load_scenario
from sim.nuplan_map.gpkg import read_gpkg
from sim.nuplan_map.maps_index import gpkg_path, read_maps_index
from sim.synth.checks import LogView, ego_problems
from sim.synth.dataset import SPLITS_DIR
from sim.synth.families import FAMILIES


def verify_dataset(root: Path) -> tuple[Counter, list[str]]:
    """``(logs checked per split, problems)`` of the dataset at ``root``."""
    manifest = json.loads((root / "manifest.json").read_text())
    by_name = {e["log_name"]: e for e in manifest["logs"]}
    index = read_maps_index(root / "maps")
    maps = {loc: read_gpkg(gpkg_path(root / "maps", loc, e.version)) for loc, e in index.items()
            if loc.startswith("synth-")}
    types = tuple(sorted({f.tag for f in FAMILIES.values()}))
    checked: Counter = Counter()
    problems: list[str] = []
    for db in sorted((root / SPLITS_DIR).glob("*/*.db")):
        entry = by_name[db.stem]
        refs = list_scenarios(db, ScenarioFilter(scenario_types=types))
        if len(refs) != 1:
            problems.append(f"{db.name}: {len(refs)} tagged scenarios (expected 1)")
            continue
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            agent = con.execute("SELECT agent_track_token FROM scenario_tag").fetchone()[0]
        scenario = load_scenario(refs[0])
        view = LogView.from_scenario(scenario, None if agent is None else bytes(agent).hex())
        layers = maps[scenario.map_location]
        found = ego_problems(view, layers)
        why = FAMILIES[entry["family"]].check(view, layers)
        problems += [f"{db.name}: {p}" for p in ([found] if found else []) + ([why] if why else [])]
        checked[db.parent.name] += 1
    return checked, problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m sim.synth.verify DATA_ROOT", file=sys.stderr)
        return 2
    checked, problems = verify_dataset(Path(args[0]))
    for p in problems:
        print(p)
    summary = ", ".join(f"{split} {n}" for split, n in sorted(checked.items()))
    print(f"checked {sum(checked.values())} logs ({summary}): {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
