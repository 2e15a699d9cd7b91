"""The reader: round trip of a written recording, nuPlan's extraction rules, filters, bad input."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sim.categories import Category, TrafficLightStatus
from sim.errors import DataError, NotFoundError, SchemaError
from sim.geometry import wrap_angle
from sim.nuplan_db.filter import ScenarioFilter, ScenarioRef
from sim.nuplan_db.reader import LogDB, list_scenarios, load_scenario
from sim.nuplan_db.recording import LogRecording
from sim.nuplan_db.sample import sample_recording
from sim.nuplan_db.writer import write_log

TAGGED = ("following_lane_with_lead", "changing_lane", "stationary_in_traffic", "high_magnitude_speed",
          "near_multiple_vehicles")


def _frame(rec: LogRecording, t_s: float) -> int:
    return int(round(t_s * 20))


def _token_at(db: Path, rec: LogRecording, frame: int) -> str:
    con = sqlite3.connect(db)
    tok = con.execute("SELECT token FROM lidar_pc WHERE timestamp = ?", (int(rec.timestamp_us[frame]),)).fetchone()
    con.close()
    return tok[0].hex()


@pytest.fixture(scope="module")
def scenario_20s(db_path: Path, recording: LogRecording):
    refs = [r for r in list_scenarios(db_path, ScenarioFilter(scenario_types=TAGGED))
            if r.timestamp_us == recording.timestamp_us[_frame(recording, 20.0)]]
    assert len(refs) == 1
    return refs[0], load_scenario(refs[0])


# --- round trip --------------------------------------------------------------------------------------------

def test_window_is_151_samples_at_0_1_s_from_3_s_before_the_tag(scenario_20s, recording: LogRecording) -> None:
    ref, sc = scenario_20s
    tag = _frame(recording, 20.0)
    assert sc.num_iterations == 151 and sc.history_steps == 20 and len(sc.time_us) == 171
    assert sc.token == ref.token
    frames = tag - 60 + 2 * np.arange(-20, 151)
    np.testing.assert_array_equal(sc.time_us, recording.timestamp_us[frames])
    np.testing.assert_array_equal(np.diff(sc.time_us), 100_000)
    assert sc.time_us[sc.index(0)] == recording.timestamp_us[tag] - 3_000_000
    assert sc.time_us[sc.index(150)] == recording.timestamp_us[tag] + 12_000_000


def test_window_matches_a_row_number_query(scenario_20s, db_path: Path) -> None:
    # nuPlan samples the window in SQL: rows start <= t <= end numbered by time, keep (row_num - 1) % 2 == 0.
    ref, sc = scenario_20s
    start = ref.timestamp_us - 3_000_000
    con = sqlite3.connect(db_path)
    rows = con.execute("""WITH numbered AS (SELECT timestamp, ROW_NUMBER() OVER (ORDER BY timestamp) AS rn
                                            FROM lidar_pc WHERE timestamp >= ? AND timestamp <= ?)
                          SELECT timestamp FROM numbered WHERE (rn - 1) % 2 = 0 ORDER BY timestamp""",
                       (start, start + 15_000_000)).fetchall()
    con.close()
    assert [r[0] for r in rows] == sc.time_us[sc.history_steps:].tolist()


def test_ego_round_trip(scenario_20s, recording: LogRecording) -> None:
    _, sc = scenario_20s
    frames = _frame(recording, 20.0) - 60 + 2 * np.arange(-20, 151)
    ego = recording.ego
    np.testing.assert_array_equal(sc.ego.pose[:, :2], ego.pose[frames, :2])
    np.testing.assert_allclose(wrap_angle(sc.ego.pose[:, 2] - ego.pose[frames, 2]), 0.0, atol=1e-12)
    assert np.all((sc.ego.pose[:, 2] >= -np.pi) & (sc.ego.pose[:, 2] < np.pi))
    np.testing.assert_array_equal(sc.ego.velocity, ego.velocity[frames])
    np.testing.assert_array_equal(sc.ego.acceleration, ego.acceleration[frames])
    np.testing.assert_array_equal(sc.ego.yaw_rate, ego.yaw_rate[frames])
    np.testing.assert_array_equal(sc.ego.time_s, sc.time_us * 1e-6)


def test_tracks_round_trip(scenario_20s, recording: LogRecording) -> None:
    _, sc = scenario_20s
    frames = _frame(recording, 20.0) - 60 + 2 * np.arange(-20, 151)
    tr = recording.tracks
    seen = np.flatnonzero(tr.valid[:, frames].any(axis=1))
    assert sorted(sc.tracks.token.tolist()) == sorted(tr.token[seen].tolist())
    assert len(sc.tracks) < len(tr) or tr.valid[:, frames].any(axis=1).all()
    index = {t: i for i, t in enumerate(tr.token)}
    for j, tok in enumerate(sc.tracks.token):
        n = index[tok]
        np.testing.assert_array_equal(sc.tracks.valid[j], tr.valid[n, frames])
        v = sc.tracks.valid[j]
        np.testing.assert_array_equal(sc.tracks.pose[j, v, :2], tr.pose[n, frames][v, :2])
        np.testing.assert_allclose(wrap_angle(sc.tracks.pose[j, v, 2] - tr.pose[n, frames][v, 2]), 0, atol=1e-12)
        assert np.all(np.isnan(sc.tracks.pose[j, ~v]))
        np.testing.assert_array_equal(sc.tracks.velocity[j, v], tr.velocity[n, frames][v])
        np.testing.assert_array_equal(sc.tracks.size[j], tr.size[n])
        assert sc.tracks.category[j] == tr.category[n]
    first = np.argmax(sc.tracks.valid, axis=1)
    assert np.all(np.diff(first) >= 0)  # ordered by first appearance
    assert {Category(c) for c in sc.tracks.category} >= {Category.VEHICLE, Category.PEDESTRIAN, Category.BARRIER}


def test_traffic_lights_route_goal_and_tags(scenario_20s, recording: LogRecording) -> None:
    _, sc = scenario_20s
    frames = _frame(recording, 20.0) - 60 + 2 * np.arange(-20, 151)
    tl = recording.traffic_lights
    np.testing.assert_array_equal(sc.traffic_lights.lane_connector_id, tl.lane_connector_id)
    np.testing.assert_array_equal(sc.traffic_lights.status, tl.status[frames])
    assert (sc.traffic_lights.status == TrafficLightStatus.UNKNOWN).any()  # unreported -> UNKNOWN
    scene = int(np.searchsorted(recording.scene_start, _frame(recording, 20.0), side="right") - 1)
    assert sc.route_roadblock_ids == recording.scene_roadblock_ids[scene]
    g = recording.scene_goal_frame[scene]
    np.testing.assert_array_equal(sc.mission_goal[:2], recording.ego.pose[g, :2])
    assert abs(wrap_angle(sc.mission_goal[2] - recording.ego.pose[g, 2])) < 1e-12
    assert sc.scenario_type == "following_lane_with_lead"  # MAX of {changing_lane, following_lane_with_lead}
    assert sc.tags == ("changing_lane", "following_lane_with_lead")
    # the agent named by the tag of the scenario's own type (scenario_tag.agent_track_token), not the other tag's
    k = [i for i in range(len(recording.tag_frame)) if recording.tag_frame[i] == _frame(recording, 20.0)
         and recording.tag_type[i] == sc.scenario_type]
    assert len(k) == 1
    assert sc.tagged_track_tokens == (str(recording.tracks.token[recording.tag_agent[k[0]]]),)
    assert sc.tagged_track_tokens[0] in set(sc.tracks.token)
    assert sc.map_location == "us-nv-las-vegas-strip" and sc.log_name == recording.log_name


def test_load_by_path_and_token_equals_load_by_ref(scenario_20s, db_path: Path) -> None:
    ref, sc = scenario_20s
    again = load_scenario((db_path, ref.token))
    np.testing.assert_array_equal(again.time_us, sc.time_us)
    np.testing.assert_array_equal(again.ego.pose, sc.ego.pose)
    assert again.scenario_type == sc.scenario_type
    short = load_scenario(ref, history_s=0.5, duration_s=4.0)
    assert short.history_steps == 5 and short.num_iterations == 41


def test_history_is_cut_at_the_start_of_the_log(db_path: Path, recording: LogRecording) -> None:
    tok = _token_at(db_path, recording, 11)  # 0.55 s into the log: 11 rows before it -> 5 history samples
    sc = load_scenario((db_path, tok), offset_s=0.0, duration_s=1.0)
    assert sc.history_steps == 5 and sc.num_iterations == 11
    np.testing.assert_array_equal(sc.time_us, recording.timestamp_us[1:32:2])


def test_lidar_extrinsics(db_path: Path) -> None:
    with LogDB(db_path) as db:
        t, r = db.lidar_extrinsics()
    np.testing.assert_array_equal(t, [0, 0, 0])
    np.testing.assert_array_equal(r, [1, 0, 0, 0])


def test_reader_never_modifies_the_file(db_path: Path, tmp_path: Path) -> None:
    ro = tmp_path / "ro.db"
    shutil.copy(db_path, ro)
    before = ro.read_bytes()
    os.chmod(ro, 0o444)
    try:
        refs = list_scenarios(ro, ScenarioFilter(scenario_types=TAGGED))
        load_scenario(refs[0])
    finally:
        os.chmod(ro, 0o644)
    assert ro.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.db"]


# --- extraction rules --------------------------------------------------------------------------------------

def test_untyped_listing_is_every_row_of_the_valid_scenes(db_path: Path, recording: LogRecording) -> None:
    refs = list_scenarios(db_path)
    starts = recording.scene_start
    valid_frames = np.arange(starts[2], starts[-2])  # scenes 3 .. S-2 (1-based): first two and last two dropped
    assert sorted(r.timestamp_us for r in refs) == recording.timestamp_us[valid_frames].tolist()
    assert [r.token for r in refs] == sorted(r.token for r in refs)
    types = {r.scenario_type for r in refs}
    assert "unknown" in types and "following_lane_with_lead" in types and "changing_lane" not in types
    unknown = next(r for r in refs if r.scenario_type == "unknown")
    assert (unknown.offset_s, unknown.duration_s) == (0.0, 20.0)


def test_typed_listing_drops_first_and_last_two_scenes(db_path: Path, recording: LogRecording) -> None:
    refs = list_scenarios(db_path, ScenarioFilter(scenario_types=TAGGED))
    times = sorted((r.timestamp_us - recording.timestamp_us[0]) / 1e6 for r in refs)
    assert times == [20.0, 24.0, 26.0, 30.0, 33.0]  # tags at 2 s and 58 s lie in excluded scenes
    assert all((r.offset_s, r.duration_s) == (-3.0, 15.0) for r in refs)
    assert "unknown" not in {r.scenario_type for r in refs}
    only = list_scenarios(db_path, ScenarioFilter(scenario_types=("changing_lane",)))
    assert [r.scenario_type for r in only] == ["changing_lane"]  # MAX over the *matching* tags only


def test_num_scenarios_per_type_and_limits(db_path: Path) -> None:
    flt = ScenarioFilter(scenario_types=TAGGED, num_scenarios_per_type=1)
    refs = list_scenarios(db_path, flt)
    assert sorted(r.scenario_type for r in refs) == sorted(
        ["following_lane_with_lead", "stationary_in_traffic", "high_magnitude_speed", "near_multiple_vehicles"])
    flw = [r for r in refs if r.scenario_type == "following_lane_with_lead"]
    assert (flw[0].timestamp_us - 1_623_070_440_000_000) / 1e6 == 20.0  # equisampling keeps the first
    everything = list_scenarios(db_path)
    n_known = sum(r.scenario_type != "unknown" for r in everything)
    limited = list_scenarios(db_path, ScenarioFilter(limit_total_scenarios=n_known + 3))
    assert len(limited) == n_known + 3 and sum(r.scenario_type == "unknown" for r in limited) == 3
    frac = list_scenarios(db_path, ScenarioFilter(limit_total_scenarios=0.5))
    assert len(frac) == int(np.ceil(0.5 * len(everything)))
    tiny = list_scenarios(db_path, ScenarioFilter(limit_total_scenarios=2))
    assert len(tiny) == 2 and all(r.scenario_type != "unknown" for r in tiny)  # unknown removed first


def test_timestamp_threshold(db_path: Path) -> None:
    refs = list_scenarios(db_path, ScenarioFilter(scenario_types=("following_lane_with_lead",)))
    assert len(refs) == 2  # tags at 20 s and 24 s
    assert len(list_scenarios(db_path, ScenarioFilter(scenario_types=("following_lane_with_lead",),
                                                      timestamp_threshold_s=5.0))) == 1
    assert len(list_scenarios(db_path, ScenarioFilter(scenario_types=("following_lane_with_lead",),
                                                      timestamp_threshold_s=4.0))) == 2


def test_token_log_and_map_filters(db_path: Path, recording: LogRecording) -> None:
    tok = _token_at(db_path, recording, _frame(recording, 26.0))
    out = list_scenarios(db_path, ScenarioFilter(scenario_tokens=(tok,)))
    assert [(r.token, r.scenario_type) for r in out] == [(tok, "stationary_in_traffic")]
    assert list_scenarios(db_path, ScenarioFilter(scenario_tokens=((recording.log_name, tok),))) == out
    assert list_scenarios(db_path, ScenarioFilter(scenario_tokens=(("other_log", tok),))) == []
    edge = _token_at(db_path, recording, _frame(recording, 2.0))  # tagged, but in an excluded scene
    assert list_scenarios(db_path, ScenarioFilter(scenario_tokens=(edge,))) == []
    assert list_scenarios(db_path, ScenarioFilter(log_names=("nope",))) == []
    assert len(list_scenarios(db_path, ScenarioFilter(log_names=(recording.log_name,), scenario_types=TAGGED))) == 5
    assert list_scenarios(db_path, ScenarioFilter(map_names=("sg-one-north",))) == []
    assert len(list_scenarios(db_path, ScenarioFilter(map_names=("us-nv-las-vegas-strip",),
                                                      scenario_types=TAGGED))) == 5


def test_remove_invalid_goals_expand_and_shuffle(recording: LogRecording, tmp_path: Path) -> None:
    goals = recording.scene_goal_frame.copy()
    scene_of_24s = int(np.searchsorted(recording.scene_start, _frame(recording, 24.0), side="right") - 1)
    goals[scene_of_24s] = -1
    path = write_log(dataclasses.replace(recording, scene_goal_frame=goals), tmp_path / "g.db")
    all_typed = list_scenarios(path, ScenarioFilter(scenario_types=TAGGED))
    kept = list_scenarios(path, ScenarioFilter(scenario_types=TAGGED, remove_invalid_goals=True))
    dropped = {r.token for r in all_typed} - {r.token for r in kept}
    assert len(dropped) >= 1
    assert all(load_scenario(r).mission_goal is None for r in all_typed if r.token in dropped)
    assert all(load_scenario(r).mission_goal is not None for r in kept)

    single = list_scenarios(path, ScenarioFilter(scenario_types=TAGGED, expand_scenarios=True))
    assert {(r.offset_s, r.duration_s) for r in single} == {(0.0, 0.0)}
    sc = load_scenario(single[0])
    assert sc.num_iterations == 1 and sc.time_us[sc.index(0)] == single[0].timestamp_us

    everything = list_scenarios(path)
    a = list_scenarios(path, ScenarioFilter(shuffle=True, seed=3, num_scenarios_per_type=50))
    b = list_scenarios(path, ScenarioFilter(shuffle=True, seed=3, num_scenarios_per_type=50))
    c = list_scenarios(path, ScenarioFilter(shuffle=True, seed=4, num_scenarios_per_type=50))
    assert a == b and a != c and a != sorted(a, key=lambda r: r.token) and set(a) <= set(everything)


def test_several_logs_are_merged(recording: LogRecording, tmp_path: Path) -> None:
    other = sample_recording(duration_s=40.0, num_agents=3, num_scenes=6, seed=1,
                             log_name="2021.06.08.10.00.00_veh-12_00001_00099")
    write_log(recording, tmp_path / f"{recording.log_name}.db")
    write_log(other, tmp_path / f"{other.log_name}.db")
    refs = list_scenarios(tmp_path, ScenarioFilter(scenario_types=TAGGED))
    assert {r.log_name for r in refs} == {recording.log_name, other.log_name}
    assert [r.token for r in refs] == sorted(r.token for r in refs)
    sc = load_scenario(next(r for r in refs if r.log_name == other.log_name))
    assert sc.log_name == other.log_name and len(sc.tracks) <= 3


def test_filter_rejects_bad_values() -> None:
    for kwargs in ({"num_scenarios_per_type": 0}, {"limit_total_scenarios": 1.5}, {"scenario_types": "stationary"},
                   {"scenario_tokens": ("xyz",)}, {"timestamp_threshold_s": -1.0}):
        with pytest.raises(DataError) as err:
            ScenarioFilter(**kwargs)
        assert next(iter(kwargs)) in str(err.value)
    with pytest.raises(DataError, match="bogus"):
        ScenarioFilter.from_mapping({"bogus": 1})
    assert ScenarioFilter.from_mapping({"scenario_types": ["a", "b"]}).scenario_types == ("a", "b")


# --- bad input: one-line messages naming the file -----------------------------------------------------------

def _assert_one_line(err: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg, msg
    for w in words:
        assert w in msg, msg


def _copy_and_run(db_path: Path, tmp_path: Path, sql: str) -> Path:
    out = tmp_path / "edited.db"
    shutil.copy(db_path, out)
    con = sqlite3.connect(out)
    con.execute(sql)
    con.commit()
    con.close()
    return out


def test_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "missing.db"
    with pytest.raises(NotFoundError) as err:
        list_scenarios([p])
    _assert_one_line(err, p)


def test_missing_table(db_path: Path, tmp_path: Path) -> None:
    p = _copy_and_run(db_path, tmp_path, "DROP TABLE scenario_tag")
    with pytest.raises(SchemaError) as err:
        list_scenarios(p)
    _assert_one_line(err, p, "scenario_tag")


def test_missing_column(db_path: Path, tmp_path: Path) -> None:
    p = _copy_and_run(db_path, tmp_path, "ALTER TABLE lidar_box DROP COLUMN yaw")
    with pytest.raises(SchemaError) as err:
        load_scenario((p, "0" * 16))
    _assert_one_line(err, p, "lidar_box", "yaw")


def test_truncated_copy(db_path: Path, tmp_path: Path) -> None:
    p = tmp_path / "truncated.db"
    data = db_path.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as err:
        list_scenarios(p)
    _assert_one_line(err, p, "truncated")


def test_random_bytes_and_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "noise.db"
    p.write_bytes(np.random.default_rng(0).bytes(8192))
    with pytest.raises(DataError) as err:
        list_scenarios(p)
    _assert_one_line(err, p, "not an SQLite database")
    e = tmp_path / "empty.db"
    e.write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_scenario((e, "0" * 16))
    _assert_one_line(err, e)


def test_corrupt_pages(db_path: Path, tmp_path: Path) -> None:
    p = tmp_path / "corrupt.db"
    data = bytearray(db_path.read_bytes())
    data[8192:] = np.random.default_rng(1).bytes(len(data) - 8192)  # keep the header and the schema page
    p.write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        refs = list_scenarios(p)
        load_scenario(refs[0] if refs else (p, "0" * 16))
    _assert_one_line(err, p)


def test_unknown_and_malformed_tokens(db_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        load_scenario((db_path, "0123456789abcdef"))
    _assert_one_line(err, db_path, "0123456789abcdef")
    with pytest.raises(NotFoundError) as err:
        load_scenario((db_path, "not-a-token"))
    _assert_one_line(err, db_path, "not-a-token")
    ref = ScenarioRef("fedcba9876543210", "x", str(db_path), 0, "unknown", "m")
    with pytest.raises(NotFoundError):
        load_scenario(ref)


def test_missing_ego_pose_and_bad_roadblock_ids(db_path: Path, tmp_path: Path, scenario_20s) -> None:
    ref, _ = scenario_20s
    blob = bytes.fromhex(ref.token)
    p = _copy_and_run(db_path, tmp_path, "DELETE FROM ego_pose WHERE token = "
                                         f"(SELECT ego_pose_token FROM lidar_pc WHERE token = x'{blob.hex()}')")
    with pytest.raises(DataError) as err:
        load_scenario((p, ref.token))
    _assert_one_line(err, p, "ego_pose")
    q = tmp_path / "rb"
    q.mkdir()
    p2 = _copy_and_run(db_path, q, "UPDATE scene SET roadblock_ids = '1000,1001'")
    with pytest.raises(DataError) as err:
        load_scenario((p2, ref.token))
    _assert_one_line(err, p2, "roadblock_ids", "1000,1001")


def test_filter_from_omegaconf_lists(db_path: Path, recording: LogRecording) -> None:
    from omegaconf import OmegaConf

    tok = _token_at(db_path, recording, _frame(recording, 26.0))
    cfg = OmegaConf.create({"scenario_types": list(TAGGED), "scenario_tokens": [[recording.log_name, tok]]})
    flt = ScenarioFilter.from_mapping(dict(cfg))
    assert flt.scenario_tokens == ((recording.log_name, tok),)
    assert [r.token for r in list_scenarios(db_path, flt)] == [tok]
