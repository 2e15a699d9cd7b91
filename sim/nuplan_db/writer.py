"""Write a :class:`LogRecording` as a nuPlan log database (``.db``, SQLite) that nuplan-devkit can read.

Deterministic: tokens are derived from the log name, the table and the row index, rows are inserted in a fixed
order and the file is built in a temporary file then renamed, so the same recording gives identical bytes.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sim.categories import CATEGORY_NAMES, Category, TrafficLightStatus
from sim.errors import DataError
from sim.nuplan_db.filter import extraction_window
from sim.nuplan_db.recording import LogRecording
from sim.nuplan_db.schema import (
    LIDAR_CHANNEL,
    TABLES,
    dumps_floats,
    index_ddl,
    is_token,
    token_blob,
)

#: Minimum number of scenes: nuPlan drops the first two and last two of every log for scenario extraction.
MIN_SCENES = 5

#: UTM EPSG codes of nuPlan's map locations (``ego_pose.epsg``); other locations write NULL.
EPSG_BY_LOCATION = {"us-nv-las-vegas-strip": 32611, "us-ma-boston": 32619,
                    "us-pa-pittsburgh-hazelwood": 32617, "sg-one-north": 32648}

_CATEGORY_DESCRIPTIONS = {
    Category.VEHICLE: "Cars, trucks, buses and other motor vehicles.",
    Category.PEDESTRIAN: "People on foot, including on skateboards or scooters.",
    Category.BICYCLE: "Bicycles and motorcycles with their riders.",
    Category.TRAFFIC_CONE: "Traffic cones.",
    Category.BARRIER: "Temporary barriers.",
    Category.CZONE_SIGN: "Construction-zone signs.",
    Category.GENERIC_OBJECT: "Other objects on or near the road.",
}
#: lidar_box rows built per batch (bounds the writer's memory on long logs; does not change the bytes).
BOX_CHUNK_ROWS = 200_000

_LIGHT_STRING = {TrafficLightStatus.GREEN: "green", TrafficLightStatus.YELLOW: "yellow",
                 TrafficLightStatus.RED: "red"}


def token_ints(log_name: str, table: str, count: int) -> npt.NDArray[np.uint64]:
    """``count`` deterministic 64-bit token values for rows of ``table``: a per-(log, table) seed (blake2b) plus
    the row index, scrambled by the splitmix64 finaliser. The finaliser is a bijection, so tokens within a table
    are unique; across tables and logs they differ with overwhelming probability."""
    seed = int.from_bytes(hashlib.blake2b(f"{log_name}/{table}".encode(), digest_size=8).digest(), "big")
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(count, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _as_blobs(values: npt.NDArray[np.uint64]) -> list[bytes]:
    raw = values.astype(">u8").tobytes()
    return [raw[i:i + 8] for i in range(0, len(raw), 8)]


def make_tokens(log_name: str, table: str, count: int) -> list[bytes]:
    """``count`` deterministic 8-byte BLOB tokens for rows of ``table`` (see :func:`token_ints`)."""
    return _as_blobs(token_ints(log_name, table, count))


def heading_to_quaternion(heading: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``(..., 4)`` quaternions ``qw, qx, qy, qz`` of a rotation by ``heading`` (rad) about the z axis."""
    h = np.asarray(heading, dtype=np.float64) / 2.0
    zero = np.zeros_like(h)
    return np.stack([np.cos(h), zero, zero, np.sin(h)], -1)


def _bad(rec: LogRecording, field: str, problem: str, expected: str) -> DataError:
    return DataError(None, f"LogRecording {rec.log_name!r}: {field} {problem}", expected)


