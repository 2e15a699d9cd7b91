"""PDM scorer rules on hand-built scenes over the two-lane junction map (all lanes eastbound, y in [-3.5, 3.5]).

Rollouts are built directly (poses, speeds, accelerations) so each rule is tested in isolation of the tracker.
"""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from sim.categories import Category, TrafficLightStatus
from sim.errors import DataError
from sim.metrics.pdm_score import (
    RULES,
    EgoRollout,
    PDMScores,
    area_raster,
    build_scoring_world,
    cached_area_raster,
    drivable_surface,
    navsim_v1_pdms,
    normalize_progress,
    score_trajectories,
)
from sim.nuplan_map.layers import FeatureTable, MapLayers
from sim.nuplan_map.map_api import MapAPI
from sim.scenario import EgoStates, Tracks
from tests.sim.map_fixtures import two_lane_junction_layers

DT = 0.1
T = 40
TIMES = DT * np.arange(T + 1)
ROUTE = (100, 200, 300)


@pytest.fixture(scope="module")
def junction() -> MapAPI:
    return MapAPI.from_layers(two_lane_junction_layers())


def _with_oncoming_lane(layers: MapLayers) -> MapLayers:
    """The fixture plus a westbound lane (group 900) south of the road: y in [-7, -3.5], x in [0, 50]."""
    t = dict(layers.layers)

    def add(name: str, fid: int, geom, **cols) -> None:
        old = t[name]
        t[name] = FeatureTable(np.append(old.fid, fid), np.append(old.geometry, np.array([geom], dtype=object)),
                               {k: np.append(v, cols.get(k, v[:1])) for k, v in old.columns.items()})

    add("lanes_polygons", 5, shapely.box(0, -7, 50, -3.5), lane_fid=5, lane_group_fid=900, lane_index=0,
        speed_limit_mps=15.0)
    add("lane_groups_polygons", 900, shapely.box(0, -7, 50, -3.5))
    add("baseline_paths", 7, shapely.LineString([(x, -5.25) for x in np.linspace(50, 0, 51)]), lane_fid=5,
        lane_connector_fid=-1)
    add("road_segments", 802, shapely.box(0, -7, 50, -3.5))
    return MapLayers(layers.location, layers.version, layers.crs, t)


def _ego(x: float = 10.0, y: float = -1.75, heading: float = 0.0, v: float = 10.0) -> EgoStates:
    return EgoStates(np.array([0.0]), np.array([[x, y, heading]]), np.array([[v, 0.0]]), np.zeros((1, 2)),
                     np.zeros(1), np.zeros(1))


def _tracks(objects: list[tuple[Category, tuple[float, float, float], tuple[float, float],
                                tuple[float, float]]]) -> Tracks:
    """Current tracks from (category, centre pose, (length, width), (vx, vy))."""
    n = len(objects)
    return Tracks(np.array([f"{i:016x}" for i in range(n)]), np.array([o[0] for o in objects], np.int8),
                  np.array([[o[2][0], o[2][1], 1.5] for o in objects], np.float64).reshape(n, 3),
                  np.array([[o[1]] for o in objects], np.float64).reshape(n, 1, 3),
                  np.array([[o[3]] for o in objects], np.float64).reshape(n, 1, 2), np.ones((n, 1), bool))


def _rollout(x: np.ndarray, y: np.ndarray) -> EgoRollout:
    """Rollouts ``(K, T+1)`` following the centre-free rear-axle paths x, y: heading, speed and acceleration
    by finite differences."""
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    heading = np.arctan2(np.gradient(y, DT, axis=1), np.gradient(x, DT, axis=1))
    speed = np.hypot(np.gradient(x, DT, axis=1), np.gradient(y, DT, axis=1))
    accel = np.gradient(speed, DT, axis=1)
    yaw_rate = np.gradient(np.unwrap(heading, axis=1), DT, axis=1)
    return EgoRollout(np.stack([x, y, heading], -1), speed, np.stack([accel, np.zeros_like(accel)], -1), yaw_rate)


def _straight(v: float, x0: float = 10.0, y0: float = -1.75, k: int = 1) -> EgoRollout:
    x = np.tile(x0 + v * TIMES, (k, 1))
    return _rollout(x, np.full_like(x, y0))


def _world(map_api: MapAPI, objects=(), lights=None, ego: EgoStates | None = None, route=ROUTE):
    return build_scoring_world(map_api, route, ego or _ego(), _tracks(list(objects)), lights or {}, TIMES)


