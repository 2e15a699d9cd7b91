"""GeoPackage round trip, determinism, GDAL compatibility and bad-input errors of sim.nuplan_map.gpkg."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.errors import DataError, NotFoundError, SchemaError
from sim.nuplan_map.crs import wgs84_to_utm
from sim.nuplan_map.gpkg import decode_geometries, encode_geometries, read_gpkg, write_gpkg
from sim.nuplan_map.layers import LAYER_SCHEMA, FeatureTable, MapLayers
from sim.nuplan_map.toy import junction_layers
from tests.sim.map_fixtures import two_lane_junction_layers
from tests.sim.nuplan_map.layer_asserts import assert_layers_equal


@pytest.fixture(scope="module")
def junction() -> MapLayers:
    return junction_layers()


@pytest.fixture()
def gpkg(junction: MapLayers, tmp_path: Path) -> Path:
    return write_gpkg(junction, tmp_path / junction.location / junction.version / "map.gpkg")


def _sql(path: Path, *statements: str) -> None:
    con = sqlite3.connect(path)
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()


def test_round_trip_junction(junction: MapLayers, gpkg: Path) -> None:
    back = read_gpkg(gpkg)  # location / version from the folder names
    assert set(back.layers) == set(LAYER_SCHEMA)
    assert_layers_equal(junction, back)
    # -1 foreign keys are stored as NULL, as nuPlan does for baseline paths of the other kind
    con = sqlite3.connect(gpkg)
    nulls = con.execute("SELECT count(*) FROM baseline_paths WHERE lane_fid IS NULL").fetchone()[0]
    assert nulls == int((junction.layers["baseline_paths"].columns["lane_fid"] == -1).sum()) > 0
    assert con.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47


def test_round_trip_fixture_with_proj_string_crs(tmp_path: Path) -> None:
    layers = two_lane_junction_layers()
    path = write_gpkg(layers, tmp_path / "map.gpkg")
    back = read_gpkg(path, location=layers.location, version=layers.version)
    assert_layers_equal(layers, back, sorted(LAYER_SCHEMA))
    con = sqlite3.connect(path)
    assert {r[0] for r in con.execute("SELECT srs_id FROM gpkg_geometry_columns")} == {32611}


def test_same_layers_give_identical_bytes(junction: MapLayers, tmp_path: Path) -> None:
    a = write_gpkg(junction, tmp_path / "a.gpkg").read_bytes()
    # another dict order and reversed rows: still the same file
    shuffled = {}
    for name in reversed(list(junction.layers)):
        t = junction.layers[name]
        shuffled[name] = FeatureTable(t.fid[::-1], t.geometry[::-1], {c: v[::-1] for c, v in t.columns.items()})
    b = write_gpkg(MapLayers(junction.location, junction.version, junction.crs, shuffled),
                   tmp_path / "b.gpkg").read_bytes()
    assert a == b
    assert write_gpkg(junction, tmp_path / "a.gpkg").read_bytes() == a  # overwrite is deterministic too


_coord = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
_points = st.lists(st.tuples(_coord, _coord), min_size=3, max_size=12)


@settings(max_examples=60, deadline=None)
@given(_points, st.sampled_from(["line", "polygon", "point", "multi", "empty"]))
def test_geometry_blob_round_trip(points: list[tuple[float, float]], kind: str) -> None:
    geom = {"line": lambda: shapely.LineString(points),
            "polygon": lambda: shapely.Polygon(points),
            "point": lambda: shapely.Point(points[0]),
            "multi": lambda: shapely.MultiLineString([points, points[::-1]]),
            "empty": lambda: shapely.Polygon()}[kind]()
    blobs = encode_geometries(np.array([geom, None], dtype=object), 32611)
    assert blobs[0][:2] == b"GP" and blobs[1] is None
    back = decode_geometries(blobs)
    assert back[1] is None
    assert shapely.equals_exact(back[0], geom, tolerance=0.0) or (geom.is_empty and back[0].is_empty)


@settings(max_examples=15, deadline=None)
@given(st.lists(_points, min_size=1, max_size=4))
def test_gpkg_file_round_trip_property(tmp_path_factory: pytest.TempPathFactory,
                                       lines: list[list[tuple[float, float]]]) -> None:
    geoms = np.array([shapely.LineString(p) for p in lines], dtype=object)
    fids = np.arange(1, len(geoms) + 1, dtype=np.int64)
    layers = MapLayers("loc", "1", "epsg:32611", {"boundaries": FeatureTable(fids, geoms, {})})
    path = write_gpkg(layers, tmp_path_factory.mktemp("prop") / "map.gpkg")
    back = read_gpkg(path).layers["boundaries"]
    assert back.fid.tolist() == fids.tolist()
    assert shapely.equals_exact(back.geometry, geoms, tolerance=0.0).all()


def test_gdal_reads_our_layers(junction: MapLayers, gpkg: Path) -> None:
    pyogrio = pytest.importorskip("pyogrio")
    listed = dict(pyogrio.list_layers(gpkg).tolist())
    assert set(LAYER_SCHEMA) | {"meta"} == set(listed)
    gdal_dtype = {"int": "int64", "float": "float64", "str": "object"}
    for name, (gtype, cols) in LAYER_SCHEMA.items():
        info = pyogrio.read_info(gpkg, layer=name)
        assert info["crs"] == "EPSG:32611", name
        assert info["fid_column"] == "fid" and info["geometry_type"].upper() == gtype, name
        assert list(info["fields"]) == list(cols), name
        assert list(info["dtypes"]) == [gdal_dtype[k] for k in cols.values()], name
        assert info["features"] == len(junction.layers[name]), name
    _, fids, wkb, fields = pyogrio.raw.read(gpkg, layer="lanes_polygons", return_fids=True)
    lanes = junction.layers["lanes_polygons"]
    assert fids.tolist() == lanes.fid.tolist()
    assert shapely.equals_exact(shapely.from_wkb(wkb), lanes.geometry, tolerance=0.0).all()
    assert fields[0].tolist() == lanes.columns["lane_fid"].tolist()
    meta = pyogrio.raw.read(gpkg, layer="meta")
    assert list(meta[0]["fields"]) == ["key", "value"]
    assert meta[3][0].tolist() == ["projectedCoordSystem"] and meta[3][1].tolist() == ["epsg:32611"]


def test_extra_layers_and_columns_are_ignored(junction: MapLayers, gpkg: Path) -> None:
    _sql(gpkg, "ALTER TABLE lanes_polygons ADD COLUMN creator_id INTEGER",
         "CREATE TABLE traffic_lights (fid INTEGER PRIMARY KEY, geom POINT, ori_mean_yaw REAL)")
    assert_layers_equal(junction, read_gpkg(gpkg))


def test_wgs84_layers_are_projected_to_the_meta_utm_zone(tmp_path: Path) -> None:
    lonlat = np.array([[-115.17, 36.11], [-115.16, 36.12]])
    layers = MapLayers("loc", "1", "epsg:4326", {"boundaries": FeatureTable(
        np.array([1]), np.array([shapely.LineString(lonlat)], dtype=object), {})})
    path = write_gpkg(layers, tmp_path / "map.gpkg")
    _sql(path, "UPDATE meta SET value = 'epsg:32611' WHERE key = 'projectedCoordSystem'")
    back = read_gpkg(path)
    np.testing.assert_allclose(shapely.get_coordinates(back.layers["boundaries"].geometry[0]),
                               wgs84_to_utm(lonlat, 32611))
    assert 600_000 < shapely.get_coordinates(back.layers["boundaries"].geometry[0])[0, 0] < 700_000


def _one_line_error(err: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and path.name in msg, msg
    for w in words:
        assert w in msg, msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        read_gpkg(tmp_path / "nowhere" / "map.gpkg")
    _one_line_error(err, tmp_path / "map.gpkg", "not found")


def test_missing_layer(gpkg: Path) -> None:
    _sql(gpkg, "DROP TABLE crosswalks", "DELETE FROM gpkg_geometry_columns WHERE table_name = 'crosswalks'",
         "DELETE FROM gpkg_contents WHERE table_name = 'crosswalks'")
    with pytest.raises(SchemaError) as err:
        read_gpkg(gpkg)
    _one_line_error(err, gpkg, "crosswalks", "missing layer")


def test_missing_column(gpkg: Path) -> None:
    _sql(gpkg, "ALTER TABLE lanes_polygons DROP COLUMN lane_index")
    with pytest.raises(SchemaError) as err:
        read_gpkg(gpkg)
    _one_line_error(err, gpkg, "lanes_polygons", "lane_index", "INTEGER")


def test_missing_meta_crs(gpkg: Path) -> None:
    _sql(gpkg, "DELETE FROM meta")
    with pytest.raises(SchemaError) as err:
        read_gpkg(gpkg)
    _one_line_error(err, gpkg, "projectedCoordSystem")


def test_bad_value_in_id_column(gpkg: Path) -> None:
    _sql(gpkg, "UPDATE lanes_polygons SET lane_group_fid = 'abc' WHERE fid = 100")
    with pytest.raises(SchemaError) as err:
        read_gpkg(gpkg)
    _one_line_error(err, gpkg, "lane_group_fid", "'abc'")


def test_bad_geometry_blob(gpkg: Path) -> None:
    _sql(gpkg, "UPDATE walkways SET geom = x'0102030405' WHERE fid = 900")
    with pytest.raises(DataError) as err:
        read_gpkg(gpkg)
    _one_line_error(err, gpkg, "walkways", "GeoPackage")


def test_truncated_file(gpkg: Path) -> None:
    data = gpkg.read_bytes()
    gpkg.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        read_gpkg(gpkg)
    _one_line_error(err, gpkg, "truncated")


@pytest.mark.parametrize("content", [b"", b"hello, not a database", b"SQLite format 3\x00" + b"\x00" * 10])
def test_not_a_sqlite_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "map.gpkg"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_gpkg(path)
    _one_line_error(err, path, "SQLite")


def test_sqlite_but_not_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "map.gpkg"
    _sql(path, "CREATE TABLE t (x INTEGER)", "INSERT INTO t VALUES (1)")
    with pytest.raises(DataError) as err:
        read_gpkg(path)
    _one_line_error(err, path, "not a GeoPackage")


def test_reads_a_gdal_written_geopackage(junction: MapLayers, tmp_path: Path) -> None:
    """Real nuPlan maps are GDAL-made (rtree indexes, gpkg_ogr_contents, -1 or NULL ids): we read those too."""
    pyogrio = pytest.importorskip("pyogrio")
    path = tmp_path / "loc" / "1.0" / "map.gpkg"
    path.parent.mkdir(parents=True)
    for name, (gtype, cols) in LAYER_SCHEMA.items():
        t = junction.layers[name]
        data = [t.fid] + [t.columns[c].astype(str) if k == "str" else t.columns[c] for c, k in cols.items()]
        pyogrio.raw.write(path, shapely.to_wkb(t.geometry), data, ["fid", *cols], layer=name, driver="GPKG",
                          crs="EPSG:32611", geometry_type={"POLYGON": "Polygon", "LINESTRING": "LineString"}[gtype],
                          append=path.exists())
    pyogrio.raw.write(path, None, [np.array(["geographicCoordSystem", "projectedCoordSystem"], dtype=object),
                                   np.array(["epsg:4326", "epsg:32611"], dtype=object)], ["key", "value"],
                      layer="meta", driver="GPKG", append=True, geometry_type=None)
    back = read_gpkg(path, location=junction.location, version=junction.version)
    assert_layers_equal(MapLayers(junction.location, junction.version, "epsg:32611", junction.layers), back)


def test_writer_rejects_incomplete_tables(junction: MapLayers, tmp_path: Path) -> None:
    lanes = junction.layers["lanes_polygons"]
    short = FeatureTable(lanes.fid, lanes.geometry[:-1], lanes.columns)
    with pytest.raises(SchemaError, match="lanes_polygons.*geometry has 15 rows, fid has 16"):
        write_gpkg(MapLayers("l", "v", "epsg:32611", {"lanes_polygons": short}), tmp_path / "map.gpkg")
    cols = {c: v for c, v in lanes.columns.items() if c != "lane_index"}
    with pytest.raises(SchemaError, match="column 'lane_index' missing"):
        write_gpkg(MapLayers("l", "v", "epsg:32611", {"lanes_polygons": FeatureTable(lanes.fid, lanes.geometry, cols)}),
                   tmp_path / "map.gpkg")
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