def validate_recording(rec: LogRecording) -> None:
    """Raise :class:`DataError` naming the field when ``rec`` cannot become a valid nuPlan log."""
    if not rec.log_name or "/" in rec.log_name or "\\" in rec.log_name:
        raise _bad(rec, "log_name", "is empty or contains a path separator", "a file stem")
    ts = np.asarray(rec.timestamp_us)
    f = len(ts)
    if ts.ndim != 1 or f < 2 or not np.issubdtype(ts.dtype, np.integer):
        raise _bad(rec, "timestamp_us", f"has shape {ts.shape} dtype {ts.dtype}", "(F,) integers, F >= 2")
    if np.any(np.diff(ts) <= 0):
        i = int(np.argmax(np.diff(ts) <= 0))
        raise _bad(rec, "timestamp_us", f"is not strictly increasing at frame {i + 1} ({ts[i]} -> {ts[i + 1]})",
                   "strictly increasing microseconds")
    ego = rec.ego
    for name, want in (("time_s", (f,)), ("pose", (f, 3)), ("velocity", (f, 2)), ("acceleration", (f, 2)),
                       ("yaw_rate", (f,))):
        arr = np.asarray(getattr(ego, name))
        if arr.shape != want:
            raise _bad(rec, f"ego.{name}", f"has shape {arr.shape}", f"{want}")
        if not np.all(np.isfinite(arr)):
            raise _bad(rec, f"ego.{name}", "has NaN / inf values", "finite values")
    tr = rec.tracks
    n = len(tr.token)
    for name, want in (("category", (n,)), ("size", (n, 3)), ("pose", (n, f, 3)), ("velocity", (n, f, 2)),
                       ("valid", (n, f))):
        arr = np.asarray(getattr(tr, name))
        if arr.shape != want:
            raise _bad(rec, f"tracks.{name}", f"has shape {arr.shape}", f"{want}")
    bad_tokens = [t for t in tr.token if not is_token(str(t))]
    if bad_tokens:
        raise _bad(rec, "tracks.token", f"holds {bad_tokens[0]!r}", "16-character hex strings")
    if len(set(map(str, tr.token))) != n:
        raise _bad(rec, "tracks.token", "has duplicates", "unique track tokens")
    cats = np.asarray(tr.category)
    if n and (cats.min() < 0 or cats.max() >= Category.EGO):
        raise _bad(rec, "tracks.category", f"holds {int(cats.min())}..{int(cats.max())}", "values 0..6")
    if not np.all(np.isfinite(tr.size)) or np.any(np.asarray(tr.size) <= 0):
        raise _bad(rec, "tracks.size", "has non-positive or non-finite values", "positive sizes in m")
    valid = np.asarray(tr.valid, dtype=bool)
    if not (np.all(np.isfinite(np.asarray(tr.pose)[valid])) and np.all(np.isfinite(np.asarray(tr.velocity)[valid]))):
        raise _bad(rec, "tracks.pose/velocity", "has NaN where valid", "finite values at valid samples")
    tl = rec.traffic_lights
    lc = np.asarray(tl.lane_connector_id)
    if np.asarray(tl.status).shape != (f, len(lc)):
        raise _bad(rec, "traffic_lights.status", f"has shape {np.asarray(tl.status).shape}", f"({f}, {len(lc)})")
    if len(np.unique(lc)) != len(lc):
        raise _bad(rec, "traffic_lights.lane_connector_id", "has duplicates", "unique lane connector ids")
    starts = np.asarray(rec.scene_start)
    s = len(starts)
    if s < MIN_SCENES:
        raise _bad(rec, "scene_start", f"has {s} scenes", f">= {MIN_SCENES} scenes (nuPlan drops 2 at each end)")
    if starts[0] != 0 or np.any(np.diff(starts) <= 0) or starts[-1] >= f:
        raise _bad(rec, "scene_start", f"is {starts.tolist()[:8]}...", f"increasing frame indices from 0, < {f}")
    if len(rec.scene_roadblock_ids) != s:
        raise _bad(rec, "scene_roadblock_ids", f"has {len(rec.scene_roadblock_ids)} entries", f"{s} (one per scene)")
    goals = np.asarray(rec.scene_goal_frame)
    if goals.shape != (s,) or np.any((goals < -1) | (goals >= f)):
        raise _bad(rec, "scene_goal_frame", f"is {goals.tolist()[:8]}", f"({s},) frame indices or -1")
    k = len(rec.tag_frame)
    if len(rec.tag_type) != k or len(rec.tag_agent) != k:
        raise _bad(rec, "tag_type/tag_agent", f"have {len(rec.tag_type)}/{len(rec.tag_agent)} entries",
                   f"{k} (as tag_frame)")
    tf, ta = np.asarray(rec.tag_frame), np.asarray(rec.tag_agent)
    if k and (tf.min() < 0 or tf.max() >= f):
        raise _bad(rec, "tag_frame", f"spans {int(tf.min())}..{int(tf.max())}", f"frame indices in 0..{f - 1}")
    if k and (ta.min() < -1 or ta.max() >= n):
        raise _bad(rec, "tag_agent", f"spans {int(ta.min())}..{int(ta.max())}", f"-1 or track indices < {n}")
    if any(not str(t) for t in rec.tag_type):
        raise _bad(rec, "tag_type", "holds an empty string", "nuPlan scenario type names")


