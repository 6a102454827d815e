"""CLEVR scenes: objects, relationships, and random generation with CLEVR's constraints.

A scene is what CLEVR's renderer writes next to each image: objects with their four
attributes, ``3d_coords`` (z up, on the ground plane), ``pixel_coords`` (on CLEVR's
480×320 frame), ``rotation`` (degrees), the camera's ground-plane ``directions`` and
``relationships``: ``relationships["left"][i]`` lists the objects *left of* object
``i`` (those whose offset from ``i`` projects by more than ``eps = 0.2`` on the left
direction), and likewise for right, front and behind.

Generation follows CLEVR's ``render_images.py``: 3–10 objects placed uniformly in
``[-3, 3]²``, at least ``min_dist = 0.25`` apart (edge to edge) and never between 0
and ``margin = 0.4`` apart along any cardinal direction (so every pair is clearly
left/right and front/behind), then every object must stay visible (here: enough
pixels and a large enough unoccluded fraction, checked by ray casting).

Example:
    >>> scene = generate_scene(0, seed=1)
    >>> 3 <= len(scene.objects) <= 10, scene.image_filename
    (True, 'CLEVR_train_000000.png')
    >>> a, b = scene.objects[0], scene.objects[1]
    >>> (1 in scene.relationships["left"][0]) != (1 in scene.relationships["right"][0])
    True
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, final

from brickwork.errors import DataError
from brickwork.studies.clevr.data.camera import CLEVR_HEIGHT, CLEVR_WIDTH, Camera
from brickwork.studies.clevr.data.render import object_extent, visible_fractions
from brickwork.studies.clevr.data.vocabulary import ATTRIBUTES, COLORS, RELATIONS, SHAPES

_DEFAULT_CAMERA = Camera()


def image_filename(split: str, index: int) -> str:
    """CLEVR's image name: ``CLEVR_<split>_<6 digits>.png``.

    Example:
        >>> image_filename("val", 17)
        'CLEVR_val_000017.png'
    """
    return f"CLEVR_{split}_{index:06d}.png"


@final
@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    Attributes:
        color, shape, size, material: CLEVR attribute values.
        coords: ``3d_coords`` (x, y on the ground, z = the centre's height).
        rotation: rotation about z in degrees.
        pixel_coords: ``(u, v, depth)`` on CLEVR's 480×320 frame.

    Example:
        >>> SceneObject("red", "cube", "large", "metal", (0.0, 1.0, 0.49)).attribute("color")
        'red'
    """

    color: str
    shape: str
    size: str
    material: str
    coords: tuple[float, float, float]
    rotation: float = 0.0
    pixel_coords: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        for attr, values in ATTRIBUTES.items():
            if getattr(self, attr) not in values:
                raise DataError(
                    f"object: field '{attr}': found {getattr(self, attr)!r}, "
                    f"expected one of {', '.join(values)}"
                )

    def attribute(self, name: str) -> str:
        """Value of ``color``, ``shape``, ``size`` or ``material``."""
        if name not in ATTRIBUTES:
            raise KeyError(f"unknown attribute {name!r}; expected one of {', '.join(ATTRIBUTES)}")
        return str(getattr(self, name))

    def to_clevr_json(self) -> dict[str, Any]:
        """The object in CLEVR's scene format."""
        u, v, depth = self.pixel_coords
        return {
            "color": self.color,
            "size": self.size,
            "shape": self.shape,
            "material": self.material,
            "3d_coords": [round(float(c), 5) for c in self.coords],
            "rotation": round(float(self.rotation), 4),
            "pixel_coords": [int(round(u)), int(round(v)), round(float(depth), 4)],
        }


