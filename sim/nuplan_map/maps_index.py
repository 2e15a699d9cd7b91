"""The maps root: ``nuplan-maps-v1.0.json`` and ``<maps_root>/<location>/<version>/map.gpkg``.

nuplan-devkit (``GPKGMapsDB``) opens ``<maps_root>/<map_version>.json`` (``map_version`` defaults to
``nuplan-maps-v1.0``) and reads, per location key: ``["version"]`` (the folder name of the map version) and,
for raster layers only, ``["layers"][<name>]["transform_matrix"]`` (4x4 physical -> pixel) and
``["layers"]["Intensity"]["shape"]``; ``layer_names`` lists the ``layers`` keys. It also loads every location it
knows (``sg-one-north``, ``us-ma-boston``, ``us-nv-las-vegas-strip``, ``us-pa-pittsburgh-hazelwood``) when
constructed. A ``<location>/<version>/metadata.json`` is only downloaded, never read; raster layers are read
from ``<location>/<version>/<layer>.npy.npz`` (key ``data``) when present.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.errors import DataError, NotFoundError, SchemaError

MAPS_INDEX_NAME = "nuplan-maps-v1.0"
GPKG_NAME = "map.gpkg"

#: nuPlan's four map locations and their UTM zones: nuplan-devkit's ``GPKGMapsDB`` opens the ``lane_connectors``
#: layer of each of them when it is constructed, so a maps root it can read must list all four.
DEVKIT_LOCATION_CRS = {"sg-one-north": "epsg:32648", "us-ma-boston": "epsg:32619",
                       "us-nv-las-vegas-strip": "epsg:32611", "us-pa-pittsburgh-hazelwood": "epsg:32617"}
#: Map version (folder name) of the empty stand-in maps written by :func:`add_devkit_placeholders`.
PLACEHOLDER_VERSION = "0.0.0-placeholder"


@dataclass(frozen=True)
class MapEntry:
    """One location of the maps index: its map ``version`` (folder name) and devkit's raster ``layers`` info."""

    location: str
    version: str
    layers: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"layers": self.layers, "version": self.version}


def index_path(maps_root: str | Path, map_version: str = MAPS_INDEX_NAME) -> Path:
    return Path(maps_root) / f"{map_version}.json"


def gpkg_path(maps_root: str | Path, location: str, version: str) -> Path:
    return Path(maps_root) / location / version / GPKG_NAME


def read_maps_index(maps_root: str | Path, map_version: str = MAPS_INDEX_NAME) -> dict[str, MapEntry]:
    """Location -> :class:`MapEntry` from ``<maps_root>/<map_version>.json``.

    Raises :class:`NotFoundError` if the file is missing, :class:`DataError` if it is not JSON,
    :class:`SchemaError` if an entry lacks ``version``.
    """
    path = index_path(maps_root, map_version)
    if not path.is_file():
        raise NotFoundError(path, "maps index not found", f"{path.name} in the maps root")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not valid JSON ({err})", "a JSON object: location -> {version, layers}") from None
    if not isinstance(raw, dict):
        raise SchemaError(path, f"top level is {type(raw).__name__}", "a JSON object: location -> {version, layers}")
    out = {}
    for location, entry in raw.items():
        if not isinstance(entry, dict) or "version" not in entry:
            raise SchemaError(path, f"location '{location}' has no 'version'", "{\"version\": ..., \"layers\": {}}")
        layers = entry.get("layers", {})
        out[location] = MapEntry(location, str(entry["version"]), dict(layers) if isinstance(layers, dict) else {})
    return out


def write_maps_index(maps_root: str | Path, entries: Iterable[MapEntry],
                     map_version: str = MAPS_INDEX_NAME) -> Path:
    """Write the maps index (locations sorted, keys sorted: the same entries give the same bytes)."""
    path = index_path(maps_root, map_version)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {e.location: e.to_json() for e in sorted(entries, key=lambda e: e.location)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def register_map(maps_root: str | Path, location: str, version: str, layers: dict[str, Any] | None = None,
                 map_version: str = MAPS_INDEX_NAME) -> Path:
    """Add or replace one location in the maps index (created if missing); other locations are kept."""
    try:
        entries = read_maps_index(maps_root, map_version)
    except NotFoundError:
        entries = {}
    entries[location] = MapEntry(location, version, dict(layers or {}))
    return write_maps_index(maps_root, entries.values(), map_version)


def _version_key(version: str) -> tuple:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.\-_]", version))


