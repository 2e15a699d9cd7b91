"""Object categories, numbered as nuplan-devkit's ``TrackedObjectType``."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Category(IntEnum):
    VEHICLE = 0
    PEDESTRIAN = 1
    BICYCLE = 2
    TRAFFIC_CONE = 3
    BARRIER = 4
    CZONE_SIGN = 5
    GENERIC_OBJECT = 6
    EGO = 7


#: ``category.name`` in the log DB for each category value (nuPlan's names).
CATEGORY_NAMES: dict[Category, str] = {
    Category.VEHICLE: "vehicle",
    Category.PEDESTRIAN: "pedestrian",
    Category.BICYCLE: "bicycle",
    Category.TRAFFIC_CONE: "traffic_cone",
    Category.BARRIER: "barrier",
    Category.CZONE_SIGN: "czone_sign",
    Category.GENERIC_OBJECT: "generic_object",
}
CATEGORY_BY_NAME: dict[str, Category] = {v: k for k, v in CATEGORY_NAMES.items()}

#: Categories that move (nuPlan's AGENT_TYPES without EGO); the rest are static objects.
AGENT_CATEGORIES = np.array([Category.VEHICLE, Category.PEDESTRIAN, Category.BICYCLE], dtype=np.int8)
STATIC_CATEGORIES = np.array(
    [Category.TRAFFIC_CONE, Category.BARRIER, Category.CZONE_SIGN, Category.GENERIC_OBJECT], dtype=np.int8
)
VRU_CATEGORIES = np.array([Category.PEDESTRIAN, Category.BICYCLE], dtype=np.int8)


class TrafficLightStatus(IntEnum):
    """nuPlan's ``TrafficLightStatusType``; the DB stores the lowercase names."""

    GREEN = 0
    YELLOW = 1
    RED = 2
    UNKNOWN = 3


TRAFFIC_LIGHT_BY_NAME = {"green": TrafficLightStatus.GREEN, "yellow": TrafficLightStatus.YELLOW,
                         "red": TrafficLightStatus.RED}
