"""Painting on the real canvas with mouse events changes the label map of the active object only."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from annotator.core.model.annotation import FrameState
from annotator.gui.tools import Tool
from gui_helpers import square_clip

pytestmark = pytest.mark.gui


def _view_point(canvas, x: float, y: float) -> QPoint:
    return canvas.mapFromScene(QPointF(x, y))


def _drag(qtbot, canvas, points, button=Qt.MouseButton.LeftButton) -> None:
    vp = canvas.viewport()
    qtbot.mousePress(vp, button, pos=_view_point(canvas, *points[0]))
    for p in points[1:]:
        qtbot.mouseMove(vp, pos=_view_point(canvas, *p))
    qtbot.mouseRelease(vp, button, pos=_view_point(canvas, *points[-1]))


def _two_objects(make_window):
    frames, _ = square_clip()
    ref = np.zeros(frames.shape[1:3], np.uint8)
    ref[2:8, 2:8] = 1
    ref[50:60, 80:90] = 2
    w = make_window(frames, {0: ref})
    return w, ref


def test_brush_stroke_paints_the_active_object_along_the_path(qtbot, make_window):
    w, ref = _two_objects(make_window)
    m, canvas = w.model, w.canvas
    m.set_current_frame(2)
    m.set_active_object(2)
    canvas.set_tool(Tool.BRUSH)
    canvas.set_brush_size(6)
    _drag(qtbot, canvas, [(20.5, 30.5), (40.5, 30.5), (60.5, 30.5)])
    labels = np.asarray(m.labels(2))
    assert (labels[28:33, 20:61] == 2).all()  # the whole path, no gaps between mouse positions
    assert not (labels == 1).any()
    assert set(np.unique(labels)) == {0, 2}
    assert m.frame_state(2) is FrameState.REFERENCE
    assert m.history.undo_name() == "Brush" and len(m.history.undo_stack) == 1  # one stroke, one step
    # the overlay shows it: the painted pixels are opaque in object 2's colour
    rgba = canvas.overlay.buffer
    assert tuple(rgba[30, 40]) == (*m.object(2).color, 255)
    assert rgba[10, 10, 3] == 0


def test_right_button_and_eraser_remove_pixels_and_fill_and_polygon_paint(qtbot, make_window):
    w, ref = _two_objects(make_window)
    m, canvas = w.model, w.canvas
    canvas.set_brush_size(4)
    _drag(qtbot, canvas, [(85.5, 55.5), (86.5, 55.5)], button=Qt.MouseButton.RightButton)
    assert (m.labels(0)[54:57, 85:87] == 0).all()
    assert (m.labels(0)[2:8, 2:8] == 1).all()  # object 1 untouched
    # fill the background region around (40, 40) with object 1
    canvas.set_tool(Tool.FILL)
    m.set_active_object(1)
    m.set_current_frame(1)
    _drag(qtbot, canvas, [(40.5, 40.5)])
    assert (m.labels(1) == 1).all()  # frame 1 was empty: everything is one region
    # polygon on frame 3: three clicks and a double-click close it
    m.set_current_frame(3)
    canvas.set_tool(Tool.POLYGON)
    for p in [(10, 10), (50, 10), (50, 40)]:
        qtbot.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, pos=_view_point(canvas, *p))
    assert len(canvas.polygon_points) == 3
    qtbot.keyClick(canvas, Qt.Key.Key_Return)
    labels = m.labels(3)
    assert labels[12, 45] == 1 and labels[35, 15] == 0  # inside / outside the triangle
    # erase-object tool removes the clicked object from the frame
    m.set_current_frame(0)
    canvas.set_tool(Tool.ERASE_OBJECT)
    _drag(qtbot, canvas, [(4.5, 4.5)])
    assert not (m.labels(0) == 1).any()


def test_escape_aborts_a_stroke_and_brush_size_keys_work(qtbot, make_window):
    w, _ = _two_objects(make_window)
    m, canvas = w.model, w.canvas
    canvas.setFocus()
    size = canvas.brush_size
    qtbot.keyClick(canvas, Qt.Key.Key_BracketRight)
    assert canvas.brush_size > size
    assert w.tool_widgets.brush_size.value() == canvas.brush_size
    before = np.array(m.labels(4))
    vp = canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_view_point(canvas, 30, 30))
    m.set_current_frame(4)  # switching frames commits the stroke on frame 0 ...
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_view_point(canvas, 30, 30))
    qtbot.mouseMove(vp, pos=_view_point(canvas, 50, 30))
    qtbot.keyClick(canvas, Qt.Key.Key_Escape)  # ... Escape aborts this one
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=_view_point(canvas, 50, 30))
    np.testing.assert_array_equal(m.labels(4), before)
    assert m.frame_state(4) is FrameState.EMPTY


def test_zoom_fit_and_actual_size(qtbot, make_window):
    w, _ = _two_objects(make_window)
    canvas = w.canvas
    canvas.actual_size()
    assert canvas.zoom() == pytest.approx(1.0)
    canvas.set_zoom(4.0, QPointF(10, 10))
    scene_before = canvas.mapToScene(QPoint(10, 10))
    canvas.set_zoom(8.0, QPointF(10, 10))
    assert (canvas.mapToScene(QPoint(10, 10)) - scene_before).manhattanLength() < 1.0  # zoom about the cursor
    canvas.fit_to_window()
    vp = canvas.viewport().rect()
    assert canvas.zoom() == pytest.approx(min(vp.width() / 96, vp.height() / 64), rel=0.05)


def test_outline_mode_shows_only_borders(qtbot, make_window):
    w, _ = _two_objects(make_window)
    w.actions_by_name["outline"].setChecked(True)
    rgba = w.canvas.overlay.buffer
    assert rgba[2, 4, 3] == 255 and rgba[4, 4, 3] == 0  # border vs inside of object 1
    w.model.history.push("hide", [w.model.update_object(1, visible=False)])
    assert w.canvas.overlay.buffer[2, 4, 3] == 0


def test_fast_polygon_clicks_add_points_and_only_a_double_click_on_the_last_point_closes(qtbot, make_window):
    w, _ = _two_objects(make_window)
    m, canvas = w.model, w.canvas
    m.set_current_frame(3)
    m.set_active_object(1)
    canvas.set_tool(Tool.POLYGON)
    vp = canvas.viewport()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_view_point(canvas, 10, 10))
    # the next click 80 ms later, elsewhere: Qt may report it as a double-click
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=_view_point(canvas, 50, 10))
    assert len(canvas.polygon_points) == 2 and not (m.labels(3) == 1).any()
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=_view_point(canvas, 50, 40))
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=_view_point(canvas, 50, 40))  # on the last point
    assert canvas.polygon_points == []
    labels = m.labels(3)
    assert labels[12, 45] == 1 and labels[35, 15] == 0
