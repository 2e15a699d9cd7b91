"""distiplan's world and its simulation: geometry, nuPlan formats, maps, scenarios, closed loop, metrics.

This package never imports torch.
"""
