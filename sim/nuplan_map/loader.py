"""``load_map``: a nuPlan map location -> :class:`MapAPI`, through the on-disk layer cache and an in-process LRU.

First load of a ``map.gpkg``: read the GeoPackage (:func:`sim.nuplan_map.gpkg.read_gpkg`), write the layer
cache (:mod:`sim.nuplan_map.cache`), compile. Later loads (any process): read the cache, compile. Repeated
loads in one process: the same :class:`MapAPI` object from the LRU (the file's size and mtime are checked
each call, so an edited map is reloaded).

The cache lives in ``cache_root`` (default: ``$DISTIPLAN_MAP_CACHE`` or ``<maps_root>/.distiplan_cache``) as
``<location>/<version>/<hash of the gpkg's absolute path>/layers-v<format>.bin``. If the cache folder cannot
be written, the map is still loaded (from the GPKG) and a warning is logged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

from sim.nuplan_map import cache
from sim.nuplan_map.gpkg import read_gpkg
from sim.nuplan_map.layers import MapLayers
from sim.nuplan_map.map_api import MapAPI
from sim.nuplan_map.maps_index import MAPS_INDEX_NAME, resolve_gpkg

log = logging.getLogger(__name__)

LRU_SIZE = 8
_lru: OrderedDict[tuple, MapAPI] = OrderedDict()
_lock = threading.Lock()


def default_cache_root(maps_root: str | Path) -> Path:
    env = os.environ.get("DISTIPLAN_MAP_CACHE")
    return Path(env) if env else Path(maps_root) / ".distiplan_cache"


def cache_file(cache_root: str | Path, gpkg: str | Path, location: str, version: str) -> Path:
    """Where the layer cache of ``gpkg`` lives (one folder per absolute gpkg path: two maps roots never clash)."""
    key = hashlib.sha1(str(Path(gpkg).resolve()).encode()).hexdigest()[:12]
    return Path(cache_root) / location / version / key / f"layers-v{cache.CACHE_FORMAT_VERSION}.bin"


def load_layers_cached(gpkg: str | Path, location: str, version: str, cache_root: str | Path) -> MapLayers:
    """The layers of ``gpkg``: from the cache when it is fresh, else from the GPKG (and the cache is rebuilt)."""
    target = cache_file(cache_root, gpkg, location, version)
    status = cache.cache_status(target, gpkg)
    if status != "stale":
        try:
            layers = cache.load_layers(target)
            if status == "restamp":
                _save(layers, target, gpkg)
            return layers
        except (OSError, ValueError, KeyError) as err:
            log.warning("rebuilding unreadable map cache %s (%s)", target, err)
    layers = read_gpkg(gpkg, location=location, version=version)
    _save(layers, target, gpkg)
    return layers


def _save(layers: MapLayers, target: Path, gpkg: str | Path) -> None:
    try:
        cache.save_layers(layers, target, cache.file_stamp(gpkg))
    except OSError as err:
        log.warning("cannot write map cache %s (%s); loading from the GPKG each time", target, err)


def load_map_layers(maps_root: str | Path, location: str, version: str | None = None,
                    cache_root: str | Path | None = None, use_cache: bool = True,
                    map_version: str = MAPS_INDEX_NAME) -> MapLayers:
    """The :class:`MapLayers` of ``location`` (``version`` from the maps index when None)."""
    gpkg, version = resolve_gpkg(maps_root, location, version, map_version)
    if not use_cache:
        return read_gpkg(gpkg, location=location, version=version)
    root = default_cache_root(maps_root) if cache_root is None else cache_root
    return load_layers_cached(gpkg, location, version, root)


def load_map(maps_root: str | Path, location: str, version: str | None = None,
             cache_root: str | Path | None = None, use_cache: bool = True,
             map_version: str = MAPS_INDEX_NAME) -> MapAPI:
    """The compiled :class:`MapAPI` of ``location`` under ``maps_root``.

    Raises :class:`sim.errors.NotFoundError` for an unknown location / version (listing the available ones)
    and the errors of :func:`sim.nuplan_map.gpkg.read_gpkg` for a bad GeoPackage.
    """
    gpkg, version = resolve_gpkg(maps_root, location, version, map_version)
    st = os.stat(gpkg)
    key = (str(gpkg.resolve()), st.st_size, st.st_mtime_ns, use_cache)
    with _lock:
        if key in _lru:
            _lru.move_to_end(key)
            return _lru[key]
    layers = load_map_layers(maps_root, location, version, cache_root, use_cache, map_version)
    api = MapAPI.from_layers(layers)
    with _lock:
        _lru[key] = api
        while len(_lru) > LRU_SIZE:
            _lru.popitem(last=False)
    return api


def clear_map_lru() -> None:
    """Forget the in-process maps (the on-disk cache stays)."""
    with _lock:
        _lru.clear()
