"""Map I/O and query speed on a town-sized synthetic map.

Builds a grid of toy junctions (16 lanes + 16 connectors each), writes it as ``map.gpkg``, then measures:
GPKG write, GPKG read (cold parse), layer-cache build, cached layer load, MapAPI compile, ``load_map`` cold
(GPKG + compile), from the disk cache (new process view: LRU cleared) and from the in-process LRU, and MapAPI
queries (segments_containing / is_drivable for 1000 points, segments_near per call).
The reference in the same run is the cold GPKG path: the table prints the cached load's speed-up over it.

    python benchmarks/bench_map.py [--grid 6] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sim.nuplan_map import cache
from sim.nuplan_map.gpkg import read_gpkg, write_gpkg
from sim.nuplan_map.loader import cache_file, clear_map_lru, load_map
from sim.nuplan_map.map_api import MapAPI
from sim.nuplan_map.maps_index import gpkg_path, register_map
from sim.nuplan_map.toy import junction_layers, tile_layers


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Best wall time (s) over ``repeat`` calls (least disturbed by other load) and the last result."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=int, default=6, help="junctions per side (16 lanes each)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rep = args.repeat

    town = tile_layers(junction_layers(), args.grid, args.grid, spacing=120.0)
    n_lanes = len(town.layers["lanes_polygons"])
    n_conn = len(town.layers["lane_connectors"])
    n_feat = sum(len(t) for t in town.layers.values())
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "maps"
        gpkg = gpkg_path(root, town.location, town.version)
        t_write, _ = timed(lambda: write_gpkg(town, gpkg), rep)
        register_map(root, town.location, town.version)
        size_mb = gpkg.stat().st_size / 1e6
        rows.append(("GPKG write", t_write, f"{size_mb:.1f} MB"))

        t_read, layers = timed(lambda: read_gpkg(gpkg), rep)
        rows.append(("GPKG read (cold parse)", t_read, f"{n_feat} features"))
        target = Path(tmp) / "cache.bin"
        stamp = cache.file_stamp(gpkg)
        t_build, _ = timed(lambda: cache.save_layers(layers, target, stamp), rep)
        rows.append(("layer cache build (write)", t_build, f"{target.stat().st_size / 1e6:.1f} MB"))
        t_cached, _ = timed(lambda: cache.load_layers(target), rep)
        rows.append(("layer cache load", t_cached, f"{t_read / t_cached:.1f}x faster than GPKG read"))
        t_compile, api = timed(lambda: MapAPI.from_layers(layers), rep)
        rows.append(("MapAPI.from_layers (compile)", t_compile, f"{n_lanes} lanes, {n_conn} connectors"))

        cache_root = Path(tmp) / "cache"

        def cold() -> MapAPI:
            clear_map_lru()
            return load_map(root, town.location, use_cache=False)

        def from_disk_cache() -> MapAPI:
            clear_map_lru()
            return load_map(root, town.location, cache_root=cache_root)

        load_map(root, town.location, cache_root=cache_root)  # builds the disk cache once
        assert cache_file(cache_root, gpkg, town.location, town.version).is_file()
        t_cold, t_disk = np.inf, np.inf
        for _ in range(rep):  # interleaved, so that both see the same machine load
            t_cold = min(t_cold, timed(cold, 1)[0])
            t_disk = min(t_disk, timed(from_disk_cache, 1)[0])
        t_lru, _ = timed(lambda: load_map(root, town.location, cache_root=cache_root), rep)
        rows.append(("load_map cold (GPKG + compile)", t_cold, "reference"))
        rows.append(("load_map from disk cache", t_disk, f"{t_cold / t_disk:.1f}x faster than cold"))
        rows.append(("load_map in-process LRU hit", t_lru, f"{t_cold / t_lru:.0f}x faster than cold"))

        rng = np.random.default_rng(0)
        lo, hi = api.bounds[:2], api.bounds[2:]
        pts = rng.uniform(lo, hi, size=(1000, 2))
        t_contain, _ = timed(lambda: api.segments_containing(pts), rep)
        rows.append(("segments_containing, 1000 points", t_contain, f"{t_contain * 1e3:.2f} us/point"))
        t_drive, _ = timed(lambda: api.is_drivable(pts), rep)
        rows.append(("is_drivable, 1000 points", t_drive, f"{t_drive * 1e3:.2f} us/point"))
        t_near, _ = timed(lambda: [api.segments_near(p, 30.0) for p in pts[:200]], rep)
        rows.append(("segments_near r=30 m, per call", t_near / 200, "mean of 200 calls"))
        t_layer, _ = timed(lambda: api.in_layer("crosswalks", pts), rep)
        rows.append(("in_layer crosswalks, 1000 points", t_layer, ""))

    print(f"map: {args.grid}x{args.grid} junctions, {n_lanes} lanes, {n_conn} connectors, {n_feat} features; "
          f"best of {rep}")
    print(f"{'step':<36} {'time':>12}  note")
    for name, t, note in rows:
        print(f"{name:<36} {t * 1e3:>9.2f} ms  {note}")


if __name__ == "__main__":
    main()
