"""nuPlan's closed loop for one scenario: planner -> controller -> agents, every 0.1 s.

Per iteration ``i = 0 .. N-2`` (N = scenario iterations, 151 for 15 s): the planner gets iteration ``i``, the
history buffer (2 s of ego states and observations + the current one, oldest first; at ``i = 0`` the past comes
from the log) and the traffic lights of iteration ``i``; its trajectory is checked (:mod:`sim.runner.faults`) and
tracked by the ego controller to iteration ``i+1``; then the agents advance (given the ego at ``i``, as nuPlan's
observation update reads the buffer before the new ego is appended). The rollout holds the ``N-1`` samples
``0 .. N-2`` (nuPlan's simulation history).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.agents.base import AgentModel
from sim.errors import DataError
from sim.geometry import rear_axle_to_center
from sim.planning import Observation, Planner, PlannerInitialization, PlannerInput
from sim.runner.ego_update import ego_update
from sim.runner.faults import trajectory_fault
from sim.scenario import EgoStates, Scenario, Tracks, TrafficLights
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA

F64 = npt.NDArray[np.float64]

#: Planned trajectories are kept at 1 Hz for 8 s (9 poses incl. the current one) plus the plan's end if earlier.
PLAN_SAMPLES = 10
PLAN_HORIZON_S = 8.0
PLAN_STEP_ITERATIONS = 10  # 1 s at 0.1 s


@dataclass(frozen=True)
class Rollout:
    """One simulated scenario, ``S`` samples (``N-1`` when it ran to the end, fewer when it failed).

    - ``ego``: simulated ego, ``S`` samples (rear axle)
    - ``tracks``: the objects shown to the planner at each sample, ``(M, S)`` (union over samples, sorted by token)
    - ``traffic_lights``: the traffic-light states of each sample, ``(S, L)``
    - ``plan_time_s`` / ``plan_pose``: ``(S, 10)`` / ``(S, 10, 3)``: each step's plan at the scenario stamps
      1 s apart (iterations ``i, i+10, .., i+80``), cut at the plan's end with its last pose appended; NaN padded
    - ``latency_s``: ``(S,)`` planner wall time per step (NaN where it was not called)
    - ``status``: ``'ok'`` or ``'failed'``; ``error``: the reason (empty when ok)
    """

    token: str
    log_name: str
    scenario_type: str
    planner_name: str
    agents: str
    num_iterations: int
    ego: EgoStates
    tracks: Tracks
    traffic_lights: TrafficLights
    plan_time_s: F64
    plan_pose: F64
    latency_s: F64
    status: str = "ok"
    error: str = ""

    @property
    def num_samples(self) -> int:
        return len(self.ego)

    def planned_trajectories(self) -> list[Trajectory]:
        """The stored plans as :class:`Trajectory` objects, one per sample that has one."""
        out = []
        for t, p in zip(self.plan_time_s, self.plan_pose, strict=True):
            keep = np.isfinite(t)
            if keep.sum() >= 2:
                out.append(Trajectory(t[keep], p[keep]))
        return out


def make_agent_model(agents: str | AgentModel, replay_tagged: bool = False) -> AgentModel:
    """``'log_replay'`` (non-reactive, CLS-NR) or ``'reactive'`` (IDM agents, CLS-R), or a ready model.

    ``replay_tagged`` (reactive only): the scenario's tagged agents stay on log replay (see ``IDMAgents``)."""
    if not isinstance(agents, str):
        return agents
    if agents == "log_replay":
        from sim.agents.log_replay import LogReplayAgents

        return LogReplayAgents()
    if agents in ("reactive", "idm"):
        from sim.agents.idm import IDMAgents

        return IDMAgents(replay_tagged=replay_tagged)
    raise DataError(None, f"unknown agents mode '{agents}'", "'log_replay' or 'reactive'")


