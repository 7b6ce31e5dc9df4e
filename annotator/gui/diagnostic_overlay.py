"""Diagnostic layers over the canvas and the timeline: error map, confidence heat map, split view,
and the per-frame uncertainty curve.

:class:`DiagnosticLayer` is one more scene item on the canvas, drawn above the label overlay; it
shows one of the :class:`DiagnosticMode` renderings of the current frame. :class:`UncertaintyStrip`
is a thin curve of the per-frame uncertainty, a row of the timeline under its state strip that puts
each frame at the same x as the other rows (its label and button sit beside it, not in it); clicking
it seeks. Both only display arrays they are given (the diagnostics controller computes them).
"""

from __future__ import annotations

import enum

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from annotator.core.analysis.diagnostics import ErrorKind
from annotator.gui.timeline import FrameLane

ERROR_COLORS = {
    ErrorKind.FALSE_POSITIVE: (255, 60, 60, 200),  # red: object where there is none
    ErrorKind.FALSE_NEGATIVE: (40, 140, 255, 200),  # blue: object missed
    ErrorKind.WRONG_OBJECT: (255, 220, 0, 220),  # yellow: another object's label
    ErrorKind.VOID: (255, 255, 255, 60),
}


class DiagnosticMode(enum.Enum):
    OFF = "off"
    ERRORS = "errors"
    CONFIDENCE = "confidence"
    SPLIT = "split"
    """Left of the divider the result (the normal overlay), right of it the ground truth."""


def error_rgba(errors: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 of an error map: correct pixels clear, each error kind in its colour."""
    lut = np.zeros((256, 4), np.uint8)
    for kind, rgba in ERROR_COLORS.items():
        lut[int(kind)] = rgba
    return lut[errors]


def confidence_rgba(confidence: np.ndarray, max_alpha: int = 200) -> np.ndarray:
    """(H, W, 4) uint8 heat map: undecided pixels opaque red-yellow, certain ones clear."""
    doubt = np.clip(1.0 - confidence.astype(np.float32), 0.0, 1.0)
    rgba = np.empty(confidence.shape + (4,), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 1] = (255 * np.clip(1.0 - doubt, 0, 1) ** 0.5).astype(np.uint8)  # red when 0, yellow when ~1
    rgba[..., 2] = 0
    # sqrt: a margin of 0.75 is already worth seeing
    rgba[..., 3] = (max_alpha * np.sqrt(doubt)).astype(np.uint8)
    return rgba


def split_rgba(frame_rgb: np.ndarray, gt_rgb: np.ndarray, gt_labels: np.ndarray, split_x: int,
               opacity: float = 0.55) -> np.ndarray:
    """(H, W, 4): right of ``split_x`` the frame with the ground truth blended in (opaque), left clear."""
    h, w = gt_labels.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    x = max(0, min(w, int(split_x)))
    if x < w:
        frame = frame_rgb[:, x:].astype(np.float32)
        colour = gt_rgb[:, x:].astype(np.float32)
        obj = ((gt_labels[:, x:] != 0)[..., None]).astype(np.float32) * opacity
        rgba[:, x:, :3] = (frame * (1 - obj) + colour * obj).astype(np.uint8)
        rgba[:, x:, 3] = 255
        rgba[:, x: x + 2, :3] = 255  # the divider
    return rgba


class DiagnosticLayer(QGraphicsItem):
    """A scene item showing an RGBA image over the whole frame (no interaction)."""

    def __init__(self, parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self._rgba = np.zeros((1, 1, 4), np.uint8)
        self._image = QImage()
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)

    @property
    def rgba(self) -> np.ndarray:
        """The (H, W, 4) pixels shown (tests read it)."""
        return self._rgba

    def set_rgba(self, rgba: np.ndarray | None) -> None:
        if rgba is None:
            rgba = np.zeros((1, 1, 4), np.uint8)
        rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
        if rgba.shape[:2] != self._rgba.shape[:2]:
            self.prepareGeometryChange()
        self._rgba = rgba
        h, w = rgba.shape[:2]
        # the QImage shares the array's memory: both are replaced together
        self._image = QImage(self._rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
        self.update()

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        h, w = self._rgba.shape[:2]
        return QRectF(0, 0, w, h)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self._image.isNull() and self._rgba.shape[0] > 1:
            painter.drawImage(QPointF(0, 0), self._image)


UNCERTAINTY_LABEL = "uncertainty"
"""The name of the row, shown on its right (the diagnostics put it there)."""


class UncertaintyStrip(FrameLane):
    """Per-frame uncertainty as a filled curve, references as gaps; click to seek."""

    seek = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumHeight(22)
        self.setMaximumHeight(22)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Uncertainty of each propagated frame (estimated 1 - J from the soft labels); "
                        "the marker is the suggested frame to correct (C)")
        self.values: np.ndarray = np.zeros(0)
        self.current = -1
        self.suggested: int | None = None

    def set_values(self, values: np.ndarray, suggested: int | None = None) -> None:
        """(frames,) uncertainty, NaN where there is none (references, frames not propagated)."""
        self.values = np.asarray(values, dtype=np.float64)
        self.suggested = suggested
        self.update()

    def set_current(self, frame: int) -> None:
        self.current = frame
        self.update()

    def frame_count(self) -> int:
        return len(self.values)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if len(self.values):
            self.seek.emit(self.frame_at(event.position().x()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, QColor(32, 32, 34))
        n = len(self.values)
        if n:
            finite = self.values[np.isfinite(self.values)]
            top = max(float(finite.max()) if finite.size else 0.0, 1e-6)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            run: list[QPointF] = []
            for i in range(n + 1):
                v = self.values[i] if i < n else float("nan")
                if np.isfinite(v):
                    run.append(QPointF(self.frame_centre(i), h - 1 - (h - 3) * float(v) / top))
                elif run:
                    poly = QPolygonF([QPointF(run[0].x(), h), *run, QPointF(run[-1].x(), h)])
                    p.setPen(Qt.PenStyle.NoPen)
                    p.setBrush(QColor(255, 140, 0, 110))
                    p.drawPolygon(poly)
                    p.setPen(QPen(QColor(255, 170, 40), 1.2))
                    p.drawPolyline(QPolygonF(run))
                    run = []
            if self.suggested is not None and 0 <= self.suggested < n:
                x = self.frame_centre(self.suggested)
                p.setPen(QPen(QColor(255, 80, 220), 3))
                p.drawLine(QPointF(x, 0), QPointF(x, h))
            if 0 <= self.current < n:
                x = self.frame_centre(self.current)
                p.fillRect(QRectF(x - 1, 0, 2, h), QColor(255, 255, 255))
        p.end()
