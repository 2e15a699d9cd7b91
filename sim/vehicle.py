"""Ego vehicle parameters: nuPlan's Chrysler Pacifica (nuplan-devkit ``get_pacifica_parameters``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VehicleParameters:
    """Rigid-body dimensions in metres. The ego reference point is the rear-axle centre."""

    width: float = 2.297
    front_length: float = 4.049  # rear axle -> front bumper
    rear_length: float = 1.127  # rear axle -> rear bumper
    wheel_base: float = 3.089
    cog_position_from_rear_axle: float = 1.67
    height: float = 1.777

    @property
    def length(self) -> float:
        return self.front_length + self.rear_length

    @property
    def rear_axle_to_center(self) -> float:
        """Distance from the rear axle forward to the geometric box centre (1.461 m for the Pacifica)."""
        return self.length / 2.0 - self.rear_length


PACIFICA = VehicleParameters()
