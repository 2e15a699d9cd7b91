"""nuPlan's weighted-average aggregator as a pure function of a per-scenario metric table.

Input (long format, one row per scenario and metric): columns ``scenario``, ``scenario_type``, ``metric``,
``score`` and optionally ``status`` ('ok' unless the simulation failed), ``planner_name``, ``log_name``.
A scenario is failed when any of its rows has a status other than 'ok': its score is 0 and its metric values are
left out (like nuPlan's ``None``), and it is listed in ``DataFrame.attrs['failed_scenarios']``.

Per scenario: ``score = prod(multipliers) * sum(w_i s_i) / sum(w_i)`` over the challenge's metrics with a value.
Per scenario type: ``score`` = mean of its scenarios' scores, metric columns = **sums**. Final row
(``scenario == 'final_score'``): ``score`` = plain mean over all scenarios, metric columns = sum / number of
scenarios. Because the input holds only metric scores, results can be re-scored under a new aggregation
without re-simulating (see :data:`sim.metrics.common.METRICS_VERSION`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sim.errors import DataError
from sim.metrics.closed_loop import CLS_METRICS
from sim.metrics.common import METRICS_VERSION
from sim.metrics.open_loop import OLS_METRICS

if TYPE_CHECKING:  # pandas (~1 s to import) is loaded by the functions that build tables, not by `import sim.metrics`
    import pandas as pd



@dataclass(frozen=True)
class Challenge:
    """Weights of averaged metrics and the list of multiplier metrics."""

    name: str
    weights: Mapping[str, float]
    multipliers: tuple[str, ...]

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.multipliers) + tuple(self.weights)


_CLS_WEIGHTS = {"ego_progress_along_expert_route": 5.0, "time_to_collision_within_bound": 5.0,
                "speed_limit_compliance": 4.0, "ego_is_comfortable": 2.0}
_CLS_MULTIPLIERS = ("no_ego_at_fault_collisions", "drivable_area_compliance", "ego_is_making_progress",
                    "driving_direction_compliance")

CHALLENGES: dict[str, Challenge] = {
    "closed_loop_nonreactive_agents": Challenge("closed_loop_nonreactive_agents", _CLS_WEIGHTS, _CLS_MULTIPLIERS),
    "closed_loop_reactive_agents": Challenge("closed_loop_reactive_agents", _CLS_WEIGHTS, _CLS_MULTIPLIERS),
    "open_loop_boxes": Challenge("open_loop_boxes", {
        "planner_expert_average_l2_error_within_bound": 1.0,
        "planner_expert_average_heading_error_within_bound": 2.0,
        "planner_expert_final_l2_error_within_bound": 1.0,
        "planner_expert_final_heading_error_within_bound": 2.0,
    }, ("planner_miss_rate_within_bound",)),
}
ALIASES = {"cls_nr": "closed_loop_nonreactive_agents", "cls-nr": "closed_loop_nonreactive_agents",
           "cls_r": "closed_loop_reactive_agents", "cls-r": "closed_loop_reactive_agents", "ols": "open_loop_boxes"}

assert set(CHALLENGES["closed_loop_nonreactive_agents"].metrics) == set(CLS_METRICS)
assert set(CHALLENGES["open_loop_boxes"].metrics) == set(OLS_METRICS)

FINAL = "final_score"
REQUIRED = ("scenario", "scenario_type", "metric", "score")


def get_challenge(challenge: str | Challenge) -> Challenge:
    if isinstance(challenge, Challenge):
        return challenge
    key = ALIASES.get(challenge.lower(), challenge.lower())
    if key not in CHALLENGES:
        raise DataError(None, f"unknown challenge '{challenge}'",
                        f"one of {', '.join(list(CHALLENGES) + list(ALIASES))}")
    return CHALLENGES[key]


def scenario_score(values: Mapping[str, float], challenge: str | Challenge) -> float:
    """Weighted-average score of one scenario from its metric scores (missing / NaN metrics are skipped)."""
    ch = get_challenge(challenge)
    factor, total, weight_sum = 1.0, 0.0, 0.0
    for name, value in values.items():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        if name in ch.multipliers:
            factor *= float(value)
        elif name in ch.weights:
            total += ch.weights[name] * float(value)
            weight_sum += ch.weights[name]
    return factor * (total / weight_sum if weight_sum else 0.0)


def score_rows(scenario: str, scenario_type: str, metrics: Mapping[str, float], challenge: str | Challenge,
               status: str = "ok", **extra: object) -> list[dict[str, object]]:
    """Rows of the aggregator's input table for one scenario's metric dict (only the challenge's metrics).
    A failed scenario (``status != 'ok'``) gets one row per metric with a NaN score."""
    ch = get_challenge(challenge)
    rows = []
    for name in ch.metrics:
        value = metrics.get(name, np.nan) if status == "ok" else np.nan
        rows.append({"scenario": scenario, "scenario_type": scenario_type, "metric": name,
                     "score": float(value), "status": status, "metrics_version": METRICS_VERSION, **extra})
    return rows


def _aggregate_one(df: pd.DataFrame, ch: Challenge) -> tuple[pd.DataFrame, list[str]]:
    import pandas as pd

    metric_cols = sorted(m for m in ch.metrics)
    status = df.groupby("scenario", sort=False)["status"].agg(lambda s: "ok" if (s == "ok").all() else
                                                              next(v for v in s if v != "ok"))
    wide = df.pivot_table(index="scenario", columns="metric", values="score", aggfunc="first", dropna=False,
                          sort=False)
    wide = wide.reindex(index=status.index, columns=metric_cols)
    first = df.drop_duplicates("scenario").set_index("scenario")
    failed = [str(s) for s in status.index if status[s] != "ok"]
    wide.loc[failed, :] = np.nan
    scores = [0.0 if status[s] != "ok" else scenario_score(wide.loc[s].to_dict(), ch) for s in wide.index]
    per = pd.DataFrame({"scenario": wide.index.astype(str),
                        "scenario_type": first.loc[wide.index, "scenario_type"].to_numpy(),
                        "num_scenarios": 1, "status": status.to_numpy()})
    for col in ("log_name", "planner_name"):
        if col in first.columns:
            per[col] = first.loc[wide.index, col].to_numpy()
    for m in metric_cols:
        per[m] = wide[m].to_numpy(dtype=np.float64)
    per["score"] = scores

    type_rows = []
    for stype, group in per.groupby("scenario_type", sort=True):
        row: dict[str, object] = {"scenario": stype, "scenario_type": stype, "num_scenarios": len(group),
                                  "status": f"{int((group['status'] != 'ok').sum())} failed"}
        for m in metric_cols:
            vals = group[m].dropna()
            row[m] = float(vals.sum()) if len(vals) else np.nan
        row["score"] = float(group["score"].mean())
        type_rows.append(row)
    types = pd.DataFrame(type_rows)
    total = int(types["num_scenarios"].sum()) if len(types) else 0
    final: dict[str, object] = {"scenario": FINAL, "scenario_type": FINAL, "num_scenarios": total,
                                "status": f"{len(failed)} failed"}
    for m in metric_cols:
        vals = types[m].dropna() if len(types) else pd.Series(dtype=float)
        final[m] = float(vals.sum()) / total if len(vals) and total else np.nan
    final["score"] = float((types["score"] * types["num_scenarios"]).sum() / total) if total else np.nan
    out = pd.concat([per, types, pd.DataFrame([final])], ignore_index=True)
    if "planner_name" in per.columns:
        out["planner_name"] = per["planner_name"].iloc[0]
    return out, failed


def aggregate(df: pd.DataFrame, challenge: str | Challenge) -> pd.DataFrame:
    """Aggregate a long per-scenario metric table (see module docstring) for ``challenge``
    ('closed_loop_nonreactive_agents' / 'cls_nr', 'closed_loop_reactive_agents' / 'cls_r', 'open_loop_boxes' /
    'ols').

    Returns one row per scenario, one per scenario type and a final row (``scenario == 'final_score'``, whose
    ``score`` is the challenge score), per planner when a ``planner_name`` column is present. Columns:
    ``scenario``, ``scenario_type``, ``num_scenarios``, ``status``, one column per challenge metric, ``score``.
    ``attrs``: ``failed_scenarios`` (list), ``challenge``, ``metrics_version``.
    """
    import pandas as pd

    ch = get_challenge(challenge)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise DataError(None, f"metric table lacks columns {missing}", f"columns {list(REQUIRED)}")
    data = df.copy()
    if "status" not in data.columns:
        data["status"] = "ok"
    data["status"] = data["status"].fillna("ok").astype(str)
    data["score"] = pd.to_numeric(data["score"], errors="coerce")
    data = data[data["metric"].isin(ch.metrics) | (data["status"] != "ok")]
    parts, failed = [], []
    groups = data.groupby("planner_name", sort=True) if "planner_name" in data.columns else [(None, data)]
    for _, group in groups:
        table, fail = _aggregate_one(group, ch)
        parts.append(table)
        failed += fail
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out.attrs["failed_scenarios"] = failed
    out.attrs["challenge"] = ch.name
    out.attrs["metrics_version"] = METRICS_VERSION
    return out


def final_score(table: pd.DataFrame) -> float:
    """The challenge score of an :func:`aggregate` result (single planner)."""
    return float(table.loc[table["scenario"] == FINAL, "score"].iloc[-1])
