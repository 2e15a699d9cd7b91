"""``distiplan doctor`` on a real (tiny synthetic) dataset, and on broken copies of it."""

from __future__ import annotations

import shutil
from pathlib import Path

from scripts.cli import main
from sim.doctor import run_doctor


def test_doctor_passes_on_a_good_dataset(tiny_dataset: Path) -> None:
    report = run_doctor(tiny_dataset, tiny_dataset / "maps")
    assert not report.errors, report.errors
    assert report.logs_per_split["corner_cases"] >= 8
    assert sum(report.scenarios_per_type["corner_cases"].values()) >= 8
    assert all(t.startswith("corner_") for t in report.scenarios_per_type["corner_cases"])


def test_doctor_names_a_missing_map_and_a_corrupt_log(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    synth_maps = [p for p in (root / "maps").iterdir() if p.name.startswith("synth-town")]
    shutil.rmtree(synth_maps[0])
    bad_log = sorted((root / "nuplan-v1.1/splits/val").glob("*.db"))[0]
    bad_log.write_bytes(bad_log.read_bytes()[:4096])
    report = run_doctor(root, root / "maps")
    subjects = " ".join(f"{f.subject} {f.message}" for f in report.errors)
    assert bad_log.name in subjects
    assert synth_maps[0].name in subjects
    assert main(["doctor", f"data_root={root}"]) == 1
    out = capsys.readouterr().out
    assert "fix:" in out and bad_log.name in out


def test_doctor_on_a_missing_root(tmp_path: Path) -> None:
    report = run_doctor(tmp_path / "nowhere", tmp_path / "nowhere" / "maps")
    assert len(report.errors) == 2
    assert "maps root not found" in report.errors[0].message
