"""The label overlay drawn over the frame: an RGBA image of the label map, updated region by region.

The overlay keeps one (H, W, 4) ``uint8`` buffer at the original resolution and a `QImage` that
shares its memory. A brush dab changes a few hundred pixels, so only the dirty box is re-rendered
(look-up table from ids to colours, plus the outline test in outline mode) and only that box of
the scene is repainted: the overlay is never rebuilt as a whole during painting, which keeps
painting smooth at 1080p.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from annotator.core.model.annotation import ObjectInfo
from annotator.core.io.labels import DAVIS_PALETTE, VOID

Box = tuple[int, int, int, int]


def color_table(objects: Iterable[ObjectInfo]) -> np.ndarray:
    """(256, 4) uint8 RGBA per id: object colours opaque (transparent when hidden), background clear."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[:, :3] = DAVIS_PALETTE
    lut[1:VOID, 3] = 255  # ids without an object entry still show, in their palette colour
    for obj in objects:
        lut[obj.id, :3] = obj.color
        lut[obj.id, 3] = 255 if obj.visible else 0
    lut[VOID] = (255, 255, 255, 110)
    return lut


def render_box(labels: np.ndarray, box: Box, lut: np.ndarray, outline: bool) -> np.ndarray:
    """RGBA pixels (h, w, 4) of ``labels`` inside ``box``; in outline mode only object borders show."""
    y0, x0, y1, x1 = box
    if not outline:
        return lut[labels[y0:y1, x0:x1]]
    h, w = labels.shape
    # one pixel of margin so that the border test sees the neighbours outside the box
    ey0, ex0, ey1, ex1 = max(y0 - 1, 0), max(x0 - 1, 0), min(y1 + 1, h), min(x1 + 1, w)
    region = labels[ey0:ey1, ex0:ex1]
    border = np.zeros(region.shape, dtype=bool)
    vertical = region[1:, :] != region[:-1, :]
    horizontal = region[:, 1:] != region[:, :-1]
    border[1:, :] |= vertical
    border[:-1, :] |= vertical
    border[:, 1:] |= horizontal
    border[:, :-1] |= horizontal
    border = border[y0 - ey0:y0 - ey0 + (y1 - y0), x0 - ex0:x0 - ex0 + (x1 - x0)]
    rgba = lut[labels[y0:y1, x0:x1]].copy()
    rgba[..., 3] = np.where(border & (labels[y0:y1, x0:x1] != 0), rgba[..., 3], 0)
    return rgba


class OverlayItem(QGraphicsItem):
    """A scene item showing the RGBA overlay buffer; repaints only what was marked dirty."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)
        self._buffer = np.zeros((1, 1, 4), dtype=np.uint8)
        self._image = QImage()
        self._labels: np.ndarray | None = None
        self.lut = color_table(())
        self.outline = False

    @property
    def buffer(self) -> np.ndarray:
        """The (H, W, 4) RGBA pixels currently shown (tests read it)."""
        return self._buffer

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        h, w = self._buffer.shape[:2]
        return QRectF(0, 0, w, h)

    def set_labels(self, labels: np.ndarray) -> None:
        """Show a new label map (a new frame): one full render, then box updates."""
        h, w = labels.shape
        if self._buffer.shape[:2] != (h, w):
            self.prepareGeometryChange()
            self._buffer = np.zeros((h, w, 4), dtype=np.uint8)
            # the QImage shares the buffer's memory: keep both alive together
            self._image = QImage(self._buffer.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self._labels = labels
        self._buffer[...] = render_box(labels, (0, 0, h, w), self.lut, self.outline)
        self.update()

    def refresh(self, labels: np.ndarray | None = None, box: Box | None = None) -> None:
        """Re-render ``box`` (None = everything) of ``labels`` (None = the label map shown)."""
        if labels is not None:
            self._labels = labels
        if self._labels is None:
            return
        h, w = self._labels.shape
        if self._buffer.shape[:2] != (h, w):
            self.set_labels(self._labels)
            return
        if box is None:
            box = (0, 0, h, w)
        if self.outline:  # the border of the pixels just outside the box may change too
            box = (max(box[0] - 1, 0), max(box[1] - 1, 0), min(box[2] + 1, h), min(box[3] + 1, w))
        y0, x0, y1, x1 = box
        self._buffer[y0:y1, x0:x1] = render_box(self._labels, box, self.lut, self.outline)
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem,
              widget: QWidget | None = None) -> None:
        if self._image.isNull():
            return
        exposed = option.exposedRect.intersected(self.boundingRect())
        if exposed.isEmpty():
            return
        # whole pixels only, so that zoomed-in pixels are drawn as crisp squares
        src = exposed.toAlignedRect().intersected(self._image.rect())
        painter.drawImage(QRectF(src), self._image, QRectF(src))