def _plan_stamps(scenario: Scenario, num_samples: int) -> F64:
    """``(num_samples, 9)`` times (s) at which each step's plan is kept: the scenario stamps of iterations
    ``i, i+10, .., i+80``; past the log's end, nominal steps of the scenario interval."""
    t = scenario.time_us * 1e-6
    last = len(t) - 1
    idx = scenario.index(0) + np.arange(num_samples)[:, None] + PLAN_STEP_ITERATIONS * np.arange(
        int(PLAN_HORIZON_S) + 1)[None]
    return t[np.minimum(idx, last)] + np.maximum(idx - last, 0) * scenario.interval_s


def _plan_samples(trajectory: Trajectory, stamps: F64, out_t: F64, out_p: F64) -> None:
    """Keep ``trajectory`` at ``stamps`` up to its end, plus its end pose if it ends earlier (see :class:`Rollout`)."""
    end = trajectory.end_s
    n = int(np.searchsorted(stamps, end, side="right"))
    keep = stamps[:n] if n == len(stamps) or (n and stamps[n - 1] >= end) else np.append(stamps[:n], end)
    out_t[:len(keep)] = keep
    _interpolate_poses(trajectory.time_s, trajectory.pose, keep, out_p[:len(keep)])


def _interpolate_poses(t: F64, pose: F64, query: F64, out: F64) -> None:
    """:func:`sim.geometry.interpolate_poses` written into ``out`` (same values), skipping ``np.unwrap``'s work
    when no heading step reaches π (the usual case: its result is then the headings themselves)."""
    t = np.asarray(t, dtype=np.float64)
    pose = np.asarray(pose, dtype=np.float64)
    heading = pose[:, 2]
    if not (np.abs(heading[1:] - heading[:-1]) < np.pi).all():
        heading = np.unwrap(heading)
    out[:, 0] = np.interp(query, t, pose[:, 0])
    out[:, 1] = np.interp(query, t, pose[:, 1])
    out[:, 2] = (np.interp(query, t, heading) + np.pi) % (2.0 * np.pi) - np.pi


def _collect_tracks(observed: list[Tracks]) -> Tracks:
    """Union of per-sample observations ``(N_i, 1)`` into ``(M, S)`` tracks, rows sorted by token."""
    s = len(observed)
    if s == 0 or sum(len(o) for o in observed) == 0:
        return Tracks.empty(s)
    tokens = np.concatenate([o.token for o in observed])
    step = np.concatenate([np.full(len(o), k) for k, o in enumerate(observed)])
    uniq, first, row = np.unique(tokens, return_index=True, return_inverse=True)
    m = len(uniq)
    pose = np.full((m, s, 3), np.nan)
    velocity = np.zeros((m, s, 2))
    valid = np.zeros((m, s), bool)
    pose[row, step] = np.concatenate([o.pose[:, 0] for o in observed])
    velocity[row, step] = np.concatenate([o.velocity[:, 0] for o in observed])
    valid[row, step] = True
    category = np.concatenate([o.category for o in observed])[first]
    size = np.concatenate([o.size for o in observed])[first]
    return Tracks(uniq, category, size, pose, velocity, valid)


class _EgoBuffer:
    """Past + simulated ego states in preallocated arrays; history windows are cheap views."""

    def __init__(self, past: EgoStates, capacity: int) -> None:
        self.size = 0
        self.time_s = np.zeros(capacity)
        self.pose = np.zeros((capacity, 3))
        self.velocity = np.zeros((capacity, 2))
        self.acceleration = np.zeros((capacity, 2))
        self.steering_angle = np.zeros(capacity)
        self.yaw_rate = np.zeros(capacity)
        self.append(past)

    def append(self, states: EgoStates) -> None:
        a = self.size
        b = a + len(states)
        self.time_s[a:b] = states.time_s
        self.pose[a:b] = states.pose
        self.velocity[a:b] = states.velocity
        self.acceleration[a:b] = states.acceleration
        self.steering_angle[a:b] = states.steering_angle
        self.yaw_rate[a:b] = states.yaw_rate
        self.size = b

    def view(self, start: int, stop: int) -> EgoStates:
        s = slice(max(start, 0), stop)
        return EgoStates(self.time_s[s], self.pose[s], self.velocity[s], self.acceleration[s],
                         self.steering_angle[s], self.yaw_rate[s])


