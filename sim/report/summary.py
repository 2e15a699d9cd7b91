"""Evaluation tables as pure functions of DataFrames: per-scenario scores, per-family summaries, showcases.

Input: the long metric table of one or several run folders (``metrics.parquet``, columns
:data:`sim.runner.results.ROW_COLUMNS`: one row per scenario and metric). Scores follow nuPlan's aggregator
(:func:`sim.metrics.aggregate.aggregate`), so a scenario's score here is the one ``distiplan simulate`` reports.

Conventions of the summary (:func:`summarize`):
- ``score``: mean of the scenarios' scores, a failed scenario counting 0 (as nuPlan's final score does);
- metric columns: mean over the scenarios that have the metric (failed scenarios have none), so a planner that
  fails often is not also shown as colliding often; ``n_failed`` says how many were left out;
- one ``family == 'all'`` row per planner and mode: the challenge score over every scenario (CLS-NR / CLS-R).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from sim.errors import DataError
from sim.metrics.aggregate import aggregate, get_challenge

#: Short names of the challenges (the ``mode`` column).
MODE_LABELS = {"closed_loop_nonreactive_agents": "CLS-NR", "closed_loop_reactive_agents": "CLS-R",
               "open_loop_boxes": "OLS"}
#: Short titles of the scoring metrics (tables are wide otherwise).
METRIC_LABELS = {
    "no_ego_at_fault_collisions": "collisions", "drivable_area_compliance": "drivable",
    "driving_direction_compliance": "direction", "ego_is_making_progress": "making progress",
    "ego_progress_along_expert_route": "progress", "time_to_collision_within_bound": "TTC",
    "speed_limit_compliance": "speed limit", "ego_is_comfortable": "comfort",
    "planner_expert_average_l2_error_within_bound": "ADE", "planner_expert_final_l2_error_within_bound": "FDE",
    "planner_expert_average_heading_error_within_bound": "AHE",
    "planner_expert_final_heading_error_within_bound": "FHE", "planner_miss_rate_within_bound": "miss rate",
}
#: The family of the overall rows.
ALL = "all"
#: Columns of :func:`scenario_scores` before the metric columns.
SCENARIO_COLUMNS = ("planner", "mode", "challenge", "agents", "scenario", "log_name", "scenario_type", "family",
                    "status", "error", "score")
#: Columns of :func:`summarize` before the metric columns.
SUMMARY_COLUMNS = ("planner", "mode", "challenge", "family", "scenario_type", "n", "n_failed", "score")
_NEEDED = ("scenario", "scenario_type", "planner_name", "challenge", "metric", "score")


def mode_label(challenge: str) -> str:
    """'CLS-NR' / 'CLS-R' / 'OLS' for a challenge name (or alias)."""
    return MODE_LABELS[get_challenge(challenge).name]


def challenge_metrics(challenge: str) -> list[str]:
    """The scoring metrics of a challenge: multipliers first, then the weighted ones (nuPlan's order)."""
    return list(get_challenge(challenge).metrics)


def _first_text(values: pd.Series) -> str:
    for v in values:
        if isinstance(v, str) and v:
            return v
    return ""


def scenario_scores(metrics: pd.DataFrame, families: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per planner, challenge and scenario: :data:`SCENARIO_COLUMNS` + one column per scoring metric.

    ``metrics``: long metric rows of any number of runs (columns ``scenario``, ``scenario_type``,
    ``planner_name``, ``challenge``, ``metric``, ``score``; optional ``status``, ``error``, ``agents``,
    ``log_name``). ``families``: scenario type -> family name (types not in it are their own family).
    Rows are sorted by planner (first appearance), mode, scenario.
    """
    missing = [c for c in _NEEDED if c not in metrics.columns]
    if missing:
        raise DataError(None, f"metric table lacks columns {missing}", f"columns {list(_NEEDED)}")
    families = dict(families or {})
    parts = []
    planners = list(dict.fromkeys(metrics["planner_name"].astype(str)))
    for (planner, challenge), rows in metrics.groupby(["planner_name", "challenge"], sort=False):
        tokens = list(dict.fromkeys(rows["scenario"].astype(str)))
        table = aggregate(rows.drop(columns=["planner_name"]), str(challenge))
        per = table[table["scenario"].isin(tokens) & (table["num_scenarios"] == 1)].set_index("scenario")
        per = per.reindex(tokens)
        first = rows.drop_duplicates("scenario").set_index("scenario").reindex(tokens)
        errors = rows.groupby("scenario", sort=False)["error"].agg(_first_text) if "error" in rows else None
        out = pd.DataFrame({
            "planner": str(planner), "mode": mode_label(str(challenge)), "challenge": str(challenge),
            "agents": first["agents"].astype(str).to_numpy() if "agents" in first else "",
            "scenario": tokens,
            "log_name": first["log_name"].astype(str).to_numpy() if "log_name" in first else "",
            "scenario_type": per["scenario_type"].astype(str).to_numpy(),
        })
        out["family"] = [families.get(t, t) for t in out["scenario_type"]]
        out["status"] = per["status"].astype(str).to_numpy()
        out["error"] = errors.reindex(tokens).fillna("").to_numpy() if errors is not None else ""
        out["score"] = per["score"].to_numpy(np.float64)
        for m in challenge_metrics(str(challenge)):
            out[m] = per[m].to_numpy(np.float64)
        parts.append(out)
    if not parts:
        return pd.DataFrame(columns=list(SCENARIO_COLUMNS))
    df = pd.concat(parts, ignore_index=True)
    df["_p"] = df["planner"].map({p: i for i, p in enumerate(planners)})
    df = df.sort_values(["_p", "challenge", "scenario"], kind="stable").drop(columns="_p")
    return df.reset_index(drop=True)


def _metric_columns(df: pd.DataFrame) -> list[str]:
    known = [m for ch in ("closed_loop_nonreactive_agents", "open_loop_boxes") for m in challenge_metrics(ch)]
    return [m for m in known if m in df.columns]


def summarize(scenarios: pd.DataFrame, planners: Sequence[str] | None = None) -> pd.DataFrame:
    """Per planner, mode and family (and an overall ``family == 'all'`` row): :data:`SUMMARY_COLUMNS` + the
    mean of each scoring metric (see the module docstring for how failures count).

    ``planners``: the row order of the planners (default: first appearance). Families are sorted, 'all' last.
    """
    metric_cols = _metric_columns(scenarios)
    order = list(planners) if planners is not None else list(dict.fromkeys(scenarios["planner"]))
    order += [p for p in dict.fromkeys(scenarios["planner"]) if p not in order]
    rows = []
    for (planner, challenge), group in scenarios.groupby(["planner", "challenge"], sort=False):
        for family, part in [*sorted(group.groupby("family", sort=False), key=lambda kv: str(kv[0])),
                             (ALL, group)]:
            failed = part["status"] != "ok"
            row: dict[str, object] = {
                "planner": planner, "mode": mode_label(str(challenge)), "challenge": challenge, "family": family,
                "scenario_type": ", ".join(sorted(set(part["scenario_type"].astype(str)))) if family != ALL
                else ALL,
                "n": len(part), "n_failed": int(failed.sum()),
                "score": float(part["score"].where(~failed, 0.0).fillna(0.0).mean()) if len(part) else np.nan}
            for m in metric_cols:
                vals = part.loc[~failed, m].dropna()
                row[m] = float(vals.mean()) if len(vals) else np.nan
            rows.append(row)
    out = pd.DataFrame(rows, columns=[*SUMMARY_COLUMNS, *metric_cols])
    if out.empty:
        return out
    out["_p"] = out["planner"].map({p: i for i, p in enumerate(order)})
    out["_a"] = out["family"] == ALL
    out = out.sort_values(["_p", "challenge", "_a", "family"], kind="stable").drop(columns=["_p", "_a"])
    return out.reset_index(drop=True)


def _ordered(values: Sequence[str], preferred: Sequence[str]) -> list[str]:
    return [v for v in preferred if v in values] + [v for v in values if v not in preferred]


def family_table(summary: pd.DataFrame, value: str = "score") -> pd.DataFrame:
    """``value`` per family (rows, 'all' last) and (mode, planner) (columns, a two-level index: modes in
    CLS-NR, CLS-R, OLS order, planners in the summary's order)."""
    planners = list(dict.fromkeys(summary["planner"]))
    modes = _ordered(list(dict.fromkeys(summary["mode"])), list(MODE_LABELS.values()))
    wide = summary.pivot_table(index="family", columns=["mode", "planner"], values=value, aggfunc="first",
                               sort=False, dropna=False)
    families = sorted(f for f in wide.index if f != ALL) + ([ALL] if ALL in wide.index else [])
    present = set(zip(summary["mode"], summary["planner"], strict=True))
    cols = [(m, p) for m in modes for p in planners if (m, p) in present]
    return wide.reindex(index=families, columns=pd.MultiIndex.from_tuples(cols, names=["mode", "planner"]))


def overall_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The challenge score of every planner (rows, summary order) in every mode (columns: CLS-NR, CLS-R, ...)."""
    overall = summary[summary["family"] == ALL]
    planners = list(dict.fromkeys(summary["planner"]))
    modes = _ordered(list(dict.fromkeys(overall["mode"])), list(MODE_LABELS.values()))
    wide = overall.pivot_table(index="planner", columns="mode", values="score", aggfunc="first", sort=False)
    return wide.reindex(index=planners, columns=modes)


def metric_table(summary: pd.DataFrame, mode: str, family: str = ALL) -> pd.DataFrame:
    """Per planner (rows): n, n_failed, score and the mean of each scoring metric of ``mode`` for ``family``."""
    part = summary[(summary["mode"] == mode) & (summary["family"] == family)]
    if part.empty:
        return pd.DataFrame()
    metric_cols = [m for m in challenge_metrics(str(part["challenge"].iloc[0])) if m in part.columns]
    return part.set_index("planner")[["n", "n_failed", "score", *metric_cols]]


def failures(scenarios: pd.DataFrame) -> pd.DataFrame:
    """The failed scenarios: planner, mode, family, scenario, log_name, error (sorted like the input)."""
    cols = ["planner", "mode", "family", "scenario", "log_name", "error"]
    return scenarios.loc[scenarios["status"] != "ok", cols].reset_index(drop=True)


def shortfalls(scenarios: pd.DataFrame, planner: str, mode: str, scenario: str, digits: int = 2) -> str:
    """What cost a scenario its score: its scoring metrics below 1 (at ``digits``) as ``'collisions 0, progress 0.71'``
    (multipliers first), ``'failed: <reason>'`` for a failed run, ``''`` when every metric is 1 or it is absent."""
    hit = scenarios[(scenarios["planner"] == planner) & (scenarios["mode"] == mode)
                    & (scenarios["scenario"] == scenario)]
    if hit.empty:
        return ""
    row = hit.iloc[0]
    if row["status"] != "ok":
        return f"failed: {row['error'] or row['status']}"
    parts = []
    for m in challenge_metrics(str(row["challenge"])):
        v = row.get(m, np.nan)
        if v == v and round(float(v), digits) < 1.0:  # 0.9996 shown as '1' would read as no shortfall
            parts.append(f"{METRIC_LABELS.get(m, m)} {round(float(v), digits):g}")
    return ", ".join(parts)


def pick_showcase(scenarios: pd.DataFrame, mode: str | None = None, exclude: Sequence[str] = ()) -> pd.DataFrame:
    """For each family: the best and the worst planner (by family mean score in ``mode``) and the scenario
    that tells them apart most (largest score gap; then ok rollouts first; then token order).

    ``mode``: 'CLS-NR' / 'CLS-R' / ...; None or absent: CLS-R if present, else the first mode.
    ``exclude``: planners not to show (e.g. the log-replay oracle), ignored when fewer than two others remain.
    Ties keep the planners' order: the first best, the last worst. A family with one planner gets
    ``worst = None``. Columns: family, mode, scenario, best, best_score, worst, worst_score.
    """
    cols = ["family", "mode", "scenario", "best", "best_score", "worst", "worst_score"]
    if scenarios.empty:
        return pd.DataFrame(columns=cols)
    modes = list(dict.fromkeys(scenarios["mode"]))
    if mode not in modes:
        mode = "CLS-R" if "CLS-R" in modes else modes[0]
    data = scenarios[scenarios["mode"] == mode]
    planners = list(dict.fromkeys(data["planner"]))
    shown = [p for p in planners if p not in set(exclude)]
    if len(shown) < 2:
        shown = planners
    data = data[data["planner"].isin(shown)]
    rows = []
    for family, part in sorted(data.groupby("family", sort=False), key=lambda kv: str(kv[0])):
        scores = part.assign(s=part["score"].where(part["status"] == "ok", 0.0).fillna(0.0))
        means = scores.groupby("planner", sort=False)["s"].mean().reindex([p for p in shown if p in
                                                                           set(part["planner"])])
        best = str(means.idxmax())
        worst_candidates = means[means == means.min()]
        worst = str(worst_candidates.index[-1]) if len(means) > 1 else None
        if worst == best:
            worst = None
        by = scores.pivot_table(index="scenario", columns="planner", values="s", aggfunc="first", sort=True)
        ok = scores.pivot_table(index="scenario", columns="planner", values="status", aggfunc="first", sort=True)
        pair = [best] + ([worst] if worst else [])
        by = by[pair].dropna()
        if by.empty:
            continue
        gap = by[best] - by[worst] if worst else pd.Series(0.0, index=by.index)
        all_ok = (ok.loc[by.index, pair] == "ok").all(axis=1)
        ranked = pd.DataFrame({"gap": gap, "ok": all_ok, "token": by.index}).sort_values(
            ["gap", "ok", "token"], ascending=[False, False, True], kind="stable")
        token = str(ranked.index[0])
        rows.append({"family": family, "mode": mode, "scenario": token, "best": best,
                     "best_score": float(by.loc[token, best]), "worst": worst,
                     "worst_score": float(by.loc[token, worst]) if worst else np.nan})
    return pd.DataFrame(rows, columns=cols)
