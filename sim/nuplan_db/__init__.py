"""nuPlan's log database (SQLite): written from a recording, read scenario by scenario with indexed SQL."""

from sim.nuplan_db.filter import ScenarioFilter, ScenarioRef
from sim.nuplan_db.reader import LogDB, list_scenarios, load_scenario
from sim.nuplan_db.recording import LogRecording
from sim.nuplan_db.writer import write_log

__all__ = ["LogDB", "LogRecording", "ScenarioFilter", "ScenarioRef", "list_scenarios", "load_scenario", "write_log"]
