"""``distiplan synth out=DIR seed=N preset=tiny|default``: write a synthetic dataset in nuPlan's layout."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def run(cfg: DictConfig) -> int:
    from sim.synth.dataset import write_dataset

    summary = write_dataset(Path(cfg.out), seed=int(cfg.seed), preset=str(cfg.preset),
                            corner_case_share=float(cfg.corner_case_share))
    print(f"wrote {summary} to {cfg.out}")
    return 0
