"""A small dataset on disk in nuPlan's layout, built from the junction map: real .gpkg + real log .db files.

``write_junction_dataset(root)`` writes ``root/maps/nuplan-maps-v1.0.json``, ``root/maps/test-town/1.0/map.gpkg``
and ``root/nuplan-v1.1/splits/<split>/<log>.db`` (two logs, two tagged scenarios each: four scenarios of 15 s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim.categories import Category, TrafficLightStatus
from sim.nuplan_db.recording import LogRecording
from sim.nuplan_db.writer import write_log
from sim.nuplan_map.gpkg import write_gpkg
from sim.nuplan_map.maps_index import gpkg_path, register_map
from sim.scenario import EgoStates, Tracks, TrafficLights
from tests.sim.map_fixtures import two_lane_junction_layers

SPLIT = "corner_cases"


def junction_recording(log_name: str, speed: float, lead_gap: float, light: int, start_us: int) -> LogRecording:
    """A 20 s drive at 20 Hz along the left lane; a lead car, a parked car; tags at 5.0 s and 5.5 s."""
    f = 400
    dt = 0.05
    t = np.arange(f) * dt
    ts = start_us + np.arange(f, dtype=np.int64) * 50_000
    x = 2.0 + speed * t
    ego = EgoStates(ts * 1e-6, np.stack([x, np.full(f, 1.75), np.zeros(f)], -1),
                    np.tile([speed, 0.0], (f, 1)), np.zeros((f, 2)), np.zeros(f), np.zeros(f))
    lead = np.stack([x + 4.049 + lead_gap + 2.25, np.full(f, 1.75), np.zeros(f)], -1)
    parked = np.tile([30.0, -1.75, 0.0], (f, 1))
    cone = np.tile([95.0, -2.5, 0.0], (f, 1))
    tracks = Tracks(np.array(["a000000000000001", "a000000000000002", "a000000000000003"]),
                    np.array([Category.VEHICLE, Category.VEHICLE, Category.TRAFFIC_CONE], np.int8),
                    np.array([[4.5, 2.0, 1.6], [4.5, 2.0, 1.6], [0.5, 0.5, 0.8]]),
                    np.stack([lead, parked, cone]),
                    np.stack([np.tile([speed, 0.0], (f, 1)), np.zeros((f, 2)), np.zeros((f, 2))]),
                    np.ones((3, f), bool))
    lights = TrafficLights(np.array([11], np.int64), np.full((f, 1), light, np.int8))
    starts = np.arange(0, f, 40, dtype=np.int64)  # ten 2 s scenes; nuPlan keeps scenes 2..7
    route = (100, 200, 300)
    return LogRecording(
        log_name=log_name, map_location="test-town", vehicle_name="veh-00", date="2021-01-01",
        timestamp_us=ts, ego=ego, tracks=tracks, traffic_lights=lights, scene_start=starts,
        scene_roadblock_ids=tuple(route for _ in starts), scene_goal_frame=np.full(len(starts), f - 1, np.int64),
        tag_frame=np.array([100, 110], np.int64),
        tag_type=np.array(["following_lane_with_lead", "stopping_with_lead"]), tag_agent=np.array([0, 0], np.int64))


def write_junction_dataset(root: str | Path, split: str = SPLIT) -> Path:
    """Write the dataset under ``root`` (returns ``root``)."""
    root = Path(root)
    maps = root / "maps"
    gpkg = gpkg_path(maps, "test-town", "1.0")
    gpkg.parent.mkdir(parents=True, exist_ok=True)
    write_gpkg(two_lane_junction_layers(), gpkg)
    register_map(maps, "test-town", "1.0")
    logs = root / "nuplan-v1.1" / "splits" / split
    logs.mkdir(parents=True, exist_ok=True)
    write_log(junction_recording("2021.01.01.00.00.00_veh-00_00001_00002", 4.0, 20.0, TrafficLightStatus.GREEN,
                                 1_609_459_200_000_000), logs / "2021.01.01.00.00.00_veh-00_00001_00002.db")
    write_log(junction_recording("2021.01.01.01.00.00_veh-00_00003_00004", 3.0, 12.0, TrafficLightStatus.RED,
                                 1_609_462_800_000_000), logs / "2021.01.01.01.00.00_veh-00_00003_00004.db")
    return root
