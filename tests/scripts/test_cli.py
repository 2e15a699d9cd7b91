"""The console script: dispatch, one-line errors, and the render command on a real dataset."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np

from scripts.cli import expand_aliases, main


def test_aliases_map_to_the_paths_node() -> None:
    assert expand_aliases(["data_root=/d", "seed=3"]) == ["paths.data_root=/d", "seed=3"]


def test_unknown_command_and_bad_override(capsys) -> None:
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err
    assert main(["render", "no_such_key=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("distiplan render: bad configuration override") and "\n" not in err


def test_render_writes_a_png_of_a_corner_case(tiny_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "scene.png"
    assert main(["render", f"data_root={tiny_dataset}", "split=corner_cases", f"out={out}", "iteration=30",
                 f"cache_root={tmp_path / 'cache'}"]) == 0
    image = iio.imread(out)
    assert image.shape[0] >= 400 and image.shape[1] >= 400
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20  # a drawing, not a blank canvas


def test_render_names_a_missing_split(tiny_dataset: Path, capsys) -> None:
    assert main(["render", f"data_root={tiny_dataset}", "split=nosuch"]) == 2
    err = capsys.readouterr().err
    assert "split 'nosuch' not found" in err and "corner_cases" in err