def _col(scores: PDMScores, rule: str) -> np.ndarray:
    return scores.column(rule)


def test_parked_car_is_an_at_fault_collision_and_a_cone_half(junction: MapAPI) -> None:
    car = (Category.VEHICLE, (30.0, -1.75, 0.0), (4.5, 2.0), (0.0, 0.0))
    cone = (Category.TRAFFIC_CONE, (30.0, -1.75, 0.0), (0.5, 0.5), (0.0, 0.0))
    fast = _straight(10.0)
    s_car = score_trajectories(fast, _world(junction, [car]))
    s_cone = score_trajectories(fast, _world(junction, [cone]))
    assert _col(s_car, "no_at_fault_collision")[0] == 0.0
    assert _col(s_cone, "no_at_fault_collision")[0] == 0.5
    assert s_car.pdm_score[0] == 0.0
    # front reaches the car's rear (27.75) after (27.75 - 14.049) / 10 = 1.37 s -> first contact at 1.4 s
    assert s_car.collision_time_s[0] == pytest.approx(1.4)
    # the other lane passes the car: no collision
    s_left = score_trajectories(_straight(10.0, y0=1.75), _world(junction, [car]))
    assert _col(s_left, "no_at_fault_collision")[0] == 1.0
    assert s_left.collision_time_s[0] == np.inf


def test_rear_end_by_a_faster_car_and_a_stopped_ego_are_not_at_fault(junction: MapAPI) -> None:
    chaser = (Category.VEHICLE, (3.0, -1.75, 0.0), (4.5, 2.0), (20.0, 0.0))
    moving = score_trajectories(_straight(5.0), _world(junction, [chaser]))
    assert _col(moving, "no_at_fault_collision")[0] == 1.0
    assert _col(moving, "time_to_collision")[0] == 1.0  # the object is behind
    stopped = score_trajectories(_straight(0.0), _world(junction, [chaser], ego=_ego(v=0.0)))
    assert _col(stopped, "no_at_fault_collision")[0] == 1.0


def test_lateral_collision_is_at_fault_only_while_straddling_lanes(junction: MapAPI) -> None:
    # A car in the left lane drifts right into the ego at 1.5 m/s; the ego keeps its lane -> not at fault.
    drifter = (Category.VEHICLE, (20.0, 1.6, 0.0), (4.5, 2.0), (10.0, -1.5))
    keep_lane = score_trajectories(_straight(10.0), _world(junction, [drifter]))
    assert _col(keep_lane, "no_at_fault_collision")[0] == 1.0
    # The ego drives on the lane divide (y = -0.3, corners in both lanes) next to a car moving with it.
    neighbour = (Category.VEHICLE, (11.0, 1.75, 0.0), (4.5, 2.0), (10.0, 0.0))  # beside, not ahead
    straddle = score_trajectories(_straight(10.0, y0=-0.3), _world(junction, [neighbour]))
    assert _col(straddle, "no_at_fault_collision")[0] == 0.0


def test_off_road_trajectory_fails_drivable_area(junction: MapAPI) -> None:
    x = 10.0 + 10.0 * TIMES
    on_road = _rollout(x, np.full_like(x, -1.75))
    off_road = _rollout(x, np.minimum(-1.75 + 2.0 * TIMES, 5.0))  # drifts onto the walkway (y > 3.5)
    s = score_trajectories(EgoRollout(*[np.concatenate([a, b]) for a, b in zip(
        (on_road.pose, on_road.velocity, on_road.acceleration, on_road.yaw_rate),
        (off_road.pose, off_road.velocity, off_road.acceleration, off_road.yaw_rate), strict=True)]),
        _world(junction))
    assert list(_col(s, "drivable_area")) == [1.0, 0.0]
    assert s.pdm_score[1] == 0.0


def test_driving_against_traffic(junction: MapAPI) -> None:
    m = MapAPI.from_layers(_with_oncoming_lane(two_lane_junction_layers()))
    world = _world(m, ego=_ego(x=5.0, y=-5.25))
    speeds = [10.0, 4.0, 1.5]  # m per 1 s window in the oncoming lane: > 6, in [2, 6), < 2
    k = len(speeds)
    x = 5.0 + np.array(speeds)[:, None] * TIMES
    s = score_trajectories(_rollout(x, np.full_like(x, -5.25)), world)
    assert list(_col(s, "driving_direction")) == [0.0, 0.5, 1.0]
    assert list(_col(s, "drivable_area")) == [1.0] * k  # the oncoming lane is drivable
    own_lane = score_trajectories(_straight(10.0), _world(m))
    assert _col(own_lane, "driving_direction")[0] == 1.0


