"""Bird's-eye images of a scenario on its map (matplotlib's Agg canvas directly: no pyplot, no display).

:func:`render_scenario` writes one PNG; :func:`render_frames` returns RGB arrays (one per iteration) and
:func:`save_animation` writes them as a GIF / MP4. Both draw the same picture, centred on ego:
drivable area, lanes and lane connectors (with baselines), crosswalks, walkways, intersections, stop polygons,
car parks, the route's roadblocks highlighted, traffic-light states on signalled connectors, agents as oriented
boxes with a heading tick and a short id, the ego box, and optional trajectories (a plan, the expert's future).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PatchCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch
from matplotlib.path import Path as MplPath

from sim.categories import Category, TrafficLightStatus
from sim.errors import NotFoundError
from sim.geometry import box_corners, rear_axle_to_center
from sim.nuplan_map.map_api import MapAPI
from sim.scenario import Scenario
from sim.trajectory import Trajectory
from sim.vehicle import PACIFICA, VehicleParameters

#: Colours (matplotlib specs) of everything drawn.
COLORS = {
    "background": "#f4f4f2", "drivable": "#d9d9d6", "lane": "#c8c8c4", "connector": "#cfcfcb",
    "baseline": "#8a8a86", "route": "#9ec5ef", "crosswalk": "#e9d8a6", "walkway": "#c9e4c5",
    "intersection": "#cbc3e3", "stop": "#e8a0a0", "carpark": "#d6cfc2", "ego": "#1f77b4", "plan": "#d62728",
    "expert": "#2ca02c", "goal": "#ff7f0e", "text": "#222222",
}
CATEGORY_COLORS = {
    Category.VEHICLE: "#ff7f0e", Category.PEDESTRIAN: "#9467bd", Category.BICYCLE: "#17becf",
    Category.TRAFFIC_CONE: "#7f7f7f", Category.BARRIER: "#7f7f7f", Category.CZONE_SIGN: "#bcbd22",
    Category.GENERIC_OBJECT: "#8c564b",
}
LIGHT_COLORS = {TrafficLightStatus.GREEN: "#2ca02c", TrafficLightStatus.YELLOW: "#ffbf00",
                TrafficLightStatus.RED: "#d62728"}


@dataclass(frozen=True)
class RenderOptions:
    """View and figure settings: ``radius`` metres shown around ego, image ``size_px`` square, ``dpi``."""

    radius: float = 50.0
    size_px: int = 800
    dpi: int = 100
    show_ids: bool = True
    show_route: bool = True
    show_expert: bool = True
    expert_horizon_s: float = 8.0


def _paths(geom: shapely.Geometry | None) -> list[MplPath]:
    """Matplotlib paths (holes included) of a polygonal geometry."""
    if geom is None or geom.is_empty:
        return []
    if geom.geom_type == "Polygon":
        rings = [np.asarray(geom.exterior.coords)] + [np.asarray(r.coords) for r in geom.interiors]
        verts = np.concatenate(rings)
        codes = np.concatenate([[MplPath.MOVETO] + [MplPath.LINETO] * (len(r) - 2) + [MplPath.CLOSEPOLY]
                                for r in rings])
        return [MplPath(verts[:, :2], codes)]
    if hasattr(geom, "geoms"):
        return [p for g in geom.geoms for p in _paths(g)]
    return []


def _add_polygons(ax, geoms: Sequence, view: shapely.Geometry, zorder: float, **style) -> None:
    geoms = np.asarray([g for g in geoms if g is not None], dtype=object)
    if len(geoms) == 0:
        return
    geoms = geoms[shapely.intersects(geoms, view)]
    patches = [PathPatch(p) for g in geoms for p in _paths(g)]
    if patches:
        ax.add_collection(PatchCollection(patches, zorder=zorder, **style))


def _view_box(center: npt.NDArray[np.float64], radius: float) -> shapely.Geometry:
    return shapely.box(center[0] - radius, center[1] - radius, center[0] + radius, center[1] + radius)


def draw_map(ax, map_api: MapAPI, center: npt.ArrayLike, radius: float,
             route_roadblock_ids: Sequence[int] = (), light_states: dict[int, int] | None = None) -> None:
    """Draw the map around ``center`` (x, y) within ``radius`` m onto a matplotlib axes."""
    c = np.asarray(center, dtype=np.float64)[:2]
    view = _view_box(c, radius * 1.2)
    _add_polygons(ax, [shapely.intersection(map_api.drivable_area, view)], view, 0.0,
                  facecolor=COLORS["drivable"], edgecolor="none")
    for name, key, z in (("carpark_areas", "carpark", 0.5), ("walkways", "walkway", 0.6),
                         ("intersections", "intersection", 0.7)):
        _add_polygons(ax, map_api.layer(name)[1], view, z, facecolor=COLORS[key], edgecolor="none", alpha=0.8)
    if route_roadblock_ids:
        known = [map_api.roadblock_index(r) for r in route_roadblock_ids if map_api.has_roadblock(r)]
        _add_polygons(ax, map_api.rb_polygon[known], view, 1.0, facecolor=COLORS["route"], edgecolor="none",
                      alpha=0.6)
    segs = map_api.segments_near(c, radius * 1.2)
    lanes, conns = segs[~map_api.seg_is_connector[segs]], segs[map_api.seg_is_connector[segs]]
    _add_polygons(ax, map_api.seg_polygon[lanes], view, 1.1, facecolor="none", edgecolor=COLORS["lane"],
                  linewidth=0.8)
    _add_polygons(ax, map_api.seg_polygon[conns], view, 1.1, facecolor="none", edgecolor=COLORS["connector"],
                  linewidth=0.5, linestyle=":")
    _add_polygons(ax, map_api.layer("crosswalks")[1], view, 1.2, facecolor=COLORS["crosswalk"],
                  edgecolor="#b8a56a", linewidth=0.5, hatch="///", alpha=0.9)
    _add_polygons(ax, map_api.layer("stop_polygons")[1], view, 1.3, facecolor=COLORS["stop"], edgecolor="none",
                  alpha=0.8)
    ax.add_collection(LineCollection([map_api.baseline(int(s))[:, :2] for s in segs], colors=COLORS["baseline"],
                                     linewidths=0.5, linestyles="--", zorder=1.4))
    if light_states:
        lines, colors = [], []
        for conn_id, status in light_states.items():
            if status not in LIGHT_COLORS:
                continue
            try:
                s = map_api.segment_index(conn_id, connector=True)
            except NotFoundError:
                continue
            lines.append(map_api.baseline(s)[:, :2])
            colors.append(LIGHT_COLORS[TrafficLightStatus(status)])
        ax.add_collection(LineCollection(lines, colors=colors, linewidths=2.5, alpha=0.9, zorder=1.6))


def draw_boxes(ax, poses: npt.ArrayLike, lengths: npt.ArrayLike, widths: npt.ArrayLike, colors: Sequence,
               labels: Sequence[str] | None = None, zorder: float = 3.0, alpha: float = 0.85) -> None:
    """Oriented boxes (centre poses ``(N, 3)``) with a heading tick from the centre to the front edge."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    if len(poses) == 0:
        return
    corners = box_corners(poses, lengths, widths)  # (N, 4, 2) FL, RL, RR, FR
    ax.add_collection(PolyCollection(corners, facecolors=colors, edgecolors="#333333", linewidths=0.6,
                                     alpha=alpha, zorder=zorder))
    front = corners[:, [0, 3]].mean(1)
    ax.add_collection(LineCollection(np.stack([poses[:, :2], front], 1), colors="#111111", linewidths=0.9,
                                     zorder=zorder + 0.1))
    if labels is not None:
        for (x, y, _), text in zip(poses, labels, strict=True):
            ax.text(x, y, text, fontsize=5.5, ha="center", va="center", color=COLORS["text"], zorder=zorder + 0.2,
                    clip_on=True)


