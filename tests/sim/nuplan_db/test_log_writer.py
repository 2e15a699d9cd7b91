"""The writer: nuPlan's schema, deterministic bytes, atomic writes, row contents, validation."""

from __future__ import annotations

import dataclasses
import os
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from sim.categories import TrafficLightStatus
from sim.errors import DataError
from sim.geometry import wrap_angle
from sim.nuplan_db import writer
from sim.nuplan_db.recording import LogRecording
from sim.nuplan_db.schema import TABLES, dumps_floats, loads_floats
from sim.nuplan_db.writer import make_tokens, write_log

# nuplan-devkit's columns (nuplan_db_orm) as SQLite declares them; written out independently of schema.py.
DEVKIT_COLUMNS = {
    "log": "token BLOB, vehicle_name VARCHAR(64), date VARCHAR(64), timestamp INTEGER, logfile VARCHAR(64), "
           "location VARCHAR(64), map_version VARCHAR(64)",
    "ego_pose": "token BLOB, timestamp INTEGER, x FLOAT, y FLOAT, z FLOAT, qw FLOAT, qx FLOAT, qy FLOAT, qz FLOAT, "
                "vx FLOAT, vy FLOAT, vz FLOAT, acceleration_x FLOAT, acceleration_y FLOAT, acceleration_z FLOAT, "
                "angular_rate_x FLOAT, angular_rate_y FLOAT, angular_rate_z FLOAT, epsg INTEGER, log_token BLOB",
    "lidar": "token BLOB, log_token BLOB, channel VARCHAR(64), model VARCHAR(64), translation BLOB, rotation BLOB",
    "lidar_pc": "token BLOB, next_token BLOB, prev_token BLOB, ego_pose_token BLOB, lidar_token BLOB, "
                "scene_token BLOB, filename VARCHAR(128), timestamp INTEGER",
    "lidar_box": "token BLOB, lidar_pc_token BLOB, track_token BLOB, next_token BLOB, prev_token BLOB, x FLOAT, "
                 "y FLOAT, z FLOAT, width FLOAT, length FLOAT, height FLOAT, vx FLOAT, vy FLOAT, vz FLOAT, "
                 "yaw FLOAT, confidence FLOAT",
    "track": "token BLOB, category_token BLOB, width FLOAT, length FLOAT, height FLOAT",
    "category": "token BLOB, name VARCHAR(64), description TEXT",
    "scene": "token BLOB, log_token BLOB, name TEXT, goal_ego_pose_token BLOB, roadblock_ids TEXT",
    "scenario_tag": "token BLOB, lidar_pc_token BLOB, type TEXT, agent_track_token BLOB",
    "traffic_light_status": "token BLOB, lidar_pc_token BLOB, lane_connector_id INTEGER, status VARCHAR(8)",
    "camera": "token BLOB, log_token BLOB, channel VARCHAR(64), model VARCHAR(64), translation BLOB, "
              "rotation BLOB, intrinsic BLOB, distortion BLOB, width INTEGER, height INTEGER",
    "image": "token BLOB, next_token BLOB, prev_token BLOB, ego_pose_token BLOB, camera_token BLOB, "
             "filename_jpg VARCHAR(128), timestamp INTEGER",
}


