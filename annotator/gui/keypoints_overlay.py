"""Keypoints drawn over the frame: a small coloured circle and the name of each point.

Reference points (placed by a person) are filled discs; propagated points are hollow rings whose
opacity follows their confidence, so a point the engine lost fades out instead of looking as sure
as a placed one. Markers keep their size on screen at any zoom (they ignore the view's scale);
their position is in scene coordinates, where pixel (i, j) spans i..i+1, so a point at image
coordinate x (pixel centres at integers) sits at scene x + 0.5.
"""

from __future__ import annotations

from collections.abc import Mapping

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsItem, QStyleOptionGraphicsItem, QWidget

from annotator.core.model.annotation import FramePoints, KeypointInfo
from annotator.core.model.points import Point

MARKER_RADIUS = 5.0  # screen pixels
MIN_OPACITY = 0.25  # a propagated point of confidence 0 stays findable


def scene_from_point(point: Point) -> QPointF:
    """Scene position of an image point (pixel centres at integers in the image, at +0.5 in the scene)."""
    return QPointF(point[0] + 0.5, point[1] + 0.5)


def point_from_scene(pos: QPointF) -> Point:
    return pos.x() - 0.5, pos.y() - 0.5


def marker_opacity(confidence: float, reference: bool) -> float:
    """1 for a reference; for a propagated point, from MIN_OPACITY (confidence 0) to 1 (as sharp as placed)."""
    if reference:
        return 1.0
    return MIN_OPACITY + (1.0 - MIN_OPACITY) * min(max(confidence, 0.0), 1.0)


class PointMarker(QGraphicsItem):
    """One keypoint: disc (reference) or ring (propagated), its name beside it, a halo when selected."""

    def __init__(self, keypoint: KeypointInfo, reference: bool, confidence: float, selected: bool,
                 parent: QGraphicsItem | None = None) -> None:
        super().__init__(parent)
        self.keypoint = keypoint
        self.reference = reference
        self.confidence = confidence
        self.selected = selected
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setOpacity(marker_opacity(confidence, reference))
        self._font = QFont()
        self._font.setPointSizeF(8.5)
        self._font.setBold(selected)
        # the confidence goes in the tooltip: beside close points, longer labels would overlap
        self._label = keypoint.name
        self.setToolTip(f"{keypoint.name}: placed" if reference else f"{keypoint.name}: propagated, "
                        f"confidence {confidence:.0%}")
        metrics = QFontMetricsF(self._font)
        self._label_pos = QPointF(MARKER_RADIUS + 4, metrics.ascent() / 2 - 1)
        width = metrics.horizontalAdvance(self._label)
        r = MARKER_RADIUS + 5
        self._bounds = QRectF(-r, -max(r, metrics.height()), r + self._label_pos.x() + width + 4,
                              2 * max(r, metrics.height()))

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._bounds

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        color = QColor(*self.keypoint.color)
        r = MARKER_RADIUS
        if self.selected:
            painter.setPen(QPen(QColor(255, 255, 255), 1.5, Qt.PenStyle.DotLine))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(QPointF(0, 0), r + 4, r + 4)
        if self.reference:
            painter.setPen(QPen(QColor(255, 255, 255), 1.5))
            painter.setBrush(QBrush(color))
            painter.drawEllipse(QPointF(0, 0), r, r)
        else:
            # a dark rim under the coloured ring keeps it visible on bright frames
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(QColor(0, 0, 0, 200), 4.5))
            painter.drawEllipse(QPointF(0, 0), r, r)
            painter.setPen(QPen(color, 2.5))
            painter.drawEllipse(QPointF(0, 0), r, r)
        # the name with a dark halo: readable on any frame
        path = QPainterPath()
        path.addText(self._label_pos, self._font, self._label)
        painter.setPen(QPen(QColor(0, 0, 0, 190), 3.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                            Qt.PenJoinStyle.RoundJoin))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(color.lighter(130)))
        painter.drawPath(path)


class KeypointsLayer(QGraphicsItem):
    """The markers of the shown frame (a parent item: hiding it hides them all); draws nothing itself."""

    def __init__(self) -> None:
        super().__init__()
        self.markers: dict[int, PointMarker] = {}

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return QRectF()

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        pass

    def show_points(self, frame_points: FramePoints | None, keypoints: Mapping[int, KeypointInfo],
                    selected: int | None) -> None:
        """Replace the markers by those of ``frame_points`` (a frame holds a handful: rebuilding is cheap)."""
        scene = self.scene()
        for marker in self.markers.values():
            marker.setParentItem(None)
            if scene is not None:
                scene.removeItem(marker)
        self.markers = {}
        if frame_points is None:
            return
        for keypoint_id, point in sorted(frame_points.points.items()):
            info = keypoints.get(keypoint_id)
            if info is None:  # its name is being removed (an undo in progress): nothing to label it with
                continue
            marker = PointMarker(info, frame_points.reference, frame_points.confidence_of(keypoint_id),
                                 keypoint_id == selected, parent=self)
            marker.setPos(scene_from_point(point))
            marker.setZValue(2 if keypoint_id == selected else 1)
            self.markers[keypoint_id] = marker
