"""Generate one log of a scenario family: simulate, cut the log around the tag, check, retry on failure."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from sim.nuplan_db.recording import LogRecording
from sim.nuplan_map.layers import MapLayers
from sim.synth.checks import LogView, agent_overlaps, comfort_violations, ego_problems, scenario_view
from sim.synth.families import FAMILIES
from sim.synth.record import ScenePlan, build_recording
from sim.synth.town import Town
from sim.synth.world import World

MAX_SIM_S = 150.0
MAX_ATTEMPTS = 6


class GenerationError(RuntimeError):
    """No attempt of a family / seed produced a log that passes the checks."""


@dataclass
class LogInfo:
    log_name: str
    family: str
    tag: str
    seed: int
    attempts: int
    seconds: float
    tag_time: float
    rejected: list[str] = field(default_factory=list)


def generate_log(family: str, seed: int, town: Town, layers: MapLayers, log_name: str,
                 log_index: int = 0) -> tuple[LogRecording, LogInfo]:
    """One checked log of ``family`` drawn from ``seed`` in ``town`` (pure function of its arguments)."""
    fam = FAMILIES[family]
    t_start = time.perf_counter()
    rejected: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng(np.random.SeedSequence([seed, attempt, 0x5C3]))
        plan = ScenePlan.draw(rng)
        world = World(town, rng)
        world.director = fam.setup(world, rng, plan)
        world.record_initial()

        def done(w: World, plan: ScenePlan = plan) -> bool:
            tag = w.events.get("tag")
            return tag is not None and (tag < plan.before_tag - 1e-6 or w.t >= tag + plan.after_tag + 0.2)

        world.run(MAX_SIM_S, stop=done)
        tag = world.events.get("tag")
        if tag is None:
            rejected.append(f"attempt {attempt}: the event never happened")
            continue
        if tag < plan.before_tag - 1e-6 or world.t < tag + plan.after_tag:
            rejected.append(f"attempt {attempt}: tag at {tag:.1f} s outside the simulated span")
            continue
        rec = build_recording(world, log_name, plan, tag, fam.tag, world.tag_agent, log_index)
        view = LogView.from_recording(rec)
        problems = ego_problems(view, layers)
        # Comfort as the tests see it: the scenario window with 2 s of history at 10 Hz (filter edges included).
        bad = comfort_violations(scenario_view(rec))
        if bad:
            problems.append("uncomfortable in the scenario window: "
                            + ", ".join(f"{k}={v:.2f}" for k, v in bad.items()))
        crashes = agent_overlaps(view)
        if crashes:
            problems.append(f"background agents overlap ({len(crashes)} pairs)")
        why = fam.check(view, layers)
        if why:
            problems.append(why)
        if problems:
            rejected.append(f"attempt {attempt}: " + "; ".join(problems))
            continue
        info = LogInfo(log_name, family, fam.tag, seed, attempt + 1, time.perf_counter() - t_start, tag, rejected)
        return rec, info
    raise GenerationError(f"{family} seed {seed}: no valid log in {MAX_ATTEMPTS} attempts: " + " | ".join(rejected))
