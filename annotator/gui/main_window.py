"""The main window: canvas in the middle, objects and keypoints on the right, timeline and progress at the bottom.

It wires widgets to the model and the propagation controller; it holds no annotation state of its
own. Layout and actions are built by small ``_setup_*`` methods; file handling (open, export,
recent files, drag and drop) lives in :mod:`annotator.gui.files`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from PySide6.QtCore import QSettings, QSignalBlocker, Qt
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QDockWidget, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QPushButton, QSlider, QSpinBox, QWidget)

from annotator.core.model.annotation import AnnotationModel, FrameState
from annotator.core.errors import AnnotatorError
from annotator.gui.canvas import Canvas
from annotator.gui.files import FileActions
from annotator.gui.gui_thread_gc import collect_on_gui_thread
from annotator.gui.keypoints_panel import KeypointsPanel
from annotator.gui.objects_panel import ObjectsPanel
from annotator.gui.propagation import BackboneFactory, PropagationController, load_backbone_for
from annotator.gui.settings import SettingsDialog, device_text, load_settings, save_settings
from annotator.gui.shortcuts import SHORTCUTS, ShortcutsDialog, make_action
from annotator.gui.status_bar import ElidingStatusBar
from annotator.gui.timeline import Timeline
from annotator.gui.toolbar import OverflowToolBar, labelled
from annotator.gui.tools import Tool


class StatusWidgets(NamedTuple):
    position: QLabel
    zoom: QLabel
    device: QLabel
    progress: QProgressBar
    cancel: QPushButton


class ToolWidgets(NamedTuple):
    brush_size: QSpinBox
    opacity: QSlider


TOOLBAR_TEXT = {
    "open": "Open", "export": "Export", "undo": "Undo", "redo": "Redo", "tool_brush": "Brush",
    "tool_eraser": "Eraser", "tool_fill": "Fill", "tool_polygon": "Polygon", "tool_erase_object": "Erase object",
    "tool_keypoint": "Keypoint",
    "outline": "Outline", "toggle_overlay": "Masks", "propagate_forward": "◀ Propagate ▶",
    "propagate_backward": "◀ Propagate", "mark_reference": "Accept frame", "settings": "Settings",
}


class MainWindow(QMainWindow):
    """The annotator's main window over one :class:`AnnotationModel`."""

    def __init__(self, model: AnnotationModel | None = None, *, settings: QSettings | None = None,
                 backbone_factory: BackboneFactory = load_backbone_for) -> None:
        super().__init__()
        collect_on_gui_thread()  # worker threads must never finalise Qt objects (see the module)
        self.model = model or AnnotationModel()
        self.qsettings = settings or QSettings("annotator", "annotator")
        self.setWindowTitle("Annotator")
        self.resize(1400, 900)
        self.setAcceptDrops(True)
        self.error_box: QMessageBox | None = None  # the error on show, if any (see show_error)
        self._close_confirmed = False  # quit() asked about unsaved changes already
        self.propagation = PropagationController(self.model, load_settings(self.qsettings),
                                                 backbone_factory, parent=self)
        self.canvas = Canvas(self.model)
        self.setCentralWidget(self.canvas)
        self.objects = self._setup_objects_dock()
        self.keypoints = self._setup_keypoints_dock()
        self.timeline = self._setup_timeline_dock()
        self.status = self._setup_status()
        self.actions_by_name = self._setup_actions()
        self.tool_widgets = self._setup_toolbar()
        self.files = FileActions(self)
        self._setup_menus()
        self._connect_model()
        self._connect_propagation()
        self.projects = self._setup_projects()
        self.diagnostics = self._setup_diagnostics()
        self._update_title()
        self._update_history_actions()

    # ---- layout ----------------------------------------------------------------------------

    def _add_side_dock(self, title: str, widget: QWidget) -> QDockWidget:
        """A movable dock on the right holding ``widget`` (its object name keeps the saved layout)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(title.lower())
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
        return dock

    def _setup_objects_dock(self) -> ObjectsPanel:
        panel = ObjectsPanel(self.model)
        self._add_side_dock("Objects", panel)
        return panel

    def _setup_keypoints_dock(self) -> KeypointsPanel:
        panel = KeypointsPanel(self.model)
        dock = self._add_side_dock("Keypoints", panel)
        objects_dock = self.objects.parentWidget()
        # the objects list gets most of the height, the keypoints list enough for a pose's names
        self.resizeDocks([objects_dock, dock], [500, 320], Qt.Orientation.Vertical)
        # picking a keypoint in the list means "place it next"
        panel.keypoint_chosen.connect(lambda _k: self.canvas.set_tool(Tool.KEYPOINT))
        panel.propagate_requested.connect(lambda: self._guard(self.propagate_keypoints))
        panel.error.connect(self.show_error)
        return panel

    def _setup_timeline_dock(self) -> Timeline:
        timeline = Timeline(self.model)
        dock = QDockWidget("Timeline", self)
        dock.setObjectName("timeline")
        dock.setTitleBarWidget(QWidget())  # no title bar: the timeline is part of the window
        dock.setWidget(timeline)
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        return timeline

    def _setup_status(self) -> StatusWidgets:
        self.setStatusBar(ElidingStatusBar())  # a long message ends in "…" in a narrow window, not mid-word
        bar = self.statusBar()
        position, zoom, device = QLabel(), QLabel(), QLabel()
        device.setToolTip("Device the backbone runs on (Propagation settings: Ctrl+,)")
        progress = QProgressBar()
        progress.setMaximumWidth(360)
        progress.setTextVisible(True)
        progress.setVisible(False)
        cancel = QPushButton("Cancel")
        cancel.setToolTip("Cancel propagation (Esc)")
        cancel.setVisible(False)
        cancel.clicked.connect(self.propagation.cancel)
        for w in (progress, cancel, position, zoom, device):
            bar.addPermanentWidget(w)
        self.canvas.cursor_moved.connect(
            lambda x, y, i: position.setText(f"x {x}  y {y}" + (f"  id {i}" if i >= 0 else "")))
        self.canvas.zoom_changed.connect(lambda z: zoom.setText(f"{z * 100:.0f}%"))
        self.canvas.message.connect(lambda text: bar.showMessage(text, 4000))
        self.canvas.frame_unreadable.connect(lambda frame, text: self.show_error(f"Frame {frame} cannot be shown "
                                                                                 f"(it is grey): {text}"))
        device.setText(device_text(self.propagation.settings.backbone, self.propagation.settings.device))
        return StatusWidgets(position, zoom, device, progress, cancel)

    def _setup_actions(self) -> dict[str, QAction]:
        c, m, t = self.canvas, self.model, self.timeline
        handlers = {
            "open": lambda: self.files.open_dialog(),
            "import_mask": lambda: self.files.import_mask_dialog(),
            "export": lambda: self.files.export_dialog(),
            "export_video": lambda: self.files.export_video_dialog(),
            "export_keypoints": lambda: self.files.export_keypoints_dialog(),
            "quit": self.quit,
            "undo": self.undo, "redo": self.redo,
            "mark_reference": self.mark_reference,
            "clear_frame": lambda: self._edit("Clear frame", lambda: [m.clear_frame(m.current_frame)]),
            "erase_active": c.erase_active_object,
            "settings": self.open_settings,
            "tool_brush": lambda: c.set_tool(Tool.BRUSH), "tool_eraser": lambda: c.set_tool(Tool.ERASER),
            "tool_fill": lambda: c.set_tool(Tool.FILL), "tool_polygon": lambda: c.set_tool(Tool.POLYGON),
            "tool_erase_object": lambda: c.set_tool(Tool.ERASE_OBJECT),
            "tool_keypoint": lambda: c.set_tool(Tool.KEYPOINT),
            "add_keypoint": self.keypoints.add_keypoint, "delete_point": c.delete_active_point,
            "propagate_keypoints": self.propagate_keypoints,
            "brush_smaller": c.shrink_brush, "brush_larger": c.grow_brush,
            "add_object": self.objects.add_object,
            "rename_object": lambda: self.objects.rename(m.active_object),
            "propagate_forward": lambda: self.propagate(1),
            "propagate_backward": lambda: self.propagate(-1),
            "propagate_through": lambda: self.propagate(1, go_on=True),
            "cancel": lambda: c.cancel_interaction() or self.propagation.cancel(),
            "next_frame": lambda: self._step(1), "prev_frame": lambda: self._step(-1),
            "next_10": lambda: self._step(10), "prev_10": lambda: self._step(-10),
            "first_frame": lambda: m.set_current_frame(0),
            "last_frame": lambda: m.set_current_frame(m.num_frames - 1),
            "next_reference": lambda: self._jump_reference(1), "prev_reference": lambda: self._jump_reference(-1),
            "play": t.toggle_playing,
            "toggle_overlay": lambda: None, "outline": lambda: None,
            "opacity_down": lambda: self._nudge_opacity(-0.1), "opacity_up": lambda: self._nudge_opacity(0.1),
            "zoom_in": c.zoom_in, "zoom_out": c.zoom_out, "fit": c.fit_to_window, "actual_size": c.actual_size,
            "help_shortcuts": lambda: ShortcutsDialog(self).exec(),
        }
        actions: dict[str, QAction] = {}
        for s in SHORTCUTS:
            if s.name not in handlers:
                continue
            action = make_action(s.name, self, s.text.split(" (")[0].rstrip("…") + ("…" if s.text.endswith("…") else ""))
            action.triggered.connect(lambda _checked=False, h=handlers[s.name]: self._guard(h))
            self.addAction(action)
            actions[s.name] = action
        for name, short in TOOLBAR_TEXT.items():  # toolbar buttons stay short; menus keep the full text
            actions[name].setIconText(short)
        for name in ("toggle_overlay", "outline"):
            actions[name].setCheckable(True)
        actions["toggle_overlay"].setChecked(True)
        actions["toggle_overlay"].toggled.connect(c.set_overlay_visible)
        actions["outline"].toggled.connect(c.set_outline)
        group = QActionGroup(self)
        for name, tool in (("tool_brush", Tool.BRUSH), ("tool_eraser", Tool.ERASER), ("tool_fill", Tool.FILL),
                           ("tool_polygon", Tool.POLYGON), ("tool_erase_object", Tool.ERASE_OBJECT),
                           ("tool_keypoint", Tool.KEYPOINT)):
            actions[name].setCheckable(True)
            actions[name].setData(tool)
            group.addAction(actions[name])
        actions["tool_brush"].setChecked(True)
        c.tool_changed.connect(lambda tool: next(a for a in group.actions() if a.data() is tool).setChecked(True))
        for n in range(1, 10):  # number keys choose the active object
            select = QAction(f"Object {n}", self)
            select.setShortcut(QKeySequence(str(n)))
            select.triggered.connect(lambda _c=False, i=n: self._select_object(i))
            self.addAction(select)
        return actions

    def _setup_toolbar(self) -> ToolWidgets:
        a = self.actions_by_name
        bar = OverflowToolBar("Tools", self)  # what does not fit goes behind its "»" button
        bar.setObjectName("tools")
        bar.setMovable(False)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for name in ("open", "export"):
            bar.addAction(a[name])
        bar.addSeparator()
        for name in ("undo", "redo"):
            bar.addAction(a[name])
        bar.addSeparator()
        for name in ("tool_brush", "tool_eraser", "tool_fill", "tool_polygon", "tool_erase_object", "tool_keypoint"):
            bar.addAction(a[name])
        size = QSpinBox()
        size.setRange(1, 400)
        size.setValue(self.canvas.brush_size)
        size.setSuffix(" px")
        size.setToolTip("Brush size ([ and ])")
        size.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        size.valueChanged.connect(self.canvas.set_brush_size)
        self.canvas.brush_size_changed.connect(lambda v: self._set_blocked(size, v))
        bar.addWidget(labelled("Size", size))  # a label and its box overflow together
        bar.addSeparator()
        opacity = QSlider(Qt.Orientation.Horizontal)
        opacity.setRange(0, 100)
        opacity.setValue(round(self.canvas.overlay_opacity() * 100))
        opacity.setMaximumWidth(120)
        opacity.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        opacity.setToolTip("Mask opacity ({ and })")
        opacity.valueChanged.connect(lambda v: self.canvas.set_overlay_opacity(v / 100))
        bar.addWidget(labelled("Opacity", opacity))
        bar.addAction(a["outline"])
        bar.addAction(a["toggle_overlay"])
        bar.addSeparator()
        for name in ("propagate_backward", "propagate_forward", "mark_reference", "settings"):
            bar.addAction(a[name])
        self.addToolBar(bar)
        return ToolWidgets(size, opacity)

    def _setup_menus(self) -> None:
        a = self.actions_by_name
        menus = {
            "&File": ["open", None, "import_mask", "export", "export_video", "export_keypoints", None, "quit"],
            "&Edit": ["undo", "redo", None, "mark_reference", "clear_frame", "erase_active", None, "settings"],
            "&Tools": ["tool_brush", "tool_eraser", "tool_fill", "tool_polygon", "tool_erase_object", "tool_keypoint",
                       None, "brush_smaller", "brush_larger"],
            "&Objects": ["add_object", "rename_object"],
            "&Keypoints": ["tool_keypoint", "add_keypoint", "delete_point", None, "propagate_keypoints",
                           "export_keypoints"],
            "&Propagate": ["propagate_forward", "propagate_backward", "propagate_through", None,
                           "propagate_keypoints", None, "cancel"],
            "&View": ["toggle_overlay", "outline", "opacity_down", "opacity_up", None, "zoom_in", "zoom_out",
                      "fit", "actual_size", None, "next_frame", "prev_frame", "next_reference",
                      "prev_reference", "play"],
            "&Help": ["help_shortcuts"],
        }
        for title, names in menus.items():
            menu = self.menuBar().addMenu(title)
            if title == "&File":
                self.files.recent_menu = menu.addMenu("Open &recent")
                self.files.rebuild_recent_menu()
            for name in names:
                menu.addSeparator() if name is None else menu.addAction(a[name])

    def _setup_projects(self):
        """Save / Save as / Open project, autosave and crash recovery (their own module)."""
        from annotator.gui.project_actions import ProjectActions

        return ProjectActions(self)

    # ---- wiring --------------------------------------------------------------------------

    def _setup_diagnostics(self):
        """Ground truth, runs, factors, confidence and suggestions (their own module, docks and menu)."""
        from annotator.gui.diagnostics import setup_diagnostics

        return setup_diagnostics(self)

    def _connect_model(self) -> None:
        self.model.history.on_changed(self._update_history_actions)
        self.model.events.video_changed.connect(self._update_title)
        self.model.events.current_frame_changed.connect(lambda _f: self._update_frame_actions())
        self.model.events.frame_state_changed.connect(lambda _f, _s: self._update_frame_actions())

    def _connect_propagation(self) -> None:
        p, st = self.propagation, self.status
        p.started.connect(self._on_propagation_started)
        p.progress.connect(self._on_propagation_progress)
        p.finished.connect(self._on_propagation_finished)
        p.failed.connect(lambda text: self.show_error(f"Propagation failed: {text}"))
        p.device_changed.connect(lambda dev: st.device.setText(device_text(p.settings.backbone, dev)))

    def _on_propagation_started(self, info) -> None:
        st = self.status
        st.progress.setRange(0, info.total)
        st.progress.setValue(0)
        what = "keypoints " if info.kind == "keypoints" else ""
        st.progress.setFormat(f"{info.arrow} {what}starting…")
        st.progress.setVisible(True)
        st.cancel.setVisible(True)
        self._update_history_actions()

    def _on_propagation_progress(self, done: int, total: int, fps: float, left: float) -> None:
        bar = self.status.progress
        bar.setMaximum(total)
        bar.setValue(done)
        eta = f"{left:.0f} s left" if math.isfinite(left) else ""
        bar.setFormat(f"{done}/{total} frames · {fps:.1f} fps · {eta}")

    def _on_propagation_finished(self, applied: int, cancelled: bool) -> None:
        self.status.progress.setVisible(False)
        self.status.cancel.setVisible(False)
        info = self.propagation.run_info
        keypoints = info is not None and info.kind == "keypoints"
        what = "keypoints on " if keypoints else ""
        if cancelled and not keypoints:  # a cancelled mask run is put back (no provisional frames stay)
            text = "Cancelled: the frames are as they were before the run"
        else:
            verb = "Cancelled after" if cancelled else "Propagated"
            text = f"{verb} {what}{applied} frame(s) — Ctrl+Z undoes the whole run"
        self.statusBar().showMessage(text, 6000)
        self._update_history_actions()

    # ---- actions -----------------------------------------------------------------------------

    def _guard(self, handler) -> None:
        """Run an action; a user error becomes a one-line message, the app keeps running."""
        try:
            handler()
        except AnnotatorError as exc:
            self.show_error(str(exc))

    def show_error(self, text: str) -> None:
        """Tell the person what went wrong, without blocking: a window-modal box that returns at once.

        A blocking ``QMessageBox.warning`` would run a nested event loop inside the slot that
        reported the error, so whatever was queued behind it (the end of a failed propagation run)
        would only be handled once the box is closed; the window must be idle while it shows.
        """
        self.statusBar().showMessage(text, 8000)
        if self.error_box is not None:
            self.error_box.close()
        box = QMessageBox(QMessageBox.Icon.Warning, "Annotator", text, QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.destroyed.connect(lambda _o=None, b=box: self._forget_error_box(b))
        self.error_box = box
        box.open()

    def _forget_error_box(self, box: QMessageBox) -> None:
        if self.error_box is box:
            self.error_box = None

    def _edit(self, name: str, make_changes) -> None:
        if self.model.video is not None:
            self.model.history.push(name, make_changes())

    def propagate(self, direction: int, go_on: bool = False) -> None:
        if self.propagation.running:
            self.statusBar().showMessage("A propagation is already running (Esc cancels it)", 4000)
            return
        m = self.model
        if m.video is not None and m.frame_state(m.current_frame) is FrameState.PROPAGATED:
            # P after Esc lands here (the view follows the run): offer to go on, not an error
            if not self._confirm_resume(m.current_frame):
                return
            self.mark_reference()
        self.propagation.start(direction, go_on)

    def _confirm_resume(self, frame: int) -> bool:
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Resume propagation?",
            f"Frame {frame} was propagated; runs start from a reference. Accept frame {frame} as a reference "
            "and propagate on from it? (Its features are cached: the run picks up where it stopped.)",
            buttons.Yes | buttons.No, buttons.Yes)
        return answer == buttons.Yes

    def propagate_keypoints(self) -> None:
        if self.propagation.running:
            self.statusBar().showMessage("A propagation is already running (Esc cancels it)", 4000)
            return
        self.propagation.start_keypoints()

    def mark_reference(self) -> None:
        m = self.model
        if m.video is not None:
            m.history.push("Mark reference", [m.set_frame_state(m.current_frame, FrameState.REFERENCE)])

    def undo(self) -> None:
        if not self.propagation.running:
            self.model.history.undo()

    def redo(self) -> None:
        if not self.propagation.running:
            self.model.history.redo()

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.propagation.settings, self.status.device.text(), self)
        if dialog.exec():
            settings = dialog.settings()
            settings.params.validate()
            self.propagation.set_settings(settings)
            save_settings(self.qsettings, settings)
            self.status.device.setText(device_text(settings.backbone, settings.device))

    def _step(self, delta: int) -> None:
        self.model.set_current_frame(self.model.current_frame + delta)

    def _jump_reference(self, direction: int) -> None:
        cur = self.model.current_frame
        refs = [i for i in self.model.reference_frames() if (i - cur) * direction > 0]
        if refs:
            self.model.set_current_frame(min(refs) if direction > 0 else max(refs))

    def _select_object(self, object_id: int) -> None:
        if self.canvas.tool is Tool.KEYPOINT:  # number keys pick what the tool in hand places
            if any(k.id == object_id for k in self.model.keypoints):
                self.model.set_active_keypoint(object_id)
            return
        if any(o.id == object_id for o in self.model.objects):
            self.model.set_active_object(object_id)

    def _nudge_opacity(self, delta: float) -> None:
        self.tool_widgets.opacity.setValue(round((self.canvas.overlay_opacity() + delta) * 100))

    @staticmethod
    def _set_blocked(widget, value) -> None:
        with QSignalBlocker(widget):
            widget.setValue(value)

    def _update_history_actions(self) -> None:
        h, a = self.model.history, self.actions_by_name
        busy = self.propagation.running
        a["undo"].setEnabled(h.can_undo and not busy)
        a["redo"].setEnabled(h.can_redo and not busy)
        a["undo"].setText(f"Undo {h.undo_name()}" if h.can_undo else "Undo")
        a["redo"].setText(f"Redo {h.redo_name()}" if h.can_redo else "Redo")

    def _update_frame_actions(self) -> None:
        m = self.model
        a = self.actions_by_name
        # propagation stays enabled: pressing P on a non-reference frame explains what to do
        is_ref = m.video is not None and m.is_reference(m.current_frame)
        a["mark_reference"].setEnabled(m.video is not None and not is_ref and m.has_labels(m.current_frame))

    def _update_title(self) -> None:
        video = self.model.video
        self.setWindowTitle(f"{video.name} — Annotator" if video is not None else "Annotator")
        self._update_frame_actions()

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.files.drag_enter(event)

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.files.drop(event)

    # ---- lifetime ----------------------------------------------------------------------------

    def confirm_close(self) -> bool:
        """With unsaved changes ask Save / Discard / Cancel; True when the window may close."""
        if self.model.video is None or not self.projects.changes.dirty:
            return True
        buttons = QMessageBox.StandardButton
        answer = QMessageBox.question(
            self, "Unsaved changes", f"{self.model.video.name} has unsaved changes. Save them before closing?",
            buttons.Save | buttons.Discard | buttons.Cancel, buttons.Save)
        if answer == buttons.Save:
            return self.projects.save()  # a failed or cancelled save keeps the window open
        return answer == buttons.Discard  # discarded work stays in the recovery area until the next start

    def quit(self) -> None:
        """Ctrl+Q: close the window once unsaved changes are saved or knowingly dropped."""
        if self.confirm_close():
            self._close_confirmed = True
            self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        # asked here too for the window's own close button (a spontaneous event); a close from code
        # (tests, the app shutting down) is not interrupted by a question
        if event.spontaneous() and not self._close_confirmed and not self.confirm_close():
            event.ignore()
            return
        self.propagation.cancel()
        self.propagation.wait()
        self.files.wait()
        self.projects.shutdown()  # keeps the autosave only when there is unsaved work
        super().closeEvent(event)
