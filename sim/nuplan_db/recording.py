"""A drive as nuPlan logs it, in memory: the input of the log-DB writer (20 Hz, one row per lidar_pc)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sim.scenario import EgoStates, Tracks, TrafficLights


@dataclass(frozen=True)
class LogRecording:
    """Everything the 12 tables of one ``.db`` hold, as arrays over lidar frames ``F`` (20 Hz).

    - ``timestamp_us``: ``(F,)`` int64 lidar_pc timestamps (strictly increasing, ~50 000 us apart)
    - ``ego``: ego states at those frames (rear axle, body-frame velocity / acceleration)
    - ``tracks``: ``(N, F)`` boxes of every object (``lidar_box`` rows where ``valid``)
    - ``traffic_lights``: ``(F, L)`` status per signalled lane connector (UNKNOWN = no row written)
    - ``scene_start``: ``(S,)`` first frame index of each scene (increasing, first = 0); a scene runs to the
      next start. nuPlan drops the first two and last two scenes of a log for scenario extraction.
    - ``scene_roadblock_ids``: per scene, the route's roadblock / roadblock-connector ids (``scene.roadblock_ids``)
    - ``scene_goal_frame``: ``(S,)`` frame whose ego pose is the scene's goal (``goal_ego_pose_token``), -1 none
    - ``tag_frame``, ``tag_type``, ``tag_agent``: ``(K,)`` scenario tags: frame index, nuPlan scenario type,
      index into ``tracks`` of the agent concerned (-1 none)
    """

    log_name: str
    map_location: str
    vehicle_name: str
    date: str
    timestamp_us: npt.NDArray[np.int64]
    ego: EgoStates
    tracks: Tracks
    traffic_lights: TrafficLights
    scene_start: npt.NDArray[np.int64]
    scene_roadblock_ids: tuple[tuple[int, ...], ...]
    scene_goal_frame: npt.NDArray[np.int64]
    tag_frame: npt.NDArray[np.int64]
    tag_type: npt.NDArray[np.str_]
    tag_agent: npt.NDArray[np.int64]

    @property
    def num_frames(self) -> int:
        return len(self.timestamp_us)