def test_running_a_red_light(junction: MapAPI) -> None:
    # Lane 1 (y = 1.75) leads into connector 11, which carries a light; the stop line is at x = 49..50.
    ego = _ego(x=20.0, y=1.75)
    through = _straight(10.0, x0=20.0, y0=1.75)  # reaches x = 60
    stop = _straight(0.0, x0=40.0, y0=1.75)
    both = EgoRollout(*[np.concatenate([getattr(through, f), getattr(stop, f)])
                        for f in ("pose", "velocity", "acceleration", "yaw_rate")])
    red = score_trajectories(both, _world(junction, lights={11: TrafficLightStatus.RED}, ego=ego))
    assert list(_col(red, "traffic_light")) == [0.0, 1.0]
    green = score_trajectories(both, _world(junction, lights={11: TrafficLightStatus.GREEN}, ego=ego))
    assert list(_col(green, "traffic_light")) == [1.0, 1.0]
    # a red light on the other lane's connector (12 has none in the map, 11 is lane 1's) does not concern lane 2
    other = score_trajectories(_straight(10.0, x0=20.0), _world(junction, lights={11: TrafficLightStatus.RED},
                                                                ego=_ego(x=20.0)))
    assert _col(other, "traffic_light")[0] == 1.0


def test_red_light_box_touch_without_a_corner_inside(junction: MapAPI) -> None:
    # The ego front bumper pokes 0.3 m into the connector (x > 50) at y straddling its right edge: exact test.
    ego = _ego(x=30.0, y=1.75)
    stop_x = 50.3 - 4.049
    roll = _straight(0.0, x0=stop_x, y0=1.75)
    s = score_trajectories(roll, _world(junction, lights={11: TrafficLightStatus.RED}, ego=ego))
    assert _col(s, "traffic_light")[0] == 0.0
    short = _straight(0.0, x0=49.9 - 4.049, y0=1.75)
    s = score_trajectories(short, _world(junction, lights={11: TrafficLightStatus.RED}, ego=ego))
    assert _col(s, "traffic_light")[0] == 1.0


def test_closing_fast_on_a_stopped_car_fails_ttc(junction: MapAPI) -> None:
    # After 4 s at 10 m/s the front bumper is at 54.05; the car's rear at 58: 0.9 s projection (9 m) hits.
    car = (Category.VEHICLE, (60.25, -1.75, 0.0), (4.5, 2.0), (0.0, 0.0))
    s = score_trajectories(_straight(10.0), _world(junction, [car]))
    assert _col(s, "no_at_fault_collision")[0] == 1.0
    assert _col(s, "time_to_collision")[0] == 0.0
    assert s.ttc_time_s[0] == pytest.approx(3.5)  # 14.049 + 10 t + 9 >= 57.999 first at t = 3.5
    far = (Category.VEHICLE, (80.0, -1.75, 0.0), (4.5, 2.0), (0.0, 0.0))
    s = score_trajectories(_straight(10.0), _world(junction, [far]))
    assert _col(s, "time_to_collision")[0] == 1.0
    # The same closing car on the neighbouring lane, not ahead of the ego in its own lane: no violation.
    side = (Category.VEHICLE, (60.25, 1.75, 0.0), (4.5, 2.0), (0.0, 0.0))
    s = score_trajectories(_straight(10.0), _world(junction, [side]))
    assert _col(s, "time_to_collision")[0] == 1.0


def test_comfort_straight_is_comfortable_and_a_swerve_is_not(junction: MapAPI) -> None:
    x = 10.0 + 8.0 * TIMES
    calm = _rollout(x, np.full_like(x, -1.75))
    swerve = _rollout(x, -1.75 + 1.5 * np.sin(2.0 * np.pi * TIMES / 1.5))
    s = score_trajectories(EgoRollout(*[np.concatenate([getattr(calm, f), getattr(swerve, f)])
                                        for f in ("pose", "velocity", "acceleration", "yaw_rate")]),
                           _world(junction))
    assert list(_col(s, "comfort")) == [1.0, 0.0]