def scenario_window_problems(rec: LogRecording, history_s: float = 2.0, future_s: float = 0.0) -> list[str]:
    """Tagged scenarios of ``rec`` that nuplan-devkit would cut short: for every tagged frame of a valid scene
    (not among the first two / last two), its extraction window (per type, see
    :func:`sim.nuplan_db.filter.extraction_window`; the frame's type is the largest of its tags), preceded by
    ``history_s`` of history and followed by ``future_s`` more, must lie within the log. One line per problem.
    """
    ts = np.asarray(rec.timestamp_us, dtype=np.int64)
    starts = np.asarray(rec.scene_start, dtype=np.int64)
    if len(starts) < MIN_SCENES or len(ts) == 0:
        return [f"{len(starts)} scenes: no valid scene (need >= {MIN_SCENES})"]
    first_valid, end_valid = starts[2], starts[-2]  # frames [starts[2], starts[-2]) can be scenario anchors
    types: dict[int, str] = {}
    for fr, ty in zip(np.asarray(rec.tag_frame).tolist(), [str(t) for t in rec.tag_type], strict=True):
        if first_valid <= fr < end_valid:
            types[fr] = max(types.get(fr, ty), ty)
    problems = []
    for fr, ty in sorted(types.items()):
        offset, duration = extraction_window(ty)
        begin = ts[fr] + (offset - history_s) * 1e6
        end = ts[fr] + (offset + duration + future_s) * 1e6
        short = [f"{gap * 1e-6:.2f} s more {side}" for gap, side in ((ts[0] - begin, "before"),
                                                                     (end - ts[-1], "after")) if gap > 1]
        if short:
            problems.append(f"tag '{ty}' at frame {fr} needs {' and '.join(short)} the log "
                            f"(window {offset:+.0f} s / {duration:.0f} s, {history_s:.0f} s history)")
    return problems


def _linked(tokens: Sequence[bytes]) -> Iterable[tuple[bytes | None, bytes | None]]:
    """(next, prev) tokens of a chain."""
    for i in range(len(tokens)):
        yield (tokens[i + 1] if i + 1 < len(tokens) else None), (tokens[i - 1] if i > 0 else None)


def _insert(con: sqlite3.Connection, table: str, rows: Iterable[tuple]) -> None:
    cols = TABLES[table].column_names
    con.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)


