"""Read and write nuPlan map GeoPackages (``map.gpkg``) with the standard ``sqlite3`` module, no GDAL.

A GeoPackage is a SQLite file with three registry tables (``gpkg_spatial_ref_sys``, ``gpkg_contents``,
``gpkg_geometry_columns``), ``PRAGMA application_id = 'GPKG'`` and one table per layer whose geometry column
holds a GeoPackage binary blob: an 8-byte header (magic ``GP``, version, flags, srs id), an optional envelope,
then ISO WKB.

Facts mirrored from nuplan-devkit (``gpkg_mapsdb.py``, ``nuplan_map/*.py``) so that devkit loads our files:
- every layer is read with pyogrio, then reprojected to the CRS named by the non-spatial ``meta`` table's row
  ``key = 'projectedCoordSystem'`` (column ``value``; real maps say e.g. ``epsg:32611``), so layers carry a real
  CRS (here the same UTM zone: the reprojection is the identity);
- ids are the GPKG ``fid``; foreign keys (``lane_group_fid`` ...) are integer columns compared through
  ``int()`` casts; ``lane_index`` is an integer, ``speed_limit_mps`` a float (NULL = unknown),
  ``traffic_light_stop_line_fids`` a comma-separated string (empty = no signal);
- a foreign key that does not apply is NULL (e.g. ``baseline_paths.lane_fid`` on connector rows).
  In memory (:class:`FeatureTable`) missing ints are -1, floats NaN, strings ``""``.
- all layers of ``LAYER_SCHEMA`` must exist, even empty (the devkit's drivable area concatenates four).

Writing is deterministic: tables in name order, rows in fid order, a fixed ``last_change`` stamp.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely

from sim.errors import DataError, NotFoundError, SchemaError
from sim.nuplan_map.crs import WGS84_EPSG, epsg_of, srs_name, utm_zone, wgs84_to_utm, wkt_of
from sim.nuplan_map.layers import LAYER_SCHEMA, FeatureTable, MapLayers

GPKG_APPLICATION_ID = 0x47504B47  # 'GPKG'
GPKG_USER_VERSION = 10200  # GeoPackage 1.2
#: Older GeoPackages used 'GP10' / 'GP11' as application id.
_ACCEPTED_APPLICATION_IDS = {GPKG_APPLICATION_ID, 0x47503130, 0x47503131}
#: Fixed so that the same map gives the same bytes (GDAL stamps the current time unless told otherwise).
LAST_CHANGE = "2000-01-01T00:00:00.000Z"
GEOMETRY_COLUMN = "geom"
META_TABLE = "meta"
CRS_KEY = "projectedCoordSystem"

_SQL_TYPE = {"int": "INTEGER", "float": "REAL", "str": "TEXT"}
#: Bytes of envelope for each envelope-contents indicator of the GeoPackage binary header (flags bits 1-3).
_ENVELOPE_BYTES = (0, 32, 48, 48, 64)
_HEADER = np.dtype([("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs_id", "<i4"), ("env", "<f8", (4,))])
_FLAG_LITTLE_ENDIAN = 0x01
_FLAG_ENVELOPE_XY = 0x02  # indicator 1 in bits 1-3
_FLAG_EMPTY = 0x10
_FLAG_EXTENDED = 0x20

_REGISTRY_DDL = (
    """CREATE TABLE gpkg_spatial_ref_sys (srs_name TEXT NOT NULL, srs_id INTEGER NOT NULL PRIMARY KEY,
    organization TEXT NOT NULL, organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL,
    description TEXT)""",
    """CREATE TABLE gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL,
    identifier TEXT UNIQUE, description TEXT DEFAULT '',
    last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
    CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE gpkg_geometry_columns (table_name TEXT NOT NULL, column_name TEXT NOT NULL,
    geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
    CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
    CONSTRAINT uk_gc_table_name UNIQUE (table_name),
    CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
    CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
)
#: The three SRS rows every GeoPackage must hold.
_REQUIRED_SRS = (
    ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
    (srs_name(WGS84_EPSG), WGS84_EPSG, "EPSG", WGS84_EPSG, wkt_of(WGS84_EPSG), "longitude/latitude"),
)


