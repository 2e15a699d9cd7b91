"""The synthetic town's map layers: nuPlan's schema, ids, geometry that drivers and MapAPI can rely on."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from sim.nuplan_map.layers import LAYER_SCHEMA
from sim.synth.checks import drivable_area
from sim.synth.layers import town_layers
from sim.synth.town import build_town


@pytest.fixture(scope="module")
def town():
    return build_town(7)


@pytest.fixture(scope="module")
def layers(town):
    return town_layers(town)


def test_schema_and_unique_ids(layers) -> None:
    assert set(LAYER_SCHEMA) <= set(layers.layers)
    all_ids = []
    for name, (_, cols) in LAYER_SCHEMA.items():
        table = layers.layers[name]
        assert set(cols) <= set(table.columns), name
        assert len(np.unique(table.fid)) == len(table.fid), name
        for col in cols.values():
            assert col in ("int", "float", "str")
        if name not in ("gen_lane_connectors_scaled_width_polygons",):
            all_ids += table.fid.tolist()
    assert len(set(all_ids)) == len(all_ids)  # unique across layers too: a route id names one object
    assert "+proj=utm +zone=11" in layers.crs and layers.location == "synth-town-7"
    x0, y0 = layers.layers["lanes_polygons"].geometry[0].centroid.coords[0]
    assert 660_000 < x0 < 672_000 and 3_995_000 < y0 < 4_005_000


def test_baselines_dense_and_complete(layers) -> None:
    paths = layers.layers["baseline_paths"]
    lanes = set(layers.layers["lanes_polygons"].fid.tolist())
    conns = set(layers.layers["lane_connectors"].fid.tolist())
    assert set(paths.columns["lane_fid"].tolist()) - {-1} == lanes
    assert set(paths.columns["lane_connector_fid"].tolist()) - {-1} == conns
    for geom in paths.geometry:
        xy = shapely.get_coordinates(geom)
        step = np.hypot(*np.diff(xy, axis=0).T)
        assert step.max() <= 1.0 and step.min() > 0.05


def test_drivable_area_covers_lanes_and_connectors(layers) -> None:
    area = drivable_area(layers).buffer(0.05)
    for name in ("lanes_polygons", "gen_lane_connectors_scaled_width_polygons"):
        for poly in layers.layers[name].geometry:
            assert poly.difference(area).area < 0.05, name


def test_lane_index_and_neighbours(town) -> None:
    for seg in town.segments:
        if seg.is_connector or seg.right < 0:
            continue
        right = town.segments[seg.right]
        assert right.lane_index == seg.lane_index + 1
        # the right neighbour lies to the right of the travel direction
        h = seg.heading[len(seg.xy) // 2]
        d = right.xy[len(right.xy) // 2] - seg.xy[len(seg.xy) // 2]
        assert -np.sin(h) * d[0] + np.cos(h) * d[1] < -2.0


def test_signals_and_stop_lines(layers) -> None:
    conns = layers.layers["lane_connectors"]
    stops = layers.layers["stop_polygons"]
    stop_type = dict(zip(stops.fid.tolist(), stops.columns["stop_polygon_type_fid"].tolist(), strict=True))
    stop_geom = dict(zip(stops.fid.tolist(), stops.geometry, strict=True))
    signalled = 0
    for geom, text in zip(conns.geometry, conns.columns["traffic_light_stop_line_fids"], strict=True):
        if not text:
            continue
        signalled += 1
        for fid in map(int, text.split(",")):
            assert stop_type[fid] == 2  # TRAFFIC_LIGHT
            assert stop_geom[fid].intersects(geom)  # nuPlan picks the stop line that crosses the baseline
    assert signalled >= 20
    assert (conns.columns["intersection_fid"] >= 0).all()


def test_connector_turns_and_groups(town, layers) -> None:
    turns = {s.turn for s in town.segments if s.is_connector}
    assert {"straight", "left", "right", "merge"} <= turns
    groups = layers.layers["lane_group_connectors"]
    lane_groups = set(layers.layers["lane_groups_polygons"].fid.tolist())
    assert set(groups.columns["from_lane_group_fid"].tolist()) <= lane_groups
    assert set(groups.columns["to_lane_group_fid"].tolist()) <= lane_groups
    for seg in town.segments:  # curvature stays drivable
        limit = 0.25 if seg.is_connector else 0.02
        assert np.abs(seg.kappa).max() < limit


def test_same_seed_same_town() -> None:
    a, b = town_layers(build_town(3)), town_layers(build_town(3))
    for name in LAYER_SCHEMA:
        assert all(g1.equals_exact(g2, 0.0) for g1, g2 in zip(a.layers[name].geometry, b.layers[name].geometry,
                                                                strict=True))
    assert not town_layers(build_town(4)).layers["lanes_polygons"].geometry[0].equals(
        a.layers["lanes_polygons"].geometry[0])


def test_map_api_compiles(layers) -> None:
    map_api = pytest.importorskip("sim.nuplan_map.map_api")
    api = map_api.MapAPI.from_layers(layers)
    assert len(api.seg_id) == len(layers.layers["lanes_polygons"]) + len(layers.layers["lane_connectors"])
    lane_groups = layers.layers["lane_groups_polygons"].fid
    route = api.route_between(int(lane_groups[0]), int(lane_groups[0]))
    assert route is not None
