"""Which scenarios to take from nuPlan logs: the filter (like nuplan-devkit's ``ScenarioFilter``), scenario
references, the per-type extraction window, and the list filters applied after extraction in nuPlan's order.

The SQL side of extraction (candidate lidar_pcs of valid scenes, MAX(type)) lives in :mod:`sim.nuplan_db.reader`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from sim.errors import DataError

#: Type of untagged lidar_pcs (devkit's ``DEFAULT_SCENARIO_NAME``).
DEFAULT_SCENARIO_TYPE = "unknown"

#: Extraction of every type listed in nuPlan's scenario mapping: 15 s window starting 3 s before the tag.
MAPPED_DURATION_S = 15.0
MAPPED_OFFSET_S = -3.0
#: Defaults for types not in the mapping (e.g. ``unknown``): 20 s from the tag.
DEFAULT_DURATION_S = 20.0
DEFAULT_OFFSET_S = 0.0
#: Raw rows are 20 Hz; scenarios keep every 2nd row (subsample ratio 0.5) -> 0.1 s.
DB_ROW_INTERVAL_S = 0.05
SUBSAMPLE_STEP = 2

#: The scenario types of nuPlan's scenario mapping (all get the 15 s / -3 s extraction).
_MAPPED_TYPES_TEXT = """
accelerating_at_crosswalk accelerating_at_stop_sign accelerating_at_stop_sign_no_crosswalk
accelerating_at_traffic_light accelerating_at_traffic_light_with_lead accelerating_at_traffic_light_without_lead
behind_bike behind_long_vehicle behind_pedestrian_on_driveable behind_pedestrian_on_pickup_dropoff changing_lane
changing_lane_to_left changing_lane_to_right changing_lane_with_lead changing_lane_with_trail crossed_by_bike
crossed_by_vehicle following_lane_with_lead following_lane_with_slow_lead following_lane_without_lead
high_lateral_acceleration high_magnitude_jerk high_magnitude_speed low_magnitude_speed medium_magnitude_speed
near_barrier_on_driveable near_construction_zone_sign near_high_speed_vehicle near_long_vehicle near_multiple_bikes
near_multiple_pedestrians near_multiple_vehicles near_pedestrian_at_pickup_dropoff near_pedestrian_on_crosswalk
near_pedestrian_on_crosswalk_with_ego near_trafficcone_on_driveable on_all_way_stop_intersection on_carpark
on_intersection on_pickup_dropoff on_stopline_crosswalk on_stopline_stop_sign on_stopline_traffic_light
on_traffic_light_intersection starting_high_speed_turn starting_left_turn starting_low_speed_turn
starting_protected_cross_turn starting_protected_noncross_turn starting_right_turn
starting_straight_stop_sign_intersection_traversal starting_straight_traffic_light_intersection_traversal
starting_u_turn starting_unprotected_cross_turn starting_unprotected_noncross_turn stationary
stationary_at_crosswalk stationary_at_traffic_light_with_lead stationary_at_traffic_light_without_lead
stationary_in_traffic stopping_at_crosswalk stopping_at_stop_sign_no_crosswalk stopping_at_stop_sign_with_lead
stopping_at_stop_sign_without_lead stopping_at_traffic_light_with_lead stopping_at_traffic_light_without_lead
stopping_with_lead traversing_crosswalk traversing_intersection traversing_narrow_lane traversing_pickup_dropoff
traversing_traffic_light_intersection waiting_for_pedestrian_to_cross
"""
MAPPED_SCENARIO_TYPES = frozenset(_MAPPED_TYPES_TEXT.split())
#: distiplan's corner-case families (``corner_cut_in``, ...) extend nuPlan's mapping with the same 15 s / -3 s
#: window. With nuplan-devkit, add them to its ``scenario_mapping`` to get the same scenarios.
CORNER_TYPE_PREFIX = "corner_"


def is_mapped_type(scenario_type: str) -> bool:
    return scenario_type in MAPPED_SCENARIO_TYPES or scenario_type.startswith(CORNER_TYPE_PREFIX)


def extraction_window(scenario_type: str, expand_scenarios: bool = False) -> tuple[float, float]:
    """``(offset_s, duration_s)`` of the scenario window relative to the tagged lidar_pc (nuPlan's
    ``ScenarioExtractionInfo``); ``expand_scenarios`` gives single-sample scenarios ``(0, 0)``."""
    if expand_scenarios:
        return 0.0, 0.0
    if is_mapped_type(scenario_type):
        return MAPPED_OFFSET_S, MAPPED_DURATION_S
    return DEFAULT_OFFSET_S, DEFAULT_DURATION_S


@dataclass(frozen=True)
class ScenarioRef:
    """A scenario in a log: where to find it and how to cut it.

    ``token`` is the tagged lidar_pc token (16 hex chars); ``timestamp_us`` its timestamp; the window runs from
    ``timestamp_us + offset_s`` for ``duration_s`` seconds.
    """

    token: str
    log_name: str
    db_path: str
    timestamp_us: int
    scenario_type: str
    map_name: str
    offset_s: float = MAPPED_OFFSET_S
    duration_s: float = MAPPED_DURATION_S


@dataclass(frozen=True)
class ScenarioFilter:
    """Which scenarios to extract (nuplan-devkit's ``ScenarioFilter``, minus the ego-motion and map filters).

    - ``scenario_types``: keep only these tagged types (untagged ``unknown`` rows only appear without it)
    - ``scenario_tokens``: keep only these lidar_pc tokens; entries are hex tokens or ``(log_name, token)``
    - ``log_names`` / ``map_names``: keep only these logs (file stems) / map locations (``log.map_version``)
    - ``num_scenarios_per_type``: at most this many per type (equisampled, or random if ``shuffle``)
    - ``limit_total_scenarios``: int = count, float in (0, 1) = fraction; ``unknown`` scenarios go first
    - ``timestamp_threshold_s``: per type, keep a scenario only that long after the previous kept one
    - ``expand_scenarios``: single-sample scenarios (the tagged lidar_pc only)
    - ``remove_invalid_goals``: drop lidar_pcs whose scene has no goal ego pose
    - ``shuffle`` / ``seed``: random sampling and final order, reproducible with ``seed``
    """

    scenario_types: tuple[str, ...] | None = None
    scenario_tokens: tuple[str | tuple[str, str], ...] | None = None
    log_names: tuple[str, ...] | None = None
    map_names: tuple[str, ...] | None = None
    num_scenarios_per_type: int | None = None
    limit_total_scenarios: int | float | None = None
    timestamp_threshold_s: float | None = None
    expand_scenarios: bool = False
    remove_invalid_goals: bool = False
    shuffle: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        for f in ("scenario_types", "scenario_tokens", "log_names", "map_names"):
            v = getattr(self, f)
            if v is None:
                continue
            if isinstance(v, str):
                raise _config_error(f, v, "a list of strings, not one string")
            # Any iterable works (lists from YAML, OmegaConf ListConfig); (log_name, token) pairs become tuples.
            object.__setattr__(self, f, tuple(x if isinstance(x, str) else tuple(x) for x in v))
        n = self.num_scenarios_per_type
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):
            raise _config_error("num_scenarios_per_type", n, "a positive integer")
        lim = self.limit_total_scenarios
        if lim is not None:
            if isinstance(lim, bool) or not isinstance(lim, int | float):
                raise _config_error("limit_total_scenarios", lim, "an int count or a float fraction")
            if isinstance(lim, int) and lim <= 0:
                raise _config_error("limit_total_scenarios", lim, "a positive count")
            if isinstance(lim, float) and not 0.0 < lim < 1.0:
                raise _config_error("limit_total_scenarios", lim, "a fraction in (0, 1)")
        if self.timestamp_threshold_s is not None and not self.timestamp_threshold_s >= 0:
            raise _config_error("timestamp_threshold_s", self.timestamp_threshold_s, "seconds >= 0")
        for tok in self.scenario_tokens or ():
            t = tok[1] if isinstance(tok, tuple) else tok
            if isinstance(tok, tuple) and len(tok) != 2 or not _is_hex16(t):
                raise _config_error("scenario_tokens", tok, "16-character hex tokens or (log_name, token) pairs")

    def tokens_for_log(self, log_name: str) -> list[str] | None:
        """The token filter for one log (None: no token filter)."""
        if self.scenario_tokens is None:
            return None
        return [t[1] if isinstance(t, tuple) else t for t in self.scenario_tokens
                if not isinstance(t, tuple) or t[0] == log_name]

    @staticmethod
    def from_mapping(cfg: dict) -> ScenarioFilter:
        """Build from a config mapping (e.g. Hydra ``scenario_filter``); unknown keys are an error."""
        names = {f.name for f in fields(ScenarioFilter)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise _config_error(unknown[0], cfg[unknown[0]], f"one of {sorted(names)}")
        return ScenarioFilter(**dict(cfg))


def _is_hex16(t: object) -> bool:
    if not isinstance(t, str) or len(t) != 16:
        return False
    try:
        bytes.fromhex(t)
    except ValueError:
        return False
    return True


def _config_error(name: str, value: object, expected: str) -> DataError:
    return DataError(None, f"scenario filter: {name} = {value!r} is invalid", expected)


def log_name_of(db_path: str | Path) -> str:
    """Log name = file stem (``2021.10.11.08.31.07_veh-50_01750_01948.db`` -> without ``.db``)."""
    return Path(db_path).stem


# --- list filters, applied in nuPlan's order to {type: [refs in extraction order]} ----------------------------

ScenarioDict = dict[str, list[ScenarioRef]]


def _by_token(ref: ScenarioRef) -> tuple[str, str]:
    return ref.token, ref.log_name  # nuPlan sorts the final list by token


def _equisample(refs: Sequence[ScenarioRef], n: int, rng: random.Random | None) -> list[ScenarioRef]:
    if rng is not None and n < len(refs):
        return rng.sample(list(refs), n)
    step = max(len(refs) // n, 1)
    return list(refs[::step])[:n]


def filter_num_scenarios_per_type(d: ScenarioDict, n: int, rng: random.Random | None) -> ScenarioDict:
    return {t: _equisample(refs, n, rng) for t, refs in d.items()}


def filter_total_num_scenarios(d: ScenarioDict, limit: int | float, rng: random.Random | None) -> ScenarioDict:
    """Keep ``limit`` scenarios (count or fraction), removing ``unknown`` ones first."""
    total = sum(len(v) for v in d.values())
    required = limit if isinstance(limit, int) else math.ceil(limit * total)
    if isinstance(limit, int) and required >= total:
        return d
    if total == 0 or required == 0 or not d:
        return {}
    d = dict(d)
    unknown = d.get(DEFAULT_SCENARIO_TYPE)
    if unknown is not None:
        if total - required < len(unknown):
            d[DEFAULT_SCENARIO_TYPE] = _equisample(unknown, len(unknown) - (total - required), rng)
            return d
        del d[DEFAULT_SCENARIO_TYPE]
    kept = _equisample(sorted((r for v in d.values() for r in v), key=_by_token), required, rng)
    out: ScenarioDict = {}
    for r in kept:
        out.setdefault(r.scenario_type, []).append(r)
    return out


def filter_by_timestamp(d: ScenarioDict, threshold_s: float) -> ScenarioDict:
    """Per type, in time order, keep a scenario only if it starts ``threshold_s`` after the last kept one."""
    out: ScenarioDict = {}
    for t, refs in d.items():
        kept: list[ScenarioRef] = []
        next_s = -math.inf
        for r in sorted(refs, key=lambda r: r.timestamp_us):
            if r.timestamp_us * 1e-6 >= next_s:
                kept.append(r)
                next_s = r.timestamp_us * 1e-6 + threshold_s
        out[t] = kept
    return out


def apply_filters(d: ScenarioDict, flt: ScenarioFilter) -> list[ScenarioRef]:
    """The post-extraction filters in nuPlan's order, then the list sorted by token (shuffled if asked)."""
    rng = random.Random(flt.seed) if flt.shuffle else None
    if flt.num_scenarios_per_type is not None:
        d = filter_num_scenarios_per_type(d, flt.num_scenarios_per_type, rng)
    if flt.limit_total_scenarios is not None:
        d = filter_total_num_scenarios(d, flt.limit_total_scenarios, rng)
    if flt.timestamp_threshold_s is not None:
        d = filter_by_timestamp(d, flt.timestamp_threshold_s)
    refs = sorted((r for v in d.values() for r in v), key=_by_token)
    if rng is not None:
        rng.shuffle(refs)
    return refs