# ----------------------------------------------------------------------------------------------- geometry
def encode_geometries(geometries: npt.ArrayLike, srs_id: int) -> list[bytes | None]:
    """GeoPackage binary blobs (header + XY envelope + ISO WKB, little endian) for ``(n,)`` shapely objects.

    ``None`` gives ``None`` (SQL NULL); empty geometries get the empty flag and no envelope.
    """
    geoms = np.asarray(geometries, dtype=object).reshape(-1)
    n = len(geoms)
    if n == 0:
        return []
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso")
    bounds = shapely.bounds(geoms)  # (n, 4) minx, miny, maxx, maxy; NaN for None / empty
    empty = shapely.is_empty(geoms) | shapely.is_missing(geoms)
    header = np.zeros(n, dtype=_HEADER)
    header["magic"] = b"GP"
    header["flags"] = np.where(empty, _FLAG_LITTLE_ENDIAN | _FLAG_EMPTY, _FLAG_LITTLE_ENDIAN | _FLAG_ENVELOPE_XY)
    header["srs_id"] = srs_id
    header["env"] = bounds[:, [0, 2, 1, 3]]  # the envelope is minx, maxx, miny, maxy
    raw = header.tobytes()
    size = _HEADER.itemsize
    ends = np.where(empty, 8, size) + np.arange(n) * size
    return [None if w is None else raw[i * size:e] + w for i, (w, e) in enumerate(zip(wkb, ends, strict=True))]


def decode_geometries(blobs: list[bytes | None], path: str | Path = "<blobs>",
                      layer: str = "?") -> npt.NDArray[np.object_]:
    """Shapely geometries ``(n,)`` (2D; ``None`` for NULL) from GeoPackage binary blobs.

    Raises :class:`DataError` naming ``path`` and ``layer`` for a blob that is not GeoPackage binary.
    """
    if not blobs:
        return np.zeros(0, dtype=object)
    try:
        bad = [i for i, b in enumerate(blobs) if b is not None and (b[:2] != b"GP" or b[3] & _FLAG_EXTENDED)]
    except TypeError:
        bad = [i for i, b in enumerate(blobs) if b is not None and not isinstance(b, bytes)]
    if bad:
        raise DataError(path, f"layer '{layer}' row {bad[0]}: geometry is not a GeoPackage binary blob",
                        "standard GeoPackage geometry (magic 'GP')")
    try:
        wkb = [None if b is None else b[8 + _ENVELOPE_BYTES[(b[3] >> 1) & 7]:] for b in blobs]
        geoms = shapely.from_wkb(np.array(wkb, dtype=object))
    except (IndexError, shapely.errors.GEOSException) as err:
        raise DataError(path, f"layer '{layer}': unreadable geometry ({err})".replace("\n", " "),
                        "GeoPackage binary with ISO WKB") from None
    has_z = shapely.has_z(geoms)
    if has_z.any():
        geoms[has_z] = shapely.force_2d(geoms[has_z])
    return geoms


# ----------------------------------------------------------------------------------------------- write
def _geometry_type(name: str, geoms: npt.NDArray[np.object_]) -> str:
    declared = LAYER_SCHEMA[name][0] if name in LAYER_SCHEMA else "GEOMETRY"
    present = {t for t in shapely.get_type_id(geoms[~shapely.is_missing(geoms)]).tolist()}
    type_ids = {"POINT": 0, "LINESTRING": 1, "POLYGON": 3}
    if declared in type_ids and present - {type_ids[declared]}:
        return "GEOMETRY"  # mixed types (e.g. a MultiPolygon in a polygon layer): GDAL accepts GEOMETRY
    return declared


def _column_kind(values: np.ndarray) -> str:
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        return "int"
    if np.issubdtype(values.dtype, np.floating):
        return "float"
    return "str"


