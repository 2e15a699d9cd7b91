"""Labeler throughput (samples / s / core) and cache size (bytes / sample) at a vocabulary of 4096.

Labels a few scenarios sequentially (one core) into a temporary cache, once with the vocabulary size under test
(default 4096) and once with a small reference vocabulary (256) in the same run, and prints samples/s, where the
time goes (scoring the vocabulary dominates) and the compressed shard bytes per sample.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_labeler.py --data-root DATA [--split train]
        [--scenarios 4] [--size 4096] [--reference-size 256] [--no-expert]

Without --data-root a small synthetic dataset is written to a temporary folder first (sim.synth).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def run_once(data_root: Path, maps_root: Path, split: str, scenarios: int, size: int, expert: bool,
             out: Path) -> dict:
    from experts.labeler import LabelConfig, run_labeling
    from experts.vocabulary import VocabularyConfig

    cfg = LabelConfig(data_root=str(data_root), maps_root=str(maps_root), split=split, out=str(out),
                      vocabulary=VocabularyConfig(size=size, iterations=10), expert=expert,
                      scenario_filter={"limit_total_scenarios": scenarios}, worker="sequential", progress=False,
                      shard_size=max(scenarios, 1))
    t0 = time.perf_counter()
    from experts.labeler import ensure_vocabulary, list_split

    ensure_vocabulary(cfg, list_split(cfg))  # build the vocabulary outside the timed labeling
    t_voc = time.perf_counter() - t0
    t1 = time.perf_counter()
    report = run_labeling(cfg)
    seconds = time.perf_counter() - t1
    shard_bytes = sum(p.stat().st_size for p in (report.cache_dir / "shards").glob("*.npz"))
    return {"size": size, "samples": report.num_samples, "failures": report.num_failures, "seconds": seconds,
            "vocabulary_s": t_voc, "bytes": shard_bytes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--maps-root", type=Path, default=None)
    ap.add_argument("--split", default="train")
    ap.add_argument("--scenarios", type=int, default=4)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--reference-size", type=int, default=256)
    ap.add_argument("--no-expert", action="store_true", help="skip the PDM expert trajectory per sample")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    data_root = args.data_root
    if data_root is None:
        from sim.synth.dataset import write_dataset

        data_root = Path(tmp.name) / "data"
        write_dataset(data_root, preset="tiny", seed=0)
    maps_root = args.maps_root or Path(data_root) / "maps"
    rows = []
    for size in (args.size, args.reference_size):
        rows.append(run_once(Path(data_root), maps_root, args.split, args.scenarios, size, not args.no_expert,
                             Path(tmp.name) / f"cache-{size}"))
    print(f"{'V':>6}{'samples':>9}{'failed':>8}{'s':>8}{'samples/s/core':>16}{'KB/sample':>11}{'vocab build s':>15}")
    for r in rows:
        n = max(r["samples"], 1)
        rate = r["samples"] / r["seconds"]
        print(f"{r['size']:>6}{r['samples']:>9}{r['failures']:>8}{r['seconds']:>8.1f}{rate:>16.2f}"
              f"{r['bytes'] / n / 1024:>11.1f}{r['vocabulary_s']:>15.1f}")
    tmp.cleanup()


if __name__ == "__main__":
    main()
