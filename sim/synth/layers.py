"""Export a :class:`Town` as nuPlan map layers (:class:`MapLayers`, the in-memory form of ``map.gpkg``)."""

from __future__ import annotations

import numpy as np
import shapely

from sim.nuplan_map.layers import LAYER_SCHEMA, FeatureTable, MapLayers
from sim.synth.town import _FID_BASE, CRS, MAP_VERSION, Town

_MISSING = {"int": -1, "float": np.nan, "str": ""}
_DTYPE = {"int": np.int64, "float": np.float64, "str": object}
TRAFFIC_LIGHT_STOP = 2  # StopLineType.TRAFFIC_LIGHT


class _Rows:
    def __init__(self, name: str) -> None:
        self.name = name
        self.fid: list[int] = []
        self.geom: list[object] = []
        self.cols: dict[str, list] = {c: [] for c in LAYER_SCHEMA[name][1]}

    def add(self, fid: int, geom: object, **cols: object) -> None:
        self.fid.append(int(fid))
        self.geom.append(geom)
        kinds = LAYER_SCHEMA[self.name][1]
        for c, vals in self.cols.items():
            vals.append(cols.get(c, _MISSING[kinds[c]]))

    def table(self) -> FeatureTable:
        kinds = LAYER_SCHEMA[self.name][1]
        geom = np.empty(len(self.geom), dtype=object)
        geom[:] = self.geom
        return FeatureTable(np.array(self.fid, np.int64), geom,
                            {c: np.array(v, _DTYPE[kinds[c]]) for c, v in self.cols.items()})


def town_layers(town: Town) -> MapLayers:
    """All of nuPlan's vector layers for ``town`` (fids unique across layers)."""
    rows = {name: _Rows(name) for name in LAYER_SCHEMA}
    baseline_fid = _FID_BASE["baseline"]
    for seg in town.segments:
        line = shapely.LineString(seg.xy)
        if seg.is_connector:
            rows["lane_connectors"].add(
                seg.fid, line, exit_lane_fid=town.segments[seg.pred[0]].fid,
                entry_lane_fid=town.segments[seg.succ[0]].fid, lane_group_connector_fid=seg.roadblock,
                speed_limit_mps=seg.speed_limit,
                traffic_light_stop_line_fids=str(seg.stop_fid) if seg.phase >= 0 else "",
                intersection_fid=town.nodes[seg.node].fid)
            rows["gen_lane_connectors_scaled_width_polygons"].add(
                seg.fid, seg.polygon, lane_connector_fid=seg.fid, left_boundary_fid=seg.left_boundary,
                right_boundary_fid=seg.right_boundary)
            rows["baseline_paths"].add(baseline_fid, line, lane_connector_fid=seg.fid)
        else:
            rows["lanes_polygons"].add(seg.fid, seg.polygon, lane_fid=seg.fid, lane_group_fid=seg.roadblock,
                                       lane_index=seg.lane_index, left_boundary_fid=seg.left_boundary,
                                       right_boundary_fid=seg.right_boundary, speed_limit_mps=seg.speed_limit)
            rows["baseline_paths"].add(baseline_fid, line, lane_fid=seg.fid)
        baseline_fid += 1
    for rb in town.roadblocks.values():
        if rb.is_connector:
            rows["lane_group_connectors"].add(rb.fid, rb.polygon, from_lane_group_fid=rb.from_rb,
                                              to_lane_group_fid=rb.to_rb,
                                              intersection_fid=town.nodes[rb.node].fid)
        else:
            rows["lane_groups_polygons"].add(rb.fid, rb.polygon)
    for fid, line in town.boundaries.items():
        rows["boundaries"].add(fid, shapely.LineString(line))
    for node in town.nodes:
        if node.fid >= 0:
            rows["intersections"].add(node.fid, node.polygon)
    for cw in town.crosswalks:
        rows["crosswalks"].add(cw.fid, cw.polygon)
    for i, w in enumerate(town.walkways):
        rows["walkways"].add(_FID_BASE["walkway"] + i, w)
    for fid, poly in town.stop_polygons.items():
        rows["stop_polygons"].add(fid, poly, stop_polygon_type_fid=TRAFFIC_LIGHT_STOP)
    for i, poly in enumerate(town.carparks):
        rows["carpark_areas"].add(_FID_BASE["carpark"] + i, poly)
    for i, poly in enumerate(town.road_polygons):
        rows["road_segments"].add(_FID_BASE["road_segment"] + i, poly)
    layers = {name: r.table() for name, r in rows.items()}
    return MapLayers(location=town.location, version=MAP_VERSION, crs=CRS, layers=layers)


def drivable_area(layers: MapLayers) -> object:
    """Union of road segments, intersections, generic drivable areas and car parks (nuPlan's drivable area)."""
    parts = []
    for name in ("road_segments", "intersections", "generic_drivable_areas", "carpark_areas"):
        if name in layers.layers:
            parts += list(layers.layers[name].geometry)
    return shapely.union_all(parts)
