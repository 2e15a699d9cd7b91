"""The on-disk layer cache and load_map: built once, reused without parsing the GPKG, invalidated on change."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from sim.errors import NotFoundError
from sim.nuplan_map import cache
from sim.nuplan_map.gpkg import write_gpkg
from sim.nuplan_map.loader import cache_file, clear_map_lru, load_map, load_map_layers
from sim.nuplan_map.map_api import MapAPI
from sim.nuplan_map.maps_index import gpkg_path, register_map
from sim.nuplan_map.toy import junction_layers
from tests.sim.map_fixtures import two_lane_junction_layers
from tests.sim.nuplan_map.layer_asserts import assert_layers_equal

LOC, VER = "us-nv-las-vegas-strip", "9.15.1915"


@pytest.fixture()
def maps_root(tmp_path: Path) -> Path:
    clear_map_lru()
    layers = junction_layers(location=LOC, version=VER)
    write_gpkg(layers, gpkg_path(tmp_path / "maps", LOC, VER))
    register_map(tmp_path / "maps", LOC, VER)
    return tmp_path / "maps"


def _cache(maps_root: Path, cache_root: Path) -> Path:
    return cache_file(cache_root, gpkg_path(maps_root, LOC, VER), LOC, VER)


def test_cache_file_round_trip(tmp_path: Path) -> None:
    layers = junction_layers()
    path = cache.save_layers(layers, tmp_path / "c.bin", cache.SourceStamp(1, 2, "ab"))
    assert_layers_equal(layers, cache.load_layers(path))
    assert cache.read_meta(path)["source"] == {"size": 1, "mtime_ns": 2, "sha256": "ab"}


def test_load_map_builds_cache_then_never_parses_gpkg(maps_root: Path, tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    api = load_map(maps_root, LOC, cache_root=cache_root)
    assert isinstance(api, MapAPI) and api.location == LOC and api.version == VER
    assert _cache(maps_root, cache_root).is_file()
    # Replace the GPKG by garbage of the same size and mtime: only a cache hit can still load the map.
    gpkg = gpkg_path(maps_root, LOC, VER)
    st = gpkg.stat()
    gpkg.write_bytes(b"\x00" * st.st_size)
    os.utime(gpkg, ns=(st.st_atime_ns, st.st_mtime_ns))
    clear_map_lru()
    again = load_map(maps_root, LOC, cache_root=cache_root)
    assert again is not api
    np.testing.assert_array_equal(again.seg_id, api.seg_id)
    np.testing.assert_array_equal(again.bounds, api.bounds)


def test_changed_gpkg_invalidates_cache(maps_root: Path, tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    first = load_map(maps_root, LOC, cache_root=cache_root)
    other = two_lane_junction_layers()
    write_gpkg(other, gpkg_path(maps_root, LOC, VER))
    second = load_map(maps_root, LOC, cache_root=cache_root)  # new mtime/size -> LRU miss and stale cache
    assert len(second.seg_id) == 6 != len(first.seg_id)
    size = gpkg_path(maps_root, LOC, VER).stat().st_size
    assert cache.read_meta(_cache(maps_root, cache_root))["source"]["size"] == size


def test_touched_gpkg_is_restamped_not_rebuilt(maps_root: Path, tmp_path: Path) -> None:
    cache_root = tmp_path / "cache"
    load_map_layers(maps_root, LOC, cache_root=cache_root)
    gpkg = gpkg_path(maps_root, LOC, VER)
    os.utime(gpkg, ns=(0, gpkg.stat().st_mtime_ns + 10**9))
    assert cache.cache_status(_cache(maps_root, cache_root), gpkg) == "restamp"
    load_map_layers(maps_root, LOC, cache_root=cache_root)
    assert cache.cache_status(_cache(maps_root, cache_root), gpkg) == "fresh"


def test_corrupt_cache_is_rebuilt(maps_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache_root = tmp_path / "cache"
    expected = load_map_layers(maps_root, LOC, cache_root=cache_root)
    _cache(maps_root, cache_root).write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert_layers_equal(expected, load_map_layers(maps_root, LOC, cache_root=cache_root))
    assert "map cache" in caplog.text
    assert cache.cache_status(_cache(maps_root, cache_root), gpkg_path(maps_root, LOC, VER)) == "fresh"


def test_lru_returns_the_same_object(maps_root: Path, tmp_path: Path) -> None:
    a = load_map(maps_root, LOC, cache_root=tmp_path / "cache")
    assert load_map(maps_root, LOC, VER, cache_root=tmp_path / "cache") is a


def test_default_cache_root_is_under_maps_root(maps_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTIPLAN_MAP_CACHE", raising=False)
    load_map(maps_root, LOC)
    assert list((maps_root / ".distiplan_cache").rglob("layers-v*.bin"))


def test_unknown_location(maps_root: Path) -> None:
    with pytest.raises(NotFoundError, match="unknown map location 'nowhere'.*us-nv-las-vegas-strip"):
        load_map(maps_root, "nowhere")
