"""Synthetic nuPlan-format worlds: a seeded town (map layers), traffic, a competent scripted ego, scenario
families (nominal driving and corner cases) and the dataset writer.

Entry points: :func:`sim.synth.town.build_town`, :func:`sim.synth.layers.town_layers`,
:func:`sim.synth.generate.generate_log`, :func:`sim.synth.dataset.write_dataset`.
"""