def _sql_values(values: np.ndarray, kind: str) -> list:
    """Python values for sqlite: -1 ints and NaN floats become NULL (nuPlan's 'does not apply')."""
    if kind == "int":
        v = values.astype(np.int64)
        return [None if x == -1 else x for x in v.tolist()]
    if kind == "float":
        v = values.astype(np.float64)
        return [None if x != x else x for x in v.tolist()]
    return ["" if x is None else str(x) for x in values.tolist()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_gpkg(layers: MapLayers, path: str | Path) -> Path:
    """Write ``layers`` as a GeoPackage at ``path`` (atomically: a temporary file, then a rename).

    Every layer of ``LAYER_SCHEMA`` is written (empty if absent from ``layers``), then any other layer of
    ``layers``; schema columns come first in schema order, then extra columns in name order. Geometries are
    stored in the CRS named by ``layers.crs`` (its EPSG code when it names one, else undefined Cartesian).
    Raises :class:`SchemaError` if a table lacks a schema column or has columns of the wrong length.
    """
    path = Path(path)
    epsg = epsg_of(layers.crs)
    wkt = wkt_of(epsg) if epsg is not None else None
    srs_id = epsg if epsg is not None else -1
    names = sorted(set(LAYER_SCHEMA) | set(layers.layers))

    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(tmp, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
        con.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
        con.execute("BEGIN")
        for ddl in _REGISTRY_DDL:
            con.execute(ddl)
        srs_rows = list(_REQUIRED_SRS)
        if epsg is not None and epsg != WGS84_EPSG:
            # Unknown EPSG codes keep their code (GDAL resolves it from its own database).
            srs_rows.append((srs_name(epsg), epsg, "EPSG", epsg, wkt or "undefined", layers.crs))
        con.executemany("INSERT INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", srs_rows)
        for name in names:
            table = layers.layers.get(name)
            if table is None:
                table = empty_table(name)
            _write_layer(con, path, name, table, srs_id)
        _write_meta(con, layers.crs)
        con.execute("COMMIT")
    except BaseException:
        con.close()
        tmp.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(tmp, path)
    return path


def _write_layer(con: sqlite3.Connection, path: Path, name: str, table: FeatureTable, srs_id: int) -> None:
    n = len(table.fid)
    schema_cols = LAYER_SCHEMA.get(name, ("GEOMETRY", {}))[1]
    for col in schema_cols:
        if col not in table.columns:
            raise SchemaError(path, f"cannot write layer '{name}': column '{col}' missing from the MapLayers",
                              f"all columns of LAYER_SCHEMA['{name}']")
    cols = list(schema_cols) + sorted(c for c in table.columns if c not in schema_cols)
    kinds = [schema_cols.get(c) or _column_kind(np.asarray(table.columns[c])) for c in cols]
    for c, values in [("geometry", table.geometry)] + [(c, table.columns[c]) for c in cols]:
        if len(values) != n:
            raise SchemaError(path, f"cannot write layer '{name}': {c} has {len(values)} rows, fid has {n}",
                              "equal lengths")
    order = np.argsort(np.asarray(table.fid, dtype=np.int64), kind="stable")
    fid = np.asarray(table.fid, dtype=np.int64)[order]
    geoms = np.asarray(table.geometry, dtype=object).reshape(-1)[order]
    gtype = _geometry_type(name, geoms)

    col_ddl = "".join(f", {_quote(c)} {_SQL_TYPE[k]}" for c, k in zip(cols, kinds, strict=True))
    con.execute(f"CREATE TABLE {_quote(name)} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, "
                f"{GEOMETRY_COLUMN} {gtype}{col_ddl})")
    bounds = shapely.total_bounds(geoms) if n else np.full(4, np.nan)
    extent = [None if not np.isfinite(b) else float(b) for b in bounds]
    con.execute("INSERT INTO gpkg_contents VALUES (?, 'features', ?, '', ?, ?, ?, ?, ?, ?)",
                (name, name, LAST_CHANGE, *extent, srs_id))
    con.execute("INSERT INTO gpkg_geometry_columns VALUES (?, ?, ?, ?, 0, 0)", (name, GEOMETRY_COLUMN, gtype, srs_id))
    if n == 0:
        return
    blobs = encode_geometries(geoms, srs_id)
    columns = [_sql_values(np.asarray(table.columns[c])[order], k) for c, k in zip(cols, kinds, strict=True)]
    placeholders = ", ".join("?" * (2 + len(cols)))
    con.executemany(f"INSERT INTO {_quote(name)} VALUES ({placeholders})",
                    zip(fid.tolist(), blobs, *columns, strict=True))


def empty_table(name: str) -> FeatureTable:
    """A layer with no rows and the schema's columns (typed: int64, float64, object)."""
    dtypes = {"int": np.int64, "float": np.float64, "str": object}
    cols = LAYER_SCHEMA.get(name, ("GEOMETRY", {}))[1]
    return FeatureTable(np.zeros(0, np.int64), np.zeros(0, object),
                        {c: np.zeros(0, dtypes[k]) for c, k in cols.items()})


def _write_meta(con: sqlite3.Connection, crs: str) -> None:
    con.execute(f"CREATE TABLE {META_TABLE} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, key TEXT, value TEXT)")
    con.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, last_change) "
                "VALUES (?, 'attributes', ?, '', ?)", (META_TABLE, META_TABLE, LAST_CHANGE))
    con.execute(f"INSERT INTO {META_TABLE} (key, value) VALUES (?, ?)", (CRS_KEY, crs))


