"""Which nuPlan challenge a run is, and the metrics of one rollout (via :mod:`sim.metrics`).

- ego controller ``log_playback`` -> ``open_loop_boxes`` (OLS: the planner's plans against the log);
- agents ``log_replay`` -> ``closed_loop_nonreactive_agents`` (CLS-NR);
- agents ``reactive`` -> ``closed_loop_reactive_agents`` (CLS-R).
"""

from __future__ import annotations

from sim.scenario import Scenario

OLS = "open_loop_boxes"
CLS_NR = "closed_loop_nonreactive_agents"
CLS_R = "closed_loop_reactive_agents"

#: The metrics with a per-scenario score in each challenge (nuPlan's metric sets, reference §5.1).
SCORE_METRICS: dict[str, tuple[str, ...]] = {
    CLS_NR: ("no_ego_at_fault_collisions", "drivable_area_compliance", "driving_direction_compliance",
             "ego_is_making_progress", "ego_progress_along_expert_route", "time_to_collision_within_bound",
             "speed_limit_compliance", "ego_is_comfortable"),
    OLS: ("planner_expert_average_l2_error_within_bound", "planner_expert_average_heading_error_within_bound",
          "planner_expert_final_l2_error_within_bound", "planner_expert_final_heading_error_within_bound",
          "planner_miss_rate_within_bound"),
}
SCORE_METRICS[CLS_R] = SCORE_METRICS[CLS_NR]


def challenge_for(agents: str, ego_controller: str = "two_stage") -> str:
    if ego_controller == "log_playback":
        return OLS
    return CLS_R if agents in ("reactive", "idm") else CLS_NR


def score_rollout(rollout: object, scenario: Scenario, map_api: object, challenge: str) -> dict[str, float]:
    """All metrics of the challenge for a finished rollout (``{}`` for a failed one)."""
    if rollout.status != "ok":
        return {}
    expert = scenario.expert.slice(0, rollout.num_iterations)
    if challenge == OLS:
        from sim.metrics.open_loop import compute_open_loop_metrics

        return compute_open_loop_metrics(rollout.planned_trajectories(), expert)
    from sim.metrics import compute_closed_loop_metrics

    return compute_closed_loop_metrics(rollout.ego, rollout.tracks, expert, map_api, scenario.route_roadblock_ids,
                                       traffic_lights=rollout.traffic_lights)