def test_comfort_matches_the_single_trajectory_metric() -> None:
    comfort = pytest.importorskip("sim.metrics.comfort")
    from sim.metrics.pdm_score import ScoringParameters, comfort_scores

    rng = np.random.default_rng(0)
    n = 12
    v0, acc = rng.uniform(3.0, 12.0, (n, 1)), rng.uniform(-3.0, 3.0, (n, 1))
    amplitude, period = rng.uniform(0.0, 1.5, (n, 1)), rng.uniform(3.0, 6.0, (n, 1))
    x = v0 * TIMES + 0.5 * acc * TIMES**2
    y = amplitude * np.sin(2.0 * np.pi * TIMES / period)
    ro = _rollout(x, y)
    batched = comfort_scores(ro, DT)
    loose = comfort_scores(ro, DT, params=ScoringParameters(max_abs_yaw_rate=9.0, max_abs_yaw_accel=9.0))
    for k in range(len(x)):
        ego = EgoStates(TIMES, ro.pose[k], np.stack([ro.velocity[k], np.zeros(T + 1)], -1), ro.acceleration[k],
                        np.zeros(T + 1), ro.yaw_rate[k])
        single = comfort.comfort_series(ego)
        bounds = comfort.comfort_bounds()
        ok = all(comfort.within(single[name], *bounds[name]) for name in bounds)
        assert batched[k] == float(ok)
    assert 0 < batched.sum() < n  # a mix of comfortable and not
    assert loose.sum() > batched.sum()


def test_progress_normalisation(junction: MapAPI) -> None:
    speeds = np.array([10.0, 5.0, 0.0, 12.0])
    x = 10.0 + speeds[:, None] * TIMES
    y = np.full_like(x, -1.75)
    y[3] = np.minimum(-1.75 + 3.0 * TIMES, 5.0)  # the fastest leaves the road: multiplier 0
    s = score_trajectories(_rollout(x, y), _world(junction))
    assert s.raw_progress[:3] == pytest.approx([40.0, 20.0, 0.0], abs=1e-6)
    assert list(_col(s, "ego_progress")) == pytest.approx([1.0, 0.5, 0.0, 0.0])
    # everyone below the 5 m threshold: progress 1 unless a multiplier fails
    assert list(normalize_progress(np.array([1.0, 4.0, 3.0]), np.array([1.0, 1.0, 0.0]))) == [1.0, 1.0, 0.0]
    # a reference (NAVSIM's PDM-Closed) can be the best
    assert normalize_progress(np.array([20.0]), np.array([1.0]), 5.0, 40.0)[0] == pytest.approx(0.5)
    # a half multiplier halves the progress (PDM)
    assert list(normalize_progress(np.array([20.0, 20.0]), np.array([1.0, 0.5]))) == [1.0, 0.5]


def test_aggregates(junction: MapAPI) -> None:
    cone = (Category.TRAFFIC_CONE, (40.0, -1.75, 0.0), (0.5, 0.5), (0.0, 0.0))
    speeds = np.array([10.0, 5.0])
    x = 10.0 + speeds[:, None] * TIMES
    s = score_trajectories(_rollout(x, np.full_like(x, -1.75)), _world(junction, [cone]))
    nc, ttc, ep, c = (_col(s, r) for r in ("no_at_fault_collision", "time_to_collision", "ego_progress", "comfort"))
    assert list(nc) == [0.5, 1.0]
    expected = nc * (5 * ttc + 5 * ep + 2 * c) / 12
    assert s.pdm_score == pytest.approx(expected)
    v1 = navsim_v1_pdms(s)
    assert v1 == pytest.approx(expected)  # no DDC / TLC failures here: same as the full score


