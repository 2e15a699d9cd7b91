"""On-disk cache of a map's layers: one file per ``map.gpkg``, so that later loads never parse the GPKG.

Format (``CACHE_FORMAT_VERSION``), little endian, no pickles: the magic ``DPMAPC``, the format version
(uint16), the header length (uint64), a JSON header, then raw array bytes (each 8-byte aligned). The header
holds location, version, CRS, the column kinds, the source stamp (size, mtime_ns, sha256 of the ``map.gpkg``)
and, per array, its dtype, shape and byte offset. Per layer ``L``: ``L/fid`` int64 ``(n,)``; ``L/wkb`` uint8
(the ISO WKB of every geometry, concatenated) with ``L/wkb_offsets`` int64 ``(n + 1,)`` (an empty slice = no
geometry); ``L/col/<name>`` int64 / float64 ``(n,)``, or for strings UTF-8 bytes ``L/col/<name>`` with
``L/col/<name>/offsets``. One read and one JSON parse per load: the layers come back as views of one buffer.

A cache is valid when its format version matches and its source stamp matches the ``map.gpkg``: size and
mtime first (free), the sha256 only when the mtime changed but the size did not (a copied or touched file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely

from sim.nuplan_map.layers import FeatureTable, MapLayers

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2
_MAGIC = b"DPMAPC"


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


def _concat_bytes(items: list[bytes | None]) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 buffer, int64 offsets (n + 1,))`` of byte strings (None -> empty)."""
    sizes = np.fromiter((0 if b is None else len(b) for b in items), dtype=np.int64, count=len(items))
    buf = np.frombuffer(b"".join(b for b in items if b is not None), dtype=np.uint8)
    return buf, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _split_bytes(buf: bytes, offsets: np.ndarray) -> list[bytes | None]:
    off = offsets.tolist()
    return [buf[a:b] if b > a else None for a, b in zip(off[:-1], off[1:], strict=True)]


def save_layers(layers: MapLayers, cache_file: str | Path, source: SourceStamp) -> Path:
    """Write ``layers`` to ``cache_file`` (atomically), stamped with ``source``."""
    cache_file = Path(cache_file)
    arrays: dict[str, np.ndarray] = {}
    kinds: dict[str, dict[str, str]] = {}
    for name, table in layers.layers.items():
        geoms = np.asarray(table.geometry, dtype=object).reshape(-1)
        wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso") if len(geoms) else []
        arrays[f"{name}/fid"] = np.asarray(table.fid, dtype="<i8")
        arrays[f"{name}/wkb"], arrays[f"{name}/wkb_offsets"] = _concat_bytes(list(wkb))
        kinds[name] = {}
        for col, values in table.columns.items():
            values = np.asarray(values)
            kind = kinds[name][col] = _kind(values)
            if kind == "str":
                encoded = ["" if v is None else str(v) for v in values.tolist()]
                arrays[f"{name}/col/{col}"], arrays[f"{name}/col/{col}/offsets"] = _concat_bytes(
                    [v.encode() for v in encoded])
            else:
                arrays[f"{name}/col/{col}"] = values.astype("<i8" if kind == "int" else "<f8")
    specs, offset = {}, 0
    for key, arr in arrays.items():
        specs[key] = [arr.dtype.str, list(arr.shape), offset]
        offset += -(-arr.nbytes // 8) * 8
    header = json.dumps({"format": CACHE_FORMAT_VERSION, "location": layers.location, "version": layers.version,
                         "crs": layers.crs, "columns": kinds, "source": asdict(source), "arrays": specs},
                        sort_keys=True).encode()
    header += b" " * (-len(header) % 8)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(_MAGIC + struct.pack("<HQ", CACHE_FORMAT_VERSION, len(header)) + header)
        for arr in arrays.values():
            data = np.ascontiguousarray(arr).tobytes()
            fh.write(data + b"\0" * (-len(data) % 8))
    os.replace(tmp, cache_file)
    return cache_file


def _parse_header(head: bytes, cache_file: Path) -> tuple[dict, int]:
    if len(head) < 16 or head[:6] != _MAGIC:
        raise ValueError(f"{cache_file} is not a map layer cache")
    fmt, n = struct.unpack("<HQ", head[6:16])
    if fmt != CACHE_FORMAT_VERSION:
        raise ValueError(f"cache format {fmt} != {CACHE_FORMAT_VERSION}")
    return json.loads(head[16:16 + n]), 16 + n


def read_meta(cache_file: str | Path) -> dict:
    """The JSON header of a cache file (raises ``ValueError`` / ``OSError`` if it is not one)."""
    cache_file = Path(cache_file)
    with open(cache_file, "rb") as fh:
        head = fh.read(16)
        if len(head) < 16:
            raise ValueError(f"{cache_file} is not a map layer cache")
        n = struct.unpack("<Q", head[8:16])[0]
        return _parse_header(head + fh.read(n), cache_file)[0]


def load_layers(cache_file: str | Path) -> MapLayers:
    """The :class:`MapLayers` stored in ``cache_file`` (raises ``ValueError`` / ``OSError`` / ``KeyError`` if bad)."""
    cache_file = Path(cache_file)
    data = cache_file.read_bytes()
    meta, start = _parse_header(data, cache_file)

    def arr(key: str) -> np.ndarray:
        dtype, shape, offset = meta["arrays"][key]
        count = int(np.prod(shape))
        # a copy: callers get ordinary writable arrays, not views of the read buffer
        return np.frombuffer(data, dtype=dtype, count=count, offset=start + offset).reshape(shape).copy()

    tables = {}
    for name, kinds in meta["columns"].items():
        wkb = np.array(_split_bytes(arr(f"{name}/wkb").tobytes(), arr(f"{name}/wkb_offsets")) + [None],
                       dtype=object)[:-1]
        cols = {}
        for col, kind in kinds.items():
            if kind == "str":
                raw = _split_bytes(arr(f"{name}/col/{col}").tobytes(), arr(f"{name}/col/{col}/offsets"))
                cols[col] = np.array(["" if b is None else b.decode() for b in raw] + [None], dtype=object)[:-1]
            else:
                cols[col] = arr(f"{name}/col/{col}")
        tables[name] = FeatureTable(arr(f"{name}/fid"), shapely.from_wkb(wkb), cols)
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
