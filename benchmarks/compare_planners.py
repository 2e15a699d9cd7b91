"""Closed-loop comparison on the corner-case suite: CLS per scenario family, planner x (non-reactive, reactive).

Runs ``distiplan simulate`` once per planner and agent mode (skipping runs already complete: ``resume=true``),
then prints one row per family (scenario type) with the nuPlan closed-loop score (0-100) of every run, the
mean over all scenarios last. The IDM planner is the reference in the same run.

    .venv/bin/python benchmarks/compare_planners.py --data-root DATA [--split corner_cases]
        [--planners pdm idm] [--out exp/compare] [--worker pool] [--workers 2] [--limit N] [--no-run]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

MODES = {"log_replay": "CLS-NR", "reactive": "CLS-R"}


def simulate(planner: str, agents: str, args: argparse.Namespace, run_dir: Path) -> None:
    cmd = [sys.executable, "-m", "scripts.cli", "simulate", f"planner={planner}", f"agents={agents}",
           f"split={args.split}", f"data_root={args.data_root}", f"out={run_dir}", f"worker={args.worker}",
           "resume=true", "progress=false", "print_table=false"]
    if args.maps_root:
        cmd.append(f"maps_root={args.maps_root}")
    if args.workers:
        cmd.append(f"worker.num_workers={args.workers}")
    if args.limit:
        cmd.append(f"scenario_filter.limit_total_scenarios={args.limit}")
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)


def family_scores(run_dir: Path, agents: str) -> pd.Series:
    """Mean closed-loop score (0-100) per scenario type, plus 'all', from a run folder."""
    from sim.metrics.aggregate import aggregate
    from sim.runner.scoring import challenge_for

    df = pd.read_parquet(run_dir / "metrics.parquet")
    table = aggregate(df, challenge_for(agents))
    per_scenario = table[table["scenario"].isin(set(df["scenario"]))]
    out = per_scenario.groupby("scenario_type")["score"].mean() * 100.0
    out["all"] = per_scenario["score"].mean() * 100.0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--maps-root", default=None)
    ap.add_argument("--split", default="corner_cases")
    ap.add_argument("--planners", nargs="+", default=["pdm", "idm"])
    ap.add_argument("--agents", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--out", type=Path, default=Path("exp/compare"))
    ap.add_argument("--worker", default="pool")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="scenarios at most (scenario_filter)")
    ap.add_argument("--no-run", action="store_true", help="only read existing run folders")
    args = ap.parse_args()

    columns = {}
    for agents in args.agents:
        for planner in args.planners:
            run_dir = args.out / f"{planner}-{args.split}-{agents}"
            if not args.no_run:
                simulate(planner, agents, args, run_dir)
            columns[f"{planner} {MODES[agents]}"] = family_scores(run_dir, agents)
    table = pd.DataFrame(columns)
    order = [i for i in table.index if i != "all"] + ["all"]
    table = table.loc[order]
    with pd.option_context("display.float_format", "{:6.1f}".format, "display.width", 160):
        print()
        print(f"closed-loop score per family (0-100), split '{args.split}'")
        print(table.to_string())
    table.to_csv(args.out / f"compare-{args.split}.csv")
    print(f"\nwritten {args.out / f'compare-{args.split}.csv'}")


if __name__ == "__main__":
    main()