def write_log(recording: LogRecording, path: str | Path, strict: bool = False) -> Path:
    """Write ``recording`` to the nuPlan log database ``path`` (usually ``<log_name>.db``); returns the path.

    The file appears atomically (temporary file in the same folder, then rename). Raises :class:`DataError`
    when the recording is inconsistent, and with ``strict`` also when a tagged scenario's window (with 2 s of
    history) does not fit in the log (:func:`scenario_window_problems`), as nuplan-devkit would cut it short.
    """
    validate_recording(recording)
    if strict:
        problems = scenario_window_problems(recording)
        if problems:
            raise _bad(recording, "tag_frame", f"has {len(problems)} scenario(s) cut short: {problems[0]}",
                       "every tagged scenario's window + 2 s history inside the log")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh temporary name in the same folder (so the rename is atomic); sqlite creates it with the usual
    # permissions (umask), unlike mkstemp's 0600.
    tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}.tmp"
    try:
        con = sqlite3.connect(tmp, isolation_level=None)
        try:
            # The file is discarded on failure, so skip the journal and fsyncs while building it.
            con.execute("PRAGMA page_size = 4096")
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            con.execute("BEGIN")
            _write_tables(con, recording)
            con.execute("COMMIT")
        finally:
            con.close()
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_tables(con: sqlite3.Connection, rec: LogRecording) -> None:
    name = rec.log_name
    f = rec.num_frames
    ts = [int(t) for t in rec.timestamp_us]
    for table in TABLES.values():
        con.execute(table.ddl())

    log_token = make_tokens(name, "log", 1)[0]
    _insert(con, "log", [(log_token, rec.vehicle_name, rec.date, ts[0], name, rec.map_location,
                          rec.map_location)])

    cat_tokens = dict(zip(CATEGORY_NAMES, make_tokens(name, "category", len(CATEGORY_NAMES)), strict=True))
    _insert(con, "category", [(cat_tokens[c], CATEGORY_NAMES[c], _CATEGORY_DESCRIPTIONS[c]) for c in CATEGORY_NAMES])

    # ego_pose: rear-axle pose, heading as a z-rotation quaternion, body-frame velocity / acceleration.
    ego = rec.ego
    ego_tokens = make_tokens(name, "ego_pose", f)
    quat = heading_to_quaternion(ego.pose[:, 2])
    epsg = EPSG_BY_LOCATION.get(rec.map_location)
    pose, vel, acc, yaw_rate = (np.asarray(a, dtype=np.float64).tolist() for a in
                                (ego.pose, ego.velocity, ego.acceleration, ego.yaw_rate))
    qs = quat.tolist()
    _insert(con, "ego_pose", ((ego_tokens[i], ts[i], pose[i][0], pose[i][1], 0.0, *qs[i], vel[i][0], vel[i][1],
                               0.0, acc[i][0], acc[i][1], 0.0, 0.0, 0.0, yaw_rate[i], epsg, log_token)
                              for i in range(f)))

    lidar_token = make_tokens(name, "lidar", 1)[0]
    _insert(con, "lidar", [(lidar_token, log_token, LIDAR_CHANNEL, "synthetic-merged",
                            dumps_floats([0.0, 0.0, 0.0]), dumps_floats([1.0, 0.0, 0.0, 0.0]))])
    # camera / image: the tables exist (devkit expects them) but stay empty: there are no images.

    # scenes: names sort in time order (the extraction ranks scenes by name).
    starts = np.asarray(rec.scene_start, dtype=np.int64)
    scene_tokens = make_tokens(name, "scene", len(starts))
    goals = np.asarray(rec.scene_goal_frame)
    _insert(con, "scene", ((scene_tokens[s], log_token, f"scene-{s:04d}",
                            ego_tokens[int(goals[s])] if goals[s] >= 0 else None,
                            " ".join(str(int(r)) for r in rec.scene_roadblock_ids[s]))
                           for s in range(len(starts))))

    pc_tokens = make_tokens(name, "lidar_pc", f)
    frame_scene = np.searchsorted(starts, np.arange(f), side="right") - 1
    _insert(con, "lidar_pc", ((pc_tokens[i], nxt, prv, ego_tokens[i], lidar_token, scene_tokens[frame_scene[i]],
                               f"{name}/{LIDAR_CHANNEL}/{pc_tokens[i].hex()}.pcd", ts[i])
                              for i, (nxt, prv) in enumerate(_linked(pc_tokens))))

    tr = rec.tracks
    track_tokens = [token_blob(str(t)) for t in tr.token]
    size = np.asarray(tr.size, dtype=np.float64).tolist()  # length, width, height
    cats = [Category(int(c)) for c in tr.category]
    _insert(con, "track", ((track_tokens[n], cat_tokens[cats[n]], size[n][1], size[n][0], size[n][2])
                           for n in range(len(track_tokens))))

    _write_boxes(con, rec, pc_tokens, track_tokens)

    tag_tokens = make_tokens(name, "scenario_tag", len(rec.tag_frame))
    _insert(con, "scenario_tag", ((tag_tokens[k], pc_tokens[int(fr)], str(ty),
                                   track_tokens[int(ag)] if ag >= 0 else None)
                                  for k, (fr, ty, ag) in enumerate(zip(rec.tag_frame, rec.tag_type, rec.tag_agent,
                                                                       strict=True))))

    status = np.asarray(rec.traffic_lights.status)
    frames, lights = np.nonzero(status != TrafficLightStatus.UNKNOWN)  # row-major: frame by frame
    lc_ids = [int(c) for c in rec.traffic_lights.lane_connector_id]
    tl_tokens = make_tokens(name, "traffic_light_status", len(frames))
    _insert(con, "traffic_light_status", ((tl_tokens[j], pc_tokens[fr], lc_ids[li],
                                           _LIGHT_STRING[TrafficLightStatus(int(status[fr, li]))])
                                          for j, (fr, li) in enumerate(zip(frames.tolist(), lights.tolist(),
                                                                           strict=True))))
    for ddl in index_ddl():
        con.execute(ddl)


