"""A rollout as an animation: the simulated ego, the objects it saw and its plans, drawn by :mod:`sim.render`.

MP4 when ``imageio-ffmpeg`` is installed (and asked for), else GIF.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from sim.scenario import Scenario, Tracks
from sim.trajectory import Trajectory


def _rollout_scenario(scenario: Scenario, rollout: object) -> Scenario:
    """``scenario`` whose tracks are the rollout's observed objects (reactive agents differ from the log)."""
    tr = rollout.tracks
    s = rollout.num_samples
    total = len(scenario.time_us)
    start = scenario.index(0)
    pose = np.full((len(tr), total, 3), np.nan)
    vel = np.zeros((len(tr), total, 2))
    valid = np.zeros((len(tr), total), bool)
    pose[:, start:start + s] = tr.pose
    vel[:, start:start + s] = tr.velocity
    valid[:, start:start + s] = tr.valid
    return replace(scenario, tracks=Tracks(tr.token, tr.category, tr.size, pose, vel, valid))


def has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


def write_rollout_video(scenario: Scenario, map_api: object, rollout: object, path: str | Path,
                        every: int = 2, fps: float = 5.0, radius: float = 40.0, size_px: int = 480,
                        prefer_mp4: bool = True) -> Path:
    """Write an animation of ``rollout`` (every ``every``-th sample); returns the path written.

    The suffix of ``path`` is replaced by ``.mp4`` (imageio-ffmpeg present and ``prefer_mp4``) or ``.gif``.
    """
    import imageio.v2 as imageio

    from sim.render import RenderOptions, render_frames

    shown = _rollout_scenario(scenario, rollout)
    idx = np.arange(0, rollout.num_samples, max(1, int(every)))
    plans = []
    for i in idx:
        t, p = rollout.plan_time_s[i], rollout.plan_pose[i]
        keep = np.isfinite(t)
        plans.append({"plan": Trajectory(t[keep], p[keep])} if keep.sum() >= 2 else None)
    frames = render_frames(shown, map_api, [int(i) for i in idx], RenderOptions(radius=radius, size_px=size_px),
                           ego_poses=rollout.ego.pose[idx], trajectories=plans)
    mp4 = prefer_mp4 and has_ffmpeg()
    out = Path(path).with_suffix(".mp4" if mp4 else ".gif")
    out.parent.mkdir(parents=True, exist_ok=True)
    if mp4:
        imageio.mimsave(out, frames, fps=fps, macro_block_size=1)
    else:
        imageio.mimsave(out, frames, duration=1000.0 / fps, loop=0)  # GIF frame duration is in ms
    return out
