"""Reading results back from run folders (``metrics.parquet`` + ``run.json``, see :mod:`sim.runner.results`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from sim.errors import DataError, NotFoundError


def read_metrics(run_dirs: Iterable[str | Path]) -> pd.DataFrame:
    """The ``metrics.parquet`` tables of several run folders, concatenated, with a ``run_dir`` column.

    Raises :class:`NotFoundError` for a folder without ``metrics.parquet`` (a run that never finished).
    """
    parts = []
    for d in run_dirs:
        path = Path(d) / "metrics.parquet"
        if not path.is_file():
            raise NotFoundError(path, "no metrics table in the run folder", "a finished simulate/evaluate run")
        try:
            df = pd.read_parquet(path)
        except (OSError, ValueError) as err:
            raise DataError(path, f"unreadable metrics table ({err})", "a parquet file written by the runner") \
                from err
        parts.append(df.assign(run_dir=str(d)))
    if not parts:
        return pd.DataFrame(columns=["run_dir"])
    return pd.concat(parts, ignore_index=True)


def read_run_info(run_dir: str | Path) -> dict:
    """``run.json`` of a run folder (``{}`` when absent)."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(path, f"unreadable run description ({err})", "a JSON file written by the runner") from err
