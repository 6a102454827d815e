"""The pinhole camera shared by scene generation and rendering.

The default is CLEVR's Blender camera: at ``(7.36, -6.93, 4.96)`` looking at the
origin (about 26° down), 35 mm lens on a 32 mm sensor (49° horizontal field of view).
Images keep CLEVR's 3:2 aspect ratio; ``pixel_coords`` of scenes are given on CLEVR's
480×320 frame, as in the release.

Example:
    >>> cam = Camera()
    >>> u, v, depth = cam.project([[0.0, 0.0, 0.0]], 480, 320)[0]
    >>> round(float(u)), round(float(v))
    (240, 160)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import final

import numpy as np

#: CLEVR's frame for ``pixel_coords``
CLEVR_WIDTH = 480
CLEVR_HEIGHT = 320


@final
@dataclass(frozen=True)
class Camera:
    """A pinhole camera above the ground plane ``z = 0`` (z is up).

    Attributes:
        location: camera position in world coordinates.
        look_at: the point the optical axis goes through.
        hfov_degrees: horizontal field of view.

    Example:
        >>> Camera().directions()["behind"][2]
        0.0
    """

    location: tuple[float, float, float] = (7.358891, -6.925791, 4.958309)
    look_at: tuple[float, float, float] = (0.0, 0.0, 0.0)
    hfov_degrees: float = 2 * math.degrees(math.atan(16 / 35))
    _basis: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        loc = np.asarray(self.location, dtype=np.float64)
        forward = np.asarray(self.look_at, dtype=np.float64) - loc
        if np.linalg.norm(forward[:2]) < 1e-9 or forward[2] >= 0:
            raise ValueError(
                f"camera at {self.location} must look down at {self.look_at} from above and "
                "not straight down"
            )
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        up = np.cross(right, forward)
        object.__setattr__(self, "_basis", np.stack([right, up, forward]))

    @property
    def right(self) -> np.ndarray:
        return self._basis[0]

    @property
    def up(self) -> np.ndarray:
        return self._basis[1]

    @property
    def forward(self) -> np.ndarray:
        return self._basis[2]

    def focal_pixels(self, width: int) -> float:
        """Focal length in pixels for an image ``width`` pixels wide."""
        return (width / 2) / math.tan(math.radians(self.hfov_degrees) / 2)

    def project(
        self, points: Sequence[Sequence[float]] | np.ndarray, width: int, height: int
    ) -> np.ndarray:
        """Project world points to ``(u, v, depth)`` rows (pixels from the top left)."""
        p = np.asarray(points, dtype=np.float64) - np.asarray(self.location)
        cam = p @ self._basis.T  # (n, 3): right, up, forward
        f = self.focal_pixels(width)
        depth = cam[:, 2]
        u = width / 2 + f * cam[:, 0] / depth
        v = height / 2 - f * cam[:, 1] / depth
        return np.stack([u, v, depth], axis=1)

    def rays(
        self,
        width: int,
        height: int,
        x0: int = 0,
        x1: int | None = None,
        y0: int = 0,
        y1: int | None = None,
    ) -> np.ndarray:
        """Unnormalised ray directions through pixel centres of a window, ``(h, w, 3)``."""
        x1 = width if x1 is None else x1
        y1 = height if y1 is None else y1
        f = self.focal_pixels(width)
        xs = (np.arange(x0, x1) + 0.5 - width / 2) / f
        ys = (np.arange(y0, y1) + 0.5 - height / 2) / f
        return (
            self.forward[None, None, :]
            + xs[None, :, None] * self.right[None, None, :]
            - ys[:, None, None] * self.up[None, None, :]
        )

    def directions(self) -> dict[str, tuple[float, float, float]]:
        """CLEVR's ``directions`` block: unit vectors on the ground plane, plus above/below."""
        behind = self.forward.copy()
        behind[2] = 0.0
        behind /= np.linalg.norm(behind)
        right = self.right.copy()
        right[2] = 0.0
        right /= np.linalg.norm(right)

        def t(v: np.ndarray) -> tuple[float, float, float]:
            return (float(v[0]) + 0.0, float(v[1]) + 0.0, float(v[2]) + 0.0)

        return {
            "behind": t(behind),
            "front": t(-behind),
            "right": t(right),
            "left": t(-right),
            "above": (0.0, 0.0, 1.0),
            "below": (0.0, 0.0, -1.0),
        }


__all__ = ["CLEVR_HEIGHT", "CLEVR_WIDTH", "Camera"]
