"""The tiny synthetic dataset, read back through the project's readers: layout, splits, scenes, and that the
logged ego drives like a competent human in every scenario while the corner case really happens."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sim.nuplan_db.filter import ScenarioFilter
from sim.nuplan_db.reader import list_scenarios, load_scenario
from sim.nuplan_map.gpkg import read_gpkg
from sim.nuplan_map.maps_index import gpkg_path, read_maps_index
from sim.synth.checks import (
    LogView,
    agent_overlaps,
    comfort_violations,
    ego_collisions,
    ego_problems,
    off_drivable_frames,
    red_light_entries,
    speeding_samples,
)
from sim.synth.dataset import PRESETS, SPLITS_DIR, Job, _run, plan_jobs
from sim.synth.families import FAMILIES, corner_families, nominal_families
from sim.synth.layers import town_layers
from sim.synth.town import build_town


def _logs(root: Path) -> list[Path]:
    return sorted((root / SPLITS_DIR).glob("*/*.db"))


@pytest.fixture(scope="module")
def manifest(tiny_dataset: Path) -> dict:
    return json.loads((tiny_dataset / "manifest.json").read_text())


@pytest.fixture(scope="module")
def maps(tiny_dataset: Path) -> dict:
    index = read_maps_index(tiny_dataset / "maps")
    return {loc: read_gpkg(gpkg_path(tiny_dataset / "maps", loc, e.version)) for loc, e in index.items()}


@pytest.fixture(scope="module")
def scenarios(tiny_dataset: Path, manifest: dict) -> list[tuple[dict, LogView, str]]:
    """(manifest entry, view of the tagged scenario read back from the .db, map location) per log."""
    out = []
    by_name = {e["log_name"]: e for e in manifest["logs"]}
    types = tuple(sorted({f.tag for f in FAMILIES.values()}))
    for db in _logs(tiny_dataset):
        refs = list_scenarios(db, ScenarioFilter(scenario_types=types))
        assert len(refs) == 1, f"{db.name}: {len(refs)} tagged scenarios"
        with sqlite3.connect(db) as con:
            agent = con.execute("SELECT agent_track_token FROM scenario_tag").fetchone()[0]
        # nuPlan cuts mapped types 3 s before the tag for 15 s; our corner_* types are not in its mapping (which
        # would give 0 s / 20 s), so ask for the 15 s window explicitly.
        scenario = load_scenario(refs[0], offset_s=-3.0, duration_s=15.0)
        view = LogView.from_scenario(scenario, None if agent is None else bytes(agent).hex())
        out.append((by_name[db.stem], view, scenario.map_location))
    return out


def test_layout_and_family_counts(tiny_dataset: Path, manifest: dict) -> None:
    assert (tiny_dataset / "maps" / "nuplan-maps-v1.0.json").is_file()
    files = {p.stem: p.parent.name for p in _logs(tiny_dataset)}
    assert files == {e["log_name"]: e["split"] for e in manifest["logs"]}
    counts = manifest["family_counts"]
    assert set(counts) == {"train", "val", "corner_cases"}
    assert set(counts["corner_cases"]) == set(corner_families())  # every corner family in the eval suite
    preset = PRESETS["tiny"]
    for split, n in (("train", preset.n_train), ("val", preset.n_val)):
        assert sum(counts[split].values()) == n
        corner = sum(v for k, v in counts[split].items() if FAMILIES[k].corner)
        assert corner <= round(manifest["corner_case_share"] * n)  # dominated by nominal driving
    seeds = {s: {e["seed"] for e in manifest["logs"] if e["split"] == s} for s in counts}
    assert not seeds["corner_cases"] & (seeds["train"] | seeds["val"])


def test_plan_jobs_mix() -> None:
    jobs = plan_jobs(3, PRESETS["default"], corner_case_share=0.05)
    train = [j for j in jobs if j.split == "train"]
    share = np.mean([FAMILIES[j.family].corner for j in train])
    assert 0.03 <= share <= 0.07
    assert {j.family for j in train if not FAMILIES[j.family].corner} == set(nominal_families())
    corner = [j for j in jobs if j.split == "corner_cases"]
    assert len(corner) == PRESETS["default"].corner_seeds * len(corner_families())
    assert len({j.seed for j in jobs}) == len(jobs)


def test_ego_is_a_competent_driver(scenarios: list, maps: dict) -> None:
    failures = []
    for entry, view, location in scenarios:
        problems = ego_problems(view, maps[location])
        if problems:
            failures.append(f"{entry['log_name']}: {problems}")
    assert not failures, "\n".join(failures)


def test_corner_case_happens(scenarios: list, maps: dict) -> None:
    failures = []
    for entry, view, location in scenarios:
        why = FAMILIES[entry["family"]].check(view, maps[location])
        if why:
            failures.append(f"{entry['log_name']}: {why}")
    assert not failures, "\n".join(failures)


def test_family_checks_discriminate(scenarios: list, maps: dict) -> None:
    """A family's check fails on logs of other kinds: it tests the event, not just a well-formed log."""
    views = {e["family"]: (v, loc) for e, v, loc in scenarios}
    lane_follow = views.get("lane_follow") or views["following_lead"]
    for name in ("cut_in", "occluded_pedestrian", "red_light_runner", "construction_zone", "stopped_vehicle",
                 "hard_braking_lead"):
        view, loc = lane_follow
        assert FAMILIES[name].check(view, maps[loc]) is not None, name