def test_batched_equals_single(junction: MapAPI) -> None:
    rng = np.random.default_rng(3)
    k = 24
    speeds = rng.uniform(0.0, 14.0, k)
    lateral = rng.uniform(-2.0, 2.0, k)
    x = 10.0 + speeds[:, None] * TIMES
    y = -1.75 + lateral[:, None] * np.clip(TIMES / 2.0, 0, 1)
    objects = [(Category.VEHICLE, (35.0, -1.75, 0.0), (4.5, 2.0), (2.0, 0.0)),
               (Category.PEDESTRIAN, (30.0, 2.5, -np.pi / 2), (0.6, 0.6), (0.0, -1.0)),
               (Category.TRAFFIC_CONE, (25.0, 1.0, 0.0), (0.5, 0.5), (0.0, 0.0)),
               (Category.VEHICLE, (20.0, 1.75, 0.0), (4.5, 2.0), (9.0, 0.0))]
    world = _world(junction, objects, lights={11: TrafficLightStatus.RED})
    ro = _rollout(x, y)
    batch = score_trajectories(ro, world)
    assert len({tuple(r) for r in batch.scores}) > 3  # the scene produces a variety of outcomes
    others = [r for r in RULES if r != "ego_progress"]  # EP is normalised over the batch
    for i in range(k):
        single = score_trajectories(EgoRollout(ro.pose[i:i + 1], ro.velocity[i:i + 1], ro.acceleration[i:i + 1],
                                               ro.yaw_rate[i:i + 1]), world)
        for r in others:
            assert single.column(r)[0] == batch.column(r)[i], (i, r)
        assert single.raw_progress[0] == batch.raw_progress[i]
        assert single.collision_time_s[0] == batch.collision_time_s[i]
        assert single.ttc_time_s[0] == batch.ttc_time_s[i]


def test_area_raster_is_exact(junction: MapAPI) -> None:
    geometry, edges = drivable_surface(junction)
    origin = np.array([20.0, 0.0])
    raster = area_raster(geometry, origin, np.zeros(2), 40.0, 0.2, edges)
    rng = np.random.default_rng(1)
    pts = rng.uniform(-45.0, 45.0, (20000, 2))
    # points exactly on and near the boundaries too
    edge_pts = np.column_stack([rng.uniform(-20, 70, 2000), rng.choice([3.5, -3.5, 3.5 + 1e-9, -3.5 - 1e-9], 2000)])
    pts = np.concatenate([pts, edge_pts - origin])
    exact = shapely.intersects_xy(geometry, pts[:, 0] + origin[0], pts[:, 1] + origin[1])
    assert np.array_equal(raster.contains(pts[:, 0], pts[:, 1]), exact)
    assert raster.inside.shape == (37, 301)  # shrunk to the road's bounding box (+ one cell)
    assert raster.uncertain.mean() < 0.2  # the fallback stays the exception: a band along the edges


def test_given_forecast_matches_constant_velocity(junction: MapAPI) -> None:
    car = (Category.VEHICLE, (40.0, -1.75, 0.0), (4.5, 2.0), (3.0, 0.0))
    now = _tracks([car])
    steps = 20  # shorter than the horizon: extended at constant velocity
    times = DT * np.arange(steps)
    future = Tracks(now.token, now.category, now.size,
                    now.pose + np.stack([3.0 * times, 0 * times, 0 * times], -1)[None],
                    np.repeat(now.velocity, steps, axis=1), np.ones((1, steps), bool))
    w_cv = build_scoring_world(junction, ROUTE, _ego(), now, {}, TIMES)
    w_given = build_scoring_world(junction, ROUTE, _ego(), future, {}, TIMES, forecast="given")
    assert np.allclose(w_cv.obj_pose, w_given.obj_pose)
    ro = _straight(12.0, k=2)
    assert np.array_equal(score_trajectories(ro, w_cv).scores, score_trajectories(ro, w_given).scores)


def test_bad_inputs(junction: MapAPI) -> None:
    world = _world(junction)
    with pytest.raises(DataError, match="states"):
        score_trajectories(EgoRollout(np.zeros((1, 10, 3)), np.zeros((1, 10)), np.zeros((1, 10, 2)),
                                      np.zeros((1, 10))), world)
    with pytest.raises(DataError, match="uniform"):
        build_scoring_world(junction, ROUTE, _ego(), _tracks([]), {}, np.array([0.0, 0.1, 0.3]))
    with pytest.raises(DataError, match="forecast"):
        build_scoring_world(junction, ROUTE, _ego(), _tracks([]), {}, TIMES, forecast="magic")
    with pytest.raises(KeyError):
        score_trajectories(_straight(1.0), world).column("speed")


