"""Keypoints in the window: placed, dragged and deleted with the mouse, undone, saved, propagated, exported."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QMessageBox

from annotator.core.features.backbones import load_backbone
from annotator.core.analysis.metrics import point_errors
from annotator.gui.keypoints_overlay import MIN_OPACITY, scene_from_point
from annotator.gui.tools import Tool
from gui_helpers import square_clip, window_on_frame_folder
from tests.synthetic import tracking_clip

pytestmark = pytest.mark.gui


def _view(canvas, x: float, y: float) -> QPoint:
    """The view pixel over image point (x, y)."""
    return canvas.mapFromScene(scene_from_point((x, y)))


def _click(qtbot, canvas, x, y, button=Qt.MouseButton.LeftButton) -> None:
    vp = canvas.viewport()
    qtbot.mousePress(vp, button, pos=_view(canvas, x, y))
    qtbot.mouseRelease(vp, button, pos=_view(canvas, x, y))


def _drag(qtbot, canvas, points) -> None:
    vp = canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=_view(canvas, *points[0]))
    for p in points[1:]:
        qtbot.mouseMove(vp, pos=_view(canvas, *p))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=_view(canvas, *points[-1]))


def _tolerance(canvas) -> float:
    """Image pixels per screen pixel: how far a click can land from the point aimed at."""
    return 1.0 / canvas.zoom() + 0.01


@pytest.fixture
def window(make_window):
    frames, _ = square_clip(n=6)
    w = make_window(frames)
    w.canvas.set_zoom(4.0)  # 4 screen pixels per image pixel: clicks land within a quarter pixel
    w.canvas.centerOn(48, 32)
    for name in ("head", "tail"):
        w.model.history.push("Add keypoint", [w.model.add_keypoint(name)])
    w.model.set_active_keypoint(1)
    return w


def test_clicks_place_the_selected_keypoints_and_markers_show_them(qtbot, window):
    w = window
    m, canvas = w.model, w.canvas
    m.set_current_frame(2)
    qtbot.keyClick(canvas, Qt.Key.Key_M)  # the Keypoint tool's shortcut
    assert canvas.tool is Tool.KEYPOINT
    _click(qtbot, canvas, 30, 20)
    assert m.active_keypoint == 2  # after placing head, the next unplaced keypoint is selected
    _click(qtbot, canvas, 60, 40)
    fp = m.frame_points(2)
    assert fp.reference and set(fp.points) == {1, 2}
    assert fp.points[1] == pytest.approx((30, 20), abs=_tolerance(canvas))
    assert fp.points[2] == pytest.approx((60, 40), abs=_tolerance(canvas))
    assert m.frame_points(1) is None  # only the frame that was clicked
    assert [s.name for s in m.history.undo_stack[-2:]] == ["Place head", "Place tail"]
    markers = canvas.keypoints_layer.markers
    assert set(markers) == {1, 2} and all(mk.reference and mk.opacity() == 1.0 for mk in markers.values())
    assert markers[1].pos() == scene_from_point(fp.points[1])
    # another frame shows its own (no) points
    m.set_current_frame(3)
    assert canvas.keypoints_layer.markers == {}
    # the panel counts the frames where each keypoint was placed
    w.keypoints.refresh_counts()
    assert [w.keypoints.tree.topLevelItem(r).text(1) for r in range(2)] == ["1", "1"]


def test_drag_moves_a_point_in_one_undo_step_and_right_click_or_delete_removes_it(qtbot, window):
    w = window
    m, canvas = w.model, w.canvas
    canvas.set_tool(Tool.KEYPOINT)
    _click(qtbot, canvas, 30, 20)
    _click(qtbot, canvas, 60, 40)
    steps = len(m.history.undo_stack)
    _drag(qtbot, canvas, [(30, 20), (34, 22), (38, 25), (40, 26)])
    assert m.frame_points(0).points[1] == pytest.approx((40, 26), abs=_tolerance(canvas))
    assert len(m.history.undo_stack) == steps + 1 and m.history.undo_name() == "Move head"
    assert m.frame_points(0).points[2] == pytest.approx((60, 40), abs=_tolerance(canvas))  # untouched
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undo: the whole drag
    assert m.frame_points(0).points[1] == pytest.approx((30, 20), abs=_tolerance(canvas))
    qtbot.keyClick(canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert m.frame_points(0).points[1] == pytest.approx((40, 26), abs=_tolerance(canvas))
    _click(qtbot, canvas, 60, 40, Qt.MouseButton.RightButton)
    assert set(m.frame_points(0).points) == {1} and m.history.undo_name() == "Delete tail"
    m.set_active_keypoint(1)
    qtbot.keyClick(canvas, Qt.Key.Key_Delete)
    assert m.frame_points(0) is None and set(canvas.keypoints_layer.markers) == set()
    m.history.undo()
    m.history.undo()
    assert set(m.frame_points(0).points) == {1, 2} and set(canvas.keypoints_layer.markers) == {1, 2}


def test_keypoints_panel_adds_renames_and_refuses_a_taken_name(qtbot, window):
    w = window
    panel = w.keypoints
    panel.add_button.click()
    assert [k.name for k in w.model.keypoints] == ["head", "tail", "point 3"]
    assert w.canvas.tool is Tool.KEYPOINT and w.model.active_keypoint == 3  # ready to place it
    item = panel.item_for(3)
    item.setText(0, "paw")
    assert w.model.keypoint(3).name == "paw" and w.model.history.undo_name() == "Rename keypoint"
    item.setText(0, "head")
    assert w.model.keypoint(3).name == "paw" and item.text(0) == "paw"
    assert w.error_box is not None and "already a keypoint named 'head'" in w.error_box.text()
    w.error_box.close()
    panel.delete_button.click()
    assert [k.name for k in w.model.keypoints] == ["head", "tail"]


def test_points_survive_save_and_reopen_in_another_window(qtbot, make_window, monkeypatch, tmp_path):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    frames, _ = square_clip(n=6)
    w = window_on_frame_folder(make_window, tmp_path / "frames", frames)
    m = w.model
    m.history.push("add", [m.add_keypoint("head")])
    m.history.push("place", [m.place_point(1, 1, (12.0, 13.0))])
    m.set_propagated_points(2, {1: (14.0, 13.5)}, {1: 0.4})
    assert w.projects.save_to(tmp_path / "proj")
    assert "*" not in w.windowTitle()
    m.history.push("move", [m.place_point(1, 1, (15.0, 13.0))])
    assert "*" in w.windowTitle()  # a point edit alone is unsaved work
    assert w.projects.save_to(tmp_path / "proj")
    other = make_window(np.zeros((2, 8, 8, 3), np.uint8))
    assert other.projects.open_project(tmp_path / "proj")
    om = other.model
    assert [k.name for k in om.keypoints] == ["head"]
    assert om.frame_points(1).reference and om.frame_points(1).points[1] == (15.0, 13.0)
    assert not om.frame_points(2).reference and om.frame_points(2).confidence_of(1) == pytest.approx(0.4)
    om.set_current_frame(2)
    marker = other.canvas.keypoints_layer.markers[1]
    assert not marker.reference and marker.opacity() == pytest.approx(MIN_OPACITY + (1 - MIN_OPACITY) * 0.4)


MOTIONS = ((0, 6), (-6, 0))  # object 1 moves right, object 2 up, 6 px a frame
SIZE = 56


def _true_points(truth, t):
    """Two points per object at fixed places of its rigidly moving texture."""
    points = {}
    for obj in (1, 2):
        ys, xs = np.nonzero(truth[t] == obj)
        for j, (dy, dx) in enumerate(((14, 14), (SIZE - 15, SIZE - 15))):
            points[obj * 10 + j] = (float(xs.min() + dx), float(ys.min() + dy))
    return points


def test_propagating_keypoints_in_the_worker_follows_the_motion_and_is_one_undo_step(qtbot, make_window, tmp_path):
    frames, truth = tracking_clip(n_frames=6, hw=(192, 288), size=SIZE, motions=MOTIONS)
    lite0 = load_backbone("lite0", device="cpu")
    w = make_window(np.stack(frames), backbone=lite0)
    m = w.model
    start = _true_points(truth, 0)
    for pid in start:
        m.add_keypoint(f"p{pid}", keypoint_id=pid)
    m.history.push("place", [m.place_point(0, pid, p) for pid, p in start.items()])
    progress = []
    w.propagation.progress.connect(lambda done, total, *_: progress.append((done, total)))
    with qtbot.waitSignal(w.propagation.finished, timeout=60_000) as blocker:
        w.actions_by_name["propagate_keypoints"].trigger()
        assert w.propagation.running and w.status.progress.isVisible()  # the GUI thread returned at once
    assert tuple(blocker.args) == (5, False)
    assert progress[-1] == (5, 5)
    assert m.frame_points(0).reference and dict(m.frame_points(0).points) == start  # the reference is untouched
    last = m.frame_points(5)
    assert not last.reference
    errors = point_errors(last.points, _true_points(truth, 5))
    assert len(errors) == 4 and max(errors.values()) < 8.0, errors  # staying put would be 30 px off
    assert all(0.0 < last.confidence_of(i) <= 1.5 for i in last.points)
    assert m.history.undo_name() == "Propagate keypoints"
    assert "keypoints on 5 frame(s)" in w.statusBar().currentMessage()
    # a correction on frame 3 then a new run: frame 3 stays as placed, the others are replaced
    m.place_point(3, 10, (120.0, 100.0))
    before = dict(m.frame_points(4).points)
    with qtbot.waitSignal(w.propagation.finished, timeout=60_000):
        w.propagate_keypoints()
    assert m.frame_points(3).reference and m.frame_points(3).points[10] == (120.0, 100.0)
    assert dict(m.frame_points(4).points) != before
    # exporting from the window writes the CLI's format
    out = tmp_path / "keypoints.json"
    w.files.export_keypoints(str(out))
    data = json.loads(out.read_text())
    assert data["image_size"] == [288, 192] and data["points"] == [f"p{i}" for i in sorted(start)]
    assert data["frames"]["0"]["p10"] == {"x": start[10][0], "y": start[10][1], "confidence": 1.0, "reference": True}
    assert data["frames"]["3"]["p10"]["x"] == 120.0 and len(data["frames"]) == 6
    assert data["frames"]["5"]["p11"]["reference"] is False
    # undoing the last run puts back the first run's points
    m.history.undo()
    assert dict(m.frame_points(4).points) == before


def test_keypoint_propagation_without_points_and_export_without_points_show_an_error(qtbot, window, tmp_path):
    w = window
    w.actions_by_name["propagate_keypoints"].trigger()
    assert w.error_box is not None and "place keypoints on a frame first" in w.error_box.text()
    assert not w.propagation.running
    w.error_box.close()
    w.files.export_keypoints_dialog = lambda: w.files.export_keypoints(str(tmp_path / "k.json"))
    w.actions_by_name["export_keypoints"].trigger()
    assert w.error_box is not None and "no keypoints to export" in w.error_box.text()
    assert not (tmp_path / "k.json").exists()


def test_number_keys_pick_keypoints_with_the_keypoint_tool_and_objects_otherwise(qtbot, window):
    w = window
    m = w.model
    m.history.push("add", [m.add_object(), m.add_object()])
    m.set_active_object(1)
    w.canvas.set_tool(Tool.KEYPOINT)
    qtbot.keyClick(w.canvas, Qt.Key.Key_2)
    assert m.active_keypoint == 2 and m.active_object == 1
    w.canvas.set_tool(Tool.BRUSH)
    qtbot.keyClick(w.canvas, Qt.Key.Key_2)
    assert m.active_object == 2


def test_timeline_marks_keypoint_references(qtbot, window):
    from annotator.gui.timeline import KEYPOINT_REFERENCE_COLOR

    w = window
    strip = w.timeline.strip
    strip.resize(600, 16)
    m = w.model
    m.history.push("Place", [m.place_point(3, 1, (10.0, 12.0))])
    assert strip._keypoint_references == {3}
    image = strip.grab().toImage()
    cell = strip.width() / m.num_frames
    mark = image.pixelColor(int(3.5 * cell), strip.height() - 2)
    top = image.pixelColor(int(3.5 * cell), 1)
    assert mark == KEYPOINT_REFERENCE_COLOR and top != KEYPOINT_REFERENCE_COLOR
    m.history.undo()  # the frame has no points any more: no mark
    assert strip._keypoint_references == set()
    m.history.redo()
    assert strip._keypoint_references == {3}
