"""Synthetic nuPlan-format worlds: a seeded town (map layers), traffic, a competent scripted ego, scenario
families (nominal driving and corner cases) and the dataset writer.

- :mod:`sim.synth.town` the road model (lanes, connectors, signals, crosswalks, sidewalks, parking) and
  :mod:`sim.synth.layers` its nuPlan map layers;
- :mod:`sim.synth.world` the 0.1 s traffic simulation (one longitudinal law for every driver, lane changes,
  conflicts at intersections and merges, pedestrians, signals);
- :mod:`sim.synth.families` the scenario families, :mod:`sim.synth.generate` one checked log,
  :mod:`sim.synth.record` the 20 Hz log with its scenes, :mod:`sim.synth.checks` the competence checks;
- :func:`sim.synth.dataset.write_dataset` the whole dataset in nuPlan's layout;
  :mod:`sim.synth.gallery` one picture per family.

Corner-case scenario types are prefixed ``corner_``; they are not in nuPlan's extraction mapping, so load their
scenarios with ``offset_s=-3, duration_s=15`` (the window the generator guarantees).
"""