def test_sideways_ttc_counts_only_when_the_ego_is_exposed(junction: MapAPI) -> None:
    # Half a second of horizon: a car beside the ego (bearing ~55 deg) drifts toward it at 1 m/s with a 0.7 m
    # gap, so the boxes never touch within the horizon but the 0.9 s projection does. Such a sideways hit
    # counts only while the ego straddles lanes, is off the drivable area or has its rear axle in an intersection.
    times = DT * np.arange(6)

    def ttc(x0: float, y0: float, car_y: float) -> float:
        car = (Category.VEHICLE, (x0 + 2.0, car_y, 0.0), (4.5, 2.0), (5.0, -1.0))
        ego = _ego(x=x0, y=y0, v=5.0)
        world = build_scoring_world(junction, ROUTE, ego, _tracks([car]), {}, times)
        x = np.tile(x0 + 5.0 * times, (1, 1))
        s = score_trajectories(_rollout(x, np.full_like(x, y0)), world)
        assert s.column("no_at_fault_collision")[0] == 1.0
        return float(s.column("time_to_collision")[0])

    assert ttc(10.0, -1.75, 1.1) == 1.0  # in its lane: not exposed
    assert ttc(10.0, -0.3, 2.55) == 0.0  # on the lane divide: in two lanes
    assert ttc(52.0, -1.75, 1.1) == 0.0  # rear axle in the intersection


def test_obb_overlap_matches_the_polygon_test() -> None:
    from sim.geometry import box_corners, boxes_overlap
    from sim.metrics.pdm_score import obb_overlap

    rng = np.random.default_rng(7)
    m = 20000
    a = np.column_stack([rng.uniform(-4, 4, (m, 2)), rng.uniform(-np.pi, np.pi, m)])
    b = np.column_stack([rng.uniform(-4, 4, (m, 2)), rng.uniform(-np.pi, np.pi, m)])
    la, wa = rng.uniform(0.0, 3.0, m), rng.uniform(0.2, 1.5, m)  # half sizes; la = 0 is a segment
    la[:1000] = 0.0
    lb, wb = rng.uniform(0.2, 3.0, m), rng.uniform(0.2, 1.5, m)
    got = obb_overlap(a, (la, wa), b, (lb, wb))
    want = boxes_overlap(box_corners(a, 2 * la, 2 * wa), box_corners(b, 2 * lb, 2 * wb))
    assert 0.15 < got.mean() < 0.85
    assert np.array_equal(got, want)


def test_raster_core_is_sound(junction: MapAPI) -> None:
    geometry, edges = drivable_surface(junction)
    raster = area_raster(geometry, np.zeros(2), np.array([50.0, 0.0]), 60.0, 0.2, edges, core_margin=1.0)
    rng = np.random.default_rng(2)
    pts = rng.uniform([-5, -6], [115, 6], (20000, 2))
    core = raster.in_core(pts[:, 0], pts[:, 1])
    assert core.any() and not core.all()
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ring = pts[core][:, None, :] + 1.0 * np.stack([np.cos(angles), np.sin(angles)], -1)[None]
    assert shapely.intersects_xy(geometry, ring[..., 0], ring[..., 1]).all()


def test_invalid_forecast_samples_are_not_obstacles(junction: MapAPI) -> None:
    car = (Category.VEHICLE, (30.0, -1.75, 0.0), (4.5, 2.0), (0.0, 0.0))
    now = _tracks([car])
    steps = T + 10
    valid = np.zeros((1, steps), bool)
    valid[0, :5] = True  # the car is seen for 0.5 s only (it leaves the forecast)
    future = Tracks(now.token, now.category, now.size, np.repeat(now.pose, steps, axis=1),
                    np.repeat(now.velocity, steps, axis=1), valid)
    world = build_scoring_world(junction, ROUTE, _ego(), future, {}, TIMES, forecast="given")
    s = score_trajectories(_straight(10.0), world)
    assert s.column("no_at_fault_collision")[0] == 1.0
    empty = score_trajectories(_straight(10.0), _world(junction, []))
    assert list(empty.scores[0, [0, 4]]) == [1.0, 1.0]


def test_area_raster_is_exact_on_curved_and_rotated_shapes() -> None:
    from shapely import affinity

    frame = np.array([664123.4, 3996789.1])  # UTM-like: the raster works in a local frame
    ring = shapely.Point(frame + [10.0, 5.0]).buffer(12.0).difference(shapely.Point(frame + [10.0, 5.0]).buffer(4.0))
    bar = affinity.rotate(shapely.box(*(frame + [-30.0, -2.0]), *(frame + [25.0, 1.5])), 23.0)
    geometry = shapely.union_all([ring, bar])
    raster = area_raster(geometry, frame, np.zeros(2), 40.0, 0.2)
    rng = np.random.default_rng(4)
    boundary = shapely.get_coordinates(shapely.segmentize(geometry.boundary, 0.05))
    near = boundary[rng.integers(len(boundary), size=30000)] + rng.normal(0.0, 0.05, (30000, 2))
    pts = np.concatenate([near, boundary, frame + rng.uniform(-45.0, 45.0, (30000, 2))]) - frame
    exact = shapely.intersects_xy(geometry, pts[:, 0] + frame[0], pts[:, 1] + frame[1])
    assert 0.2 < exact.mean() < 0.8
    assert np.array_equal(raster.contains(pts[:, 0], pts[:, 1]), exact)
    assert raster.uncertain.mean() < 0.05  # only cells an edge passes through ask shapely


