"""The closed loop on an in-memory scenario: loop invariants, log replay fidelity, planner faults."""

from __future__ import annotations

import time

import numpy as np
import pytest

from experts.baselines import ConstantVelocityPlanner, LogReplayPlanner
from sim.planning import Planner, PlannerInitialization, PlannerInput
from sim.runner.faults import trajectory_fault
from sim.runner.simulation import run_scenario
from sim.trajectory import Trajectory
from tests.sim.runner.world import junction_map, log_replay_agents, straight_scenario


class Recorder(ConstantVelocityPlanner):
    """Constant velocity, recording what the simulator gave it."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[PlannerInput] = []
        self.init: PlannerInitialization | None = None

    def initialize(self, initialization: PlannerInitialization) -> None:
        self.init = initialization

    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        self.inputs.append(current_input)
        return super().compute_trajectory(current_input)


def test_loop_invariants():
    sc = straight_scenario(num_iterations=61)
    planner = Recorder()
    r = run_scenario(sc, junction_map(), planner, agents=log_replay_agents())
    n = sc.num_iterations
    assert r.status == "ok" and r.error == ""
    assert len(r.ego) == n - 1 == len(planner.inputs) == r.tracks.num_steps == len(r.latency_s)
    assert [p.iteration for p in planner.inputs] == list(range(n - 1))
    assert planner.init is not None and planner.init.scenario is None  # not an oracle
    assert planner.init.route_roadblock_ids == sc.route_roadblock_ids
    for i, inp in enumerate(planner.inputs):
        assert len(inp.ego_history) == len(inp.observation_history) <= 21
        assert inp.time_s == pytest.approx(sc.time_us[sc.index(i)] * 1e-6)
        np.testing.assert_allclose(inp.current_ego.pose[0], r.ego.pose[i])
        assert np.all(np.diff(inp.ego_history.time_s) > 0)
    first = planner.inputs[0]
    assert len(first.ego_history) == 21  # 2 s of logged past + the current state
    np.testing.assert_allclose(first.ego_history.pose, sc.ego.pose[sc.index(-20):sc.index(0) + 1])
    np.testing.assert_allclose(r.ego.time_s, sc.time_us[sc.index(0):sc.index(n - 1)] * 1e-6)
    assert np.all(np.isfinite(r.latency_s)) and np.all(r.latency_s >= 0)
    # both logged objects are shown at every sample
    assert r.tracks.valid.all() and len(r.tracks) == 2
    # plans are stored at 1 Hz from the current time
    np.testing.assert_allclose(r.plan_time_s[:, 0], r.ego.time_s)
    np.testing.assert_allclose(r.plan_time_s[0, 1] - r.plan_time_s[0, 0], 1.0, atol=1e-6)


def test_num_iterations_limits_the_run():
    sc = straight_scenario(num_iterations=61)
    planner = Recorder()
    r = run_scenario(sc, junction_map(), planner, agents=log_replay_agents(), num_iterations=11)
    assert len(r.ego) == 10 == len(planner.inputs)


@pytest.mark.parametrize(("speed", "accel", "tolerance"), [(5.0, 0.0, 0.01), (2.0, 0.5, 1.0)])
def test_log_replay_follows_the_log(speed, accel, tolerance):
    sc = straight_scenario(speed=speed, accel=accel, lead_gap=None)
    r = run_scenario(sc, junction_map(), LogReplayPlanner(), agents=log_replay_agents())
    assert r.status == "ok"
    err = np.hypot(*(r.ego.pose[:, :2] - sc.expert.pose[:len(r.ego), :2]).T)
    assert err.max() < tolerance
    assert np.abs(r.ego.pose[:, 2]).max() < 1e-6


class Faulty(Planner):
    """Returns a broken trajectory (or raises / sleeps) from iteration ``at`` on."""

    def __init__(self, kind: str, at: int = 3) -> None:
        self.kind, self.at = kind, at

    def initialize(self, initialization: PlannerInitialization) -> None:
        if self.kind == "init":
            raise RuntimeError("no map for me")

    def compute_trajectory(self, current_input: PlannerInput) -> Trajectory:
        good = ConstantVelocityPlanner().compute_trajectory(current_input)
        if current_input.iteration < self.at:
            return good
        t, p = good.time_s.copy(), good.pose.copy()
        if self.kind == "raise":
            raise ValueError("boom")
        if self.kind == "nan":
            p[5, 1] = np.nan
            return Trajectory(t, p)
        if self.kind == "short":
            return Trajectory(t[:1], p[:1])
        if self.kind == "late":
            return Trajectory(t[1:], p[1:])
        if self.kind == "past":
            return Trajectory(t - 10.0, p)
        if self.kind == "nonmonotonic":
            t[4], t[5] = t[5], t[4]
            return Trajectory(t, p)
        if self.kind == "type":
            return p
        if self.kind == "slow":
            time.sleep(0.06)
            return good
        raise AssertionError(self.kind)


@pytest.mark.parametrize(("kind", "reason"), [
    ("raise", "planner raised ValueError: boom"), ("nan", "non-finite"), ("short", "1 pose(s)"),
    ("late", "after the current time"), ("past", "not after the current time"),
    ("nonmonotonic", "not strictly increasing"), ("type", "expected a sim.trajectory.Trajectory"),
    ("slow", "over the step budget"), ("init", "planner.initialize raised RuntimeError: no map for me"),
])
def test_faults_fail_the_scenario_with_the_reason(kind, reason):
    sc = straight_scenario(num_iterations=21)
    r = run_scenario(sc, junction_map(), Faulty(kind), agents=log_replay_agents(), step_time_budget_s=0.05)
    assert r.status == "failed"
    assert reason in r.error
    if kind != "init":
        assert r.error.startswith("iteration 3:")
        assert len(r.ego) == 4  # samples 0..3 recorded, the plan of sample 3 rejected
        assert np.isfinite(r.plan_time_s[:3, 0]).all() and np.isnan(r.plan_time_s[3]).all()
    # the next scenario runs normally
    ok = run_scenario(sc, junction_map(), ConstantVelocityPlanner(), agents=log_replay_agents())
    assert ok.status == "ok" and len(ok.ego) == sc.num_iterations - 1


def test_trajectory_fault_accepts_valid_plans():
    t = np.array([1.0, 1.1, 1.2])
    p = np.zeros((3, 3))
    assert trajectory_fault(Trajectory(t, p), 1.0) is None
    assert trajectory_fault(Trajectory(t, p), 1.15) is None
    assert "after the current time" in trajectory_fault(Trajectory(t, p), 0.9)
    assert "not after" in trajectory_fault(Trajectory(t, p), 1.2)
    assert "shape" in trajectory_fault(Trajectory(t, p[:, :2]), 1.0)


def test_unknown_agents_mode_fails_the_scenario():
    sc = straight_scenario(num_iterations=11)
    r = run_scenario(sc, junction_map(), ConstantVelocityPlanner(), agents="teleport")
    assert r.status == "failed" and "unknown agents mode 'teleport'" in r.error


class CloudReader(Recorder):
    wants_point_cloud = True


def test_point_cloud_on_request_sees_the_lead_vehicle():
    sc = straight_scenario(num_iterations=11, lead_gap=10.0)
    planner = CloudReader()
    r = run_scenario(sc, junction_map(), planner, agents=log_replay_agents())
    assert r.status == "ok"
    obs = planner.inputs[-1].current_observation
    cloud = obs.point_cloud
    assert cloud is not None and cloud.ndim == 2 and cloud.shape[1] == 3 and len(cloud) > 0
    lead = obs.tracks.pose[list(obs.tracks.token).index("1000000000000001"), 0]
    near_lead = np.hypot(cloud[:, 0] - lead[0], cloud[:, 1] - lead[1]) < 3.0
    assert near_lead.sum() > 10
    # planners that do not ask get none
    plain = Recorder()
    run_scenario(sc, junction_map(), plain, agents=log_replay_agents())
    assert plain.inputs[-1].current_observation.point_cloud is None


def test_stored_plans_are_strictly_increasing_up_to_the_end():
    sc = straight_scenario(num_iterations=101)
    r = run_scenario(sc, junction_map(), LogReplayPlanner(), agents=log_replay_agents())
    for t in r.plan_time_s:
        t = t[np.isfinite(t)]
        assert len(t) >= 2 and np.all(np.diff(t) > 0)
    # near the end the oracle's plan stops at the log's last stamp: kept once, not twice
    last = r.plan_time_s[-1][np.isfinite(r.plan_time_s[-1])]
    assert last[-1] == pytest.approx(sc.time_us[-1] * 1e-6)