def _q(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def test_tables_columns_and_types_match_devkit(db_path: Path) -> None:
    tables = {r[0] for r in _q(db_path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == set(DEVKIT_COLUMNS) == set(TABLES)
    for table, spec in DEVKIT_COLUMNS.items():
        info = _q(db_path, f"PRAGMA table_info({table})")
        assert ", ".join(f"{r[1]} {r[2]}" for r in info) == spec, table
        assert [r[1] for r in info if r[5]] == ["token"], table  # primary key


def test_every_token_is_an_8_byte_blob(db_path: Path) -> None:
    for table in TABLES.values():
        for col in (c.name for c in table.columns if c.sql_type == "BLOB" and c.name.endswith("token")):
            bad = _q(db_path, f"SELECT COUNT(*) FROM {table.name} WHERE {col} IS NOT NULL "
                              f"AND (typeof({col}) != 'blob' OR length({col}) != 8)")
            assert bad == [(0,)], (table.name, col)
    n = _q(db_path, "SELECT COUNT(*), COUNT(DISTINCT token) FROM lidar_box")[0]
    assert n[0] == n[1] > 0


def test_indexes_on_the_reader_keys(db_path: Path) -> None:
    idx = {(r[0], r[1]) for r in _q(db_path, "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index' "
                                             "AND sql IS NOT NULL")}
    for table, col in (("lidar_pc", "timestamp"), ("lidar_box", "lidar_pc_token"), ("scenario_tag", "lidar_pc_token"),
                       ("traffic_light_status", "lidar_pc_token"), ("lidar_pc", "scene_token")):
        assert any(t == table and f"({col})" in sql for t, sql in idx), (table, col)


def test_same_recording_gives_identical_bytes(recording: LogRecording, tmp_path: Path) -> None:
    a = write_log(recording, tmp_path / "a" / "x.db").read_bytes()
    b = write_log(recording, tmp_path / "b" / "x.db").read_bytes()
    assert a == b
    other = dataclasses.replace(recording, log_name="2021.06.07.12.54.00_veh-35_00000_00001")
    assert write_log(other, tmp_path / "c" / "x.db").read_bytes() != a


def test_batched_box_writing_gives_the_same_bytes(recording: LogRecording, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    whole = write_log(recording, tmp_path / "a.db").read_bytes()
    monkeypatch.setattr(writer, "BOX_CHUNK_ROWS", 1000)
    assert write_log(recording, tmp_path / "b.db").read_bytes() == whole


def test_write_is_atomic_and_leaves_no_temp_files(recording: LogRecording, tmp_path: Path) -> None:
    target = tmp_path / "log.db"
    write_log(recording, target)
    before = target.read_bytes()
    bad = dataclasses.replace(recording, scene_start=recording.scene_start[:4])
    with pytest.raises(DataError):
        write_log(bad, target)
    assert target.read_bytes() == before  # the old file survives a failed write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.db"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600


def test_tokens_are_deterministic_and_unique() -> None:
    a = make_tokens("log", "lidar_box", 100_000)
    assert a == make_tokens("log", "lidar_box", 100_000)
    assert len(set(a)) == len(a) and all(len(t) == 8 for t in a)
    assert not set(a[:1000]) & set(make_tokens("log", "lidar_pc", 1000))


def test_ego_pose_rows(db_path: Path, recording: LogRecording) -> None:
    rows = _q(db_path, """SELECT lp.timestamp, ep.timestamp, ep.x, ep.y, ep.qw, ep.qx, ep.qy, ep.qz, ep.vx, ep.vy,
                                 ep.acceleration_x, ep.acceleration_y, ep.angular_rate_z, ep.epsg
                          FROM lidar_pc lp JOIN ego_pose ep ON ep.token = lp.ego_pose_token ORDER BY lp.timestamp""")
    a = np.array(rows, dtype=np.float64)
    ego = recording.ego
    assert len(a) == recording.num_frames
    np.testing.assert_array_equal(a[:, 0].astype(np.int64), recording.timestamp_us)
    np.testing.assert_array_equal(a[:, 1], a[:, 0])
    np.testing.assert_array_equal(a[:, 2:4], ego.pose[:, :2])
    np.testing.assert_allclose(np.linalg.norm(a[:, 4:8], axis=1), 1.0, atol=1e-12)
    yaw = 2.0 * np.arctan2(a[:, 7], a[:, 4])
    np.testing.assert_allclose(wrap_angle(yaw - ego.pose[:, 2]), 0.0, atol=1e-12)
    np.testing.assert_array_equal(a[:, 8:10], ego.velocity)
    np.testing.assert_array_equal(a[:, 10:12], ego.acceleration)
    np.testing.assert_array_equal(a[:, 12], ego.yaw_rate)
    assert set(a[:, 13]) == {32611.0}


def test_lidar_pc_chain_and_scenes(db_path: Path, recording: LogRecording) -> None:
    rows = _q(db_path, "SELECT token, next_token, prev_token, timestamp, scene_token, filename FROM lidar_pc "
                       "ORDER BY timestamp")
    assert rows[0][2] is None and rows[-1][1] is None
    for a, b in zip(rows[:-1], rows[1:], strict=True):
        assert a[1] == b[0] and b[2] == a[0]
    assert rows[0][5].endswith(f"/MergedPointCloud/{rows[0][0].hex()}.pcd")
    scenes = _q(db_path, "SELECT token, name, roadblock_ids, goal_ego_pose_token FROM scene ORDER BY name")
    assert len(scenes) == len(recording.scene_start)
    first_frame = {s: min(i for i, r in enumerate(rows) if r[4] == s[0]) for s in scenes}
    assert [first_frame[s] for s in scenes] == recording.scene_start.tolist()  # name order = time order
    assert scenes[0][2] == "1000 1001 1002"
    goal_pose = _q(db_path, "SELECT x, y FROM ego_pose WHERE token = ?", (scenes[0][3],))[0]
    np.testing.assert_array_equal(goal_pose, recording.ego.pose[recording.scene_goal_frame[0], :2])
    assert scenes[-1][3] is None


def test_lidar_box_rows_and_links(db_path: Path, recording: LogRecording) -> None:
    tr = recording.tracks
    rows = _q(db_path, """SELECT lb.token, lb.next_token, lb.prev_token, lb.track_token, lp.timestamp, lb.x, lb.y,
                                 lb.yaw, lb.length, lb.width, lb.height, lb.vx, lb.vy
                          FROM lidar_box lb JOIN lidar_pc lp ON lp.token = lb.lidar_pc_token""")
    assert len(rows) == int(tr.valid.sum())
    frame_of = {int(t): i for i, t in enumerate(recording.timestamp_us)}
    track_of = {t: i for i, t in enumerate(tr.token)}
    n = np.array([track_of[r[3].hex()] for r in rows])
    f = np.array([frame_of[r[4]] for r in rows])
    vals = np.array([r[5:] for r in rows], dtype=np.float64)
    assert tr.valid[n, f].all()
    np.testing.assert_array_equal(vals[:, 0:3], tr.pose[n, f])
    np.testing.assert_array_equal(vals[:, 3:6], tr.size[n])
    np.testing.assert_array_equal(vals[:, 6:8], tr.velocity[n, f])
    # next / prev = the same track's next / previous observation, across gaps.
    row_of = {r[0]: k for k, r in enumerate(rows)}
    nxt = np.array([row_of[r[1]] if r[1] is not None else -1 for r in rows])
    prv = np.array([row_of[r[2]] if r[2] is not None else -1 for r in rows])
    order = np.lexsort((f, n))
    same = n[order][1:] == n[order][:-1]
    expect_next = np.full(len(rows), -1)
    expect_next[order[:-1][same]] = order[1:][same]
    np.testing.assert_array_equal(nxt, expect_next)
    assert np.all(prv[nxt[nxt >= 0]] == np.flatnonzero(nxt >= 0))
    assert (prv == -1).sum() == len(tr)  # one chain per track
    gaps = (f[order][1:] - f[order][:-1])[same]
    assert gaps.max() > 1  # the fixture has a track with a gap, linked across it
    cats = {r[0] for r in _q(db_path, "SELECT name FROM category")}
    assert cats == {"vehicle", "bicycle", "pedestrian", "traffic_cone", "barrier", "czone_sign", "generic_object"}
    track_rows = _q(db_path, "SELECT t.token, c.name FROM track t JOIN category c ON c.token = t.category_token")
    assert len(track_rows) == len(tr)


def test_tags_lights_and_empty_sensor_tables(db_path: Path, recording: LogRecording) -> None:
    tags = _q(db_path, "SELECT st.type, lp.timestamp, st.agent_track_token FROM scenario_tag st "
                       "JOIN lidar_pc lp ON lp.token = st.lidar_pc_token")
    expected = sorted(zip(recording.tag_type.tolist(), recording.timestamp_us[recording.tag_frame].tolist(),
                          strict=True))
    assert sorted((t, ts) for t, ts, _ in tags) == expected
    status = recording.traffic_lights.status
    lights = _q(db_path, "SELECT status, COUNT(*) FROM traffic_light_status GROUP BY status")
    assert dict(lights) == {"green": int((status == TrafficLightStatus.GREEN).sum()),
                            "yellow": int((status == TrafficLightStatus.YELLOW).sum()),
                            "red": int((status == TrafficLightStatus.RED).sum())}
    assert _q(db_path, "SELECT COUNT(*) FROM camera") == [(0,)] == _q(db_path, "SELECT COUNT(*) FROM image")


def test_pickled_blobs_read_by_plain_pickle_and_restricted_unpickler(db_path: Path, tmp_path: Path) -> None:
    trans, rot = _q(db_path, "SELECT translation, rotation FROM lidar")[0]
    assert pickle.loads(trans) == [0.0, 0.0, 0.0] and pickle.loads(rot) == [1.0, 0.0, 0.0, 0.0]  # as devkit reads
    assert loads_floats(dumps_floats([[1, 2.5], [3, 4]])) == [[1.0, 2.5], [3.0, 4.0]]
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (os.system, (f"touch {marker}",))

    with pytest.raises(ValueError, match="not allowed"):
        loads_floats(pickle.dumps(Evil()))
    assert not marker.exists()
    with pytest.raises(ValueError):
        loads_floats(pickle.dumps(["a", 1.0]))


class Translation(list):
    """Same shape as the devkit's ``Translation`` (a list subclass)."""


def test_devkit_list_wrappers_unpickle_as_lists() -> None:
    # Blobs pickled from the devkit's list wrappers name their module; they must load as lists (protocol 2 writes
    # the class as a text GLOBAL, so the module path can be swapped in without the devkit installed).
    blob = pickle.dumps(Translation([1.0, 2.0, 3.0]), protocol=2)
    here = f"c{Translation.__module__}\nTranslation\n".encode()
    assert here in blob
    blob = blob.replace(here, b"cnuplan.database.common.data_types\nTranslation\n")
    assert loads_floats(blob) == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="not allowed"):
        loads_floats(blob.replace(b"Translation", b"Evil_Class_"))


@pytest.mark.parametrize(("change", "field"), [
    (lambda r: {"scene_start": r.scene_start[:4], "scene_roadblock_ids": r.scene_roadblock_ids[:4],
                "scene_goal_frame": r.scene_goal_frame[:4]}, "scene_start"),
    (lambda r: {"timestamp_us": np.r_[r.timestamp_us[:10], r.timestamp_us[9:-1]]}, "timestamp_us"),
    (lambda r: {"ego": dataclasses.replace(r.ego, pose=r.ego.pose[:-1])}, "ego.pose"),
    (lambda r: {"tracks": dataclasses.replace(r.tracks, valid=r.tracks.valid[:, :-1])}, "tracks.valid"),
    (lambda r: {"tag_frame": r.tag_frame + 10_000}, "tag_frame"),
    (lambda r: {"tracks": dataclasses.replace(r.tracks, token=np.array(["xyz"] * len(r.tracks)))}, "tracks.token"),
])
def test_invalid_recording_is_rejected_with_a_clear_message(recording: LogRecording, tmp_path: Path, change,
                                                            field: str) -> None:
    bad = dataclasses.replace(recording, **change(recording))
    with pytest.raises(DataError) as err:
        write_log(bad, tmp_path / "bad.db")
    msg = str(err.value)
    assert field in msg and recording.log_name in msg and "\n" not in msg
    assert not list(tmp_path.iterdir())


def test_strict_write_rejects_scenarios_the_devkit_would_cut_short(tmp_path: Path) -> None:
    from sim.nuplan_db.sample import sample_recording
    from sim.nuplan_db.writer import scenario_window_problems

    # 6 scenes of 5 s: frames of scenes 2..3 (10 s .. 20 s) can anchor scenarios.
    ok = sample_recording(duration_s=30.0, num_agents=2, num_scenes=6,
                          tags=((12.0, "following_lane_with_lead"), (2.0, "stationary"), (27.0, "some_new_type")))
    assert scenario_window_problems(ok) == []  # 9..24 s (+2 s history); tags in scenes 0 and 5 are never used
    write_log(ok, tmp_path / "ok.db", strict=True)

    # An unmapped type takes 20 s from the tag: 17 s + 20 s runs 7.05 s past the last frame (29.95 s).
    late = dataclasses.replace(ok, tag_frame=np.array([340]), tag_type=np.array(["some_new_type"]),
                               tag_agent=np.array([-1]))
    (problem,) = scenario_window_problems(late)
    assert "some_new_type" in problem and "frame 340" in problem and "7.05 s more after the log" in problem
    assert "before" not in problem
    with pytest.raises(DataError, match="cut short"):
        write_log(late, tmp_path / "late.db", strict=True)
    assert not (tmp_path / "late.db").exists()
    write_log(late, tmp_path / "late.db")  # not strict: written as is

    # A mapped type starts 3 s before the tag and needs 2 s of history: a tag at 4 s (6 scenes of 2 s, the
    # first valid scene starts at 4 s) needs history from -1 s.
    early = sample_recording(duration_s=12.0, num_agents=2, num_scenes=6, tags=((4.0, "changing_lane"),))
    (problem,) = scenario_window_problems(early, future_s=0.0)
    assert "1.00 s more before and 4.05 s more after the log" in problem  # 12 s log: the window ends at 16 s
    # Asking for 8 s of extra future (open-loop queries at the last iteration) flags the 12 s tag: 24 + 8 > 29.95.
    (problem,) = scenario_window_problems(ok, future_s=8.0)
    assert "following_lane_with_lead" in problem and "2.05 s more after" in problem
