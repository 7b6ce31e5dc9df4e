"""The main window end to end: undo/redo, export, objects panel, timeline, opening files, shortcuts."""

from __future__ import annotations


import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QMessageBox

from annotator.core.model.annotation import FrameState
from annotator.core.io.labels import read_mask_folder, write_mask
from annotator.core.video import open_video
from annotator.gui.shortcuts import SHORTCUTS, ShortcutsDialog
from gui_helpers import run_propagation, square_clip

pytestmark = pytest.mark.gui


def _stroke(qtbot, canvas, a, b):
    vp = canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(QPointF(*a)))
    qtbot.mouseMove(vp, pos=canvas.mapFromScene(QPointF(*b)))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=canvas.mapFromScene(QPointF(*b)))


def test_undo_redo_restore_exact_label_maps_after_strokes_and_a_run(qtbot, make_window):
    frames, truth = square_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    m = w.model
    snapshots = [{i: np.array(m.labels(i)) for i in range(6)}]
    run_propagation(qtbot, w)
    snapshots.append({i: np.array(m.labels(i)) for i in range(6)})
    m.set_current_frame(2)
    _stroke(qtbot, w.canvas, (10, 50), (60, 55))
    snapshots.append({i: np.array(m.labels(i)) for i in range(6)})
    assert m.frame_state(2) is FrameState.REFERENCE
    w.canvas.setFocus()
    for k in (2, 1):  # Ctrl+Z twice: the stroke, then the whole run
        qtbot.keyClick(w.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        for i in range(6):
            np.testing.assert_array_equal(m.labels(i), snapshots[k - 1][i])
    assert m.frame_state(2) is FrameState.EMPTY
    assert not w.actions_by_name["undo"].isEnabled()
    for k in (1, 2):  # Ctrl+Shift+Z twice
        qtbot.keyClick(w.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        for i in range(6):
            np.testing.assert_array_equal(m.labels(i), snapshots[k][i])
    assert m.frame_state(2) is FrameState.REFERENCE and m.frame_state(3) is FrameState.PROPAGATED


def test_export_writes_davis_masks_that_read_back_equal(qtbot, make_window, tmp_path):
    frames, truth = square_clip(n=6)
    w = make_window(frames, {0: truth[0]})
    run_propagation(qtbot, w)
    w.model.clear_frame(5)
    with qtbot.waitSignal(w.files.export(str(tmp_path), "seq", with_images=True).finished, timeout=10_000):
        pass
    masks = read_mask_folder(tmp_path / "Annotations" / "480p" / "seq")
    assert sorted(masks) == list(range(6))
    for i in range(6):
        np.testing.assert_array_equal(masks[i], w.model.labels(i))
    assert not masks[5].any()
    images = sorted((tmp_path / "JPEGImages" / "480p" / "seq").glob("*.jpg"))
    assert [p.name for p in images] == [f"{i:05d}.jpg" for i in range(6)]
    # the overlay video for review
    out = tmp_path / "review.mp4"
    with qtbot.waitSignal(w.files.export_video(str(out)).finished, timeout=10_000):
        pass
    with open_video(out) as video:
        assert len(video) == 6 and video.hw == (64, 96)


def test_objects_panel_and_model_stay_in_sync(qtbot, make_window, monkeypatch):
    frames, truth = square_clip(n=4)
    w = make_window(frames, {0: truth[0]})
    m, panel = w.model, w.objects
    assert panel.tree.topLevelItemCount() == 1
    assert panel.tree.topLevelItem(0).text(1) == "1"  # appears in one frame
    qtbot.keyClick(w.canvas, Qt.Key.Key_N)  # new object
    assert [o.id for o in m.objects] == [1, 2] and m.active_object == 2
    qtbot.keyClick(w.canvas, Qt.Key.Key_1)  # number keys choose the active object
    assert m.active_object == 1
    assert panel.tree.currentItem().data(0, Qt.ItemDataRole.UserRole) == 1
    item = panel.tree.topLevelItem(1)
    item.setText(0, "car")  # as an inline edit does
    assert m.object(2).name == "car"
    item.setCheckState(0, Qt.CheckState.Unchecked)
    assert not m.object(2).visible
    m.history.push("rename", [m.update_object(1, name="person")])
    assert panel.tree.topLevelItem(0).text(0) == "person"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    panel.delete_object(1, confirm=True)
    assert [o.id for o in m.objects] == [2] and not m.labels(0).any()
    m.history.undo()
    assert [o.id for o in m.objects] == [1, 2] and (m.labels(0) == 1).any()


def test_timeline_slider_keys_markers_and_play(qtbot, make_window):
    frames, truth = square_clip(n=6)
    w = make_window(frames, {0: truth[0], 4: truth[4]})
    m, t = w.model, w.timeline
    t.slider.setValue(3)
    assert m.current_frame == 3
    qtbot.keyClick(w.canvas, Qt.Key.Key_Right)
    assert m.current_frame == 4 and t.slider.value() == 4
    qtbot.keyClick(w.canvas, Qt.Key.Key_PageUp)
    assert m.current_frame == 0
    qtbot.keyClick(w.canvas, Qt.Key.Key_End)
    assert m.current_frame == 5
    assert t.strip._states[0] is FrameState.REFERENCE and t.strip._states[1] is FrameState.EMPTY
    run_propagation(qtbot, w) if m.set_current_frame(0) is None else None
    assert [s.value for s in t.strip._states] == ["reference", "propagated", "propagated", "propagated",
                                                  "reference", "empty"]
    m.set_current_frame(0)
    t.set_playing(True)
    qtbot.waitUntil(lambda: m.current_frame == 5, timeout=3000)
    qtbot.waitUntil(lambda: not t.playing, timeout=1000)


def test_sample_clip_opens_with_its_first_mask(qtbot, qsettings):
    from annotator.gui.app import create_window

    w = create_window(None, settings=qsettings)
    qtbot.addWidget(w)
    assert w.model.num_frames == 40 and w.model.hw == (360, 640)
    assert w.model.is_reference(0) and [o.id for o in w.model.objects] == [1, 2]


def test_bad_input_shows_one_line_and_the_app_keeps_running(qtbot, make_window, tmp_path, monkeypatch):
    frames, truth = square_clip(n=4)
    w = make_window(frames, {0: truth[0]})
    shown = []
    monkeypatch.setattr(QMessageBox, "open", lambda box: shown.append(box.text()))
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a video")
    assert not w.files.open_path(str(bogus))
    assert len(shown) == 1 and "\n" not in shown[0] and "notes.txt" in shown[0]
    assert w.model.num_frames == 4  # the open video is still there
    w.model.set_current_frame(2)
    w.actions_by_name["propagate_forward"].trigger()  # frame 2 is not a reference
    assert len(shown) == 2 and "reference" in shown[1]


def _davis_sequence(root, frames, masks: dict) -> object:
    """A DAVIS sequence "squares" under ``root`` (JPEG frames, the given masks); returns its frame folder."""
    import cv2

    seq = root / "JPEGImages" / "480p" / "squares"
    ann = root / "Annotations" / "480p" / "squares"
    seq.mkdir(parents=True)
    ann.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(seq / f"{i:05d}.jpg"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    for i, mask in masks.items():
        write_mask(ann / f"{i:05d}.png", mask)
    return seq


def test_davis_sequence_brings_its_annotations_as_references(qtbot, make_window, tmp_path):
    frames, truth = square_clip(n=5)
    seq = _davis_sequence(tmp_path, frames, {0: truth[0]})
    w = make_window(frames)
    assert w.files.open_path(str(seq))
    assert w.model.num_frames == 5 and w.model.is_reference(0)
    np.testing.assert_array_equal(w.model.labels(0), truth[0])
    assert w.files.recent()[0] == str(seq.resolve())
    # import a mask onto another frame
    w.model.set_current_frame(3)
    w.files.import_mask(str(tmp_path / "Annotations" / "480p" / "squares" / "00000.png"))
    assert w.model.is_reference(3)


def test_every_shortcut_is_listed_and_bound(qtbot, make_window):
    frames, _ = square_clip(n=3)
    w = make_window(frames)
    dialog = ShortcutsDialog(w)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == len(SHORTCUTS)
    bound = {name: a.shortcut().toString() for name, a in w.actions_by_name.items()}
    for s in SHORTCUTS:
        if s.name in bound and s.keys:
            assert bound[s.name], f"{s.name} has no key"
    assert len(set(k for s in SHORTCUTS for k in s.keys if k != "…")) == sum(
        1 for s in SHORTCUTS for k in s.keys if k != "…")  # no key used twice


def test_settings_dialog_defaults_edit_and_persist(qtbot, qsettings):
    from annotator.core.engine.propagation import PropagationParams
    from annotator.core.runs.settings import RunSettings
    from annotator.gui.settings import SettingsDialog, load_settings, save_settings

    defaults = PropagationParams()
    dialog = SettingsDialog(RunSettings(), "cpu")
    qtbot.addWidget(dialog)
    assert (dialog.fields.context.value(), dialog.fields.topk.value()) == (defaults.context, defaults.topk)
    assert dialog.fields.temperature.value() == pytest.approx(defaults.temperature)
    assert dialog.fields.radius.value() == pytest.approx(defaults.radius)
    assert dialog.fields.flow_preset.currentText() == defaults.flow_preset
    dialog.fields.context.setValue(5)
    dialog.fields.topk.setValue(3)
    dialog.fields.flow_preset.setCurrentText("ultrafast")
    dialog.short_side.setValue(320)
    dialog.backbone.setCurrentText("resnet18")
    dialog.precision.setCurrentText("half")
    dialog.flip.setChecked(True)
    s = dialog.settings()
    assert (s.params.context, s.params.topk, s.short_side, s.backbone) == (5, 3, 320, "resnet18")
    assert s.params.flow_preset == "ultrafast"
    assert (s.half, s.flip) == (True, True) and s.backbone_key() != RunSettings().backbone_key()
    save_settings(qsettings, s)
    assert load_settings(qsettings) == s
    shown = SettingsDialog(s, "cpu")  # the dialog shows what it is given, the flow's list included
    qtbot.addWidget(shown)
    assert shown.fields.flow_preset.currentText() == "ultrafast" and shown.settings() == s


def test_settings_keep_only_changed_factors_so_new_defaults_reach_users(qsettings):
    from dataclasses import replace

    from annotator.core.runs.settings import RunSettings
    from annotator.gui.settings import load_settings, save_settings

    defaults = RunSettings()
    changed = replace(defaults, params=replace(defaults.params, context=7, reference_flow=0.3))
    save_settings(qsettings, changed)
    assert qsettings.value("propagation/context") is not None and qsettings.value("propagation/topk") is None
    assert load_settings(qsettings) == changed
    save_settings(qsettings, defaults)  # back at the defaults: nothing of the factors stays stored
    assert qsettings.value("propagation/context") is None and qsettings.value("propagation/reference_flow") is None
    assert load_settings(qsettings) == defaults
    # the features' settings likewise (version 3): kept while changed, gone at their defaults
    features = replace(defaults, short_side=320, backbone="lite2", flip=not defaults.flip)
    save_settings(qsettings, features)
    assert int(qsettings.value("propagation/short_side")) == 320 and load_settings(qsettings) == features
    save_settings(qsettings, defaults)
    assert [k for k in qsettings.allKeys() if k != "propagation/version"] == []
    assert load_settings(qsettings) == defaults
    # a file from before (no version; every factor stored, the reference flow at its old default 0):
    # the user's own change stays, the old default gives way to the new one
    qsettings.clear()
    for name, value in {"context": 7, "topk": defaults.params.topk, "reference_flow": 0.0}.items():
        qsettings.setValue(f"propagation/{name}", value)
    loaded = load_settings(qsettings).params
    assert (loaded.context, loaded.topk, loaded.reference_flow) == (7, defaults.params.topk,
                                                                    defaults.params.reference_flow)
    qsettings.setValue("propagation/version", 2)  # a version-2 file stores 0 only when chosen: kept
    assert load_settings(qsettings).params.reference_flow == 0.0
    # the working size 480 and radius 16, the defaults before session 39, which versions 1 and 2 stored
    # for everyone (the radius: version 1 only): no choice, so the new defaults (600, 20) apply
    assert (defaults.short_side, defaults.params.radius) == (600, 20.0)
    for version in (None, 2):
        qsettings.clear()
        if version is not None:
            qsettings.setValue("propagation/version", version)
        qsettings.setValue("propagation/short_side", 480)
        qsettings.setValue("propagation/radius", 16.0)
        loaded = load_settings(qsettings)
        assert loaded.short_side == 600
        assert loaded.params.radius == (20.0 if version is None else 16.0)  # version 2 stored a chosen radius only
    # a working size of 480 chosen under the new defaults is a choice, and stays
    chosen = replace(defaults, short_side=480)
    save_settings(qsettings, chosen)
    assert int(qsettings.value("propagation/short_side")) == 480 and load_settings(qsettings) == chosen


def test_settings_dialog_presets_fill_the_speed_factors_and_follow_edits(qtbot, qsettings):
    from annotator.core.engine.presets import PRESETS
    from annotator.core.runs.settings import RunSettings
    from annotator.gui.settings import SettingsDialog, load_settings, save_settings

    dialog = SettingsDialog(RunSettings(), "cpu")
    qtbot.addWidget(dialog)
    assert dialog.preset.currentData() == "best"  # the defaults are the best preset
    assert dialog.fields.background_bias.value() == pytest.approx(PRESETS["best"].background_bias)
    fast = PRESETS["fast"]
    dialog.preset.setCurrentIndex(dialog.preset.findData("fast"))
    dialog.preset.activated.emit(dialog.preset.currentIndex())
    assert (dialog.flip.isChecked(), dialog.fields.radius.value(), dialog.fields.context.value(), dialog.fields.context_stride.value(),
            dialog.fields.reference_stride.value()) == (fast.flip, fast.radius, fast.context, fast.context_stride,
                                                 fast.reference_stride)
    assert (dialog.fields.label_detail.value(), dialog.fields.islands.isChecked()) == (1, False)
    assert dialog.fields.background_bias.value() == 0.0
    s = dialog.settings()
    assert (s.flip, s.params.radius, s.params.context, s.params.context_stride, s.params.reference_stride,
            s.params.label_detail, s.params.islands, s.params.background_bias) == (False, 12.0, 10, 2, 2, 1, False, 0.0)
    save_settings(qsettings, s)
    assert load_settings(qsettings) == s  # the stride persists too
    dialog.fields.context.setValue(fast.context + 1)  # an edit that leaves every preset
    assert dialog.preset.currentText() == "Custom"
    dialog.fields.context.setValue(fast.context)
    assert dialog.preset.currentData() == "fast"
    dialog.short_side.setValue(fast.short_side + 120)  # the working resolution is part of a preset
    assert dialog.preset.currentText() == "Custom"
    dialog.short_side.setValue(fast.short_side)
    assert dialog.preset.currentData() == "fast"
    dialog.fields.reference_stride.setValue(1)
    assert dialog.preset.currentText() == "Custom"
    for name, chosen in PRESETS.items():  # each preset sets its resolution
        dialog.preset.setCurrentIndex(dialog.preset.findData(name))
        dialog.preset.activated.emit(dialog.preset.currentIndex())
        assert dialog.short_side.value() == chosen.short_side and dialog.preset.currentData() == name
        assert dialog.settings().short_side == chosen.short_side
        assert dialog.preset_measured.text() == chosen.measured  # its figures shown, not only on hover


def test_settings_dialog_part_groups_parse_persist_and_refuse_bad_text(qtbot, qsettings):
    from dataclasses import replace

    from annotator.core.runs.settings import RunSettings
    from annotator.gui.settings import SettingsDialog, load_settings, save_settings

    dialog = SettingsDialog(RunSettings(), "cpu")
    qtbot.addWidget(dialog)
    assert dialog.part_groups.text() == ""
    dialog.part_groups.setText("1-3,4+x")
    dialog.accept()  # refused: the dialog stays open and says which token is wrong
    assert dialog.result() != dialog.DialogCode.Accepted and "'x'" in dialog.part_groups_error.text()
    dialog.part_groups.setText("1-3+7, 8-12")
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    s = dialog.settings()
    assert s.params.part_groups == ((1, 2, 3, 7), (8, 9, 10, 11, 12))
    save_settings(qsettings, s)
    assert qsettings.value("propagation/part_groups") == "1-3+7,8-12"
    assert load_settings(qsettings) == s
    qsettings.setValue("propagation/part_groups", "0-3")  # a hand-edited file: that one value falls back
    assert load_settings(qsettings).params == replace(s.params, part_groups=())


def test_space_drag_and_middle_drag_pan_the_view(qtbot, make_window):
    frames, truth = square_clip(n=3)
    w = make_window(frames, {0: truth[0]})
    c = w.canvas
    c.set_zoom(20.0)
    vp = c.viewport()
    before = c.mapToScene(vp.rect().center())
    qtbot.mousePress(vp, Qt.MouseButton.MiddleButton, pos=vp.rect().center())
    qtbot.mouseMove(vp, pos=vp.rect().center() + QPoint(100, 0))
    qtbot.mouseRelease(vp, Qt.MouseButton.MiddleButton, pos=vp.rect().center() + QPoint(100, 0))
    after = c.mapToScene(vp.rect().center())
    assert after.x() == pytest.approx(before.x() - 100 / 20.0, abs=0.2)
    labels_before = np.array(w.model.labels(0))
    qtbot.keyPress(c, Qt.Key.Key_Space)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=vp.rect().center())
    qtbot.mouseMove(vp, pos=vp.rect().center() + QPoint(0, 60))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=vp.rect().center() + QPoint(0, 60))
    qtbot.keyRelease(c, Qt.Key.Key_Space)
    assert c.mapToScene(vp.rect().center()).y() == pytest.approx(after.y() - 3.0, abs=0.2)
    np.testing.assert_array_equal(w.model.labels(0), labels_before)  # panning never paints


def test_a_frame_that_cannot_be_decoded_shows_a_message_and_grey_not_the_old_frame(qtbot, make_window, tmp_path,
                                                                                    monkeypatch):
    from gui_helpers import window_on_frame_folder

    frames, _ = square_clip(n=6)
    w = window_on_frame_folder(make_window, tmp_path / "frames", frames)
    (tmp_path / "frames" / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # after opening: decoded later
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "open", lambda box: shown.append(box.text()))
    # the check of every frame after opening may find it too: keep all frames, to see frame 3 itself
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.No)
    w.model.set_current_frame(3)  # raised VideoError out of the frame-changed handler before
    assert len(shown) == 1 and shown[0].startswith("Frame 3 cannot be shown") and "00003.png" in shown[0]
    assert "\n" not in shown[0]
    image = w.canvas._frame_item.pixmap().toImage()
    assert image.pixelColor(5, 5).red() == image.pixelColor(5, 5).green() == 64  # grey, not frame 0's picture
    w.model.set_current_frame(4)  # the next good frame shows again
    assert len(shown) == 1 and w.canvas._frame_item.pixmap().toImage().pixelColor(5, 5).red() != 64


