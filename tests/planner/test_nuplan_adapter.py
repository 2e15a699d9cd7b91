"""planner.nuplan_adapter is optional: without nuplan-devkit, importing it fails with a clear message.

The adapter itself is exercised inside the devkit venv (benchmarks/devkit_compat/run_adapter_simulation.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import pytest


@pytest.mark.skipif(importlib.util.find_spec("nuplan") is not None, reason="nuplan-devkit is installed here")
def test_import_without_devkit_explains_how_to_install() -> None:
    sys.modules.pop("planner.nuplan_adapter", None)
    with pytest.raises(ImportError) as err:
        importlib.import_module("planner.nuplan_adapter")
    msg = str(err.value)
    assert "nuplan-devkit" in msg and "benchmarks/devkit_compat/README.md" in msg and "pip install" in msg
    assert "planner.nuplan_adapter" not in sys.modules  # a failed import leaves nothing half-initialised


def test_distiplan_does_not_import_the_adapter() -> None:
    import planner  # noqa: F401 - the package itself must import without devkit
    import sim  # noqa: F401

    assert "nuplan" not in sys.modules