def draw_scene(ax, scenario: Scenario, map_api: MapAPI, iteration: int, options: RenderOptions = RenderOptions(),
               ego_pose: npt.ArrayLike | None = None, trajectories: dict[str, Trajectory] | None = None,
               vehicle: VehicleParameters = PACIFICA) -> None:
    """Draw everything at scenario ``iteration`` onto ``ax``.

    ``ego_pose``: rear-axle ``(3,)`` to draw instead of the logged ego (closed loop). ``trajectories``: name ->
    :class:`Trajectory` (rear-axle poses) to overlay; ``"plan"`` is drawn red, others in the cycle colours.
    """
    step = scenario.index(iteration)
    ego = np.asarray(scenario.ego.pose[step] if ego_pose is None else ego_pose, dtype=np.float64)
    ax.set_facecolor(COLORS["background"])
    r = options.radius
    draw_map(ax, map_api, ego[:2], r, scenario.route_roadblock_ids if options.show_route else (),
             scenario.traffic_lights.at(step) if scenario.traffic_lights.status.shape[1] else None)

    tracks = scenario.tracks
    valid = tracks.valid[:, step] if len(tracks) else np.zeros(0, bool)
    if valid.any():
        poses = tracks.pose[valid, step]
        near = np.abs(poses[:, :2] - ego[:2]).max(1) < r * 1.2
        idx = np.flatnonzero(valid)[near]
        colors = [CATEGORY_COLORS.get(Category(int(k)), "#8c564b") for k in tracks.category[idx]]
        labels = [str(t)[:4] for t in tracks.token[idx]] if options.show_ids else None
        draw_boxes(ax, tracks.pose[idx, step], tracks.size[idx, 0], tracks.size[idx, 1], colors, labels)

    if options.show_expert:
        t_now = scenario.ego.time_s[step]
        future = (scenario.ego.time_s >= t_now) & (scenario.ego.time_s <= t_now + options.expert_horizon_s)
        ax.plot(*scenario.ego.pose[future, :2].T, color=COLORS["expert"], linewidth=1.2, linestyle="--",
                zorder=4.0, label="expert")
    palette = ["#8c564b", "#e377c2", "#17becf", "#bcbd22"]
    for i, (name, traj) in enumerate((trajectories or {}).items()):
        color = COLORS["plan"] if name == "plan" else palette[i % len(palette)]
        ax.plot(traj.pose[:, 0], traj.pose[:, 1], color=color, linewidth=1.6, zorder=4.1, label=name)
        ax.scatter(traj.pose[::10, 0], traj.pose[::10, 1], s=4, color=color, zorder=4.2)
    if scenario.mission_goal is not None:
        ax.scatter([scenario.mission_goal[0]], [scenario.mission_goal[1]], marker="*", s=120,
                   color=COLORS["goal"], zorder=4.3, label="goal")

    center = rear_axle_to_center(ego, vehicle.rear_axle_to_center)
    draw_boxes(ax, center[None], [vehicle.length], [vehicle.width], [COLORS["ego"]],
               ["ego"] if options.show_ids else None, zorder=5.0, alpha=0.95)

    ax.set_xlim(ego[0] - r, ego[0] + r)
    ax.set_ylim(ego[1] - r, ego[1] + r)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    bar = 10.0 if r >= 20 else 5.0  # scale bar instead of 6-digit UTM tick labels
    x0, y0 = ego[0] - 0.95 * r, ego[1] - 0.93 * r
    ax.plot([x0, x0 + bar], [y0, y0], color=COLORS["text"], linewidth=2.0, zorder=6.0)
    ax.text(x0 + bar / 2, y0 + 0.02 * r, f"{bar:.0f} m", ha="center", va="bottom", fontsize=7, zorder=6.0)
    t_rel = scenario.time_us[step] * 1e-6 - scenario.time_us[scenario.index(0)] * 1e-6
    ax.set_title(f"{scenario.scenario_type} | {scenario.token} | {scenario.log_name}\n"
                 f"iteration {iteration} (t = {t_rel:.1f} s) | map {scenario.map_location}", fontsize=8)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc="upper right", fontsize=6, framealpha=0.7)