def _wheel(widget, notches: float) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    centre = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(centre, QPointF(widget.mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, int(120 * notches)), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_mouse_wheel_over_the_timeline_steps_frames_down_meaning_forward(make_window):
    frames, _ = square_clip(n=6)
    w = make_window(frames)
    m, t = w.model, w.timeline
    _wheel(t.strip, -1)  # wheel down over the state strip: next frame
    assert m.current_frame == 1
    _wheel(t.strip, -2)
    assert m.current_frame == 3
    _wheel(t.slider, -1)  # over the slider too, and in the same direction
    assert m.current_frame == 4 and t.slider.value() == 4
    _wheel(t.slider, 1)
    assert m.current_frame == 3
    _wheel(t.strip, 0.5)  # half a notch (a trackpad): nothing yet, then one frame back
    assert m.current_frame == 3
    _wheel(t.strip, 0.5)
    assert m.current_frame == 2
    _wheel(t.strip, -10)  # clamped at the end
    assert m.current_frame == 5


def test_a_davis_sequence_with_a_mask_on_every_frame_opens_as_one_reference_and_ground_truth(qtbot, make_window,
                                                                                             tmp_path):
    frames, truth = square_clip(n=5)
    seq = _davis_sequence(tmp_path, frames, dict(enumerate(truth)))
    w = make_window(frames)
    assert w.files.open_path(str(seq))
    m = w.model
    assert m.is_reference(0) and [m.frame_state(i) for i in range(1, 5)] == [FrameState.EMPTY] * 4
    assert w.diagnostics.tracker is not None  # the masks are the ground truth: something to propagate and score
    applied, _ = run_propagation(qtbot, w)
    assert applied == 4


def test_opening_a_video_with_unreadable_frames_says_how_many_read_and_offers_to_keep_those(qtbot, make_window,
                                                                                           tmp_path, monkeypatch):
    from tests.synthetic import write_frames

    frames, _ = square_clip(n=6)
    folder = write_frames(tmp_path / "frames", list(frames))
    (folder / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    w = make_window(frames[:2])
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    assert w.files.open_path(str(folder))
    assert w.model.num_frames == 6  # opening decodes one frame: it is quick
    qtbot.waitUntil(lambda: w.files._check_job is None and len(asked) == 1, timeout=20_000)
    assert asked[0].startswith("Only 3 of 6 frames of frames can be read") and "00003.png" in asked[0]
    assert w.model.num_frames == 3 and w.timeline.slider.maximum() == 2  # the readable start, kept
    w.model.set_current_frame(2)
    assert w.canvas._frame_item.pixmap().toImage().pixelColor(5, 5).red() != 64  # a real frame, not grey


def test_the_radius_follows_the_working_resolution_in_both_views(qtbot):
    from dataclasses import replace

    from annotator.core.engine.presets import PRESETS
    from annotator.core.runs.settings import RunSettings
    from annotator.gui.factors_panel import FactorsPanel
    from annotator.gui.settings import SettingsDialog

    dialog = SettingsDialog(RunSettings(), "cpu")
    qtbot.addWidget(dialog)
    assert (dialog.short_side.value(), dialog.fields.radius.value()) == (600, 20.0)
    dialog.short_side.setValue(480)  # the same reach in pixels: 16 cells at 480
    assert dialog.fields.radius.value() == 16.0 and dialog.preset.currentData() != "quality"
    dialog.fields.colour_grow.setChecked(False)  # the quality preset: the defaults at 480 without the grow
    assert dialog.preset.currentData() == "quality"
    dialog.short_side.setValue(0)  # "original": its size in pixels is not known, the radius stays
    assert dialog.fields.radius.value() == 16.0
    dialog.short_side.setValue(720)
    assert dialog.fields.radius.value() == 16.0  # from "original" there is nothing to scale from
    dialog.preset.setCurrentIndex(dialog.preset.findData("fast"))
    dialog.preset.activated.emit(dialog.preset.currentIndex())  # a preset's own radius stands
    assert (dialog.short_side.value(), dialog.fields.radius.value()) == (480, PRESETS["fast"].radius)

    panel = FactorsPanel(RunSettings())
    qtbot.addWidget(panel)
    panel.show_settings(replace(RunSettings(), short_side=480, params=replace(RunSettings().params, radius=12.0)))
    panel.short_side.setValue(600)  # scaled from what was shown, not from the panel's first settings
    assert panel.settings().params.radius == 15.0 and panel.settings().short_side == 600


def test_settings_dialog_offers_growing_masks_by_colour_and_keeps_the_choice(qtbot, qsettings):
    from annotator.core.runs.settings import RunSettings
    from annotator.gui.settings import SettingsDialog, load_settings, save_settings

    dialog = SettingsDialog(RunSettings(), "cpu")
    qtbot.addWidget(dialog)
    box = dialog.fields.colour_grow
    assert box.isChecked() and "colour" in box.text()  # on by default (bench/RESULTS.md, session 53)
    box.setChecked(False)
    s = dialog.settings()
    assert s.params.colour_grow is False
    save_settings(qsettings, s)
    assert load_settings(qsettings).params.colour_grow is False