def compute_relationships(
    objects: Sequence[SceneObject],
    directions: Mapping[str, Sequence[float]],
    eps: float = 0.2,
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """CLEVR's relationships: ``out[rel][i]`` = objects that are ``rel`` of object ``i``.

    Example:
        >>> objs = [SceneObject("red", "cube", "small", "rubber", (0.0, 0.0, 0.25)),
        ...         SceneObject("blue", "cube", "small", "rubber", (2.0, 0.0, 0.25))]
        >>> compute_relationships(objs, {"right": (1.0, 0.0, 0.0), "left": (-1.0, 0.0, 0.0),
        ...                               "front": (0.0, -1.0, 0.0), "behind": (0.0, 1.0, 0.0)})
        {'left': ((), (0,)), 'right': ((1,), ()), 'front': ((), ()), 'behind': ((), ())}
    """
    out: dict[str, tuple[tuple[int, ...], ...]] = {}
    for rel in RELATIONS:
        dx, dy, dz = (float(c) for c in directions[rel])
        rows = []
        for i, a in enumerate(objects):
            rows.append(
                tuple(
                    j
                    for j, b in enumerate(objects)
                    if j != i
                    and (b.coords[0] - a.coords[0]) * dx
                    + (b.coords[1] - a.coords[1]) * dy
                    + (b.coords[2] - a.coords[2]) * dz
                    > eps
                )
            )
        out[rel] = tuple(rows)
    return out


@final
@dataclass(frozen=True)
class Scene:
    """A CLEVR scene: objects plus the relations between them.

    Attributes:
        objects: the objects, indexed as programs refer to them.
        relationships: ``{"left"|"right"|"front"|"behind": per object, the indices
            of the objects in that relation to it}``.
        directions: ground-plane unit vectors (``left``, ``right``, ``front``,
            ``behind``, ``above``, ``below``).
        image_index: the scene's index in its split.
        split: the split name (``train``, ``val`` …).
        image_filename: the image's file name.

    Example:
        >>> s = Scene.from_objects([
        ...     SceneObject("red", "cube", "large", "metal", (0.0, 0.0, 0.49)),
        ...     SceneObject("blue", "sphere", "small", "rubber", (0.0, 2.0, 0.35)),
        ... ])
        >>> s.relationships["behind"][0], s.relationships["front"][1]
        ((1,), (0,))
    """

    objects: tuple[SceneObject, ...]
    relationships: Mapping[str, tuple[tuple[int, ...], ...]]
    directions: Mapping[str, tuple[float, float, float]] = field(
        default_factory=_DEFAULT_CAMERA.directions
    )
    image_index: int = 0
    split: str = "train"
    image_filename: str = ""

    def __post_init__(self) -> None:
        n = len(self.objects)
        for rel in RELATIONS:
            rows = self.relationships.get(rel)
            if rows is None or len(rows) != n:
                raise DataError(
                    f"scene {self.image_index}: field 'relationships.{rel}': expected one list per "
                    f"object ({n}), found {None if rows is None else len(rows)}"
                )
            for i, row in enumerate(rows):
                for j in row:
                    if not 0 <= j < n or j == i:
                        raise DataError(
                            f"scene {self.image_index}: field 'relationships.{rel}[{i}]': object "
                            f"index {j} out of range (0..{n - 1}, not {i} itself)"
                        )
        if not self.image_filename:
            object.__setattr__(self, "image_filename", image_filename(self.split, self.image_index))

    @classmethod
    def from_objects(
        cls,
        objects: Sequence[SceneObject],
        *,
        image_index: int = 0,
        split: str = "train",
        camera: Camera | None = None,
        eps: float = 0.2,
    ) -> Scene:
        """Build a scene from objects: pixel coordinates, directions, relationships."""
        cam = camera or _DEFAULT_CAMERA
        directions = cam.directions()
        objs = tuple(
            replace(
                o,
                pixel_coords=tuple(  # type: ignore[arg-type]
                    float(x) for x in cam.project([o.coords], CLEVR_WIDTH, CLEVR_HEIGHT)[0]
                ),
            )
            for o in objects
        )
        return cls(
            objs, compute_relationships(objs, directions, eps), directions, image_index, split
        )

    def to_clevr_json(self) -> dict[str, Any]:
        """The scene in CLEVR's scenes-file format."""
        return {
            "split": self.split,
            "image_index": self.image_index,
            "image_filename": self.image_filename,
            "objects": [o.to_clevr_json() for o in self.objects],
            "relationships": {rel: [list(r) for r in self.relationships[rel]] for rel in RELATIONS},
            "directions": {k: list(v) for k, v in self.directions.items()},
        }

    @classmethod
    def from_clevr_json(
        cls, raw: object, *, where: str = "", position: int = 0, default_split: str = "train"
    ) -> Scene:
        """Parse one scene of a CLEVR scenes file (the release's or ours).

        Missing ``relationships`` are computed from ``3d_coords`` and ``directions``
        (CLEVR's camera by default); a missing ``image_index`` is the position.

        Raises:
            DataError: naming ``where``, the scene, object and field.
        """
        prefix = f"{where}: scene {position}"
        if not isinstance(raw, Mapping):
            raise DataError(f"{prefix}: found {type(raw).__name__}, expected an object")
        objs_raw = raw.get("objects")
        if not isinstance(objs_raw, list):
            raise DataError(
                f"{prefix}: field 'objects': "
                + ("missing" if objs_raw is None else f"found {type(objs_raw).__name__}")
                + ", expected a list of objects"
            )
        objects = []
        for k, o in enumerate(objs_raw):
            if not isinstance(o, Mapping):
                raise DataError(
                    f"{prefix}, object {k}: found {type(o).__name__}, expected an object"
                )
            for key in ("color", "shape", "size", "material", "3d_coords"):
                if key not in o:
                    raise DataError(f"{prefix}, object {k}: field '{key}': missing")
            for attr, values in ATTRIBUTES.items():
                if o[attr] not in values:
                    raise DataError(
                        f"{prefix}, object {k}: field '{attr}': found {o[attr]!r}, "
                        f"expected one of {', '.join(values)}"
                    )
            coords = o["3d_coords"]
            if (
                not isinstance(coords, list)
                or len(coords) != 3
                or not all(isinstance(c, (int, float)) for c in coords)
            ):
                raise DataError(
                    f"{prefix}, object {k}: field '3d_coords': found {coords!r}, expected 3 numbers"
                )
            pix = o.get("pixel_coords", [0, 0, 0])
            objects.append(
                SceneObject(
                    o["color"],
                    o["shape"],
                    o["size"],
                    o["material"],
                    tuple(float(c) for c in coords),  # type: ignore[arg-type]
                    float(o.get("rotation", 0.0)),
                    tuple(float(c) for c in pix[:3])
                    if isinstance(pix, list) and len(pix) >= 3
                    else (0.0, 0.0, 0.0),  # type: ignore[arg-type]
                )
            )
        split = str(raw.get("split", default_split))
        index = raw.get("image_index", position)
        if not isinstance(index, int) or isinstance(index, bool):
            raise DataError(f"{prefix}: field 'image_index': found {index!r}, expected an integer")
        directions_raw = raw.get("directions")
        if directions_raw is None:
            directions = _DEFAULT_CAMERA.directions()
        else:
            try:
                # 3-vectors: checked below
                directions = {
                    str(k): tuple(float(c) for c in v)  # type: ignore[misc]
                    for k, v in directions_raw.items()
                }
                for rel in RELATIONS:
                    if len(directions[rel]) != 3:
                        raise ValueError(rel)
            except (AttributeError, TypeError, ValueError, KeyError) as exc:
                raise DataError(
                    f"{prefix}: field 'directions': found {directions_raw!r}, expected "
                    "a 3-vector for each of left, right, front, behind"
                ) from exc
        rel_raw = raw.get("relationships")
        if rel_raw is None:
            relationships = compute_relationships(objects, directions)
        else:
            relationships = {}
            for rel in RELATIONS:
                rows = rel_raw.get(rel) if isinstance(rel_raw, Mapping) else None
                if not isinstance(rows, list) or not all(
                    isinstance(r, list) and all(isinstance(j, int) for j in r) for r in rows
                ):
                    raise DataError(
                        f"{prefix}: field 'relationships.{rel}': found {rows!r:.80}, "
                        "expected a list of index lists, one per object"
                    )
                relationships[rel] = tuple(tuple(r) for r in rows)
        name = raw.get("image_filename") or image_filename(split, index)
        try:
            return cls(tuple(objects), relationships, directions, index, split, str(name))
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None


#: CLEVR CoGenT condition A: shape -> allowed colours (spheres take any colour)
COGENT_A: dict[str, tuple[str, ...]] = {
    "cube": ("gray", "blue", "brown", "yellow"),
    "cylinder": ("red", "green", "purple", "cyan"),
    "sphere": COLORS,
}
#: CLEVR CoGenT condition B: the colours of cubes and cylinders swapped
COGENT_B: dict[str, tuple[str, ...]] = {
    "cube": ("red", "green", "purple", "cyan"),
    "cylinder": ("gray", "blue", "brown", "yellow"),
    "sphere": COLORS,
}


def check_condition(raw: object, where: str = "condition") -> dict[str, tuple[str, ...]]:
    """Validate a shape-colour condition (CLEVR's ``shape_color_combos_json``)."""
    if not isinstance(raw, Mapping) or not raw:
        raise DataError(
            f"{where}: expected an object mapping shapes to lists of colours, found {raw!r:.80}"
        )
    out = {}
    for shape, colors in raw.items():
        if shape not in SHAPES:
            raise DataError(
                f"{where}: field '{shape}': unknown shape; expected one of {', '.join(SHAPES)}"
            )
        if (
            not isinstance(colors, (list, tuple))
            or not colors
            or any(c not in COLORS for c in colors)
        ):
            raise DataError(
                f"{where}: field '{shape}': found {colors!r}, expected a non-empty "
                f"list of colours from {', '.join(COLORS)}"
            )
        out[str(shape)] = tuple(str(c) for c in colors)
    return out


@final
@dataclass(frozen=True)
class SceneConfig:
    """How scenes are generated (CLEVR's defaults).

    Example:
        >>> SceneConfig(min_objects=3, max_objects=5).max_objects
        5
    """

    min_objects: int = 3
    max_objects: int = 10
    min_dist: float = 0.25
    margin: float = 0.4
    relation_eps: float = 0.2
    max_retries: int = 50
    min_visible_pixels: int = 12
    min_visible_fraction: float = 0.4
    visibility_size: tuple[int, int] = (120, 80)
    condition: Mapping[str, tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.min_objects <= self.max_objects <= 12:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects <= 12, got "
                f"{self.min_objects}, {self.max_objects}"
            )
        if self.condition is not None:
            object.__setattr__(self, "condition", check_condition(self.condition))

    def to_json(self) -> dict[str, Any]:
        return {
            "min_objects": self.min_objects,
            "max_objects": self.max_objects,
            "min_dist": self.min_dist,
            "margin": self.margin,
            "relation_eps": self.relation_eps,
            "min_visible_pixels": self.min_visible_pixels,
            "min_visible_fraction": self.min_visible_fraction,
            "condition": None
            if self.condition is None
            else {k: list(v) for k, v in self.condition.items()},
        }


def _place(
    rng: random.Random,
    n: int,
    cfg: SceneConfig,
    directions: Mapping[str, tuple[float, float, float]],
) -> list[tuple[float, float, str]] | None:
    placed: list[tuple[float, float, str]] = []
    cards = [directions[d] for d in ("left", "right", "front", "behind")]
    for _ in range(n):
        size = rng.choice(("small", "large"))
        r = {"small": 0.35, "large": 0.7}[size]
        for _try in range(cfg.max_retries):
            x, y = rng.uniform(-3, 3), rng.uniform(-3, 3)
            ok = True
            for xx, yy, ss in placed:
                rr = {"small": 0.35, "large": 0.7}[ss]
                dx, dy = x - xx, y - yy
                if math.hypot(dx, dy) - r - rr < cfg.min_dist:
                    ok = False
                    break
                if any(0 < dx * d[0] + dy * d[1] < cfg.margin for d in cards):
                    ok = False
                    break
            if ok:
                placed.append((x, y, size))
                break
        else:
            return None
    return placed


def generate_scene(
    index: int,
    seed: int = 0,
    *,
    split: str = "train",
    config: SceneConfig | None = None,
    camera: Camera | None = None,
) -> Scene:
    """Generate scene ``index`` of a dataset; the same ``(seed, index)`` gives the same scene.

    Raises:
        DataError: when no valid placement is found (only with extreme configs).
    """
    cfg = config or SceneConfig()
    cam = camera or _DEFAULT_CAMERA
    rng = random.Random(f"brickwork-clevr-scene:{seed}:{index}")
    directions = cam.directions()
    shapes_colors = list(cfg.condition.items()) if cfg.condition else None
    for _attempt in range(1000):
        n = rng.randint(cfg.min_objects, cfg.max_objects)
        placed = _place(rng, n, cfg, directions)
        if placed is None:
            continue
        objects = []
        for x, y, size in placed:
            if shapes_colors is None:
                shape, color = rng.choice(SHAPES), rng.choice(COLORS)
            else:
                shape, colors = rng.choice(shapes_colors)
                color = rng.choice(colors)
            material = rng.choice(("rubber", "metal"))
            rotation = 360.0 * rng.random()
            z = object_extent(shape, size)[1]
            objects.append(SceneObject(color, shape, size, material, (x, y, z), rotation))
        counts, fractions = visible_fractions(objects, *cfg.visibility_size, camera=cam)
        if (counts < cfg.min_visible_pixels).any() or (fractions < cfg.min_visible_fraction).any():
            continue
        return Scene.from_objects(
            objects, image_index=index, split=split, camera=cam, eps=cfg.relation_eps
        )
    raise DataError(
        f"scene {index}: no valid placement of objects found in 1000 attempts "
        f"with {cfg}; loosen min_dist, margin or the visibility limits"
    )


__all__ = [
    "COGENT_A",
    "COGENT_B",
    "Scene",
    "SceneConfig",
    "SceneObject",
    "check_condition",
    "compute_relationships",
    "generate_scene",
    "image_filename",
]
