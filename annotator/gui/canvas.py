"""The canvas: the current frame with its label overlay and keypoints, zoom and pan, and the tools.

The canvas listens to the model (current frame, labels, objects, keypoints) and writes back only
through the model's setters, recording each action in the model's history: a stroke, and a
keypoint placed or dragged, is one transaction from mouse press to release, aborted if the view
loses the mouse in between.
Scene coordinates are image pixels of the original resolution.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QTransform, QKeyEvent, QMouseEvent, QPainter, QPainterPath, QPen, QPixmap, QWheelEvent
from PySide6.QtWidgets import (QFrame, QGraphicsEllipseItem, QGraphicsPathItem, QGraphicsPixmapItem,
                               QGraphicsScene, QGraphicsView, QWidget)

from annotator.core.model.annotation import AnnotationModel
from annotator.core.errors import VideoError
from annotator.core.model.points import clamp_to_frame
from annotator.core.model.undo import Transaction
from annotator.gui.keypoints_overlay import KeypointsLayer, point_from_scene, scene_from_point
from annotator.gui.overlay import OverlayItem, color_table
from annotator.gui.tools import MAX_BRUSH, MIN_BRUSH, Tool, fill_mask, polygon_mask, segment_mask

ZOOM_STEP = 1.25
MIN_ZOOM, MAX_ZOOM = 0.05, 64.0
POINT_HIT_RADIUS = 9.0  # screen pixels: a point is grabbed within this distance of its centre


# A double-click closes a polygon only on its last point (within this many screen pixels); a fast
# second click elsewhere is one more point (clicks 80 ms apart used to close the polygon).
POLYGON_CLOSE_SLOP_PX = 4


class Canvas(QGraphicsView):
    """Frame + overlay + keypoints view with brush, eraser, fill, polygon, erase-object and keypoint tools."""

    tool_changed = Signal(object)
    brush_size_changed = Signal(int)
    zoom_changed = Signal(float)
    cursor_moved = Signal(int, int, int)  # x, y, id under the cursor (-1 outside the image)
    message = Signal(str)
    frame_unreadable = Signal(int, str)  # frame, one-line reason (the frame shows as grey)

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setScene(QGraphicsScene(self))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setBackgroundBrush(QColor(38, 38, 40))
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        # pan with the middle button or space+drag; scroll bars would only take room
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.MinimalViewportUpdate)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(False)  # the main window takes dropped files

        self._frame_item = QGraphicsPixmapItem()
        self._frame_item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay = OverlayItem()
        self._overlay.setOpacity(0.55)
        self._cursor_item = QGraphicsEllipseItem()
        self._cursor_item.setPen(QPen(QColor(255, 255, 255, 220), 0))
        self._cursor_item.setVisible(False)
        self._poly_item = QGraphicsPathItem()
        self._poly_item.setPen(QPen(QColor(255, 255, 0), 0, Qt.PenStyle.DashLine))
        self._keypoints_layer = KeypointsLayer()
        for z, item in enumerate((self._frame_item, self._overlay, self._poly_item, self._keypoints_layer,
                                  self._cursor_item)):
            item.setZValue(z)
            self.scene().addItem(item)

        self.tool = Tool.BRUSH
        self.brush_size = 15
        self._shown_frame = -1
        self._stroke: Transaction | None = None
        self._stroke_value = 0
        self._last_point: tuple[float, float] | None = None
        self._panning = False
        self._space_down = False
        self._pan_last = QPointF()
        self._polygon: list[tuple[float, float]] = []
        self._drag: Transaction | None = None  # a keypoint being placed or moved
        self._drag_point: int | None = None
        self._drag_placed_new = False
        self._fit_on_show = True
        self.viewport().setCursor(Qt.CursorShape.CrossCursor)

        ev = model.events
        ev.video_changed.connect(self._on_video_changed)
        ev.current_frame_changed.connect(lambda f: self.show_frame(f))
        ev.labels_changed.connect(self._on_labels_changed)
        ev.objects_changed.connect(self._on_objects_changed)
        ev.points_changed.connect(lambda f: self.refresh_points() if f == self._shown_frame else None)
        ev.keypoints_changed.connect(self.refresh_points)
        ev.active_keypoint_changed.connect(lambda _k: self.refresh_points())

    # ---- display -------------------------------------------------------------------------------

    @property
    def overlay(self) -> OverlayItem:
        return self._overlay

    @property
    def keypoints_layer(self) -> KeypointsLayer:
        return self._keypoints_layer

    def show_frame(self, frame: int, force: bool = False) -> None:
        """Display ``frame`` of the model's video with its labels."""
        if self.model.video is None or (frame == self._shown_frame and not force):
            return
        self._end_stroke(commit=True)
        self._end_drag(commit=True)
        self._cancel_polygon()
        try:
            rgb = np.ascontiguousarray(self.model.video.frame(frame))
        except VideoError as exc:
            # grey, not the previous picture: its labels must not look like they belong to it
            rgb = np.full((*self.model.hw, 3), 64, np.uint8)
            self.frame_unreadable.emit(frame, str(exc))
        h, w = rgb.shape[:2]
        image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
        self._frame_item.setPixmap(QPixmap.fromImage(image))  # fromImage copies: rgb may go
        self._overlay.set_labels(self.model.labels(frame))
        self._shown_frame = frame
        self.refresh_points()
        # room around the image so that any part of it can be panned to the centre
        margin = max(w, h)
        self.scene().setSceneRect(QRectF(-margin, -margin, w + 2 * margin, h + 2 * margin))

    def _on_video_changed(self) -> None:
        self._shown_frame = -1
        self._overlay.lut = color_table(self.model.objects)
        if self.model.video is not None:
            self.show_frame(self.model.current_frame, force=True)
            self.fit_to_window()

    def _on_labels_changed(self, frame: int, box) -> None:
        if frame == self._shown_frame:
            self._overlay.refresh(self.model.labels(frame), box)

    def _on_objects_changed(self) -> None:
        self._overlay.lut = color_table(self.model.objects)
        self._overlay.refresh()

    def refresh_points(self) -> None:
        """Redraw the keypoints of the shown frame."""
        m = self.model
        if m.video is None or not 0 <= self._shown_frame < m.num_frames:
            self._keypoints_layer.show_points(None, {}, None)
            return
        self._keypoints_layer.show_points(m.frame_points(self._shown_frame), {k.id: k for k in m.keypoints},
                                          m.active_keypoint)

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay.setOpacity(max(0.0, min(1.0, opacity)))

    def overlay_opacity(self) -> float:
        return self._overlay.opacity()

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay.setVisible(visible)

    def set_outline(self, outline: bool) -> None:
        self._overlay.outline = outline
        self._overlay.refresh()

    # ---- zoom and pan -----------------------------------------------------------------------

    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, factor: float, anchor: QPointF | None = None) -> None:
        """Scale to ``factor`` screen pixels per image pixel, keeping ``anchor`` (view coords) fixed."""
        factor = max(MIN_ZOOM, min(MAX_ZOOM, factor))
        self._fit_on_show = False
        if anchor is None:
            anchor = QPointF(self.viewport().rect().center())
        before = self.mapToScene(anchor.toPoint())
        self.setTransform(QTransform.fromScale(factor, factor))
        delta = QPointF(self.mapFromScene(before)) - anchor
        self.horizontalScrollBar().setValue(round(self.horizontalScrollBar().value() + delta.x()))
        self.verticalScrollBar().setValue(round(self.verticalScrollBar().value() + delta.y()))
        self._update_cursor_item()
        self.zoom_changed.emit(self.zoom())

    def image_rect(self) -> QRectF:
        return self._frame_item.boundingRect()

    def fit_to_window(self) -> None:
        rect = self.image_rect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_on_show = True
        self.zoom_changed.emit(self.zoom())

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def zoom_in(self) -> None:
        self.set_zoom(self.zoom() * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.zoom() / ZOOM_STEP)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom() * ZOOM_STEP ** steps, event.position())
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._fit_on_show:
            self.fit_to_window()

    # ---- tools -------------------------------------------------------------------------------

    def set_tool(self, tool: Tool) -> None:
        if tool is not self.tool:
            self._end_stroke(commit=True)
            self._end_drag(commit=True)
            self._cancel_polygon()
            self.tool = tool
            self._update_cursor_item()
            self.tool_changed.emit(tool)

    def set_brush_size(self, size: int) -> None:
        size = max(MIN_BRUSH, min(MAX_BRUSH, int(size)))
        if size != self.brush_size:
            self.brush_size = size
            self._update_cursor_item()
            self.brush_size_changed.emit(size)

    def grow_brush(self) -> None:
        self.set_brush_size(self.brush_size + max(1, self.brush_size // 5))

    def shrink_brush(self) -> None:
        self.set_brush_size(self.brush_size - max(1, self.brush_size // 6))

    def _active_id(self) -> int:
        """The object to paint with, creating object 1 when there is none yet (one undo step)."""
        if self.model.active_object is None:
            self.model.history.push("Add object", [self.model.add_object()])
        return int(self.model.active_object)

    def _image_point(self, view_pos: QPointF) -> tuple[float, float]:
        p = self.mapToScene(view_pos.toPoint())
        return p.x(), p.y()

    def _inside(self, x: float, y: float) -> bool:
        h, w = self.model.hw
        return 0 <= x < w and 0 <= y < h

    def _paint_segment(self, p0: tuple[float, float], p1: tuple[float, float]) -> None:
        got = segment_mask(p0, p1, self.brush_size, self.model.hw)
        if got is None or self._stroke is None:
            return
        mask, origin = got
        self._stroke.add(self.model.paint(self._shown_frame, mask, self._stroke_value, origin=origin))

    def _begin_stroke(self, point: tuple[float, float], erase: bool) -> None:
        value = 0 if erase else self._active_id()
        self._stroke = self.model.history.begin("Erase" if erase else "Brush")
        self._stroke_value = value
        self._last_point = point
        self._paint_segment(point, point)

    def _end_stroke(self, commit: bool) -> None:
        if self._stroke is None:
            return
        txn, self._stroke = self._stroke, None
        self._last_point = None
        if commit:
            self.model.history.commit(txn)
        else:
            self.model.history.abort(txn)

    def _fill(self, x: float, y: float) -> None:
        value = self._active_id()
        got = fill_mask(np.asarray(self.model.labels(self._shown_frame)), (int(x), int(y)))
        if got is not None:
            mask, origin = got
            self.model.history.push("Fill", [self.model.paint(self._shown_frame, mask, value, origin=origin)])

    def _erase_object_at(self, x: float, y: float) -> None:
        labels = self.model.labels(self._shown_frame)
        target = int(labels[int(y), int(x)])
        if target == 0:
            self.message.emit("No object under the cursor to erase")
            return
        self.model.history.push("Erase object", [self.model.paint(self._shown_frame, labels == target, 0)])

    def erase_active_object(self) -> None:
        """Erase the active object from the shown frame (one undo step)."""
        active = self.model.active_object
        if active is None or self._shown_frame < 0:
            return
        labels = self.model.labels(self._shown_frame)
        self.model.history.push("Erase object", [self.model.paint(self._shown_frame, labels == active, 0)])

    # ---- keypoints -------------------------------------------------------------------------------

    def point_at(self, view_pos: QPointF) -> int | None:
        """The keypoint of the shown frame nearest ``view_pos`` within POINT_HIT_RADIUS screen pixels."""
        fp = self.model.frame_points(self._shown_frame) if self._shown_frame >= 0 else None
        if fp is None:
            return None
        best, best_d2 = None, POINT_HIT_RADIUS ** 2
        for keypoint_id, point in fp.points.items():
            d = QPointF(self.mapFromScene(scene_from_point(point))) - view_pos
            d2 = d.x() ** 2 + d.y() ** 2
            if d2 <= best_d2:
                best, best_d2 = keypoint_id, d2
        return best

    def _active_keypoint_id(self) -> int:
        """The keypoint a click places, creating the first one when there is none yet (one undo step)."""
        if self.model.active_keypoint is None:
            self.model.history.push("Add keypoint", [self.model.add_keypoint()])
        return int(self.model.active_keypoint)

    def _press_keypoint(self, view_pos: QPointF, button: Qt.MouseButton) -> None:
        m, frame = self.model, self._shown_frame
        hit = self.point_at(view_pos)
        if button == Qt.MouseButton.RightButton:
            if hit is not None:
                m.history.push(f"Delete {m.keypoint(hit).name}", [m.delete_point(frame, hit)])
            return
        point = point_from_scene(self.mapToScene(view_pos.toPoint()))
        if hit is None and not self._inside(point[0] + 0.5, point[1] + 0.5):
            return
        keypoint_id = hit if hit is not None else self._active_keypoint_id()
        m.set_active_keypoint(keypoint_id)
        name = m.keypoint(keypoint_id).name
        self._drag = m.history.begin(f"Move {name}" if hit is not None else f"Place {name}")
        self._drag_point = keypoint_id
        fp = m.frame_points(frame)
        self._drag_placed_new = fp is None or keypoint_id not in fp.points
        if hit is None:
            self._drag.add(m.place_point(frame, keypoint_id, point))

    def _move_keypoint(self, view_pos: QPointF) -> None:
        if self._drag is None or self._drag_point is None:
            return
        point = clamp_to_frame(point_from_scene(self.mapToScene(view_pos.toPoint())), self.model.hw)
        self._drag.add(self.model.place_point(self._shown_frame, self._drag_point, point))

    def _end_drag(self, commit: bool) -> None:
        if self._drag is None:
            return
        txn, self._drag = self._drag, None
        placed_new, self._drag_placed_new = self._drag_placed_new, False
        self._drag_point = None
        if not commit:
            self.model.history.abort(txn)
            return
        self.model.history.commit(txn)
        if placed_new:
            self._select_next_unplaced_keypoint()

    def _select_next_unplaced_keypoint(self) -> None:
        """After placing a point, the next keypoint not yet on this frame: a pose is placed click after click."""
        m = self.model
        fp = m.frame_points(self._shown_frame)
        placed = set(fp.points) if fp is not None else set()
        ids = [k.id for k in m.keypoints]
        current = m.active_keypoint
        after = [i for i in ids if current is None or i > current] + [i for i in ids if current is not None and i < current]
        nxt = next((i for i in after if i not in placed), None)
        if nxt is not None:
            m.set_active_keypoint(nxt)

    def delete_active_point(self) -> None:
        """Delete the selected keypoint from the shown frame (one undo step)."""
        m = self.model
        keypoint_id = m.active_keypoint
        if keypoint_id is None or self._shown_frame < 0:
            return
        change = m.delete_point(self._shown_frame, keypoint_id)
        if change is None:
            self.message.emit(f"{m.keypoint(keypoint_id).name} is not on this frame")
            return
        m.history.push(f"Delete {m.keypoint(keypoint_id).name}", [change])

    # ---- polygon ---------------------------------------------------------------------------------

    def _add_polygon_point(self, x: float, y: float) -> None:
        self._polygon.append((x, y))
        self._update_polygon_item()

    def _update_polygon_item(self, hover: tuple[float, float] | None = None) -> None:
        path = QPainterPath()
        if self._polygon:
            path.moveTo(*self._polygon[0])
            for p in self._polygon[1:]:
                path.lineTo(*p)
            if hover is not None:
                path.lineTo(*hover)
        self._poly_item.setPath(path)

    def close_polygon(self) -> None:
        """Fill the polygon drawn so far with the active object (needs 3 points)."""
        points, self._polygon = self._polygon, []
        self._update_polygon_item()
        got = polygon_mask(points, self.model.hw)
        if got is not None:
            mask, origin = got
            value = self._active_id()
            self.model.history.push("Polygon", [self.model.paint(self._shown_frame, mask, value, origin=origin)])

    def cancel_interaction(self) -> bool:
        """Abort the stroke, polygon or keypoint drag in progress (Esc); False when there was none."""
        busy = bool(self._polygon) or self._stroke is not None or self._drag is not None
        self._cancel_polygon()
        self._end_stroke(commit=False)
        self._end_drag(commit=False)
        return busy

    def _cancel_polygon(self) -> None:
        if self._polygon:
            self._polygon = []
            self._update_polygon_item()

    @property
    def polygon_points(self) -> list[tuple[float, float]]:
        return list(self._polygon)

    # ---- mouse and keys -------------------------------------------------------------------------

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        button = event.button()
        if button == Qt.MouseButton.MiddleButton or (button == Qt.MouseButton.LeftButton and self._space_down):
            self._panning = True
            self._pan_last = event.position()
            self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
            event.accept()
            return
        if self.model.video is None or self._shown_frame < 0:
            return
        x, y = self._image_point(event.position())
        tool = self.tool
        if tool is Tool.KEYPOINT and button in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            self._press_keypoint(event.position(), button)
        elif button == Qt.MouseButton.LeftButton or (button == Qt.MouseButton.RightButton and tool is Tool.BRUSH):
            if tool in (Tool.BRUSH, Tool.ERASER):
                erase = tool is Tool.ERASER or button == Qt.MouseButton.RightButton
                self._begin_stroke((x, y), erase)
            elif not self._inside(x, y):
                pass
            elif tool is Tool.FILL:
                self._fill(x, y)
            elif tool is Tool.POLYGON:
                self._add_polygon_point(x, y)
            elif tool is Tool.ERASE_OBJECT:
                self._erase_object_at(x, y)
        elif button == Qt.MouseButton.RightButton and tool is Tool.POLYGON:
            self.close_polygon()
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._panning:
            delta = event.position() - self._pan_last
            self._pan_last = event.position()
            self.horizontalScrollBar().setValue(int(self.horizontalScrollBar().value() - delta.x()))
            self.verticalScrollBar().setValue(int(self.verticalScrollBar().value() - delta.y()))
            self._fit_on_show = False
            event.accept()
            return
        x, y = self._image_point(event.position())
        self._update_cursor_item((x, y))
        if self._stroke is not None and self._last_point is not None:
            self._paint_segment(self._last_point, (x, y))
            self._last_point = (x, y)
        elif self._drag is not None:
            self._move_keypoint(event.position())
        elif self._polygon:
            self._update_polygon_item((x, y))
        if self.model.video is not None and self._inside(x, y):
            self.cursor_moved.emit(int(x), int(y), int(self.model.labels(self._shown_frame)[int(y), int(x)]))
        else:
            self.cursor_moved.emit(int(x), int(y), -1)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._panning and event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            self._panning = False
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor if self._space_down else Qt.CursorShape.CrossCursor)
        elif self._stroke is not None:
            self._end_stroke(commit=True)
        elif self._drag is not None:
            self._end_drag(commit=True)
        event.accept()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if (self.tool is Tool.POLYGON and event.button() == Qt.MouseButton.LeftButton and self._polygon
                and self._near_last_polygon_point(event.position())):
            self.close_polygon()
            event.accept()
            return
        # quick clicks at different places (placing a polygon fast) are presses, not a double-click
        self.mousePressEvent(event)

    def _near_last_polygon_point(self, position: QPointF) -> bool:
        last = self.mapFromScene(QPointF(*self._polygon[-1]))
        return abs(last.x() - position.x()) + abs(last.y() - position.y()) <= POLYGON_CLOSE_SLOP_PX

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._cursor_item.setVisible(False)
        super().leaveEvent(event)

    def focusOutEvent(self, event) -> None:  # noqa: N802 - Qt API
        self._space_down = False
        super().focusOutEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        key = event.key()
        if key == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self.viewport().setCursor(Qt.CursorShape.OpenHandCursor)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._polygon:
            self.close_polygon()
        elif key == Qt.Key.Key_Escape and (self._polygon or self._stroke is not None or self._drag is not None):
            self.cancel_interaction()
        elif key == Qt.Key.Key_Backspace and self._polygon:
            self._polygon.pop()
            self._update_polygon_item()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def keyReleaseEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            event.accept()
            return
        super().keyReleaseEvent(event)

    def _update_cursor_item(self, point: tuple[float, float] | None = None) -> None:
        show = self.tool in (Tool.BRUSH, Tool.ERASER)
        if point is not None:
            r = self.brush_size / 2.0
            self._cursor_item.setRect(QRectF(point[0] - r, point[1] - r, 2 * r, 2 * r))
            self._cursor_item.setVisible(show)
        elif not show:
            self._cursor_item.setVisible(False)
        else:
            c = self._cursor_item.rect().center()
            r = self.brush_size / 2.0
            self._cursor_item.setRect(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r))

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt API
        # a thin frame border so that the image edge is visible on dark frames
        if not self.image_rect().isEmpty():
            painter.setPen(QPen(QColor(90, 90, 95), 0))
            painter.drawRect(self.image_rect())