def run_scenario(
    scenario: Scenario,
    map_api: object,
    planner: Planner,
    agents: str | AgentModel = "log_replay",
    num_iterations: int | None = None,
    history_s: float = 2.0,
    step_time_budget_s: float | None = None,
    point_cloud: bool = False,
    ego_controller: str = "two_stage",
    on_step: Callable[[int], None] | None = None,
    replay_tagged: bool = False,
) -> Rollout:
    """Simulate ``planner`` on ``scenario`` in closed loop; never raises for planner faults.

    ``num_iterations``: scenario iterations to use (default all, N); the planner is called ``N-1`` times.
    ``history_s``: history buffer length (2 s -> 21 states incl. the current one).
    ``step_time_budget_s``: a step whose planner call takes longer fails the scenario (None: no limit).
    ``point_cloud``: attach a simulated LiDAR point cloud to every observation (also when the planner sets
    ``wants_point_cloud``). ``ego_controller``: see :mod:`sim.runner.ego_update`. ``replay_tagged``: with reactive
    agents, keep the scenario's tagged agents (the corner case's hazard) on log replay.
    """
    n_total = scenario.num_iterations
    n = n_total if num_iterations is None else min(int(num_iterations), n_total)
    if n < 2:
        raise DataError(None, f"scenario {scenario.token} has {n} iteration(s) to simulate", "at least 2")
    dt_nominal = scenario.interval_s
    hist_len = int(round(history_s / dt_nominal)) + 1
    past = min(hist_len - 1, scenario.history_steps)
    base = scenario.index(0)
    update = ego_update(ego_controller)
    want_pc = bool(point_cloud or getattr(planner, "wants_point_cloud", False))
    if want_pc:
        from sim.observation.lidar import simulate_lidar

    def observation(tracks: Tracks, ego_pose: F64) -> Observation:
        # the roof LiDAR sits above the box centre; nuPlan maps have no walls, so only objects occlude
        cloud = simulate_lidar(rear_axle_to_center(ego_pose, PACIFICA.rear_axle_to_center), tracks) if want_pc \
            else None
        return Observation(tracks, cloud)

    ego = _EgoBuffer(scenario.ego.slice(base - past, base + 1), past + n)
    obs: list[Observation] = [observation(scenario.tracks.at(base - past + k), scenario.ego.pose[base - past + k])
                              for k in range(past)]
    num_samples = n - 1
    plan_t = np.full((num_samples, PLAN_SAMPLES), np.nan)
    plan_p = np.full((num_samples, PLAN_SAMPLES, 3), np.nan)
    latency = np.full(num_samples, np.nan)
    stamps = _plan_stamps(scenario, num_samples)
    # Traffic lights as dicts, built from Python lists (same content as TrafficLights.at, cheaper per step).
    light_ids = scenario.traffic_lights.lane_connector_id.tolist()
    light_status = scenario.traffic_lights.status

    def lights_at(step: int) -> dict[int, int]:
        return dict(zip(light_ids, light_status[step].tolist(), strict=True))

    lights_next: dict[int, int] = {}
    status, error = "ok", ""
    done = 0  # samples recorded
    planner_name = str(getattr(planner, "name", type(planner).__name__))
    agents_name = agents if isinstance(agents, str) else type(agents).__name__
    try:
        model = make_agent_model(agents, replay_tagged)
        model.reset(scenario, map_api, start_iteration=0)
        obs.append(observation(model.observe(), ego.pose[past]))
        init = PlannerInitialization(scenario.route_roadblock_ids, scenario.mission_goal, map_api,
                                     scenario if getattr(planner, "requires_scenario", False) else None)
        try:
            planner.initialize(init)
        except Exception as err:  # noqa: BLE001 - any planner bug fails the scenario, not the run
            raise _Fault(f"planner.initialize raised {_describe(err)}") from err
        for i in range(num_samples):
            cur = past + i
            now_s = float(ego.time_s[cur])
            lights = lights_next if i else lights_at(base)
            inp = PlannerInput(i, now_s, ego.view(cur - hist_len + 1, cur + 1),
                               tuple(obs[max(cur - hist_len + 1, 0):cur + 1]), lights)
            done = i + 1
            start = time.perf_counter()
            try:
                trajectory = planner.compute_trajectory(inp)
            except Exception as err:  # noqa: BLE001
                latency[i] = time.perf_counter() - start
                raise _Fault(f"iteration {i}: planner raised {_describe(err)}") from err
            latency[i] = time.perf_counter() - start
            if step_time_budget_s is not None and latency[i] > step_time_budget_s:
                raise _Fault(f"iteration {i}: planner took {latency[i]:.3f} s, over the step budget "
                             f"{step_time_budget_s:.3f} s")
            fault = trajectory_fault(trajectory, now_s)
            if fault is not None:
                raise _Fault(f"iteration {i}: {fault}")
            _plan_samples(trajectory, stamps[i], plan_t[i], plan_p[i])
            if on_step is not None:
                on_step(i)
            if i + 1 < num_samples:  # the state after the last sample is never recorded: skip it
                dt = float(scenario.time_us[base + i + 1] - scenario.time_us[base + i]) * 1e-6
                nxt = update(ego.view(cur, cur + 1), trajectory, dt, scenario, i + 1)
                if not (np.isfinite(nxt.pose).all() and np.isfinite(nxt.velocity).all()):
                    raise _Fault(f"iteration {i}: the ego controller diverged (non-finite state)")
                nxt = EgoStates(np.array([float(scenario.time_us[base + i + 1]) * 1e-6]), nxt.pose, nxt.velocity,
                                nxt.acceleration, nxt.steering_angle, nxt.yaw_rate)
                # agents move given the ego at i and the lights of i+1 (what nuPlan's IDM agents read)
                lights_next = lights_at(base + i + 1)
                model.advance(i, ego.pose[cur].copy(), float(np.hypot(*ego.velocity[cur])), lights_next)
                ego.append(nxt)
                obs.append(observation(model.observe(), ego.pose[cur + 1]))
    except _Fault as fault:
        status, error = "failed", str(fault)
    except Exception as err:  # noqa: BLE001 - a simulator bug on this scenario must not stop the run
        status = "failed"
        error = f"simulation error: {_describe(err)} at {_where(err)}"
    s = max(done, 1)
    observed = [o.tracks for o in obs[past:past + s]]
    tracks = _collect_tracks(observed) if len(observed) == s else Tracks.empty(s)  # agents failed to start
    return Rollout(
        token=scenario.token, log_name=scenario.log_name, scenario_type=scenario.scenario_type,
        planner_name=planner_name, agents=agents_name, num_iterations=n,
        ego=_copy_ego(ego.view(past, past + s)), tracks=tracks,
        traffic_lights=scenario.traffic_lights.time_slice(base, base + s),
        plan_time_s=plan_t[:s], plan_pose=plan_p[:s], latency_s=latency[:s], status=status, error=error)


class _Fault(Exception):
    """A planner fault: ends the scenario with its message."""


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _where(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    f = frames[-1]
    return f"{f.filename.rsplit('/', 2)[-2:][-1]}:{f.lineno}"


def _copy_ego(e: EgoStates) -> EgoStates:
    return EgoStates(e.time_s.copy(), e.pose.copy(), e.velocity.copy(), e.acceleration.copy(),
                     e.steering_angle.copy(), e.yaw_rate.copy())
