"""A small hand-built nuPlan map for unit tests: a straight two-lane road, a junction and a right turn.

Layout (metres): roadblock 100 = two eastbound lanes from x=0 to x=50 (lane 1: y in [0, 3.5] left, index 0;
lane 2: y in [-3.5, 0], index 1); intersection x in [50, 60]; roadblock 300 = two eastbound lanes x=60..110;
connectors 11 (1 -> 3) and 12 (2 -> 4) straight through the junction in roadblock connector 200 with a
traffic light on connector 11; a crosswalk at x in [45, 50]; a walkway along y in [3.5, 6].
"""

from __future__ import annotations

import numpy as np
import shapely

from sim.nuplan_map.layers import FeatureTable, MapLayers


def _table(fids, geoms, **cols) -> FeatureTable:
    return FeatureTable(np.asarray(fids, np.int64), np.array(geoms, dtype=object),
                        {k: np.asarray(v) for k, v in cols.items()})


def two_lane_junction_layers() -> MapLayers:
    lane_polys = [shapely.box(0, 0, 50, 3.5), shapely.box(0, -3.5, 50, 0),
                  shapely.box(60, 0, 110, 3.5), shapely.box(60, -3.5, 110, 0)]
    lane_lines = [shapely.LineString([(x, 1.75) for x in np.linspace(0, 50, 51)]),
                  shapely.LineString([(x, -1.75) for x in np.linspace(0, 50, 51)]),
                  shapely.LineString([(x, 1.75) for x in np.linspace(60, 110, 51)]),
                  shapely.LineString([(x, -1.75) for x in np.linspace(60, 110, 51)])]
    conn_lines = [shapely.LineString([(x, 1.75) for x in np.linspace(50, 60, 11)]),
                  shapely.LineString([(x, -1.75) for x in np.linspace(50, 60, 11)])]
    conn_polys = [shapely.box(50, 0, 60, 3.5), shapely.box(50, -3.5, 60, 0)]
    layers = {
        "lanes_polygons": _table([1, 2, 3, 4], lane_polys, lane_fid=[1, 2, 3, 4], lane_group_fid=[100, 100, 300, 300],
                                 lane_index=[0, 1, 0, 1], left_boundary_fid=[-1] * 4, right_boundary_fid=[-1] * 4,
                                 speed_limit_mps=[15.0, 15.0, 10.0, np.nan]),
        "lane_connectors": _table([11, 12], conn_lines, exit_lane_fid=[1, 2], entry_lane_fid=[3, 4],
                                  lane_group_connector_fid=[200, 200], speed_limit_mps=[12.0, 12.0],
                                  traffic_light_stop_line_fids=np.array(["21", ""], dtype=object),
                                  intersection_fid=[500, 500]),
        "gen_lane_connectors_scaled_width_polygons": _table([1, 2], conn_polys, lane_connector_fid=[11, 12],
                                                            left_boundary_fid=[-1, -1], right_boundary_fid=[-1, -1]),
        "lane_groups_polygons": _table([100, 300], [shapely.box(0, -3.5, 50, 3.5), shapely.box(60, -3.5, 110, 3.5)]),
        "lane_group_connectors": _table([200], [shapely.box(50, -3.5, 60, 3.5)], from_lane_group_fid=[100],
                                        to_lane_group_fid=[300], intersection_fid=[500]),
        "baseline_paths": _table([1, 2, 3, 4, 5, 6], lane_lines + conn_lines, lane_fid=[1, 2, 3, 4, -1, -1],
                                 lane_connector_fid=[-1, -1, -1, -1, 11, 12]),
        "boundaries": _table([], []),
        "intersections": _table([500], [shapely.box(50, -3.5, 60, 3.5)]),
        "crosswalks": _table([600], [shapely.box(45, -3.5, 50, 3.5)]),
        "walkways": _table([700], [shapely.box(0, 3.5, 110, 6.0)]),
        "stop_polygons": _table([21], [shapely.box(49, 0, 50, 3.5)], stop_polygon_type_fid=[2]),
        "carpark_areas": _table([], []),
        "generic_drivable_areas": _table([], []),
        "road_segments": _table([800, 801], [shapely.box(0, -3.5, 50, 3.5), shapely.box(60, -3.5, 110, 3.5)]),
    }
    return MapLayers("test-town", "1.0", "+proj=utm +zone=11 +datum=WGS84 +units=m +no_defs", layers)