# ----------------------------------------------------------------------------------------------- read
def check_sqlite_file(path: Path) -> None:
    """Raise :class:`NotFoundError` / :class:`DataError` unless ``path`` is a complete SQLite database file."""
    if not path.is_file():
        raise NotFoundError(path, "file not found", "a nuPlan map GeoPackage (map.gpkg)")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        raise DataError(path, f"not a SQLite file ({size} bytes, header {head[:16]!r})",
                        "a GeoPackage (SQLite 3 database)")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, page_count, valid_for = (struct.unpack(">I", head[o:o + 4])[0] for o in (24, 28, 92))
    # The in-header page count is authoritative only when 'version-valid-for' matches the change counter.
    if page_count and valid_for == change_counter and size < page_size * page_count:
        raise DataError(path, f"truncated file: {size} bytes", f"{page_size * page_count} bytes "
                        f"({page_count} pages of {page_size})")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def read_gpkg(path: str | Path, location: str | None = None, version: str | None = None) -> MapLayers:
    """Read the layers of ``LAYER_SCHEMA`` (their schema columns only) from a nuPlan ``map.gpkg``.

    ``location`` / ``version`` default to the ``<location>/<version>/map.gpkg`` folder names. Extra layers
    and columns are ignored. Rows come in fid order. Geometries are 2D, in the ``meta`` table's projected CRS
    (layers stored in WGS84 longitude/latitude are projected to its UTM zone).

    Raises :class:`NotFoundError` (no file), :class:`DataError` (not a SQLite / GeoPackage file, truncated,
    unreadable geometry) or :class:`SchemaError` (a layer, column or the ``meta`` CRS row is missing, or a
    value has the wrong type) with a one-line message naming the file.
    """
    path = Path(path)
    check_sqlite_file(path)
    location = location if location is not None else path.parent.parent.name
    version = version if version is not None else path.parent.name
    try:
        con = _connect_read_only(path)
    except sqlite3.Error as err:
        raise DataError(path, f"cannot open: {err}", "a readable SQLite file") from None
    try:
        return _read(con, path, location, version)
    except sqlite3.DatabaseError as err:
        raise DataError(path, f"corrupt or unreadable SQLite database: {err}", "a valid GeoPackage") from None
    finally:
        con.close()


