"""``distiplan <command> [hydra overrides]``: one console script, one packaged Hydra config per command."""

from __future__ import annotations

import importlib
import sys

from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from sim.errors import DataError

COMMANDS = {
    "synth": "write a synthetic nuPlan-format dataset (maps + logs)",
    "render": "draw a scenario at one iteration as a PNG",
    "doctor": "check the data and map roots and say what is wrong",
    "simulate": "closed-loop simulation of one planner on a split, with nuPlan's metrics",
    "label": "write teacher labels (expert trajectory + per-rule vocabulary scores) into the cache",
    "evaluate": "the main job: every planner on the corner-case suite, one report",
}
#: ``data_root=DIR`` is shorthand for ``paths.data_root=DIR`` (and likewise for the other roots).
PATH_ALIASES = ("data_root", "maps_root", "cache_root", "exp_root")


def _usage() -> str:
    lines = ["usage: distiplan <command> [key=value ...]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def expand_aliases(overrides: list[str]) -> list[str]:
    out = []
    for item in overrides:
        key = item.split("=", 1)[0]
        out.append(f"paths.{item}" if key in PATH_ALIASES else item)
    return out


def load_config(command: str, overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="configs", version_base="1.3"):
        return compose(config_name=command, overrides=expand_aliases(overrides))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, overrides = args[0], args[1:]
    if command not in COMMANDS:
        print(f"distiplan: unknown command '{command}'\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(command, overrides)
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"distiplan {command}: bad configuration override: {first}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"scripts.{command}")
        result = module.run(cfg)
    except DataError as err:
        print(f"distiplan {command}: error: {err}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
