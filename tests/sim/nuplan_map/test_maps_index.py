"""nuplan-maps-v1.0.json read / write and map.gpkg resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.errors import DataError, NotFoundError, SchemaError
from sim.nuplan_map.gpkg import read_gpkg
from sim.nuplan_map.maps_index import (
    DEVKIT_LOCATION_CRS,
    PLACEHOLDER_VERSION,
    MapEntry,
    add_devkit_placeholders,
    gpkg_path,
    read_maps_index,
    register_map,
    resolve_gpkg,
    scan_maps,
    write_maps_index,
)


def _touch_map(root: Path, location: str, version: str) -> Path:
    path = gpkg_path(root, location, version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_index_round_trip_and_devkit_shape(tmp_path: Path) -> None:
    layers = {"drivable_area": {"transform_matrix": [[10.0, 0, 0, 0], [0, -10.0, 0, 99], [0, 0, 1, 0], [0, 0, 0, 1]]}}
    register_map(tmp_path, "us-ma-boston", "9.12.1817")
    path = register_map(tmp_path, "sg-one-north", "9.17.1964", layers)
    raw = json.loads(path.read_text())
    assert path.name == "nuplan-maps-v1.0.json"
    assert raw["sg-one-north"]["version"] == "9.17.1964"  # what GPKGMapsDB.get_version reads
    assert raw["sg-one-north"]["layers"]["drivable_area"]["transform_matrix"][1][3] == 99
    entries = read_maps_index(tmp_path)
    assert entries["us-ma-boston"] == MapEntry("us-ma-boston", "9.12.1817", {})
    first = path.read_bytes()
    write_maps_index(tmp_path, reversed(list(entries.values())))
    assert path.read_bytes() == first  # deterministic whatever the order


def test_resolve_uses_index_version(tmp_path: Path) -> None:
    _touch_map(tmp_path, "sg-one-north", "1.0")
    expected = _touch_map(tmp_path, "sg-one-north", "2.0")
    register_map(tmp_path, "sg-one-north", "2.0")
    assert resolve_gpkg(tmp_path, "sg-one-north") == (expected, "2.0")
    assert resolve_gpkg(tmp_path, "sg-one-north", "1.0")[1] == "1.0"


def test_resolve_without_index_takes_newest_folder(tmp_path: Path) -> None:
    _touch_map(tmp_path, "loc", "9.9.1")
    _touch_map(tmp_path, "loc", "9.10.0")
    assert scan_maps(tmp_path) == {"loc": ["9.9.1", "9.10.0"]}
    assert resolve_gpkg(tmp_path, "loc")[1] == "9.10.0"


def test_unknown_location_lists_available(tmp_path: Path) -> None:
    _touch_map(tmp_path, "sg-one-north", "1.0")
    register_map(tmp_path, "sg-one-north", "1.0")
    with pytest.raises(NotFoundError) as err:
        resolve_gpkg(tmp_path, "mars-base")
    msg = str(err.value)
    assert "mars-base" in msg and "sg-one-north" in msg and "nuplan-maps-v1.0.json" in msg and "\n" not in msg


def test_unknown_version_lists_available(tmp_path: Path) -> None:
    _touch_map(tmp_path, "sg-one-north", "1.0")
    _touch_map(tmp_path, "sg-one-north", "1.1")
    with pytest.raises(NotFoundError) as err:
        resolve_gpkg(tmp_path, "sg-one-north", "7.7")
    msg = str(err.value)
    assert "7.7" in msg and "1.0, 1.1" in msg and "map.gpkg" in msg


def test_bad_index_files(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        read_maps_index(tmp_path)
    (tmp_path / "nuplan-maps-v1.0.json").write_text("{not json")
    with pytest.raises(DataError, match="nuplan-maps-v1.0.json.*not valid JSON"):
        read_maps_index(tmp_path)
    (tmp_path / "nuplan-maps-v1.0.json").write_text('{"loc": {"layers": {}}}')
    with pytest.raises(SchemaError, match="'loc' has no 'version'"):
        read_maps_index(tmp_path)
    with pytest.raises(NotFoundError, match="maps root not found"):
        resolve_gpkg(tmp_path / "absent", "loc")


def test_devkit_placeholders_fill_the_four_locations(tmp_path: Path) -> None:
    # nuplan-devkit's GPKGMapsDB opens all four nuPlan locations when built: a synthetic maps root must list them.
    _touch_map(tmp_path, "synth-town-0", "1.0.0")
    register_map(tmp_path, "synth-town-0", "1.0.0")
    register_map(tmp_path, "us-ma-boston", "9.12.1817")  # already there: left alone
    added = add_devkit_placeholders(tmp_path)
    assert added == ["sg-one-north", "us-nv-las-vegas-strip", "us-pa-pittsburgh-hazelwood"]
    entries = read_maps_index(tmp_path)
    assert set(entries) == set(DEVKIT_LOCATION_CRS) | {"synth-town-0"}
    assert entries["us-ma-boston"].version == "9.12.1817"
    path, version = resolve_gpkg(tmp_path, "sg-one-north")
    assert version == PLACEHOLDER_VERSION
    layers = read_gpkg(path)
    assert layers.crs == "epsg:32648" and layers.location == "sg-one-north"
    assert all(len(t) == 0 for t in layers.layers.values()) and "lane_connectors" in layers.layers
    assert add_devkit_placeholders(tmp_path) == []  # idempotent
