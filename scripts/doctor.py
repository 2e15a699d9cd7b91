"""``distiplan doctor``: check the data and map roots; exit status 1 when something is wrong."""

from __future__ import annotations

from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    from rich.console import Console
    from rich.table import Table

    from sim.doctor import run_doctor

    splits = list(cfg.splits) if cfg.splits else None
    report = run_doctor(cfg.paths.data_root, cfg.paths.maps_root, splits)
    console = Console()
    types = Table(title="scenarios per type (tagged lidar_pc candidates)")
    types.add_column("split")
    types.add_column("logs", justify="right")
    types.add_column("type")
    types.add_column("count", justify="right")
    for split, counter in report.scenarios_per_type.items():
        for k, (ty, n) in enumerate(sorted(counter.items())):
            types.add_row(split if k == 0 else "", str(report.logs_per_split[split]) if k == 0 else "", ty, str(n))
    console.print(types)
    style = {"ok": "green", "warn": "yellow", "error": "red"}
    for f in report.findings:
        line = f"[{style[f.level]}]{f.level:5}[/] {f.subject}: {f.message}"
        console.print(line + (f"\n      fix: {f.fix}" if f.fix else ""), highlight=False)
    console.print(f"{len(report.errors)} problem(s) found" if report.errors else "[green]all checks passed[/]")
    return 1 if report.errors else 0
