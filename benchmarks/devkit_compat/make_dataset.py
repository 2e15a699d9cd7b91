"""Write small nuPlan datasets with distiplan, for ``check_devkit_compat.py`` (runs in distiplan's own venv).

    .venv/bin/python benchmarks/devkit_compat/make_dataset.py /tmp/devkit_compat

writes ``<out>/sample/`` (a 60 s ``sample_recording`` log + the toy junction map as ``us-nv-las-vegas-strip``)
and, when the synthetic generator is importable, ``<out>/synth/`` (``sim.synth.dataset.write_dataset`` with
``preset='tiny'`` if it exists, else a few logs of ``sim.synth`` families in town 0). Each has
``data/nuplan-v1.1/splits/mini/*.db`` and ``maps/`` (with devkit placeholders for the four nuPlan locations).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import traceback
from pathlib import Path

from sim.nuplan_db.sample import sample_recording
from sim.nuplan_db.writer import write_log
from sim.nuplan_map.gpkg import write_gpkg
from sim.nuplan_map.maps_index import add_devkit_placeholders, gpkg_path, register_map
from sim.nuplan_map.toy import junction_layers

SPLIT = Path("data/nuplan-v1.1/splits/mini")


def write_sample(out: Path) -> None:
    rec = sample_recording()
    write_log(rec, out / SPLIT / f"{rec.log_name}.db")
    layers = junction_layers()
    write_gpkg(layers, gpkg_path(out / "maps", layers.location, layers.version))
    register_map(out / "maps", layers.location, layers.version)
    add_devkit_placeholders(out / "maps")


def write_synth(out: Path, families: int) -> None:
    try:
        from sim.synth.dataset import write_dataset  # type: ignore[import-not-found]
    except ImportError:
        write_dataset = None
    if write_dataset is not None:
        write_dataset(out, seed=0, preset="tiny")
        # The synthetic dataset may put its maps / logs elsewhere: find them.
        maps = next((p.parent for p in out.rglob("nuplan-maps-v1.0.json")), out / "maps")
        add_devkit_placeholders(maps)
        return
    from sim.synth.families import FAMILIES
    from sim.synth.generate import generate_log
    from sim.synth.layers import town_layers
    from sim.synth.town import build_town

    town = build_town(0)
    layers = town_layers(town)
    write_gpkg(layers, gpkg_path(out / "maps", layers.location, layers.version))
    register_map(out / "maps", layers.location, layers.version)
    add_devkit_placeholders(out / "maps")
    for i, family in enumerate(sorted(FAMILIES)[:families]):
        name = f"2021.01.01.00.00.{i:02d}_synth-{family}"
        rec, _ = generate_log(family, i, town, layers, name, i)
        write_log(rec, out / SPLIT / f"{name}.db")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--families", type=int, default=4, help="synthetic logs to write without write_dataset")
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args(argv)
    shutil.rmtree(args.out / "sample", ignore_errors=True)
    write_sample(args.out / "sample")
    print(f"sample dataset: {args.out / 'sample'}")
    if not args.no_synth:
        shutil.rmtree(args.out / "synth", ignore_errors=True)
        try:
            write_synth(args.out / "synth", args.families)
            print(f"synthetic dataset: {args.out / 'synth'}")
        except Exception:  # noqa: BLE001 - the generator is optional here
            traceback.print_exc()
            print("synthetic dataset: FAILED (see above)")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