def test_unknown_route_falls_back_to_the_road(junction: MapAPI) -> None:
    world = _world(junction, route=(999,))
    s = score_trajectories(_straight(10.0), world)
    assert s.scores[0] == pytest.approx([1, 1, 1, 1, 1, 1, 1])
    assert s.raw_progress[0] == pytest.approx(40.0)  # along the ego heading


def test_object_appearing_later_in_a_given_forecast_is_an_obstacle(junction: MapAPI) -> None:
    car = (Category.VEHICLE, (30.0, -1.75, 0.0), (4.5, 2.0), (0.0, 0.0))
    now = _tracks([car])
    steps = T + 10
    valid = np.ones((1, steps), bool)
    valid[0, :10] = False  # not observed during the first second
    pose = np.repeat(now.pose, steps, axis=1)
    pose[0, :10] = np.nan
    future = Tracks(now.token, now.category, now.size, pose, np.repeat(now.velocity, steps, axis=1), valid)
    world = build_scoring_world(junction, ROUTE, _ego(), future, {}, TIMES, forecast="given")
    assert world.num_objects == 1
    s = score_trajectories(_straight(10.0), world)
    assert s.column("no_at_fault_collision")[0] == 0.0
    assert s.collision_time_s[0] == pytest.approx(1.4)


def test_progress_does_not_saturate_where_the_route_ends(junction: MapAPI) -> None:
    # Route = the first roadblock only (its lanes end at x = 50): the centerline goes on straight.
    s = score_trajectories(_straight(12.0, k=1), _world(junction, route=(100,)))
    assert s.raw_progress[0] == pytest.approx(48.0)


def test_objects_overlapping_the_ego_now_are_left_out(junction: MapAPI) -> None:
    ghost = (Category.VEHICLE, (12.0, -1.75, 0.0), (4.5, 2.0), (10.0, 0.0))  # overlaps the ego box at t = 0
    ahead = (Category.VEHICLE, (30.0, -1.75, 0.0), (4.5, 2.0), (0.0, 0.0))
    world = _world(junction, [ghost, ahead])
    assert world.num_objects == 1
    kept = build_scoring_world(junction, ROUTE, _ego(), _tracks([ghost]), {}, TIMES, drop_initial_overlaps=False)
    assert kept.num_objects == 1
    # kept, it is a front collision at t = 0 for every candidate: the reason to leave it out
    assert score_trajectories(_straight(10.0), kept).column("no_at_fault_collision")[0] == 0.0
    assert score_trajectories(_straight(10.0), world).column("no_at_fault_collision")[0] == 0.0  # the parked car
    assert score_trajectories(_straight(3.0), world).column("no_at_fault_collision")[0] == 1.0


def test_cached_raster_equals_a_fresh_one_wherever_the_ego_stands() -> None:
    from shapely import affinity

    frame = np.array([664123.4, 3996789.1])
    ring = shapely.Point(frame + [10.0, 5.0]).buffer(12.0).difference(shapely.Point(frame + [10.0, 5.0]).buffer(4.0))
    bar = affinity.rotate(shapely.box(*(frame + [-30.0, -2.0]), *(frame + [25.0, 1.5])), 23.0)
    geometry = shapely.union_all([ring, bar])
    holder = MapAPI.from_layers(two_lane_junction_layers())  # any map object: the cache is kept per map
    rng = np.random.default_rng(5)
    boundary = shapely.get_coordinates(shapely.segmentize(geometry.boundary, 0.05))
    for step in range(6):  # an ego driving along: the windows are reused, shifted into each local frame
        origin = frame + np.array([-20.0 + 7.3 * step, 0.37 * step])
        cached = cached_area_raster(holder, "test-shape", geometry, origin, 30.0, 0.2, core_margin=2.7)
        fresh = area_raster(geometry, origin, np.zeros(2), 30.0, 0.2, core_margin=2.7)
        near = boundary[rng.integers(len(boundary), size=20000)] + rng.normal(0.0, 0.05, (20000, 2))
        pts = np.concatenate([near, origin + rng.uniform(-35.0, 35.0, (20000, 2))]) - origin
        exact = shapely.intersects_xy(geometry, pts[:, 0] + origin[0], pts[:, 1] + origin[1])
        assert np.array_equal(cached.contains(pts[:, 0], pts[:, 1]), exact)
        assert np.array_equal(fresh.contains(pts[:, 0], pts[:, 1]), exact)
        core = cached.in_core(pts[:, 0], pts[:, 1])
        assert core.any() and exact[core].all()  # the core is sound in the shifted frame too


