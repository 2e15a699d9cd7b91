import numpy as np
import pytest

from sim.errors import NotFoundError
from sim.nuplan_map.map_api import MapAPI
from tests.sim.map_fixtures import two_lane_junction_layers


@pytest.fixture(scope="module")
def town() -> MapAPI:
    return MapAPI.from_layers(two_lane_junction_layers())


def test_segments_and_graph(town: MapAPI) -> None:
    lane1 = town.segment_index(1, connector=False)
    conn11 = town.segment_index(11, connector=True)
    lane3 = town.segment_index(3, connector=False)
    assert list(town.successors(lane1)) == [conn11]
    assert list(town.successors(conn11)) == [lane3]
    assert list(town.predecessors(lane3)) == [conn11]
    assert town.seg_left[town.segment_index(2, False)] == lane1
    assert town.seg_right[lane1] == town.segment_index(2, False)
    assert town.seg_has_traffic_light[conn11] and not town.seg_has_traffic_light[town.segment_index(12, True)]
    assert len(town.connector_stop_lines(conn11)) == 1
    assert town.seg_length[lane1] == pytest.approx(50.0)
    assert np.isnan(town.seg_speed_limit[town.segment_index(4, False)])


def test_route_between_connects_roadblocks(town: MapAPI) -> None:
    assert town.route_between(100, 300) == (100, 200, 300)
    assert town.route_between(300, 100) is None
    assert town.roadblock_successors(100) == (200,)
    with pytest.raises(NotFoundError, match="999"):
        town.roadblock_index(999)


def test_point_queries(town: MapAPI) -> None:
    pts = np.array([[10.0, 1.0], [10.0, -1.0], [55.0, 1.0], [10.0, 10.0]])
    hits = town.segments_containing(pts)
    assert [town.seg_id[h].tolist() for h in hits] == [[1], [2], [11], []]
    assert town.is_drivable(pts).tolist() == [True, True, True, False]  # the junction is in "intersections"
    arc, lat = town.project(town.segment_index(1, False), np.array([[10.0, 2.75], [-5.0, 1.75], [60.0, 0.75]]))
    np.testing.assert_allclose(arc, [10.0, -5.0, 60.0])
    np.testing.assert_allclose(lat, [1.0, 0.0, -1.0])
    assert town.in_layer("crosswalks", np.array([[46.0, 0.0], [0.0, 0.0]])).tolist() == [0, -1]
    assert town.nearest_segment(np.array([10.0, 0.2, 0.0])) == town.segment_index(1, False)
    assert town.nearest_segment(np.array([10.0, -0.2, 0.0])) == town.segment_index(2, False)


def test_empty_map_compiles() -> None:
    from sim.nuplan_map.gpkg import empty_table
    from sim.nuplan_map.layers import LAYER_SCHEMA, MapLayers

    empty = MapAPI.from_layers(MapLayers("x", "1", "epsg:32611", {n: empty_table(n) for n in LAYER_SCHEMA}))
    assert len(empty.seg_id) == 0 and len(empty.rb_id) == 0
    assert not empty.is_drivable(np.zeros((1, 2)))[0]
