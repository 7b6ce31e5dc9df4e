"""Canvas tools (painting, and placing keypoints) and the pixel geometry behind the painting ones.

Every function returns a boolean mask of a small box and the box's top-left corner, never a
full-frame mask, so that a brush stroke at 1080p only touches the pixels under the brush.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import cv2
import numpy as np


class Tool(enum.Enum):
    BRUSH = "brush"
    ERASER = "eraser"
    FILL = "fill"
    POLYGON = "polygon"
    ERASE_OBJECT = "erase object"
    KEYPOINT = "keypoint"
    """Click places the selected keypoint, drag moves a point, right-click deletes one."""


TOOL_KEYS = {Tool.BRUSH: "B", Tool.ERASER: "E", Tool.FILL: "F", Tool.POLYGON: "G", Tool.ERASE_OBJECT: "X",
             Tool.KEYPOINT: "M"}
MIN_BRUSH, MAX_BRUSH = 1, 400


def segment_mask(p0: tuple[float, float], p1: tuple[float, float], diameter: int,
                 hw: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Pixels covered by a round brush of ``diameter`` moved from p0 to p1 (x, y image coordinates).

    Returns (mask, (y0, x0)) clipped to the image, or None when it falls outside.
    """
    h, w = hw
    r = max(diameter, 1) / 2.0
    xs, ys = (p0[0], p1[0]), (p0[1], p1[1])
    x0 = max(int(np.floor(min(xs) - r)) - 1, 0)
    y0 = max(int(np.floor(min(ys) - r)) - 1, 0)
    x1 = min(int(np.ceil(max(xs) + r)) + 2, w)
    y1 = min(int(np.ceil(max(ys) + r)) + 2, h)
    if x1 <= x0 or y1 <= y0:
        return None
    # distance of each pixel centre to the segment: exact round caps, no gaps between dabs
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    ax, ay = p0
    dx, dy = p1[0] - ax, p1[1] - ay
    length2 = dx * dx + dy * dy
    if length2 > 0:
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / length2, 0.0, 1.0)
    else:
        t = np.zeros_like(xx)
    px, py = ax + t * dx, ay + t * dy
    mask = (xx - px) ** 2 + (yy - py) ** 2 <= r * r
    if diameter <= 1:  # a 1-pixel brush always paints the pixel under the cursor
        for x, y in (p0, p1):
            ix, iy = int(x), int(y)
            if y0 <= iy < y1 and x0 <= ix < x1:
                mask[iy - y0, ix - x0] = True
    return mask, (y0, x0)


def fill_mask(labels: np.ndarray, point: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The 4-connected region of pixels with the same id as ``point`` (x, y), as (mask, origin)."""
    h, w = labels.shape
    x, y = point
    if not (0 <= x < w and 0 <= y < h):
        return None
    flood = np.zeros((h + 2, w + 2), dtype=np.uint8)  # cv2 wants a writable image: np.array copies
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | cv2.FLOODFILL_FIXED_RANGE | (1 << 8)
    cv2.floodFill(np.array(labels), flood, (int(x), int(y)), 0, 0, 0, flags)
    region = flood[1:-1, 1:-1].astype(bool)
    rows = np.flatnonzero(region.any(axis=1))
    cols = np.flatnonzero(region.any(axis=0))
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return region[y0:y1, x0:x1], (int(y0), int(x0))


def polygon_mask(points: Sequence[tuple[float, float]], hw: tuple[int, int]
                 ) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Pixels inside a closed polygon of (x, y) vertices (pixel centres inside), as (mask, origin)."""
    if len(points) < 3:
        return None
    h, w = hw
    pts = np.asarray(points, dtype=np.float64)
    x0, y0 = max(int(np.floor(pts[:, 0].min())), 0), max(int(np.floor(pts[:, 1].min())), 0)
    x1, y1 = min(int(np.ceil(pts[:, 0].max())) + 1, w), min(int(np.ceil(pts[:, 1].max())) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    shift = 4  # sub-pixel vertices: cv2 takes fixed-point coordinates
    fixed = np.round((pts - [x0 + 0.5, y0 + 0.5]) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=shift)
    return mask.astype(bool), (y0, x0)