def _figure(options: RenderOptions) -> tuple[Figure, FigureCanvasAgg]:
    inches = options.size_px / options.dpi
    fig = Figure(figsize=(inches, inches), dpi=options.dpi)
    return fig, FigureCanvasAgg(fig)


def render_scenario(scenario: Scenario, map_api: MapAPI, iteration: int, path: str | Path,
                    options: RenderOptions = RenderOptions(), ego_pose: npt.ArrayLike | None = None,
                    trajectories: dict[str, Trajectory] | None = None) -> Path:
    """Write a PNG of ``scenario`` at ``iteration`` (see :func:`draw_scene`) to ``path``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, canvas = _figure(options)
    ax = fig.add_axes((0.06, 0.04, 0.9, 0.88))
    draw_scene(ax, scenario, map_api, iteration, options, ego_pose, trajectories)
    canvas.print_png(str(path))
    return path


def render_frames(scenario: Scenario, map_api: MapAPI, iterations: Sequence[int],
                  options: RenderOptions = RenderOptions(), ego_poses: npt.ArrayLike | None = None,
                  trajectories: Sequence[dict[str, Trajectory] | None] | None = None) -> list[npt.NDArray[np.uint8]]:
    """RGB images ``(size_px, size_px, 3)`` uint8, one per iteration (for GIF / MP4).

    ``ego_poses``: ``(len(iterations), 3)`` rear-axle poses to draw instead of the logged ego; ``trajectories``:
    one overlay dict (or None) per iteration.
    """
    fig, canvas = _figure(options)
    frames = []
    for k, iteration in enumerate(iterations):
        fig.clear()
        ax = fig.add_axes((0.06, 0.04, 0.9, 0.88))
        draw_scene(ax, scenario, map_api, int(iteration), options,
                   None if ego_poses is None else np.asarray(ego_poses)[k],
                   None if trajectories is None else trajectories[k])
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames


def save_animation(frames: Sequence[npt.NDArray[np.uint8]], path: str | Path, fps: float = 10.0) -> Path:
    """Write RGB frames as an animated GIF (``.gif``) or an H.264 video (``.mp4``, needs imageio-ffmpeg)."""
    import imageio.v2 as iio2  # lazily: only animations need imageio
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        iio.imwrite(path, np.stack(frames), duration=1000.0 / fps, loop=0)
    elif path.suffix.lower() == ".mp4":
        iio2.mimwrite(path, list(frames), fps=fps, macro_block_size=1)
    else:
        raise ValueError(f"{path}: unsupported animation format (expected .gif or .mp4)")
    return path
