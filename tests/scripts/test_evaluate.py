"""``distiplan evaluate`` end to end: run folders, summary tables, printed table, report (in a real browser), resume."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scripts.cli import main
from sim.metrics.aggregate import final_score
from sim.report.summary import ALL
from tests.sim.report.chromium import dump_dom

SPLIT = "corner_cases"


@pytest.fixture(scope="module")
def data_root(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny synthetic dataset (tests/conftest.py) when it is there, else the runner's junction dataset."""
    try:
        tiny = request.getfixturevalue("tiny_dataset")
    except pytest.FixtureLookupError:
        tiny = None
    if tiny is not None:
        root = Path(getattr(tiny, "data_root", tiny))
        if (root / "nuplan-v1.1" / "splits" / SPLIT).is_dir():
            return root
    from tests.sim.runner.disk_world import write_junction_dataset

    return write_junction_dataset(tmp_path_factory.mktemp("evaluate_data"), SPLIT)


def evaluate(root: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", f"data_root={root}", f"out={out}", f"cache_root={out.parent / 'cache'}",
                 "planners=[log_replay,constant_velocity]", "modes=[log_replay]", "worker=sequential",
                 "scenario_filter.num_scenarios_per_type=1", "scenario_filter.limit_total_scenarios=2",
                 "num_iterations=40", "progress=false", "report.every=20", "report.size_px=200", *extra])


@pytest.mark.slow
def test_evaluate_writes_runs_summary_and_report(data_root: Path, tmp_path: Path, capsys):
    out = tmp_path / "eval"
    assert evaluate(data_root, out) == 0
    printed = capsys.readouterr().out
    assert "evaluate: score per family" in printed and "report: " in printed
    for run in ("log_replay-log_replay", "constant_velocity-log_replay"):
        for name in ("config.yaml", "run.json", "metrics.parquet", "aggregate.parquet", "aggregate.csv"):
            assert (out / run / name).is_file(), f"{run}/{name}"
        assert len(list((out / run / "scenarios").glob("*.npz"))) == 2
    summary = pd.read_parquet(out / "summary.parquet")
    csv = pd.read_csv(out / "summary.csv")
    assert len(csv) == len(summary) and list(csv.columns) == list(summary.columns)
    assert {"planner", "mode", "family", "scenario_type", "n", "n_failed", "score",
            "no_ego_at_fault_collisions", "ego_progress_along_expert_route"} <= set(summary.columns)
    assert list(dict.fromkeys(summary["planner"])) == ["log_replay", "constant_velocity"]
    assert set(summary["mode"]) == {"CLS-NR"}
    overall = summary[summary["family"] == ALL].set_index("planner")
    assert list(overall["n"]) == [2, 2]
    assert summary["score"].between(0.0, 1.0).all()
    families = summary[summary["family"] != ALL]
    assert families.groupby("planner")["n"].sum().to_dict() == {"log_replay": 2, "constant_velocity": 2}
    for planner in ("log_replay", "constant_velocity"):  # the same score as the run folder's aggregate
        agg = pd.read_parquet(out / f"{planner}-log_replay" / "aggregate.parquet")
        assert overall.loc[planner, "score"] == pytest.approx(final_score(agg))
    scen = pd.read_parquet(out / "scenarios.parquet")
    assert len(scen) == 4 and set(scen["status"]) <= {"ok", "failed"}
    info = json.loads((out / "run.json").read_text())
    assert info["num_runs"] == 4 and info["planners"] == ["log_replay", "constant_velocity"] and info["git_sha"]

    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    gifs = page.count('src="data:image/gif;base64,')
    assert gifs == 2 * (families["family"].nunique())  # best and worst of each family
    _, decoded, total, widths = dump_dom(out / "report.html", tmp_path)
    assert decoded == total == gifs and set(widths) == {200}


@pytest.mark.slow
def test_resume_skips_finished_scenarios(data_root: Path, tmp_path: Path, capsys):
    out = tmp_path / "eval"
    assert evaluate(data_root, out, "report.animations=false") == 0
    files = sorted((out / "constant_velocity-log_replay" / "scenarios").glob("*.npz"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    files[0].unlink()
    capsys.readouterr()
    assert evaluate(data_root, out, "report.animations=false", "resume=true") == 0
    assert "(3 already done)" in capsys.readouterr().out
    assert files[0].is_file()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != files[0])
    # other simulation settings: refused
    assert evaluate(data_root, out, "report.animations=false", "resume=true", "num_iterations=30") == 2


def test_bad_planner_or_mode_is_a_one_line_error(tmp_path: Path, capsys):
    assert main(["evaluate", f"out={tmp_path}", "planners=no_such_planner"]) == 2  # one name, no list
    err = capsys.readouterr().err
    assert "unknown planner 'no_such_planner'" in err and "idm" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", f"out={tmp_path}", "planners=[idm]", "modes=[sometimes]"]) == 2
    assert "modes=['sometimes']" in capsys.readouterr().err