def scan_maps(maps_root: str | Path) -> dict[str, list[str]]:
    """Location -> versions (oldest first) of every ``<location>/<version>/map.gpkg`` under ``maps_root``."""
    root = Path(maps_root)
    found: dict[str, list[str]] = {}
    for gpkg in sorted(root.glob(f"*/*/{GPKG_NAME}")):
        found.setdefault(gpkg.parent.parent.name, []).append(gpkg.parent.name)
    return {loc: sorted(v, key=_version_key) for loc, v in sorted(found.items())}


def resolve_gpkg(maps_root: str | Path, location: str, version: str | None = None,
                 map_version: str = MAPS_INDEX_NAME) -> tuple[Path, str]:
    """``(path of map.gpkg, version)`` for ``location``.

    Without ``version``: the index's version for the location, or (no index) the newest version folder.
    Raises :class:`NotFoundError` naming the available locations / versions when there is no such map.
    """
    root = Path(maps_root)
    if not root.is_dir():
        raise NotFoundError(root, "maps root not found", "a folder with nuplan-maps-v1.0.json and <location>/")
    on_disk = scan_maps(root)
    if version is None:
        idx = index_path(root, map_version)
        if idx.is_file():
            entries = read_maps_index(root, map_version)
            if location not in entries:
                raise NotFoundError(idx, f"unknown map location '{location}'",
                                    f"one of {', '.join(sorted(entries)) or '(none)'}")
            version = entries[location].version
        elif on_disk.get(location):
            version = on_disk[location][-1]
        else:
            raise NotFoundError(root, f"unknown map location '{location}'",
                                f"one of {', '.join(on_disk) or '(none)'}")
    path = gpkg_path(root, location, version)
    if not path.is_file():
        if location not in on_disk:
            raise NotFoundError(path, f"unknown map location '{location}'",
                                f"one of {', '.join(on_disk) or '(none)'}")
        raise NotFoundError(path, f"unknown map version '{version}' for '{location}'",
                            f"one of {', '.join(on_disk[location])}")
    return path, version


def add_devkit_placeholders(maps_root: str | Path, map_version: str = MAPS_INDEX_NAME) -> list[str]:
    """Make ``maps_root`` loadable by nuplan-devkit: each of nuPlan's four locations missing from the index
    gets an empty map (every layer, no rows, its UTM CRS) at ``<location>/0.0.0-placeholder/map.gpkg`` and an
    index entry. Locations already in the index are left alone. Returns the locations added (sorted).

    Without this, ``GPKGMapsDB`` fails with ``KeyError: '<location>'`` on a maps root that holds only
    synthetic locations (it loads all four nuPlan maps when built).
    """
    from sim.nuplan_map.gpkg import empty_table, write_gpkg  # noqa: PLC0415 - gpkg is heavier than the index
    from sim.nuplan_map.layers import LAYER_SCHEMA, MapLayers  # noqa: PLC0415

    try:
        entries = read_maps_index(maps_root, map_version)
    except NotFoundError:
        entries = {}
    added = sorted(loc for loc in DEVKIT_LOCATION_CRS if loc not in entries)
    for location in added:
        layers = MapLayers(location, PLACEHOLDER_VERSION, DEVKIT_LOCATION_CRS[location],
                           {name: empty_table(name) for name in LAYER_SCHEMA})
        write_gpkg(layers, gpkg_path(maps_root, location, PLACEHOLDER_VERSION))
        entries[location] = MapEntry(location, PLACEHOLDER_VERSION, {})
    if added:
        write_maps_index(maps_root, entries.values(), map_version)
    return added