def test_world_from_caches_scores_as_a_fresh_world(junction: MapAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    import sim.metrics.pdm_score as pdm

    def fresh_raster(map_api, key, geometry, origin, half_size, resolution, edges=None, core_margin=0.0):
        return area_raster(geometry, origin, np.zeros(2), half_size, resolution, edges, core_margin)

    objects = [(Category.VEHICLE, (35.0, -1.75, 0.0), (4.5, 2.0), (2.0, 0.0)),
               (Category.TRAFFIC_CONE, (25.0, 1.0, 0.0), (0.5, 0.5), (0.0, 0.0))]
    rng = np.random.default_rng(6)
    lateral = rng.uniform(-3.0, 3.0, 16)
    for x0 in (10.0, 13.1, 17.9):  # successive planning steps reuse the cached areas
        x = x0 + rng.uniform(0.0, 14.0, 16)[:, None] * TIMES
        y = -1.75 + lateral[:, None] * np.clip(TIMES / 2.0, 0, 1)
        ro = _rollout(x, y)
        lights = {11: TrafficLightStatus.RED}
        warm = score_trajectories(ro, _world(junction, objects, lights=lights, ego=_ego(x=x0)))
        with monkeypatch.context() as m:  # no cache at all: rasters built on the ego's own window
            m.setattr(pdm, "cached_area_raster", fresh_raster)
            for cache in (pdm._RED_CACHE, pdm._CENTERLINE_CACHE):
                cache.clear()  # rebuilt from scratch for this world
            cold = score_trajectories(ro, _world(junction, objects, lights=lights, ego=_ego(x=x0)))
        assert np.array_equal(warm.scores, cold.scores)
        assert np.array_equal(warm.raw_progress, cold.raw_progress)
        assert len({tuple(r) for r in warm.scores}) > 2


def test_one_pass_and_chunked_collision_checks_agree(junction: MapAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    import sim.metrics.pdm_score as pdm

    rng = np.random.default_rng(8)
    k = 40
    x = 10.0 + rng.uniform(0.0, 14.0, k)[:, None] * TIMES
    y = -1.75 + rng.uniform(-4.0, 4.0, k)[:, None] * np.clip(TIMES / 2.0, 0, 1)
    objects = [(Category.VEHICLE, (35.0, -1.75, 0.0), (4.5, 2.0), (2.0, 0.0)),
               (Category.VEHICLE, (28.0, 1.75, 0.0), (4.5, 2.0), (0.0, 0.0)),
               (Category.PEDESTRIAN, (30.0, 2.5, -np.pi / 2), (0.6, 0.6), (0.0, -1.0)),
               (Category.TRAFFIC_CONE, (25.0, 1.0, 0.0), (0.5, 0.5), (0.0, 0.0)),
               (Category.VEHICLE, (2.0, -1.75, 0.0), (4.5, 2.0), (12.0, 0.0))]
    world = _world(junction, objects)
    ro = _rollout(x, y)
    one_pass = score_trajectories(ro, world)
    monkeypatch.setattr(pdm, "ONE_PASS_MAX_K", 0)  # chunks of 10 states
    chunked = score_trajectories(ro, world)
    assert np.array_equal(one_pass.scores, chunked.scores)
    assert np.array_equal(one_pass.collision_time_s, chunked.collision_time_s)
    assert np.array_equal(one_pass.ttc_time_s, chunked.ttc_time_s)
    nc = one_pass.column("no_at_fault_collision")
    assert (nc == 0).any() and (nc == 1).any() and (one_pass.column("time_to_collision") == 0).sum() > (nc == 0).sum()