def _write_boxes(con: sqlite3.Connection, rec: LogRecording, pc_tokens: list[bytes],
                 track_tokens: list[bytes]) -> None:
    """lidar_box rows, frame by frame (so the boxes of neighbouring frames share disk pages), each linked to the
    previous / next observation of the same track (across gaps). Built in chunks to bound memory."""
    tr = rec.tracks
    frame_of, track_of = np.nonzero(np.asarray(tr.valid, dtype=bool).T)  # frame-major order
    m = len(frame_of)
    tokens = token_ints(rec.log_name, "lidar_box", m)
    # next / prev: order the rows by (track, frame) and link neighbours of the same track.
    by_track = np.lexsort((frame_of, track_of))
    same_next = track_of[by_track[1:]] == track_of[by_track[:-1]]
    nxt = np.full(m, -1, np.int64)
    prv = np.full(m, -1, np.int64)
    nxt[by_track[:-1][same_next]] = by_track[1:][same_next]
    prv[by_track[1:][same_next]] = by_track[:-1][same_next]
    pose_all = np.asarray(tr.pose, dtype=np.float64)
    vel_all = np.asarray(tr.velocity, dtype=np.float64)
    size_all = np.asarray(tr.size, dtype=np.float64)
    chunk = BOX_CHUNK_ROWS
    for a in range(0, m, chunk):
        s = slice(a, min(a + chunk, m))
        fr, tk = frame_of[s], track_of[s]
        pose, vel, size = pose_all[tk, fr], vel_all[tk, fr], size_all[tk]
        k = len(fr)
        cols = np.column_stack([pose[:, 0], pose[:, 1], size[:, 2] / 2.0, size[:, 1], size[:, 0], size[:, 2],
                                vel[:, 0], vel[:, 1], np.zeros(k), pose[:, 2], np.ones(k)]).tolist()
        own = _as_blobs(tokens[s])
        nx = _as_blobs(tokens[np.maximum(nxt[s], 0)])
        pv = _as_blobs(tokens[np.maximum(prv[s], 0)])
        has_n, has_p = (nxt[s] >= 0).tolist(), (prv[s] >= 0).tolist()
        fl, tl = fr.tolist(), tk.tolist()
        _insert(con, "lidar_box", ((own[j], pc_tokens[fl[j]], track_tokens[tl[j]], nx[j] if has_n[j] else None,
                                    pv[j] if has_p[j] else None, *cols[j]) for j in range(k)))
