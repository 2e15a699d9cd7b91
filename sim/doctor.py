"""Check a nuPlan data root and maps root: what is there, what is wrong, and how to fix it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sim.errors import DataError
from sim.layout import available_splits, splits_dir


@dataclass(frozen=True)
class Finding:
    """``level`` is "ok", "warn" or "error"; ``fix`` tells the user what to do (empty for "ok")."""

    level: str
    subject: str
    message: str
    fix: str = ""


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)
    logs_per_split: dict[str, int] = field(default_factory=dict)
    scenarios_per_type: dict[str, Counter] = field(default_factory=dict)
    maps: dict[str, str] = field(default_factory=dict)

    def add(self, level: str, subject: str, message: str, fix: str = "") -> None:
        self.findings.append(Finding(level, subject, message, fix))

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]


def check_maps(maps_root: Path, report: DoctorReport) -> dict[str, str]:
    """Location -> version of every map that reads cleanly."""
    from sim.nuplan_map.gpkg import read_gpkg
    from sim.nuplan_map.maps_index import index_path, read_maps_index, resolve_gpkg, scan_maps

    if not maps_root.is_dir():
        report.add("error", str(maps_root), "maps root not found",
                   "set NUPLAN_MAPS_ROOT or maps_root=DIR, or write a dataset with `distiplan synth`")
        return {}
    try:
        entries = {loc: e.version for loc, e in read_maps_index(maps_root).items()}
    except DataError as err:
        report.add("error", str(index_path(maps_root)), str(err),
                   "restore nuplan-maps-v1.0.json from the map download (or rerun `distiplan synth`)")
        entries = {loc: versions[-1] for loc, versions in scan_maps(maps_root).items()}
    good: dict[str, str] = {}
    for location, version in sorted(entries.items()):
        try:
            gpkg, version = resolve_gpkg(maps_root, location, version)
            layers = read_gpkg(gpkg, location=location, version=version)
        except DataError as err:
            report.add("error", f"map {location}", str(err), "re-download or regenerate this map")
            continue
        n_lanes = len(layers.layers["lanes_polygons"])
        report.add("ok", f"map {location}", f"version {version}: {n_lanes} lanes, {len(layers.layers)} layers")
        good[location] = version
    if not entries:
        report.add("error", str(maps_root), "no maps found", "expected <maps_root>/<location>/<version>/map.gpkg")
    return good


def check_logs(data_root: Path, maps: dict[str, str], report: DoctorReport, splits: list[str] | None) -> None:
    from sim.nuplan_db.reader import LogDB

    if not splits_dir(data_root).is_dir():
        report.add("error", str(data_root), f"no {splits_dir(data_root).relative_to(data_root)} folder",
                   "set NUPLAN_DATA_ROOT or data_root=DIR to the folder holding nuplan-v1.1/")
        return
    for split in splits or available_splits(data_root):
        folder = splits_dir(data_root) / split
        dbs = sorted(folder.glob("*.db"))
        report.logs_per_split[split] = len(dbs)
        if not dbs:
            report.add("warn", f"split {split}", "holds no .db files", f"put nuPlan logs into {folder}")
        types: Counter = Counter()
        for db_path in dbs:
            try:
                with LogDB(db_path) as db:
                    rows = db.scenario_candidates()
                    location = db.map_name
            except DataError as err:
                report.add("error", db_path.name, str(err), "re-download or regenerate this log")
                continue
            if location not in maps:
                report.add("error", db_path.name, f"uses map '{location}' which is not in the maps root",
                           f"add maps/<{location}>/<version>/map.gpkg and its entry in nuplan-maps-v1.0.json")
            types.update(row[3] for row in rows if row[3] != "unknown")
        report.scenarios_per_type[split] = types
        report.add("ok", f"split {split}", f"{len(dbs)} logs, {sum(types.values())} tagged scenarios, "
                   f"{len(types)} types")


def run_doctor(data_root: str | Path, maps_root: str | Path, splits: list[str] | None = None) -> DoctorReport:
    report = DoctorReport()
    report.maps = check_maps(Path(maps_root), report)
    check_logs(Path(data_root), report.maps, report, splits)
    return report
