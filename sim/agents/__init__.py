"""Other road users in closed loop: log replay (non-reactive, CLS-NR) and nuPlan's IDM agents (CLS-R)."""

from sim.agents.base import AgentModel

__all__ = ["AgentModel"]
