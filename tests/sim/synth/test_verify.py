"""``python -m sim.synth.verify`` on the tiny dataset: passes, and fails on a log whose ego was moved off road."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from sim.synth.verify import main, verify_dataset


def test_verify_passes_on_the_tiny_dataset(tiny_dataset: Path, capsys) -> None:
    assert main([str(tiny_dataset)]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_verify_reports_an_ego_driven_off_road(tiny_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    db = sorted((root / "nuplan-v1.1/splits/train").glob("*.db"))[0]
    with sqlite3.connect(db) as con:
        con.execute("UPDATE ego_pose SET y = y + 40.0")  # 40 m sideways: off the road
    checked, problems = verify_dataset(root)
    assert sum(checked.values()) >= 14
    assert problems and all(db.name in p for p in problems)
