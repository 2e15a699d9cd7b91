"""nuPlan's on-disk layout: ``<data_root>/nuplan-v1.1/splits/<split>/*.db`` and ``<maps_root>/...``."""

from __future__ import annotations

from pathlib import Path

from sim.errors import NotFoundError

DATASET_VERSION = "nuplan-v1.1"


def splits_dir(data_root: str | Path) -> Path:
    return Path(data_root) / DATASET_VERSION / "splits"


def available_splits(data_root: str | Path) -> list[str]:
    root = splits_dir(data_root)
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def split_dir(data_root: str | Path, split: str) -> Path:
    """The folder of ``split``. Raises :class:`NotFoundError` naming what exists instead."""
    root = Path(data_root)
    if not root.is_dir():
        raise NotFoundError(root, "data root not found",
                            "a folder holding nuplan-v1.1/splits/<split>/*.db (write one with `distiplan synth`)")
    folder = splits_dir(root) / split
    if not folder.is_dir():
        have = ", ".join(available_splits(root)) or "(none)"
        raise NotFoundError(folder, f"split '{split}' not found", f"one of: {have}")
    return folder


def split_dbs(data_root: str | Path, split: str) -> list[Path]:
    """The log files of ``split``, sorted (at least one, else :class:`NotFoundError`)."""
    folder = split_dir(data_root, split)
    dbs = sorted(folder.glob("*.db"))
    if not dbs:
        raise NotFoundError(folder, f"split '{split}' holds no .db log files", "one or more nuPlan log .db files")
    return dbs
