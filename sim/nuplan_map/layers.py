"""nuPlan's map GeoPackage as plain tables: the in-memory form that is written to and read from ``map.gpkg``.

The synthetic generator builds a :class:`MapLayers`; ``gpkg.write_gpkg`` writes it; ``gpkg.read_gpkg`` reads
any nuPlan ``map.gpkg`` (real or synthetic) back into the same form; ``MapAPI`` compiles it into arrays.
Layer and column names are nuPlan's (see ../shared/reference/nuplan.md §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

#: Layer name -> (geometry type, {column: type}) with type one of "int", "float", "str".
#: Every column that nuplan-devkit reads is listed; ``fid`` (the GPKG primary key) is implicit.
LAYER_SCHEMA: dict[str, tuple[str, dict[str, str]]] = {
    "lanes_polygons": ("POLYGON", {"lane_fid": "int", "lane_group_fid": "int", "lane_index": "int",
                                   "left_boundary_fid": "int", "right_boundary_fid": "int",
                                   "speed_limit_mps": "float"}),
    "lane_connectors": ("LINESTRING", {"exit_lane_fid": "int", "entry_lane_fid": "int",
                                       "lane_group_connector_fid": "int", "speed_limit_mps": "float",
                                       "traffic_light_stop_line_fids": "str", "intersection_fid": "int"}),
    "gen_lane_connectors_scaled_width_polygons": ("POLYGON", {"lane_connector_fid": "int",
                                                              "left_boundary_fid": "int",
                                                              "right_boundary_fid": "int"}),
    "lane_groups_polygons": ("POLYGON", {}),
    "lane_group_connectors": ("POLYGON", {"from_lane_group_fid": "int", "to_lane_group_fid": "int",
                                          "intersection_fid": "int"}),
    "baseline_paths": ("LINESTRING", {"lane_fid": "int", "lane_connector_fid": "int"}),
    "boundaries": ("LINESTRING", {}),
    "intersections": ("POLYGON", {}),
    "crosswalks": ("POLYGON", {}),
    "walkways": ("POLYGON", {}),
    "stop_polygons": ("POLYGON", {"stop_polygon_type_fid": "int"}),
    "carpark_areas": ("POLYGON", {}),
    "generic_drivable_areas": ("POLYGON", {}),
    "road_segments": ("POLYGON", {}),
}


@dataclass(frozen=True)
class FeatureTable:
    """One GeoPackage layer: ``fid`` ``(n,)`` int64, ``geometry`` ``(n,)`` shapely objects, and columns.

    ``columns`` maps a column name to an ``(n,)`` array: int64 (missing = -1), float64 (missing = NaN) or
    object of str (missing = "").
    """

    fid: npt.NDArray[np.int64]
    geometry: npt.NDArray[np.object_]
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.fid)


@dataclass(frozen=True)
class MapLayers:
    """All layers of one map location.

    ``crs`` is the ``projectedCoordSystem`` value of the ``meta`` table (a PROJ string such as
    ``+proj=utm +zone=11 +datum=WGS84 +units=m +no_defs``); coordinates are in that projected frame (metres).
    """

    location: str
    version: str
    crs: str
    layers: dict[str, FeatureTable]
