"""Report tables from hand-made metric rows (expected values worked out by hand), the HTML page, and the page in
a real headless Chromium."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from sim.metrics.aggregate import aggregate, final_score
from sim.report.animation import compact_gif
from sim.report.html import Animation, data_uri, render_html, write_report
from sim.report.summary import (
    ALL,
    failures,
    family_table,
    metric_table,
    overall_table,
    pick_showcase,
    scenario_scores,
    summarize,
)
from tests.sim.report.chromium import dump_dom

NR, R = "closed_loop_nonreactive_agents", "closed_loop_reactive_agents"
ONES = {"no_ego_at_fault_collisions": 1.0, "drivable_area_compliance": 1.0, "ego_is_making_progress": 1.0,
        "driving_direction_compliance": 1.0, "ego_progress_along_expert_route": 1.0,
        "time_to_collision_within_bound": 1.0, "speed_limit_compliance": 1.0, "ego_is_comfortable": 1.0}
TYPES = {"s1": "corner_cut_in", "s2": "corner_cut_in", "s3": "corner_other"}
FAMILIES = {"corner_cut_in": "cut_in"}


def rows(planner: str, challenge: str, token: str, status: str = "ok", error: str = "", **metrics: float):
    """metrics.parquet rows of one scenario: the challenge's metrics (ONES overridden by ``metrics``) plus a
    statistic that must not count."""
    values = {**ONES, **metrics} if status == "ok" else {m: np.nan for m in ONES}
    extra = {"ego_mean_speed": 7.0} if status == "ok" else {}
    return [{"scenario": token, "log_name": f"log-{token}", "scenario_type": TYPES[token], "planner_name": planner,
             "agents": "reactive" if challenge == R else "log_replay", "challenge": challenge, "metric": m,
             "score": v, "status": status, "error": error} for m, v in {**values, **extra}.items()]


@pytest.fixture
def metrics() -> pd.DataFrame:
    data = []
    # planner A, CLS-NR. s1: (5*0.5 + 5 + 4 + 2*0) / 16 = 0.71875; s2: a collision (multiplier 0) -> 0; s3: 1.
    data += rows("A", NR, "s1", ego_progress_along_expert_route=0.5, ego_is_comfortable=0.0)
    data += rows("A", NR, "s2", no_ego_at_fault_collisions=0.0)
    data += rows("A", NR, "s3")
    # planner B, CLS-NR. s1: 1; s2: 0.5 * (5 + 0 + 4 + 2) / 16 = 0.34375; s3 failed -> 0.
    data += rows("B", NR, "s1")
    data += rows("B", NR, "s2", driving_direction_compliance=0.5, time_to_collision_within_bound=0.0)
    data += rows("B", NR, "s3", status="failed", error="RuntimeError: planner <boom> & crash")
    # planner A, CLS-R: s1 only, all ones.
    data += rows("A", R, "s1")
    return pd.DataFrame(data)


def test_scenario_scores_by_hand(metrics: pd.DataFrame):
    sc = scenario_scores(metrics, FAMILIES)
    a = sc[(sc["planner"] == "A") & (sc["mode"] == "CLS-NR")].set_index("scenario")
    b = sc[(sc["planner"] == "B") & (sc["mode"] == "CLS-NR")].set_index("scenario")
    np.testing.assert_allclose(a.loc[["s1", "s2", "s3"], "score"], [0.71875, 0.0, 1.0])
    np.testing.assert_allclose(b.loc[["s1", "s2", "s3"], "score"], [1.0, 0.34375, 0.0])
    assert list(b["status"]) == ["ok", "ok", "failed"]
    assert b.loc["s3", "error"] == "RuntimeError: planner <boom> & crash" and b.loc["s1", "error"] == ""
    assert np.isnan(b.loc["s3", "ego_progress_along_expert_route"])
    assert list(a["family"]) == ["cut_in", "cut_in", "corner_other"]  # mapped, or the type itself
    assert "ego_mean_speed" not in sc.columns  # statistics are not scoring metrics
    assert list(dict.fromkeys(sc["planner"])) == ["A", "B"]
    # the same scores as nuPlan's aggregator (what `distiplan simulate` prints)
    for planner, part in metrics[metrics["challenge"] == NR].groupby("planner_name"):
        mine = sc[(sc["planner"] == planner) & (sc["mode"] == "CLS-NR")]["score"].mean()
        assert mine == pytest.approx(final_score(aggregate(part, NR)))


def test_summary_by_hand(metrics: pd.DataFrame):
    s = summarize(scenario_scores(metrics, FAMILIES), planners=["B", "A"])
    key = s.set_index(["planner", "mode", "family"])
    a = key.loc[("A", "CLS-NR", "cut_in")]
    assert (a["n"], a["n_failed"], a["scenario_type"]) == (2, 0, "corner_cut_in")
    assert a["score"] == pytest.approx((0.71875 + 0.0) / 2)
    assert a["ego_progress_along_expert_route"] == pytest.approx((0.5 + 1.0) / 2)
    assert a["no_ego_at_fault_collisions"] == pytest.approx(0.5)
    assert a["ego_is_comfortable"] == pytest.approx(0.5)
    assert key.loc[("A", "CLS-NR", ALL), "score"] == pytest.approx((0.71875 + 0.0 + 1.0) / 3)
    assert key.loc[("A", "CLS-NR", ALL), "n"] == 3
    b_other = key.loc[("B", "CLS-NR", "corner_other")]
    assert (b_other["n"], b_other["n_failed"], b_other["score"]) == (1, 1, 0.0)
    assert np.isnan(b_other["time_to_collision_within_bound"])  # failed: no metric values
    b_all = key.loc[("B", "CLS-NR", ALL)]
    assert b_all["score"] == pytest.approx((1.0 + 0.34375 + 0.0) / 3) and b_all["n_failed"] == 1
    assert b_all["time_to_collision_within_bound"] == pytest.approx(0.5)  # mean over the 2 that ran
    assert b_all["driving_direction_compliance"] == pytest.approx(0.75)
    assert key.loc[("A", "CLS-R", ALL), "score"] == pytest.approx(1.0)
    # order: planners as asked, families sorted with 'all' last
    assert list(dict.fromkeys(s["planner"])) == ["B", "A"]
    assert list(s[(s["planner"] == "A") & (s["mode"] == "CLS-NR")]["family"]) == ["corner_other", "cut_in", ALL]
    assert len(s) == 3 + 3 + 2


def test_family_overall_metric_tables(metrics: pd.DataFrame):
    s = summarize(scenario_scores(metrics, FAMILIES))
    fam = family_table(s)
    assert list(fam.index) == ["corner_other", "cut_in", ALL]
    assert list(fam.columns) == [("CLS-NR", "A"), ("CLS-NR", "B"), ("CLS-R", "A")]
    assert fam.loc["cut_in", ("CLS-NR", "B")] == pytest.approx((1.0 + 0.34375) / 2)
    assert fam.loc["cut_in", ("CLS-R", "A")] == pytest.approx(1.0)
    assert np.isnan(fam.loc["corner_other", ("CLS-R", "A")])
    assert family_table(s, "n").loc[ALL, ("CLS-NR", "A")] == 3
    ov = overall_table(s)
    assert list(ov.index) == ["A", "B"] and list(ov.columns) == ["CLS-NR", "CLS-R"]
    assert ov.loc["A", "CLS-NR"] == pytest.approx(1.71875 / 3) and ov.loc["A", "CLS-R"] == pytest.approx(1.0)
    assert np.isnan(ov.loc["B", "CLS-R"])
    mt = metric_table(s, "CLS-NR")
    assert list(mt.index) == ["A", "B"] and list(mt.columns[:3]) == ["n", "n_failed", "score"]
    assert mt.loc["A", "ego_is_comfortable"] == pytest.approx(2 / 3)
    assert metric_table(s, "OLS").empty


def test_failures_and_showcase(metrics: pd.DataFrame):
    sc = scenario_scores(metrics, FAMILIES)
    f = failures(sc)
    assert list(f["scenario"]) == ["s3"] and f["planner"].iloc[0] == "B"
    assert f["error"].iloc[0].startswith("RuntimeError")
    picks = pick_showcase(sc, mode="CLS-NR").set_index("family")
    # cut_in: B 0.671875 > A 0.359375; largest gap B - A: s1 0.28125, s2 0.34375 -> s2
    assert tuple(picks.loc["cut_in", ["best", "worst", "scenario"]]) == ("B", "A", "s2")
    assert picks.loc["cut_in", "best_score"] == pytest.approx(0.34375)
    assert picks.loc["cut_in", "worst_score"] == pytest.approx(0.0)
    # corner_other: A 1.0, B failed (0)
    assert tuple(picks.loc["corner_other", ["best", "worst", "scenario"]]) == ("A", "B", "s3")
    # default mode: CLS-R (only A there: no worst)
    r = pick_showcase(sc)
    assert list(r["mode"]) == ["CLS-R"] and r["worst"].iloc[0] is None and r["scenario"].iloc[0] == "s1"
    # excluding one of only two planners is ignored; with a third one it applies
    assert set(pick_showcase(sc, mode="CLS-NR", exclude=["A"])["worst"]) == {"A", "B"}
    more = pd.concat([metrics, pd.DataFrame(rows("C", NR, "s1") + rows("C", NR, "s2") + rows("C", NR, "s3"))])
    sc3 = scenario_scores(more, FAMILIES)
    assert pick_showcase(sc3, mode="CLS-NR").set_index("family").loc["cut_in", "best"] == "C"
    ex = pick_showcase(sc3, mode="CLS-NR", exclude=["C"]).set_index("family")
    assert tuple(ex.loc["cut_in", ["best", "worst"]]) == ("B", "A")


def tiny_gif(n: int = 3, size: int = 40) -> bytes:
    frames = []
    for k in range(n):
        a = np.full((size, size, 3), 240, np.uint8)
        a[5:15, 5 + 5 * k:15 + 5 * k] = (31, 119, 180)
        frames.append(Image.fromarray(a))
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=0, loop=0)
    return buf.getvalue()


def test_compact_gif_keeps_frames_and_sets_timing():
    out = compact_gif(tiny_gif(4), fps=4.0, colors=16)
    with Image.open(io.BytesIO(out)) as im:
        assert im.n_frames == 4 and im.info["loop"] == 0
        durations, pixels = [], []
        for k in range(im.n_frames):
            im.seek(k)
            durations.append(im.info["duration"])
            pixels.append(np.asarray(im.convert("RGB")))
    assert durations == [250] * 4
    assert tuple(pixels[2][10, 17]) == (31, 119, 180) and tuple(pixels[2][10, 7]) == (240, 240, 240)


def report_inputs(metrics: pd.DataFrame):
    sc = scenario_scores(metrics, FAMILIES)
    s = summarize(sc)
    gif = compact_gif(tiny_gif(), 4.0)
    anims = [Animation("cut_in", "CLS-NR", "s2", "B", "best", 0.34375, gif, details="direction 0.5, TTC 0"),
             Animation("cut_in", "CLS-NR", "s2", "A", "worst", 0.0, gif),
             Animation("corner_other", "CLS-NR", "s3", "B", "worst", 0.0, None, "no rollout stored (failed)")]
    meta = {"git sha": "abc123", "date (UTC)": "2026-01-01T00:00:00+00:00", "hardware": {"cpu_count": 2}}
    return s, sc, anims, meta


def test_html_is_self_contained(metrics: pd.DataFrame):
    s, sc, anims, meta = report_inputs(metrics)
    page = render_html(s, sc, meta=meta, config_text="planners: [A, B]\n<tag>", animations=anims)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for forbidden in ("http://", "https://", "<link", "<script", "@import", "url("):
        assert forbidden not in page, forbidden
    for target in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert target.startswith("data:"), target
    assert page.count('src="data:image/gif;base64,') == 2
    assert data_uri(anims[0].gif) in page
    for section in ('id="run-metadata"', 'id="overall"', 'id="families"', 'class="metrics"', 'id="failures"'):
        assert section in page
    # text is escaped
    assert "planner &lt;boom&gt; &amp; crash" in page and "<boom>" not in page
    assert "&lt;tag&gt;" in page and "abc123" in page and "cpu_count=2" in page
    assert "no rollout stored (failed)" in page and "direction 0.5, TTC 0" in page
    assert "0.5729" in page  # A's CLS-NR score, 1.71875 / 3
    empty = render_html(s.iloc[0:0], sc.iloc[0:0])
    assert "No results" in empty and "No scenario failed" in empty


def test_report_in_chromium(metrics: pd.DataFrame, tmp_path: Path):
    s, sc, anims, meta = report_inputs(metrics)
    path = write_report(tmp_path / "report.html", s, sc, meta=meta, animations=anims)
    # a broken image as a control: it must not count as decoded
    broken = '<img id="control" src="data:image/gif;base64,R0lGODlhAAAA">'
    dom, decoded, total, widths = dump_dom(path, tmp_path, extra_body=broken)
    assert total == 3 and decoded == 2 and widths == [40, 40]
    for section in ('id="overall"', 'id="families"', 'id="failures"', 'id="run-metadata"'):
        assert section in dom
    assert dom.count("<table") >= 5 and "cut_in" in dom and "CLS-NR" in dom


def test_shortfalls_name_what_cost_the_score(metrics: pd.DataFrame):
    from sim.report.summary import shortfalls

    sc = scenario_scores(metrics, FAMILIES)
    assert shortfalls(sc, "A", "CLS-NR", "s1") == "progress 0.5, comfort 0"
    assert shortfalls(sc, "B", "CLS-NR", "s2") == "direction 0.5, TTC 0"
    assert shortfalls(sc, "A", "CLS-NR", "s3") == ""
    assert shortfalls(sc, "B", "CLS-NR", "s3") == "failed: RuntimeError: planner <boom> & crash"
    assert shortfalls(sc, "B", "CLS-R", "s1") == ""
