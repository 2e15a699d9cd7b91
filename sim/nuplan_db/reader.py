"""Read nuPlan log databases: list scenarios as nuplan-devkit extracts them, load one scenario with indexed SQL.

A log is opened read-only and its schema checked first. Loading a scenario reads only the lidar_pc rows of its
window (plus history), their ego poses, boxes and traffic lights, never whole tables, so a 1.5 GB log costs
milliseconds per scenario.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sim.categories import CATEGORY_BY_NAME, STATIC_CATEGORIES, TRAFFIC_LIGHT_BY_NAME, TrafficLightStatus
from sim.errors import DataError, NotFoundError, SchemaError
from sim.geometry import wrap_angle
from sim.nuplan_db.filter import (
    DEFAULT_SCENARIO_TYPE,
    SUBSAMPLE_STEP,
    ScenarioDict,
    ScenarioFilter,
    ScenarioRef,
    apply_filters,
    extraction_window,
    log_name_of,
)
from sim.nuplan_db.schema import LIDAR_CHANNEL, REQUIRED_COLUMNS, is_token, loads_floats
from sim.scenario import EgoStates, Scenario, Tracks, TrafficLights

_SQLITE_MAGIC = b"SQLite format 3\x00"
_EXPECTED = "a nuPlan log database (SQLite)"
#: Bound parameters per statement (SQLite's default limit is 32766 since 3.32; older builds allow 999).
_MAX_PARAMS = 900
F64 = npt.NDArray[np.float64]


def quaternion_yaw(qw: npt.ArrayLike, qx: npt.ArrayLike, qy: npt.ArrayLike, qz: npt.ArrayLike) -> F64:
    """Yaw (rad, about z) of quaternions ``w, x, y, z`` (pyquaternion's ``yaw_pitch_roll[0]``), wrapped."""
    qw, qx, qy, qz = (np.asarray(a, dtype=np.float64) for a in (qw, qx, qy, qz))
    norm = np.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)  # logged quaternions may be slightly off unit length
    qw, qx, qy, qz = qw / norm, qx / norm, qy / norm, qz / norm
    return wrap_angle(np.arctan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz)))


