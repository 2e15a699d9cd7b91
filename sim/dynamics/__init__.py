"""Ego dynamics: nuPlan's kinematic bicycle, LQR tracker and two-stage controller, batched over trajectories."""
