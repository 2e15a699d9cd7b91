"""``distiplan synth out=DIR seed=N preset=tiny|default``: write a synthetic dataset in nuPlan's layout."""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    from rich.console import Console
    from rich.table import Table

    from sim.synth.dataset import write_dataset

    start = time.perf_counter()
    manifest = write_dataset(Path(cfg.out), seed=int(cfg.seed), preset=str(cfg.preset),
                             corner_case_share=float(cfg.corner_case_share),
                             workers=None if cfg.workers is None else int(cfg.workers))
    elapsed = time.perf_counter() - start
    table = Table(title=f"distiplan synth preset={cfg.preset} seed={cfg.seed} -> {cfg.out}")
    table.add_column("split")
    table.add_column("family")
    table.add_column("logs", justify="right")
    for split, counts in sorted(manifest["family_counts"].items()):
        for k, (family, n) in enumerate(sorted(counts.items())):
            table.add_row(split if k == 0 else "", family, str(n))
    console = Console()
    console.print(table)
    n_logs = len(manifest["logs"])
    console.print(f"{n_logs} logs in {elapsed:.1f} s ({elapsed / max(n_logs, 1):.2f} s per log); "
                  f"manifest.json and timings.csv in {cfg.out}")
    return 0