def _check_header(path: Path) -> None:
    """Cheap structural checks before SQLite sees the file: magic string and, when the header's page count is
    trustworthy, that the file is not shorter than it says (a truncated copy)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise DataError(path, f"not an SQLite database ({size} bytes, no 'SQLite format 3' header)", _EXPECTED)
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages, valid_for = (int.from_bytes(head[o:o + 4], "big") for o in (24, 28, 92))
    wal = Path(str(path) + "-wal")
    if pages and change_counter == valid_for and not wal.exists() and size < pages * page_size:
        raise DataError(path, f"truncated or corrupt: {size} bytes but the header says {pages} pages of "
                        f"{page_size} bytes", "a complete database file")


class LogDB:
    """One nuPlan log database, opened read-only with its schema checked. Use as a context manager.

    Raises :class:`NotFoundError` (missing file), :class:`DataError` (not a database, truncated, corrupt) or
    :class:`SchemaError` (missing table / column), each naming the file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NotFoundError(self.path, "no such log database file", "an existing .db file")
        self.log_name = log_name_of(self.path)
        _check_header(self.path)
        try:
            self._con = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True)
        except sqlite3.Error as err:
            raise DataError(self.path, f"cannot open ({err})", _EXPECTED) from err
        try:
            self._check_schema()
            row = self._one("SELECT map_version FROM log LIMIT 1")
            if row is None:
                raise DataError(self.path, "table 'log' is empty", "one log row")
            self.map_name = str(row[0])
            row = self._one("SELECT token FROM lidar WHERE channel = ? LIMIT 1", (LIDAR_CHANNEL,))
            if row is None:
                raise DataError(self.path, f"no lidar with channel {LIDAR_CHANNEL!r}", "nuPlan's merged lidar")
            self._lidar_token = bytes(row[0])
        except BaseException:
            self._con.close()
            raise

    # --- plumbing -------------------------------------------------------------------------------------------

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> LogDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _all(self, sql: str, args: Sequence = ()) -> list[tuple]:
        try:
            return self._con.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as err:  # also "file is not a database", "disk image is malformed"
            raise DataError(self.path, f"cannot read ({err})", _EXPECTED) from err

    def _one(self, sql: str, args: Sequence = ()) -> tuple | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    def _check_schema(self) -> None:
        tables = {r[0] for r in self._all("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, needed in REQUIRED_COLUMNS.items():
            if table not in tables:
                raise SchemaError(self.path, f"table {table!r} is missing", "nuPlan's log tables")
            have = {r[1] for r in self._all(f"PRAGMA table_info({table})")}
            missing = [c for c in needed if c not in have]
            if missing:
                raise SchemaError(self.path, f"table {table!r} lacks column(s) {', '.join(missing)}",
                                  f"nuPlan's {table} columns")

    # --- extraction -----------------------------------------------------------------------------------------

    def scenario_candidates(self, scenario_types: Sequence[str] | None = None,
                            tokens: Sequence[str] | None = None, map_names: Sequence[str] | None = None,
                            remove_invalid_goals: bool = False) -> list[tuple[str, int, str, str]]:
        """nuPlan's candidate rows ``(token, timestamp_us, map_name, scenario_type)`` in time order.

        One row per lidar_pc of a valid scene (scenes ranked by name; the first two and last two of the log
        dropped), typed by the lexicographically largest matching tag, ``unknown`` when untagged; with
        ``scenario_types`` only rows tagged with one of them.
        """
        clauses: list[str] = []
        args: list = [self._lidar_token]
        if scenario_types is not None:
            clauses.append(f"st.type IN ({', '.join('?' * len(scenario_types))})")
            args += list(scenario_types)
        if tokens is not None:
            clauses.append(f"lp.token IN ({', '.join('?' * len(tokens))})")
            args += [bytes.fromhex(t) for t in tokens]
        if map_names is not None:
            clauses.append(f"l.map_version IN ({', '.join('?' * len(map_names))})")
            args += list(map_names)
        goal_join = ("JOIN scene AS gs ON gs.token = lp.scene_token "
                     "JOIN ego_pose AS gp ON gp.token = gs.goal_ego_pose_token") if remove_invalid_goals else ""
        where = ("AND " + " AND ".join(clauses)) if clauses else ""
        sql = f"""
            WITH ranked AS (SELECT token, ROW_NUMBER() OVER (ORDER BY name ASC) AS rank FROM scene),
                 valid_scenes AS (SELECT token FROM ranked WHERE rank >= 3 AND rank < (SELECT COUNT(*) FROM scene) - 1)
            SELECT lp.token, lp.timestamp, l.map_version, MAX(st.type)
            FROM lidar_pc AS lp
            JOIN valid_scenes AS vs ON vs.token = lp.scene_token
            JOIN lidar AS ld ON ld.token = lp.lidar_token
            JOIN log AS l ON l.token = ld.log_token
            LEFT JOIN scenario_tag AS st ON st.lidar_pc_token = lp.token
            {goal_join}
            WHERE lp.lidar_token = ? {where}
            GROUP BY lp.token, lp.timestamp, l.map_version
            ORDER BY lp.timestamp ASC"""
        return [(bytes(t).hex(), int(ts), str(m), DEFAULT_SCENARIO_TYPE if ty is None else str(ty))
                for t, ts, m, ty in self._all(sql, args)]

    def scenario_refs(self, flt: ScenarioFilter) -> ScenarioDict:
        """Candidates of this log as ``{type: [ScenarioRef, ...]}`` (time order), before the list filters."""
        rows = self.scenario_candidates(flt.scenario_types, flt.tokens_for_log(self.log_name), flt.map_names,
                                        flt.remove_invalid_goals)
        out: ScenarioDict = {}
        for token, ts, map_name, ty in rows:
            offset, duration = extraction_window(ty, flt.expand_scenarios)
            out.setdefault(ty, []).append(ScenarioRef(token, self.log_name, str(self.path), ts, ty, map_name,
                                                      offset, duration))
        return out

    # --- one scenario ---------------------------------------------------------------------------------------

    def load_scenario(self, token: str, scenario_type: str | None = None, offset_s: float | None = None,
                      duration_s: float | None = None, history_s: float = 2.0) -> Scenario:
        """The scenario anchored at lidar_pc ``token``: samples every 2nd 20 Hz row from ``timestamp + offset``
        to ``+ duration`` (inclusive), preceded by ``history_s`` of samples at the same 0.1 s spacing.

        ``scenario_type`` defaults to the MAX of the token's tags (``unknown``); offset / duration default to
        that type's nuPlan extraction window (15 s from 3 s before the tag for mapped types).
        """
        if not is_token(token):
            raise NotFoundError(self.path, f"scenario token {token!r} is not a 16-character hex string",
                                "a lidar_pc token")
        blob = bytes.fromhex(token)
        row = self._one("SELECT timestamp, scene_token FROM lidar_pc WHERE token = ?", (blob,))
        if row is None:
            raise NotFoundError(self.path, f"scenario token {token} not in lidar_pc", "a lidar_pc token of this log")
        anchor_us, scene_token = int(row[0]), bytes(row[1])
        tag_rows = self._all("SELECT type, agent_track_token FROM scenario_tag WHERE lidar_pc_token = ?", (blob,))
        tags = tuple(sorted({str(r[0]) for r in tag_rows if r[0] is not None}))
        if scenario_type is None:
            scenario_type = tags[-1] if tags else DEFAULT_SCENARIO_TYPE
        off_default, dur_default = extraction_window(scenario_type)
        offset_s = off_default if offset_s is None else offset_s
        duration_s = dur_default if duration_s is None else duration_s
        start_us = int(anchor_us + offset_s * 1e6)
        end_us = int(start_us + duration_s * 1e6)
        history_steps = int(round(history_s / 0.1))

        # History: the rows 2, 4, ... 2H before the first window row (nuPlan indexes raw 20 Hz rows).
        before = self._all("SELECT timestamp FROM lidar_pc WHERE lidar_token = ? AND timestamp < ? "
                           "ORDER BY timestamp DESC LIMIT ?", (self._lidar_token, start_us,
                                                                SUBSAMPLE_STEP * history_steps))
        first_us = int(before[-1][0]) if before else start_us
        rows = self._all(
            """SELECT lp.token, lp.timestamp, ep.x, ep.y, ep.qw, ep.qx, ep.qy, ep.qz, ep.vx, ep.vy,
                      ep.acceleration_x, ep.acceleration_y, ep.angular_rate_z
               FROM lidar_pc AS lp LEFT JOIN ego_pose AS ep ON ep.token = lp.ego_pose_token
               WHERE lp.lidar_token = ? AND lp.timestamp >= ? AND lp.timestamp <= ?
               ORDER BY lp.timestamp ASC""", (self._lidar_token, first_us, end_us))
        n_before = len(before)
        if len(rows) <= n_before:
            raise DataError(self.path, f"no lidar_pc rows in the window {start_us}..{end_us} us of token {token}",
                            "a log that covers the scenario")
        h = n_before // SUBSAMPLE_STEP
        pick = np.concatenate([n_before - SUBSAMPLE_STEP * np.arange(h, 0, -1),
                               np.arange(n_before, len(rows), SUBSAMPLE_STEP)]).astype(np.int64)
        sel = [rows[i] for i in pick]
        pc_tokens = [bytes(r[0]) for r in sel]
        time_us = np.array([r[1] for r in sel], dtype=np.int64)
        e = np.array([r[2:] for r in sel], dtype=np.float64).reshape(len(sel), 11)
        if not np.all(np.isfinite(e[:, :10])):  # a missing ego_pose row reads as NULLs too
            raise DataError(self.path, f"ego_pose rows missing or NULL near token {token}",
                            "an ego_pose with pose, velocity and acceleration for every lidar_pc")
        e[~np.isfinite(e[:, 10]), 10] = 0.0  # angular_rate_z is optional for the devkit (it uses 0)
        yaw = quaternion_yaw(e[:, 2], e[:, 3], e[:, 4], e[:, 5])
        ego = EgoStates(time_s=time_us * 1e-6, pose=np.column_stack([e[:, 0], e[:, 1], yaw]),
                        velocity=e[:, 6:8].copy(), acceleration=e[:, 8:10].copy(),
                        steering_angle=np.zeros(len(sel)), yaw_rate=e[:, 10].copy())

        route, goal = self._route_and_goal(scene_token, token)
        tagged = tuple(sorted({bytes(r[1]).hex() for r in tag_rows
                               if isinstance(r[1], bytes | memoryview) and str(r[0]) == scenario_type}))
        return Scenario(token=token, log_name=self.log_name, map_location=self.map_name,
                        scenario_type=scenario_type, time_us=time_us, ego=ego,
                        tracks=self._tracks(pc_tokens), traffic_lights=self._lights(pc_tokens),
                        route_roadblock_ids=route, mission_goal=goal, history_steps=h, tags=tags,
                        tagged_track_tokens=tagged)

    def _rows_per_step(self, pc_tokens: list[bytes], select: str) -> list[tuple]:
        """Run ``select`` (which reads table ``w(tok, step)``) with ``w`` = the lidar_pc tokens and their step
        index, in batches that stay under SQLite's bound-parameter limit. Returning the step as a small int from
        SQL is much cheaper than fetching 8-byte BLOBs and mapping them in Python."""
        rows: list[tuple] = []
        for a in range(0, len(pc_tokens), _MAX_PARAMS):
            batch = pc_tokens[a:a + _MAX_PARAMS]
            values = ", ".join(f"(?, {a + i})" for i in range(len(batch)))
            rows += self._all(f"WITH w(tok, step) AS (VALUES {values}) {select}", batch)
        return rows

    def _tracks(self, pc_tokens: list[bytes]) -> Tracks:
        """``(N, T)`` boxes over the union of tracks seen at these lidar_pcs, ordered by first appearance, then
        token. Sizes and categories come from the ``track`` rows (one size per track; the earliest box in the
        window stands in where a track row has no size)."""
        t = len(pc_tokens)
        rows = self._rows_per_step(pc_tokens, """SELECT w.step, lb.track_token, lb.x, lb.y, lb.yaw, lb.vx, lb.vy
                                                 FROM w JOIN lidar_box AS lb ON lb.lidar_pc_token = w.tok""")
        if not rows:
            return Tracks.empty(t)
        step_col, track_col, *value_cols = zip(*rows, strict=True)
        steps = np.array(step_col, dtype=np.int64)
        vals = np.column_stack([np.array(c, dtype=np.float64) for c in value_cols])  # x, y, yaw, vx, vy
        joined = b"".join(track_col)
        if len(joined) != 8 * len(rows):
            raise DataError(self.path, "lidar_box.track_token values are not all 8-byte BLOBs", "8-byte tokens")
        uniq, raw = np.unique(np.frombuffer(joined, dtype=">u8"), return_inverse=True)
        keys = [int(u).to_bytes(8, "big") for u in uniq]
        hex_tokens = np.array([k.hex() for k in keys], dtype="<U16")
        first = np.full(len(keys), t, np.int64)
        np.minimum.at(first, raw, steps)
        order = np.lexsort((hex_tokens, first))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        idx = rank[raw]
        n = len(keys)
        pose = np.full((n, t, 3), np.nan)
        vel = np.zeros((n, t, 2))
        valid = np.zeros((n, t), bool)
        pose[idx, steps] = vals[:, 0:3]
        vel[idx, steps] = vals[:, 3:5]
        valid[idx, steps] = True
        pose[..., 2] = wrap_angle(pose[..., 2])

        ordered_keys = [keys[k] for k in order]
        info: dict[bytes, tuple] = {}
        for a in range(0, n, _MAX_PARAMS):
            batch = ordered_keys[a:a + _MAX_PARAMS]
            info.update((bytes(r[0]), r[1:]) for r in self._all(
                f"""SELECT tr.token, tr.length, tr.width, tr.height, c.name
                    FROM track AS tr JOIN category AS c ON c.token = tr.category_token
                    WHERE tr.token IN ({', '.join('?' * len(batch))})""", batch))
        size = np.zeros((n, 3))
        category = np.empty(n, np.int8)
        for j, key in enumerate(ordered_keys):
            if key not in info:
                raise DataError(self.path, f"lidar_box references track {bytes(key).hex()} with no track / "
                                "category row", "a track row for every lidar_box.track_token")
            length, width, height, name = info[key]
            if name not in CATEGORY_BY_NAME:
                raise DataError(self.path, f"category name {name!r} is unknown", f"one of {sorted(CATEGORY_BY_NAME)}")
            category[j] = CATEGORY_BY_NAME[name]
            if None in (length, width, height):
                length, width, height = self._one(
                    "SELECT length, width, height FROM lidar_box WHERE track_token = ? AND lidar_pc_token = ?",
                    (key, pc_tokens[int(first[order[j]])]))
            size[j] = (length, width, height)
        vel[np.isin(category, STATIC_CATEGORIES)] = 0.0  # the devkit gives static objects no velocity
        return Tracks(token=hex_tokens[order], category=category, size=size, pose=pose, velocity=vel, valid=valid)

    def _lights(self, pc_tokens: list[bytes]) -> TrafficLights:
        """``(T, L)`` status of every lane connector reported in the window (UNKNOWN where not reported)."""
        rows = self._rows_per_step(pc_tokens, """SELECT w.step, tl.lane_connector_id, tl.status
                                                 FROM w JOIN traffic_light_status AS tl ON tl.lidar_pc_token = w.tok""")
        if not rows:
            return TrafficLights.empty(len(pc_tokens))
        lc = np.array([int(r[1]) for r in rows], dtype=np.int64)
        ids, col = np.unique(lc, return_inverse=True)
        status = np.full((len(pc_tokens), len(ids)), TrafficLightStatus.UNKNOWN, np.int8)
        code = np.array([TRAFFIC_LIGHT_BY_NAME.get(str(r[2]), TrafficLightStatus.UNKNOWN) for r in rows], np.int8)
        status[[r[0] for r in rows], col] = code
        return TrafficLights(lane_connector_id=ids, status=status)

    def _route_and_goal(self, scene_token: bytes, token: str) -> tuple[tuple[int, ...], F64 | None]:
        row = self._one("SELECT roadblock_ids, goal_ego_pose_token FROM scene WHERE token = ?", (scene_token,))
        if row is None:
            raise DataError(self.path, f"lidar_pc {token} points to a missing scene", "scene rows for every lidar_pc")
        text, goal_token = row
        try:
            # The devkit splits on single spaces (the schema docs say commas); empty parts are skipped.
            route = tuple(int(p) for p in str(text or "").split(" ") if p)
        except ValueError as err:
            raise DataError(self.path, f"scene.roadblock_ids {text!r} of token {token} is not integer ids",
                            "space-separated integers") from err
        goal = None
        if goal_token is not None:
            g = self._one("SELECT x, y, qw, qx, qy, qz FROM ego_pose WHERE token = ?", (bytes(goal_token),))
            if g is not None and None not in g:
                goal = np.array([g[0], g[1], float(quaternion_yaw(*g[2:6]))], dtype=np.float64)
        return route, goal

    def lidar_extrinsics(self) -> tuple[F64, F64]:
        """The merged lidar's ``translation (3,)`` and ``rotation (4,)`` (w, x, y, z) relative to the ego."""
        row = self._one("SELECT translation, rotation FROM lidar WHERE token = ?", (self._lidar_token,))
        assert row is not None
        out = []
        for name, blob, n in (("translation", row[0], 3), ("rotation", row[1], 4)):
            try:
                arr = np.asarray(loads_floats(bytes(blob)), dtype=np.float64)
            except (ValueError, TypeError) as err:
                raise DataError(self.path, f"lidar.{name} BLOB is unreadable ({err})", "a pickled float list") from err
            if arr.shape != (n,):
                raise DataError(self.path, f"lidar.{name} has shape {arr.shape}", f"({n},)")
            out.append(arr)
        return out[0], out[1]


# --- module-level entry points ------------------------------------------------------------------------------

def find_log_dbs(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand files / folders (``*.db`` inside, sorted) into a list of log files."""
    items = [paths] if isinstance(paths, str | Path) else list(paths)
    out: list[Path] = []
    for p in map(Path, items):
        if p.is_dir():
            out += sorted(p.glob("*.db"))
        else:
            out.append(p)
    return out


def list_scenarios(db_paths: str | Path | Iterable[str | Path],
                   scenario_filter: ScenarioFilter | None = None) -> list[ScenarioRef]:
    """Scenarios of the logs as nuplan-devkit's scenario builder extracts and filters them.

    Logs are read in the given order (folders expand to their sorted ``*.db``); per-type lists are concatenated
    across logs, then :func:`sim.nuplan_db.filter.apply_filters` runs the list filters and sorts by token.
    """
    flt = scenario_filter or ScenarioFilter()
    allowed = None if flt.log_names is None else set(flt.log_names)
    merged: ScenarioDict = {}
    for path in find_log_dbs(db_paths):
        if allowed is not None and log_name_of(path) not in allowed:
            continue
        with LogDB(path) as db:
            for ty, refs in db.scenario_refs(flt).items():
                merged.setdefault(ty, []).extend(refs)
    return apply_filters(merged, flt)


def load_scenario(ref: ScenarioRef | tuple[str | Path, str], history_s: float = 2.0,
                  duration_s: float | None = None, offset_s: float | None = None) -> Scenario:
    """Load one scenario from a :class:`ScenarioRef` or a ``(db_path, token)`` pair.

    ``duration_s`` / ``offset_s`` override the window (default: the ref's, i.e. nuPlan's extraction window for
    its type: 15 s from 3 s before the tag -> 151 samples at 0.1 s); ``history_s`` of samples come first.
    """
    if isinstance(ref, ScenarioRef):
        with LogDB(ref.db_path) as db:
            return db.load_scenario(ref.token, ref.scenario_type,
                                    ref.offset_s if offset_s is None else offset_s,
                                    ref.duration_s if duration_s is None else duration_s, history_s)
    db_path, token = ref
    with LogDB(db_path) as db:
        return db.load_scenario(token, None, offset_s, duration_s, history_s)
