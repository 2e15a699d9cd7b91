"""``distiplan label``: teacher labels (expert trajectory + per-rule vocabulary scores) into the cache."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def run(cfg: DictConfig) -> int:
    from experts.labeler import LabelConfig, run_labeling
    from experts.vocabulary import VocabularyConfig

    voc = OmegaConf.to_container(cfg.vocabulary, resolve=True)
    voc_file = voc.pop("file", None)
    label_cfg = LabelConfig(
        data_root=str(cfg.paths.data_root), maps_root=str(cfg.paths.maps_root), split=str(cfg.split),
        out=str(cfg.out), sample_interval_s=float(cfg.sample_interval_s), shard_size=int(cfg.shard_size),
        vocabulary=VocabularyConfig(**voc), vocabulary_file=voc_file, expert=bool(cfg.expert),
        scenario_filter={k: v for k, v in (OmegaConf.to_container(cfg.scenario_filter, resolve=True) or {}).items()
                         if v is not None},
        include_untagged=bool(cfg.include_untagged),
        worker=str(cfg.worker.kind), num_workers=cfg.worker.num_workers,
        max_failure_rate=float(cfg.max_failure_rate), progress=bool(cfg.progress))
    report = run_labeling(label_cfg)
    print(f"label cache: {report.cache_dir}")
    print(f"  shards: {report.num_shards} ({report.num_skipped} already done), samples: {report.num_samples}, "
          f"failures: {report.num_failures} (see failures.csv), {report.seconds:.1f} s")
    return 0
