"""nuPlan's log-database schema: the 12 tables, their SQLite column types, the indexes this package adds,
token encoding and the pickled-BLOB helpers.

Table and column names and types follow nuplan-devkit's ORM (``nuplan/database/nuplan_db_orm``) as SQLAlchemy
writes it for SQLite: tokens are 8-byte ``BLOB`` values (16-character hex in Python), timestamps ``INTEGER``
microseconds, reals ``FLOAT``, strings ``VARCHAR(n)`` / ``TEXT``, and ``translation`` / ``rotation`` /
``intrinsic`` / ``distortion`` pickled Python lists in ``BLOB`` columns.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass

#: Pickle protocol of the BLOB columns: 4 is readable by every Python >= 3.4 (devkit runs on 3.9).
PICKLE_PROTOCOL = 4

#: ``lidar.channel`` of the merged point cloud; the only lidar that scenarios are sampled from.
LIDAR_CHANNEL = "MergedPointCloud"

#: Camera channels of nuPlan's sensor suite (``camera.channel``).
CAMERA_CHANNELS = ("CAM_F0", "CAM_B0", "CAM_L0", "CAM_L1", "CAM_L2", "CAM_R0", "CAM_R1", "CAM_R2")

#: ``traffic_light_status.status`` strings; anything else reads as UNKNOWN.
TRAFFIC_LIGHT_STRINGS = ("green", "yellow", "red")

#: Length of a token in bytes (BLOB) and in hex characters (Python side).
TOKEN_BYTES = 8


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    not_null: bool = False
    references: str | None = None  # "table" whose ``token`` this column points to


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self) -> str:
        """``CREATE TABLE`` in the layout SQLAlchemy's ``create_all`` gives nuPlan's ORM."""
        lines = [f"\t{c.name} {c.sql_type}{' NOT NULL' if c.not_null else ''}" for c in self.columns]
        lines.append("\tPRIMARY KEY (token)")
        lines += [f"\tFOREIGN KEY({c.name}) REFERENCES {c.references} (token)" for c in self.columns
                  if c.references]
        return f"CREATE TABLE {self.name} (\n" + ", \n".join(lines) + "\n)"


def _token(name: str = "token", ref: str | None = None, not_null: bool = False) -> Column:
    return Column(name, "BLOB", not_null or name == "token", ref)


def _f(*names: str) -> tuple[Column, ...]:
    return tuple(Column(n, "FLOAT") for n in names)


#: The 12 tables, in the order the writer creates them (parents first).
TABLES: dict[str, Table] = {t.name: t for t in (
    Table("log", (_token(), Column("vehicle_name", "VARCHAR(64)"), Column("date", "VARCHAR(64)"),
                  Column("timestamp", "INTEGER"), Column("logfile", "VARCHAR(64)"),
                  Column("location", "VARCHAR(64)"), Column("map_version", "VARCHAR(64)"))),
    Table("category", (_token(), Column("name", "VARCHAR(64)"), Column("description", "TEXT"))),
    Table("ego_pose", (_token(), Column("timestamp", "INTEGER"), *_f("x", "y", "z", "qw", "qx", "qy", "qz",
                                                                      "vx", "vy", "vz", "acceleration_x",
                                                                      "acceleration_y", "acceleration_z",
                                                                      "angular_rate_x", "angular_rate_y",
                                                                      "angular_rate_z"),
                       Column("epsg", "INTEGER"), _token("log_token", "log", not_null=True))),
    Table("lidar", (_token(), _token("log_token", "log", not_null=True), Column("channel", "VARCHAR(64)"),
                    Column("model", "VARCHAR(64)"), Column("translation", "BLOB"), Column("rotation", "BLOB"))),
    Table("camera", (_token(), _token("log_token", "log", not_null=True), Column("channel", "VARCHAR(64)"),
                     Column("model", "VARCHAR(64)"), Column("translation", "BLOB"), Column("rotation", "BLOB"),
                     Column("intrinsic", "BLOB"), Column("distortion", "BLOB"), Column("width", "INTEGER"),
                     Column("height", "INTEGER"))),
    Table("scene", (_token(), _token("log_token", "log", not_null=True), Column("name", "TEXT"),
                    _token("goal_ego_pose_token", "ego_pose"), Column("roadblock_ids", "TEXT"))),
    Table("lidar_pc", (_token(), _token("next_token", "lidar_pc"), _token("prev_token", "lidar_pc"),
                       _token("ego_pose_token", "ego_pose", not_null=True),
                       _token("lidar_token", "lidar", not_null=True),
                       _token("scene_token", "scene", not_null=True), Column("filename", "VARCHAR(128)"),
                       Column("timestamp", "INTEGER"))),
    Table("image", (_token(), _token("next_token", "image"), _token("prev_token", "image"),
                    _token("ego_pose_token", "ego_pose", not_null=True),
                    _token("camera_token", "camera", not_null=True), Column("filename_jpg", "VARCHAR(128)"),
                    Column("timestamp", "INTEGER"))),
    Table("track", (_token(), _token("category_token", "category", not_null=True),
                    *_f("width", "length", "height"))),
    Table("lidar_box", (_token(), _token("lidar_pc_token", "lidar_pc", not_null=True),
                        _token("track_token", "track"), _token("next_token", "lidar_box"),
                        _token("prev_token", "lidar_box"),
                        *_f("x", "y", "z", "width", "length", "height", "vx", "vy", "vz", "yaw", "confidence"))),
    Table("scenario_tag", (_token(), _token("lidar_pc_token", "lidar_pc", not_null=True), Column("type", "TEXT"),
                           _token("agent_track_token", "track"))),
    Table("traffic_light_status", (_token(), _token("lidar_pc_token", "lidar_pc", not_null=True),
                                   Column("lane_connector_id", "INTEGER"), Column("status", "VARCHAR(8)"))),
)}

#: Indexes on the foreign keys and timestamps the reader filters on: (index name, table, columns).
#: Real nuPlan logs may lack some; the reader still works there, only slower.
INDEXES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("idx_ego_pose_timestamp", "ego_pose", ("timestamp",)),
    ("idx_lidar_pc_timestamp", "lidar_pc", ("timestamp",)),
    ("idx_lidar_pc_scene_token", "lidar_pc", ("scene_token",)),
    ("idx_lidar_pc_ego_pose_token", "lidar_pc", ("ego_pose_token",)),
    ("idx_lidar_box_lidar_pc_token", "lidar_box", ("lidar_pc_token",)),
    ("idx_lidar_box_track_token", "lidar_box", ("track_token",)),
    ("idx_scenario_tag_lidar_pc_token", "scenario_tag", ("lidar_pc_token",)),
    ("idx_scenario_tag_type", "scenario_tag", ("type",)),
    ("idx_traffic_light_status_lidar_pc_token", "traffic_light_status", ("lidar_pc_token",)),
    ("idx_image_ego_pose_token", "image", ("ego_pose_token",)),
    ("idx_image_timestamp", "image", ("timestamp",)),
)

#: The tables and columns the reader needs (checked when a log is opened). camera / image are not read.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "log": ("token", "map_version"),
    "ego_pose": ("token", "x", "y", "qw", "qx", "qy", "qz", "vx", "vy", "acceleration_x", "acceleration_y",
                 "angular_rate_z"),
    "lidar": ("token", "log_token", "channel", "translation", "rotation"),
    "lidar_pc": ("token", "ego_pose_token", "lidar_token", "scene_token", "timestamp"),
    "lidar_box": ("token", "lidar_pc_token", "track_token", "x", "y", "width", "length", "height", "vx", "vy",
                  "yaw"),
    "track": ("token", "category_token", "width", "length", "height"),
    "category": ("token", "name"),
    "scene": ("token", "name", "goal_ego_pose_token", "roadblock_ids"),
    "scenario_tag": ("token", "lidar_pc_token", "type"),
    "traffic_light_status": ("lidar_pc_token", "lane_connector_id", "status"),
}


def index_ddl() -> list[str]:
    return [f"CREATE INDEX {name} ON {table} ({', '.join(cols)})" for name, table, cols in INDEXES]


def token_hex(blob: bytes | None) -> str | None:
    """8-byte BLOB -> 16-character lowercase hex (devkit's ``HexLen8``); None / empty stays None."""
    return blob.hex() if blob else None


def token_blob(token: str) -> bytes:
    """16-character hex -> 8-byte BLOB. Raises ``ValueError`` for anything else."""
    if not isinstance(token, str) or len(token) != 2 * TOKEN_BYTES:
        raise ValueError(f"token {token!r} is not a {2 * TOKEN_BYTES}-character hex string")
    return bytes.fromhex(token)


def is_token(token: object) -> bool:
    try:
        token_blob(token)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


# --- pickled BLOBs -----------------------------------------------------------------------------------------

def dumps_floats(values: list) -> bytes:
    """Pickle a (nested) list of floats the way the devkit can read it (plain builtins, protocol 4)."""
    def norm(v: object) -> object:
        return [norm(x) for x in v] if isinstance(v, list | tuple) else float(v)  # type: ignore[arg-type]
    return pickle.dumps(norm(values), protocol=PICKLE_PROTOCOL)


class _DevkitList(list):
    """Stand-in for the devkit's list subclasses (Translation, Rotation, CameraIntrinsic) when unpickling."""


#: Classes a pickled BLOB may name: only the devkit's thin list wrappers, each read as a plain list.
_ALLOWED_CLASSES = {("nuplan.database.common.data_types", n) for n in ("Translation", "Rotation",
                                                                      "CameraIntrinsic")}


class _FloatListUnpickler(pickle.Unpickler):
    """Admits only builtin containers and numbers; any global other than the devkit's list wrappers is refused,
    so a crafted BLOB cannot run code."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in _ALLOWED_CLASSES:
            return _DevkitList
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def loads_floats(blob: bytes) -> list:
    """Unpickle a BLOB holding a (nested) list of numbers. Raises ``ValueError`` for anything else."""
    try:
        value = _FloatListUnpickler(io.BytesIO(blob)).load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure means "not a float list"
        raise ValueError(f"not a pickled list of floats ({err})") from err

    def check(v: object) -> object:
        if isinstance(v, list | tuple):
            return [check(x) for x in v]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"pickled value {v!r} is not a number")
        return float(v)
    return check(value)  # type: ignore[return-value]
