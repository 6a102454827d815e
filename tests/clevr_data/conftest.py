from __future__ import annotations

from pathlib import Path

import pytest

from brickwork.studies.clevr.data import Scene, SceneObject

FIXTURES = Path(__file__).parent / "fixtures"


def obj(color: str, shape: str, size: str, material: str, x: float, y: float) -> SceneObject:
    return SceneObject(color, shape, size, material, (x, y, 0.5))


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def simple_scene() -> Scene:
    """Axis-aligned directions: right = +x, behind = +y (as in the hand-made fixture)."""
    from brickwork.studies.clevr.data import compute_relationships

    objects = (
        obj("red", "cube", "large", "metal", 0.0, 0.0),  # 0
        obj("blue", "sphere", "small", "rubber", 2.0, 0.0),  # 1: right of 0
        obj("red", "cylinder", "large", "rubber", 0.0, 2.0),  # 2: behind 0
        obj("yellow", "sphere", "small", "metal", -2.0, -2.0),  # 3: left, front
    )
    directions = {
        "right": (1.0, 0.0, 0.0),
        "left": (-1.0, 0.0, 0.0),
        "behind": (0.0, 1.0, 0.0),
        "front": (0.0, -1.0, 0.0),
        "above": (0.0, 0.0, 1.0),
        "below": (0.0, 0.0, -1.0),
    }
    return Scene(objects, compute_relationships(objects, directions), directions, 7, "val")
