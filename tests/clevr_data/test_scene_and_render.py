from __future__ import annotations

import math

import numpy as np
import pytest

from brickwork.studies.clevr.data import (
    COGENT_A,
    COLORS,
    Scene,
    SceneConfig,
    SceneObject,
    generate_scene,
    object_id_map,
    object_masks,
    render_batch,
    render_scene,
)
from brickwork.studies.clevr.data.vocabulary import COLOR_RGB


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [generate_scene(i, seed=3) for i in range(40)]


def test_generated_scenes_respect_clevr_constraints(scenes: list[Scene]) -> None:
    cards = [scenes[0].directions[d] for d in ("left", "right", "front", "behind")]
    for s in scenes:
        assert 3 <= len(s.objects) <= 10
        assert s.image_filename == f"CLEVR_train_{s.image_index:06d}.png"
        for i, a in enumerate(s.objects):
            assert -3 <= a.coords[0] <= 3 and -3 <= a.coords[1] <= 3
            ra = {"small": 0.35, "large": 0.7}[a.size]
            for b in s.objects[i + 1 :]:
                rb = {"small": 0.35, "large": 0.7}[b.size]
                dx, dy = b.coords[0] - a.coords[0], b.coords[1] - a.coords[1]
                assert math.hypot(dx, dy) - ra - rb >= 0.25
                for d in cards:  # relations are unambiguous: no offset in (0, margin)
                    assert not 0 < dx * d[0] + dy * d[1] < 0.4
        # every pair is either left or right, and either front or behind
        for i in range(len(s.objects)):
            for j in range(len(s.objects)):
                if i != j:
                    assert (j in s.relationships["left"][i]) != (j in s.relationships["right"][i])
                    assert (j in s.relationships["front"][i]) != (j in s.relationships["behind"][i])


def test_scenes_are_deterministic_and_round_trip(scenes: list[Scene]) -> None:
    assert generate_scene(5, seed=3) == scenes[5]
    assert generate_scene(5, seed=4) != scenes[5]
    s = scenes[5]
    back = Scene.from_clevr_json(s.to_clevr_json())
    assert [o.color for o in back.objects] == [o.color for o in s.objects]
    assert back.relationships == s.relationships


def test_every_object_is_visible(scenes: list[Scene]) -> None:
    for s in scenes[:10]:
        ids = object_id_map(s, 120, 80)
        counts = np.bincount(ids[ids >= 0], minlength=len(s.objects))
        assert (counts >= 12).all()


def test_cogent_condition_restricts_shape_colors() -> None:
    cfg = SceneConfig(condition=COGENT_A)
    for i in range(15):
        for o in generate_scene(i, seed=0, config=cfg).objects:
            assert o.color in COGENT_A[o.shape]


def test_render_shape_and_colors_distinguishable() -> None:
    objects = []
    for k, color in enumerate(COLORS):
        x = -3 + (k % 4) * 2
        y = -1.5 + (k // 4) * 2.5
        objects.append(SceneObject(color, "sphere", "large", "rubber", (x, y, 0.7)))
    scene = Scene.from_objects(objects)
    image = render_scene(scene, 192, 128)
    assert image.shape == (128, 192, 3) and image.dtype == np.uint8
    ids = object_id_map(scene, 192 * 2, 128 * 2)
    # the mean colour of each sphere is nearest to its own CLEVR colour (by hue direction)
    big = np.asarray(render_scene(scene, 192 * 2, 128 * 2, supersample=1), dtype=float)
    base = np.array([COLOR_RGB[c] for c in COLORS], dtype=float)
    for k, color in enumerate(COLORS):
        mean = big[ids == k].mean(axis=0)
        cos = (base @ mean) / (np.linalg.norm(base, axis=1) * np.linalg.norm(mean))
        scaled = np.linalg.norm(
            base / np.linalg.norm(base, axis=1, keepdims=True) - mean / np.linalg.norm(mean), axis=1
        )
        assert COLORS[int(np.argmin(scaled))] == color, (color, mean, cos)


def test_metal_is_shinier_than_rubber() -> None:
    a = Scene.from_objects(
        [SceneObject("blue", "sphere", "large", m, (0.0, 0.0, 0.7)) for m in ("metal",)]
    )
    b = Scene.from_objects(
        [SceneObject("blue", "sphere", "large", m, (0.0, 0.0, 0.7)) for m in ("rubber",)]
    )
    ids = object_id_map(a, 192, 128)
    ma, mb = (render_scene(s, 192, 128, supersample=1).astype(float)[ids == 0] for s in (a, b))
    assert ma.min(axis=1).max() > mb.min(axis=1).max() + 60  # a white specular highlight
    assert ma.std(axis=0).sum() > mb.std(axis=0).sum()  # more contrast


def test_object_masks_cover_visible_objects(scenes: list[Scene]) -> None:
    s = scenes[0]
    masks = object_masks(s, 96, 64, grid=(8, 12))
    assert masks.shape == (len(s.objects), 8, 12)
    assert masks.min() >= 0 and masks.sum(axis=0).max() <= 1 + 1e-6
    assert (masks.reshape(len(s.objects), -1).max(axis=1) > 0).all()
    # the grid cell under each object's projected centre contains that object
    for k, o in enumerate(s.objects):
        u, v, _ = o.pixel_coords
        r, c = int(v / 320 * 8), int(u / 480 * 12)
        assert masks[:, max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2][k].max() > 0


def test_render_batch_matches_render_scene(scenes: list[Scene]) -> None:
    batch = render_batch(scenes[:3], 48, 32)
    assert batch.shape == (3, 32, 48, 3)
    assert np.array_equal(batch[1], render_scene(scenes[1], 48, 32))


def test_renders_real_release_style_scene(fixtures) -> None:  # noqa: ANN001
    from brickwork.studies.clevr.data import load_scenes

    scene = load_scenes(fixtures / "handmade_scenes.json")[0]
    image = render_scene(scene)
    assert image.shape == (64, 96, 3) and image.std() > 5
