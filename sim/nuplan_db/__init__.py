"""nuPlan's log database (SQLite): written from a recording, read scenario by scenario with indexed SQL."""
