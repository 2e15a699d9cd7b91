"""Rendering a scenario on the toy junction map: a real PNG with the expected content, and RGB frames."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from sim.categories import Category, TrafficLightStatus
from sim.nuplan_map.map_api import MapAPI
from sim.nuplan_map.toy import DEFAULT_ORIGIN, junction_layers
from sim.render import LIGHT_COLORS, RenderOptions, render_frames, render_scenario, save_animation
from sim.scenario import EgoStates, Scenario, Tracks, TrafficLights
from sim.trajectory import Trajectory

T = 171  # 20 history + 151 iterations at 0.1 s


@pytest.fixture(scope="module")
def town() -> MapAPI:
    return MapAPI.from_layers(junction_layers())


@pytest.fixture(scope="module")
def scenario(town: MapAPI) -> Scenario:
    o = np.asarray(DEFAULT_ORIGIN)
    t = np.arange(T) * 0.1
    # ego drives west on the inbound lane of the east arm (y = +1.75), straight through the junction
    x = o[0] + 55.0 - 8.0 * t
    pose = np.column_stack([x, np.full(T, o[1] + 1.75), np.full(T, np.pi)])
    ego = EgoStates(t + 1000.0, pose, np.column_stack([np.full(T, 8.0), np.zeros(T)]), np.zeros((T, 2)),
                    np.zeros(T), np.zeros(T))
    agent_pose = np.stack([
        np.column_stack([x - 15.0, np.full(T, o[1] + 1.75), np.full(T, np.pi)]),  # lead vehicle
        np.column_stack([np.full(T, o[0] + 12.5), o[1] - 5.0 + 0.8 * t, np.full(T, np.pi / 2)]),  # pedestrian
        np.column_stack([np.full(T, o[0] + 30.0), np.full(T, o[1] + 6.0), np.zeros(T)]),  # cone
    ])
    tracks = Tracks(np.array(["a1b2c3d4e5f60718", "ffee000011112222", "0123456789abcdef"]),
                    np.array([Category.VEHICLE, Category.PEDESTRIAN, Category.TRAFFIC_CONE], np.int8),
                    np.array([[4.8, 2.0, 1.6], [0.6, 0.6, 1.8], [0.4, 0.4, 0.7]]), agent_pose,
                    np.zeros((3, T, 2)), np.ones((3, T), bool))
    lit = town.seg_id[town.seg_has_traffic_light][:3]
    status = np.tile(np.array([TrafficLightStatus.GREEN, TrafficLightStatus.RED, TrafficLightStatus.YELLOW],
                              np.int8), (T, 1))
    route = town.route_between(200, 205)
    assert route is not None
    return Scenario("deadbeefcafef00d", "2021.01.01.00.00.00_veh-00_00000_00100", "us-nv-las-vegas-strip",
                    "starting_straight_traffic_light_intersection_traversal", (t * 1e6).astype(np.int64) + 10**9,
                    ego, tracks, TrafficLights(lit.astype(np.int64), status), route, pose[-1].copy())


def _has_color(img: np.ndarray, hex_color: str, min_pixels: int = 20) -> bool:
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(img.astype(int) - rgb).sum(-1) < 40).sum()) >= min_pixels


def test_render_scenario_png(scenario: Scenario, town: MapAPI, tmp_path: Path) -> None:
    plan = Trajectory(scenario.ego.time_s[40:121], scenario.ego.pose[40:121] + [0.0, 0.5, 0.0])
    path = render_scenario(scenario, town, 20, tmp_path / "frame.png", trajectories={"plan": plan})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = iio.imread(path)[..., :3]
    assert img.shape == (800, 800, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 50  # not a blank canvas
    assert img.std() > 10
    # traffic lights (green, red, yellow connectors), the ego box and the plan are all visible
    for color in (*LIGHT_COLORS.values(), "#1f77b4", "#d62728"):
        assert _has_color(img, color), color


def test_render_frames_follow_the_ego(scenario: Scenario, town: MapAPI, tmp_path: Path) -> None:
    frames = render_frames(scenario, town, [0, 50, 100], RenderOptions(radius=40.0, size_px=300))
    assert len(frames) == 3 and all(f.shape == (300, 300, 3) and f.dtype == np.uint8 for f in frames)
    assert not np.array_equal(frames[0], frames[1])
    closed_loop = render_frames(scenario, town, [0], RenderOptions(size_px=300),
                                ego_poses=scenario.ego.pose[[scenario.index(0)]] + [0.0, -3.5, 0.0])
    assert not np.array_equal(closed_loop[0], render_frames(scenario, town, [0], RenderOptions(size_px=300))[0])
    gif = save_animation(frames, tmp_path / "anim.gif", fps=5)
    assert iio.imread(gif).shape == (3, 300, 300, 3)
