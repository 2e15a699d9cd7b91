"""The closed-loop runner: simulation loop, ego controllers, faults, jobs, workers, the run folder, videos.

Modules are imported on demand (``from sim.runner.simulation import run_scenario``) to keep start-up fast.
"""
