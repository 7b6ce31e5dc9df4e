"""Keypoint geometry shared by the annotation model and the propagation engine.

A point is ``(x, y)`` in pixels of the original video with pixel centres at integers, so the
first pixel spans -0.5..0.5. The model refuses a point outside the frame with the same rule the
engine applies when it draws heat-maps; keeping the rule here keeps the two from disagreeing.
Light on purpose (no torch): the project files and the command line's export import it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from annotator.core.errors import UsageError, size_text

Point = tuple[float, float]
"""(x, y) in pixels of the original video, pixel centres at integers."""
Keypoints = Mapping[int, Point]
"""The points of one frame: point id -> (x, y)."""


def point_inside(point: Point, image_hw: tuple[int, int]) -> bool:
    """Whether ``point`` lies on the frame (its edge pixels included up to their outer edge)."""
    x, y = point
    h, w = image_hw
    return math.isfinite(x) and math.isfinite(y) and -0.5 <= x <= w - 0.5 and -0.5 <= y <= h - 0.5


def check_point_inside(what: str, point: Point, image_hw: tuple[int, int]) -> None:
    """`UsageError` naming ``what`` (e.g. "keypoint 3") when ``point`` is off the frame."""
    if not point_inside(point, image_hw):
        raise UsageError(f"{what} at ({point[0]:.1f}, {point[1]:.1f}) is outside the {size_text(image_hw)} frame")


def clamp_to_frame(point: Point, image_hw: tuple[int, int]) -> Point:
    """The nearest point on the frame (a drag that leaves the image keeps the point on its edge)."""
    h, w = image_hw
    return min(max(point[0], -0.5), w - 0.5), min(max(point[1], -0.5), h - 0.5)
