"""Synthetic data generation speed: seconds per scenario for every family, family counts of the presets.

    python benchmarks/bench_synth.py [--seeds 2] [--town 0]

Prints one row per family (mean CPU seconds to simulate, cut, check one log; attempts), then the reference
measured in the same run: the time to write the same log to SQLite (``write_log``) and to build the town, and
the projected CPU time of the ``tiny`` and ``default`` presets.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from sim.nuplan_db.writer import write_log
from sim.synth.dataset import PRESETS, plan_jobs
from sim.synth.families import FAMILIES
from sim.synth.generate import generate_log
from sim.synth.layers import town_layers
from sim.synth.town import build_town


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=2, help="logs per family")
    ap.add_argument("--town", type=int, default=0, help="town seed")
    args = ap.parse_args()

    t0 = time.process_time()
    town = build_town(args.town)
    layers = town_layers(town)
    t_town = time.process_time() - t0

    per_family: dict[str, list[float]] = {}
    attempts: dict[str, list[int]] = {}
    write_s = []
    print(f"{'family':<22}{'scenario type':<56}{'s/log':>8}{'attempts':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for k, name in enumerate(FAMILIES):
            for seed in range(args.seeds):
                t = time.process_time()
                rec, info = generate_log(name, 1000 * k + seed, town, layers, f"bench-{name}-{seed}", k)
                per_family.setdefault(name, []).append(time.process_time() - t)
                attempts.setdefault(name, []).append(info.attempts)
                t = time.process_time()
                write_log(rec, Path(tmp) / f"bench-{name}-{seed}.db")
                write_s.append(time.process_time() - t)
            print(f"{name:<22}{FAMILIES[name].tag:<56}{np.mean(per_family[name]):8.2f}"
                  f"{np.mean(attempts[name]):10.2f}")
    mean_log = float(np.mean([v for vs in per_family.values() for v in vs]))
    print(f"\nmean generation {mean_log:.2f} s/log (CPU)  |  reference in this run: write_log "
          f"{np.mean(write_s):.2f} s/log, town build + layers {t_town:.2f} s")
    print(f"generation / write ratio: {mean_log / max(np.mean(write_s), 1e-9):.1f}x")
    for preset_name, preset in PRESETS.items():
        jobs = plan_jobs(0, preset, 0.05)
        counts: dict[str, Counter] = {}
        for j in jobs:
            counts.setdefault(j.split, Counter())[j.family] += 1
        est = sum(np.mean(per_family[j.family]) + np.mean(write_s) for j in jobs)
        print(f"\npreset {preset_name}: {len(jobs)} logs, ~{est:.0f} CPU s (divide by workers)")
        for split, c in counts.items():
            corner = sum(v for f, v in c.items() if FAMILIES[f].corner)
            print(f"  {split:<13} {sum(c.values()):4d} logs, corner share {corner / sum(c.values()):.2f}: "
                  + ", ".join(f"{f}={n}" for f, n in sorted(c.items())))


if __name__ == "__main__":
    main()
