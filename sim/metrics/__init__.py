"""nuPlan's closed-loop (CLS-NR / CLS-R) and open-loop (OLS) metrics as pure functions of a rollout.

Entry points: :func:`compute_closed_loop_metrics`, :func:`compute_open_loop_metrics`, :func:`aggregate`.
Reusable pieces for other scorers: :mod:`sim.metrics.collisions` (collision detection / classification),
:mod:`sim.metrics.comfort` (comfort signals and bounds), :mod:`sim.metrics.route` (lane occupancy).
"""

from sim.metrics.aggregate import CHALLENGES, aggregate, final_score, scenario_score, score_rows
from sim.metrics.closed_loop import CLS_METRICS, compute_closed_loop_metrics
from sim.metrics.common import DEFAULT_PARAMS, METRICS_VERSION, MetricParams
from sim.metrics.open_loop import OLS_METRICS, compute_open_loop_metrics

__all__ = [
    "CHALLENGES", "CLS_METRICS", "DEFAULT_PARAMS", "METRICS_VERSION", "OLS_METRICS", "MetricParams", "aggregate",
    "compute_closed_loop_metrics", "compute_open_loop_metrics", "final_score", "scenario_score", "score_rows",
]