def test_checks_catch_faults(scenarios: list, maps: dict) -> None:
    from dataclasses import replace

    entry, view, location = scenarios[0]
    layers = maps[location]
    # An object box on top of the ego at the tagged sample.
    tr = view.tracks
    pose = tr.pose.copy()
    valid = tr.valid.copy()
    pose[0, view.tag] = view.ego.center()[view.tag]
    valid[0, view.tag] = True
    assert ego_collisions(replace(view, tracks=replace(tr, pose=pose, valid=valid)))
    # The ego pushed 50 m sideways leaves the road.
    ego_pose = view.ego.pose.copy()
    ego_pose[:, 1] += 50.0
    assert len(off_drivable_frames(replace(view, ego=replace(view.ego, pose=ego_pose)), layers))
    # Twice as fast: above the speed limit somewhere.
    fast = replace(view.ego, velocity=view.ego.velocity * 2.0 + [5.0, 0.0])
    assert len(speeding_samples(replace(view, ego=fast), layers))
    # Two moving agents on top of each other.
    movers = np.flatnonzero(np.isin(tr.category, [0, 1, 2]))
    pose2, valid2 = tr.pose.copy(), tr.valid.copy()
    pose2[movers[1], view.tag] = pose2[movers[0], view.tag] = view.ego.center()[view.tag] + [0.0, 30.0, 0.0]
    valid2[movers[:2], view.tag] = True
    assert agent_overlaps(replace(view, tracks=replace(tr, pose=pose2, valid=valid2)))
    # A speed bump: +6 m/s² for 0.3 s is uncomfortable.
    acc = view.ego.acceleration.copy()
    acc[view.tag:view.tag + 3, 0] += 6.0
    assert "lon_acceleration" in comfort_violations(replace(view, ego=replace(view.ego, acceleration=acc)))


def test_red_light_check_fires(scenarios: list, maps: dict) -> None:
    """Lights forced red: an ego that crosses a stop line on its route is caught."""
    from dataclasses import replace

    crossed = 0
    for _, view, location in scenarios:
        red = replace(view.lights, status=np.full_like(view.lights.status, 2))
        crossed += bool(red_light_entries(replace(view, lights=red), maps[location]))
    assert crossed > 0


def test_scenes_hold_the_window(tiny_dataset: Path) -> None:
    for db in _logs(tiny_dataset):
        with sqlite3.connect(db) as con:
            scenes = con.execute("SELECT s.token, s.name, s.roadblock_ids, s.goal_ego_pose_token FROM scene s "
                                 "ORDER BY s.name").fetchall()
            bounds = [con.execute("SELECT MIN(timestamp), MAX(timestamp) FROM lidar_pc WHERE scene_token = ?",
                                  (s[0],)).fetchone() for s in scenes]
            tag_ts = con.execute("SELECT lp.timestamp FROM scenario_tag t JOIN lidar_pc lp "
                                 "ON lp.token = t.lidar_pc_token").fetchone()[0]
            first_ts = con.execute("SELECT MIN(timestamp) FROM lidar_pc").fetchone()[0]
        assert len(scenes) >= 5
        durations = [(b - a) * 1e-6 for a, b in bounds]
        assert all(7.5 < d < 20.5 for d in durations[:-1]), durations
        valid_start, valid_end = bounds[2][0], bounds[-3][1]
        assert valid_start <= tag_ts - 3_000_000 and tag_ts + 12_000_000 <= valid_end, db.name
        assert tag_ts - 3_000_000 - first_ts >= 2_000_000
        assert all(s[2] and s[3] is not None for s in scenes)


def test_routes_are_connected(tiny_dataset: Path, maps: dict, scenarios: list) -> None:
    for entry, view, location in scenarios:
        layers = maps[location].layers
        groups = set(layers["lane_groups_polygons"].fid.tolist())
        conns = layers["lane_group_connectors"]
        edges = {(int(a), int(c)) for a, c in zip(conns.columns["from_lane_group_fid"], conns.fid, strict=True)}
        edges |= {(int(c), int(b)) for c, b in zip(conns.fid, conns.columns["to_lane_group_fid"], strict=True)}
        route = view.route
        assert route and all(r in groups or r in set(conns.fid.tolist()) for r in route), entry["log_name"]
        assert all((a, b) in edges for a, b in zip(route[:-1], route[1:], strict=True)), entry["log_name"]


def test_same_seed_same_bytes(tiny_dataset: Path, manifest: dict, tmp_path: Path) -> None:
    entry = manifest["logs"][0]
    first = next(i for i, e in enumerate(manifest["logs"]) if e["log_name"] == entry["log_name"])
    job = next(j for j in plan_jobs(manifest["seed"], PRESETS["tiny"], manifest["corner_case_share"])
               if j.split == entry["split"] and j.seed == entry["seed"])
    assert isinstance(job, Job)
    _run(job, str(tmp_path), first)
    name = f"{job.log_name}.db"
    again = (tmp_path / SPLITS_DIR / job.split / name).read_bytes()
    assert again == (tiny_dataset / SPLITS_DIR / job.split / name).read_bytes()
    from sim.nuplan_map.gpkg import write_gpkg

    town = build_town(job.town_seed)
    write_gpkg(town_layers(town), tmp_path / "map.gpkg")
    original = gpkg_path(tiny_dataset / "maps", town.location, "1.0.0")
    assert (tmp_path / "map.gpkg").read_bytes() == original.read_bytes()


def test_background_traffic_does_not_crash(scenarios: list) -> None:
    """Agents (vehicles, cyclists, pedestrians) never overlap one another in the logged scenarios."""
    bad = [(entry["log_name"], pairs) for entry, view, _ in scenarios if (pairs := agent_overlaps(view))]
    assert not bad, bad
