"""On-disk cache of a map's layers: one ``.npz`` per ``map.gpkg``, so that later loads never parse the GPKG.

Format (``CACHE_FORMAT_VERSION``): an uncompressed ``.npz`` (no pickles) holding, per layer ``L``,
``L/fid`` int64 ``(n,)``, ``L/wkb`` uint8 (the ISO WKB of every geometry, concatenated), ``L/wkb_offsets``
int64 ``(n + 1,)`` (an empty slice = no geometry), ``L/col/<name>`` int64 / float64 / unicode ``(n,)``;
and ``__meta__``: JSON with the format version, location, version, CRS, the column kinds and the source
stamp (size, mtime_ns, sha256 of the ``map.gpkg``) the cache was built from.

A cache is valid when its format version matches and its source stamp matches the ``map.gpkg``: size and
mtime first (free), the sha256 only when the mtime changed but the size did not (a copied or touched file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely

from sim.nuplan_map.layers import FeatureTable, MapLayers

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
_META = "__meta__"


@dataclass(frozen=True)
class SourceStamp:
    """What identifies a ``map.gpkg``: size (bytes), modification time (ns) and content hash."""

    size: int
    mtime_ns: int
    sha256: str


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_stamp(path: str | Path, with_sha: bool = True) -> SourceStamp:
    st = os.stat(path)
    return SourceStamp(st.st_size, st.st_mtime_ns, file_sha256(path) if with_sha else "")


def _kind(values: np.ndarray) -> str:
    if np.issubdtype(values.dtype, np.integer):
        return "int"
    if np.issubdtype(values.dtype, np.floating):
        return "float"
    return "str"


def save_layers(layers: MapLayers, cache_file: str | Path, source: SourceStamp) -> Path:
    """Write ``layers`` to ``cache_file`` (atomically), stamped with ``source``."""
    cache_file = Path(cache_file)
    arrays: dict[str, np.ndarray] = {}
    kinds: dict[str, dict[str, str]] = {}
    for name, table in layers.layers.items():
        geoms = np.asarray(table.geometry, dtype=object).reshape(-1)
        wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso") if len(geoms) else np.zeros(0, object)
        sizes = np.array([0 if w is None else len(w) for w in wkb], dtype=np.int64)
        arrays[f"{name}/fid"] = np.asarray(table.fid, dtype=np.int64)
        arrays[f"{name}/wkb"] = np.frombuffer(b"".join(w for w in wkb if w is not None), dtype=np.uint8)
        arrays[f"{name}/wkb_offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        kinds[name] = {}
        for col, values in table.columns.items():
            values = np.asarray(values)
            kind = kinds[name][col] = _kind(values)
            arrays[f"{name}/col/{col}"] = (values.astype(str) if kind == "str" else values)
    meta = {"format": CACHE_FORMAT_VERSION, "location": layers.location, "version": layers.version,
            "crs": layers.crs, "columns": kinds, "source": asdict(source)}
    arrays[_META] = np.array(json.dumps(meta, sort_keys=True))
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, cache_file)
    return cache_file


def read_meta(cache_file: str | Path) -> dict:
    with np.load(cache_file, allow_pickle=False) as z:
        return json.loads(str(z[_META]))


def load_layers(cache_file: str | Path) -> MapLayers:
    """The :class:`MapLayers` stored in ``cache_file`` (raises ``ValueError`` / ``OSError`` / ``KeyError`` if bad)."""
    with np.load(cache_file, allow_pickle=False) as z:
        meta = json.loads(str(z[_META]))
        if meta.get("format") != CACHE_FORMAT_VERSION:
            raise ValueError(f"cache format {meta.get('format')} != {CACHE_FORMAT_VERSION}")
        tables = {}
        for name, kinds in meta["columns"].items():
            buf = z[f"{name}/wkb"].tobytes()
            off = z[f"{name}/wkb_offsets"].tolist()
            wkb = np.array([buf[a:b] if b > a else None for a, b in zip(off[:-1], off[1:], strict=True)] + [None],
                           dtype=object)[:-1]
            cols = {}
            for col, kind in kinds.items():
                values = z[f"{name}/col/{col}"]
                cols[col] = values.astype(object) if kind == "str" else values
            tables[name] = FeatureTable(z[f"{name}/fid"], shapely.from_wkb(wkb), cols)
    return MapLayers(meta["location"], meta["version"], meta["crs"], tables)


def cache_status(cache_file: str | Path, gpkg: str | Path) -> str:
    """``"fresh"`` (stamp matches), ``"restamp"`` (same content, new mtime: re-stamp it) or ``"stale"``."""
    cache_file = Path(cache_file)
    if not cache_file.is_file():
        return "stale"
    try:
        meta = read_meta(cache_file)
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable map cache %s (%s)", cache_file, err)
        return "stale"
    src = meta.get("source", {})
    st = os.stat(gpkg)
    if meta.get("format") != CACHE_FORMAT_VERSION or src.get("size") != st.st_size:
        return "stale"
    if src.get("mtime_ns") == st.st_mtime_ns:
        return "fresh"
    return "restamp" if src.get("sha256") == file_sha256(gpkg) else "stale"
