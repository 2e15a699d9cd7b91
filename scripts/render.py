"""``distiplan render split=S token=T iteration=I out=PNG``: draw one scenario at one iteration."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from sim.errors import NotFoundError


def run(cfg: DictConfig) -> int:
    from sim.layout import split_dbs
    from sim.nuplan_db.filter import ScenarioFilter
    from sim.nuplan_db.reader import list_scenarios, load_scenario
    from sim.nuplan_map.loader import load_map
    from sim.render import RenderOptions, render_scenario

    dbs = split_dbs(cfg.paths.data_root, cfg.split)
    flt = ScenarioFilter(scenario_tokens=(str(cfg.token),)) if cfg.token else ScenarioFilter()
    refs = [r for r in list_scenarios(dbs, flt) if r.scenario_type != "unknown"] or list_scenarios(dbs, flt)
    if not refs:
        raise NotFoundError(Path(cfg.paths.data_root), f"no scenario with token {cfg.token} in split {cfg.split}")
    scenario = load_scenario(refs[0])
    map_api = load_map(cfg.paths.maps_root, scenario.map_location, cache_root=Path(cfg.paths.cache_root) / "maps")
    options = RenderOptions(radius=float(cfg.radius))
    path = render_scenario(scenario, map_api, int(cfg.iteration), Path(cfg.out), options)
    print(f"{scenario.scenario_type} {scenario.token} (log {scenario.log_name}) -> {path}")
    return 0
