"""A rollout animation (GIF, or MP4 with imageio-ffmpeg) drawn from the stored rollout."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio

from experts.baselines import ConstantVelocityPlanner
from sim.runner.simulation import run_scenario
from sim.runner.video import write_rollout_video
from tests.sim.runner.world import junction_map, straight_scenario


def test_gif_has_one_frame_per_shown_sample(tmp_path: Path):
    sc = straight_scenario(num_iterations=21)
    r = run_scenario(sc, junction_map(), ConstantVelocityPlanner(), agents="log_replay")
    out = write_rollout_video(sc, junction_map(), r, tmp_path / "v.gif", every=5, size_px=160, prefer_mp4=False)
    assert out.suffix == ".gif" and out.is_file()
    frames = imageio.mimread(out)
    assert len(frames) == 4 and frames[0].shape[:2] == (160, 160)
    assert any((f != frames[0]).any() for f in frames[1:])  # the scene moves