def _read(con: sqlite3.Connection, path: Path, location: str, version: str) -> MapLayers:
    app_id = con.execute("PRAGMA application_id").fetchone()[0]
    tables = {r[0].lower(): r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "gpkg_contents" not in tables or "gpkg_geometry_columns" not in tables:
        raise DataError(path, f"not a GeoPackage (application_id {app_id:#x}, no gpkg_contents / "
                        "gpkg_geometry_columns table)", "an OGC GeoPackage")
    geometry_columns = {r[0].lower(): (r[0], r[1], r[2]) for r in
                        con.execute("SELECT table_name, column_name, srs_id FROM gpkg_geometry_columns")}
    srs = {r[0]: (str(r[1]).upper(), r[2]) for r in
           con.execute("SELECT srs_id, organization, organization_coordsys_id FROM gpkg_spatial_ref_sys")}
    crs = _read_crs(con, path, tables)
    target_epsg = epsg_of(crs)

    out: dict[str, FeatureTable] = {}
    for name, (_gtype, schema_cols) in LAYER_SCHEMA.items():
        if name not in geometry_columns:
            raise SchemaError(path, f"missing layer '{name}'",
                              "a feature table of that name, as in nuPlan maps (gpkg_geometry_columns)")
        table, geom_col, srs_id = geometry_columns[name]
        info = con.execute(f"PRAGMA table_info({_quote(table)})").fetchall()
        by_lower = {r[1].lower(): r[1] for r in info}
        pk = [r[1] for r in info if r[5]]
        fid_col = pk[0] if len(pk) == 1 else by_lower.get("fid")
        if fid_col is None:
            raise SchemaError(path, f"layer '{name}' has no integer primary key", "an 'fid' column")
        cols = []
        for col, kind in schema_cols.items():
            if col.lower() not in by_lower:
                raise SchemaError(path, f"layer '{name}' lacks column '{col}'", f"a {_SQL_TYPE[kind]} column")
            cols.append(by_lower[col.lower()])
        select = ", ".join(_quote(c) for c in [fid_col, geom_col, *cols])
        rows = con.execute(f"SELECT {select} FROM {_quote(table)} ORDER BY {_quote(fid_col)}").fetchall()
        values = list(zip(*rows, strict=True)) if rows else [()] * (2 + len(cols))
        fid = _to_int(values[0], path, name, fid_col, allow_null=False)
        geoms = decode_geometries(list(values[1]), path, name)
        geoms = _to_target_crs(geoms, srs.get(srs_id), target_epsg, path, name)
        columns = {col: _convert(values[2 + i], kind, path, name, col)
                   for i, (col, kind) in enumerate(schema_cols.items())}
        out[name] = FeatureTable(fid=fid, geometry=geoms, columns=columns)
    return MapLayers(location=location, version=version, crs=crs, layers=out)


def _read_crs(con: sqlite3.Connection, path: Path, tables: dict[str, str]) -> str:
    if META_TABLE not in tables:
        raise SchemaError(path, f"missing layer '{META_TABLE}'",
                          f"a '{META_TABLE}' table with key/value rows incl. '{CRS_KEY}'")
    cols = {r[1].lower() for r in con.execute(f"PRAGMA table_info({_quote(tables[META_TABLE])})")}
    for col in ("key", "value"):
        if col not in cols:
            raise SchemaError(path, f"layer '{META_TABLE}' lacks column '{col}'", "columns key, value")
    row = con.execute(f"SELECT value FROM {_quote(tables[META_TABLE])} WHERE key = ?", (CRS_KEY,)).fetchone()
    if row is None or not row[0]:
        raise SchemaError(path, f"layer '{META_TABLE}' has no row key='{CRS_KEY}'", "the projected CRS")
    return str(row[0])


def _to_target_crs(geoms: np.ndarray, layer_srs: tuple[str, int] | None, target_epsg: int | None,
                   path: Path, layer: str) -> np.ndarray:
    """Geometries in the target (meta) CRS. Only WGS84 lon/lat -> UTM is supported; same CRS is a no-op."""
    if layer_srs is None or layer_srs[0] != "EPSG" or target_epsg is None or layer_srs[1] == target_epsg:
        return geoms  # undefined / custom layer CRS: taken as already in the projected frame
    if layer_srs[1] == WGS84_EPSG and utm_zone(target_epsg) is not None:
        return shapely.transform(geoms, lambda xy: wgs84_to_utm(xy, target_epsg))
    raise DataError(path, f"layer '{layer}' is stored in EPSG:{layer_srs[1]} but meta '{CRS_KEY}' is "
                    f"EPSG:{target_epsg}", "the same CRS, or WGS84 lon/lat with a UTM target")


def _convert(values: tuple, kind: str, path: Path, layer: str, col: str) -> np.ndarray:
    if kind == "int":
        return _to_int(values, path, layer, col)
    if kind == "float":
        try:
            return np.array([np.nan if v is None or v == "" else float(v) for v in values], dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(v for v in values if not _is_float(v))
            raise SchemaError(path, f"layer '{layer}' column '{col}' has value {bad!r}", "a number") from None
    return np.array(["" if v is None else (v.decode() if isinstance(v, bytes) else str(v)) for v in values],
                    dtype=object)


def _is_float(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return v is None or v == ""
    return True


def _to_int(values: tuple, path: Path, layer: str, col: str, allow_null: bool = True) -> np.ndarray:
    if all(type(v) is int for v in values):  # fast path: a clean INTEGER column
        return np.array(values, dtype=np.int64)
    out = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        if (v is None or v == "" or (isinstance(v, float) and v != v)) and allow_null:
            out[i] = -1
            continue
        try:
            f = float(v)
            if f != int(f):
                raise ValueError
            out[i] = int(f)
        except (TypeError, ValueError, OverflowError):
            raise SchemaError(path, f"layer '{layer}' column '{col}' row {i} has value {v!r}",
                              "an integer id") from None
    return out
