"""A small GIF of a rollout, as bytes to embed in a page (drawn by :func:`sim.runner.video.write_rollout_video`)."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.nuplan_db.filter import ScenarioRef


def compact_gif(gif: bytes, fps: float, colors: int = 64) -> bytes:
    """The same animation with one shared ``colors``-colour palette, every frame shown ``1 / fps`` s, looping.

    The map drawings are flat colours, so a shared palette without dithering keeps them exact while halving the
    size (frames then differ only where something moved). GIF delays are in 1/100 s (at least 0.02 s).
    """
    from PIL import Image, ImageSequence

    with Image.open(io.BytesIO(gif)) as im:
        frames = [f.convert("RGB") for f in ImageSequence.Iterator(im)]
    # the palette sees every few frames, so objects that appear later keep their colours
    step = max(1, len(frames) // 6)
    montage = Image.fromarray(np.concatenate([np.asarray(f) for f in frames[::step]], axis=0))
    palette = montage.quantize(colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    quantized = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    out = io.BytesIO()
    quantized[0].save(out, format="GIF", save_all=True, append_images=quantized[1:], loop=0,
                      duration=max(20, int(round(1000.0 / fps))), optimize=True)
    return out.getvalue()


def rollout_gif(scenario: object, map_api: object, rollout: object, every: int = 10, fps: float = 4.0,
                size_px: int = 400, radius: float = 40.0, colors: int = 64) -> bytes:
    """GIF bytes of ``rollout`` (every ``every``-th 0.1 s sample, ``size_px`` square, ``radius`` m around ego),
    ``fps`` frames per second.

    The defaults (one frame per simulated second, 400 px) give 15 frames and about 50 kB per 15 s scenario.
    """
    from sim.runner.video import write_rollout_video

    with tempfile.TemporaryDirectory(prefix="distiplan-gif-") as tmp:
        path = write_rollout_video(scenario, map_api, rollout, Path(tmp) / "rollout.gif", every=every, fps=fps,
                                   radius=radius, size_px=size_px, prefer_mp4=False)
        # re-encoded: the writer's frame delay may round to 0 (imageio's GIF duration unit is ms)
        return compact_gif(path.read_bytes(), fps, colors)


@dataclass(frozen=True)
class GifJob:
    """One animation to draw in a worker: the rollout of ``ref`` stored in ``run_dir`` (small and picklable)."""

    ref: ScenarioRef
    run_dir: str
    maps_root: str
    map_cache_root: str | None = None
    history_s: float = 2.0
    every: int = 10
    fps: float = 4.0
    size_px: int = 400
    radius: float = 40.0
    key: tuple = ()


def render_gif_job(job: GifJob) -> dict:
    """``{'key', 'token', 'gif': bytes | None, 'note'}`` for :func:`sim.runner.workers.map_jobs`.

    Never raises: a missing rollout (the scenario failed before simulating) or a drawing error becomes ``note``.
    """
    from sim.nuplan_db.reader import load_scenario
    from sim.nuplan_map.loader import load_map
    from sim.runner.results import load_scenario_result, scenario_path

    out = {"key": job.key, "token": job.ref.token, "gif": None, "note": ""}
    try:
        meta, _, rollout = load_scenario_result(scenario_path(job.run_dir, job.ref.token))
        if rollout is None or rollout.num_samples < 2:
            out["note"] = f"no rollout stored ({meta.get('error') or meta.get('status', 'failed')})"
            return out
        scenario = load_scenario(job.ref, history_s=job.history_s)
        map_api = load_map(job.maps_root, scenario.map_location, scenario.map_version or None, job.map_cache_root)
        out["gif"] = rollout_gif(scenario, map_api, rollout, every=job.every, fps=job.fps, size_px=job.size_px,
                                 radius=job.radius)
    except Exception as err:  # noqa: BLE001 - a report must not die for one picture
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
        out["note"] = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return out
