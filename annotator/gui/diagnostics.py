"""Diagnostics of the main window: ground truth, error and confidence layers, runs, live factors, suggestions.

:func:`setup_diagnostics` builds a :class:`DiagnosticsController` for a main window; it adds its
own docks (ground truth, runs, factors), a Diagnostics menu, the uncertainty curve under the
timeline and a layer on the canvas, so the main window only calls it once.

The controller listens to the model and the propagation controller. Each `FrameResult` of a run
brings soft labels: their per-frame uncertainty feeds the timeline curve and the "next frame to
correct" suggestion; with ground truth loaded the frame's J and F are computed at once and the
plot grows frame by frame. Painting on a scored frame rescores it (debounced). When a run ends
it joins the run list with its settings, scores and frames/s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QPushButton,
                               QWidget)

from annotator.core.model.annotation import FrameState
from annotator.core.analysis.diagnostics import (GroundTruthTracker, confidence_map, correction_j, error_map,
                                        frame_uncertainty, kept_soft)
from annotator.core.errors import UsageError
from annotator.core.runs.experiments import RunRecord
from annotator.core.io.labels import read_mask_folder
from annotator.core.engine.propagation import FrameResult
from annotator.core.engine.upsampling import add_background_bias
from annotator.core.io.report import write_report
from annotator.core.analysis.suggest import DEFAULT_TARGET, Calibration, suggest_frame
from annotator.gui.diagnostic_overlay import (UNCERTAINTY_LABEL, DiagnosticLayer, DiagnosticMode, UncertaintyStrip,
                                              confidence_rgba, error_rgba, split_rgba)
from annotator.gui.factors_panel import FactorsPanel
from annotator.gui.gt_panel import GroundTruthPanel
from annotator.gui.opening import Opened, fit_masks, open_source
from annotator.gui.overlay import color_table
from annotator.gui.runs_panel import RunsPanel
from annotator.gui.settings import device_text, save_settings
from annotator.gui.shortcuts import make_action

if TYPE_CHECKING:  # pragma: no cover
    from annotator.gui.main_window import MainWindow

SIDE_DOCK_WIDTH = 340
"""Initial width (px) of the right-hand docks (objects, ground truth, runs, factors)."""

TARGET_KEY = "suggestion/target"
"""Where the settings keep the quality target of "Next frame to correct"."""
MIN_TARGET, MAX_TARGET = 0.5, 0.99
"""The quality targets a person may set (J); 1.0 would send them to every frame."""


def _stored_target(qsettings) -> float:
    """The person's quality target from the settings; the default where none (or a broken one) is stored."""
    try:
        value = float(qsettings.value(TARGET_KEY, DEFAULT_TARGET))
    except (TypeError, ValueError):
        return DEFAULT_TARGET
    return value if MIN_TARGET <= value <= MAX_TARGET else DEFAULT_TARGET


def _digest(labels: np.ndarray) -> bytes:
    """A label map's fingerprint: tells a frame accepted as propagated from one painted over."""
    return hashlib.blake2b(np.ascontiguousarray(labels).tobytes(), digest_size=16,
                           person=str(labels.shape).encode()[:16]).digest()


def _next_tip(target: float) -> str:
    return ("Go to the frame whose correction should help most, from the propagation's own uncertainty "
            f"(the first frame estimated below your quality target, J {target:.2f}: Diagnostics > Quality target)")


class DiagnosticsController(QObject):
    """See the module docstring."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.model = window.model
        self.propagation = window.propagation
        self.canvas = window.canvas
        self.tracker: GroundTruthTracker | None = None
        self.soft: dict[int, object] = {}  # frame -> (L, h, w) soft labels of its last result (kept_soft)
        self.uncertainty: dict[int, float] = {}
        # what corrections teach the suggestion: frames a person painted over a result, kept until
        # the next run starts (the correction is finished then) as (soft, label ids, uncertainty)
        self.calibration = Calibration()
        self._corrected: dict[int, tuple[object, tuple[int, ...], float]] = {}
        # a digest of each propagated frame's labels as the result left them: a reference whose labels
        # still match was accepted as it was, which teaches the calibration a bound, not a J
        self._result_digest: dict[int, bytes] = {}
        self._label_ids: dict[int, tuple[int, ...]] = {}
        self.runs: list[RunRecord] = []
        self.mode = DiagnosticMode.OFF
        self.split = 0.5
        self.target = _stored_target(window.qsettings)  # the J the person needs (Diagnostics > Quality target)
        self._run: dict | None = None
        # per frame of the run in progress, its (soft, uncertainty, label ids) before the run's first
        # result: a cancelled mask run is put back in the model, and its soft labels here with it
        self._before_run: dict[int, tuple[object, float | None, tuple[int, ...] | None]] = {}
        self._last_plan: tuple[int, int, bool] | None = None  # start, direction, go_on
        self._dirty: set[int] = set()
        self._rescore = QTimer(self, singleShot=True, interval=150)
        self._rescore.timeout.connect(self._rescore_dirty)
        self._refresh = QTimer(self, singleShot=True, interval=40)  # coalesces redraws during a run
        self._refresh.timeout.connect(self._refresh_views)

        self.layer = DiagnosticLayer()
        self.layer.setZValue(1.5)  # above the label overlay, below the polygon and brush cursor
        self.canvas.scene().addItem(self.layer)
        self.gt_panel = GroundTruthPanel()
        self.runs_panel = RunsPanel()
        self.factors_panel = FactorsPanel(self.propagation.settings)
        self.docks = self._add_docks()
        self.strip, self.next_button = self._add_timeline_strip()
        self.actions = self._add_actions()
        self._connect()

    # ---- building ------------------------------------------------------------------------------

    def _add_docks(self) -> dict[str, QDockWidget]:
        w = self.window
        docks = {}
        anchor = w.findChild(QDockWidget, "objects")
        for name, title, panel in (("groundtruth", "Ground truth", self.gt_panel), ("runs", "Runs", self.runs_panel),
                                   ("factors", "Factors", self.factors_panel)):
            dock = QDockWidget(title, w)
            dock.setObjectName(name)
            dock.setWidget(panel)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                             | QDockWidget.DockWidgetFeature.DockWidgetClosable
                             | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
            w.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            if anchor is not None:
                w.tabifyDockWidget(anchor, dock)
            docks[name] = dock
        if anchor is not None:
            anchor.raise_()
            # the plots ask for room; the canvas is what a person works in, so the side stays narrow
            w.resizeDocks([anchor], [SIDE_DOCK_WIDTH], Qt.Orientation.Horizontal)
        return docks

    def _add_timeline_strip(self) -> tuple[UncertaintyStrip, QPushButton]:
        timeline = self.window.timeline
        strip = UncertaintyStrip()
        button = QPushButton("Next to correct (C)")
        button.setToolTip(_next_tip(self.target))
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(self.go_to_suggestion)
        label = QLabel(UNCERTAINTY_LABEL)
        label.setToolTip(strip.toolTip())
        label.setStyleSheet("color: rgb(150, 150, 150)")
        # the name and the button beside the curve, right of every row: the curve keeps the rows' width
        side = QWidget()
        row = QHBoxLayout(side)
        row.setContentsMargins(0, 0, 0, 0)
        row.addStretch(1)
        row.addWidget(label)
        row.addWidget(button)
        timeline.add_row(strip, side)
        return strip, button

    def _add_actions(self) -> dict[str, QAction]:
        w = self.window
        menu = w.menuBar().addMenu("&Diagnostics")
        help_menu = next((a for a in w.menuBar().actions() if a.text() == "&Help"), None)
        if help_menu is not None:  # keep Help last
            w.menuBar().insertMenu(help_menu, menu)
        actions: dict[str, QAction] = {}

        def add(name: str, text: str, handler, keyed: bool = False) -> QAction:
            """``keyed``: the keys come from the shortcuts table's entry ``name``."""
            action = make_action(name, w, text) if keyed else QAction(text, w)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            action.triggered.connect(lambda _c=False: w._guard(handler))
            w.addAction(action)
            menu.addAction(action)
            actions[name] = action
            return action

        add("open_with_gt", "Open DAVIS sequence with ground truth…", self.open_with_ground_truth_dialog)
        add("load_gt", "Load ground truth masks for this video…", self.load_ground_truth_dialog)
        add("export_report", "Export report (CSV + PNG)…", self.export_report_dialog)
        menu.addSeparator()
        add("worst_frame", "Jump to the worst frame", self.go_to_worst, keyed=True)
        add("suggest_frame", "Next frame to correct", self.go_to_suggestion, keyed=True)
        add("suggest_target", "Quality target for the suggestion…", self.target_dialog)
        menu.addSeparator()
        group = QActionGroup(w)
        for mode, text in ((DiagnosticMode.OFF, "Result only"), (DiagnosticMode.ERRORS, "Error map"),
                           (DiagnosticMode.CONFIDENCE, "Confidence heat map"),
                           (DiagnosticMode.SPLIT, "Split view: result | ground truth")):
            a = add(f"layer_{mode.value}", text, lambda m=mode: self.set_mode(m))
            a.setCheckable(True)
            a.setChecked(mode is DiagnosticMode.OFF)
            group.addAction(a)
        add("cycle_layer", "Next diagnostic layer", self.cycle_mode, keyed=True)
        menu.addSeparator()
        for name in self.docks:
            menu.addAction(self.docks[name].toggleViewAction())
        return actions

    def _connect(self) -> None:
        ev = self.model.events
        ev.video_changed.connect(self._on_video_changed)
        ev.current_frame_changed.connect(self._on_current_frame)
        ev.labels_changed.connect(self._on_labels_changed)
        ev.frame_state_changed.connect(self._on_state_changed)
        ev.objects_changed.connect(self._schedule_refresh)
        p = self.propagation
        p.started.connect(self._on_run_started)
        p.frame_result.connect(self._on_result)
        p.progress.connect(self._on_progress)
        p.finished.connect(self._on_run_finished)
        self.gt_panel.frame_clicked.connect(self.model.set_current_frame)
        self.gt_panel.mode_changed.connect(self.set_mode)
        self.gt_panel.split_changed.connect(self._on_split)
        self.gt_panel.worst_requested.connect(lambda: self.window._guard(self.go_to_worst))
        self.gt_panel.export_requested.connect(lambda: self.window._guard(self.export_report_dialog))
        self.runs_panel.frame_clicked.connect(self.model.set_current_frame)
        self.factors_panel.settings_changed.connect(self._on_factors)
        self.factors_panel.rerun_requested.connect(lambda: self.window._guard(self.rerun))
        self.strip.seek.connect(self.model.set_current_frame)

    # ---- ground truth --------------------------------------------------------------------------

    def set_ground_truth(self, masks: dict[int, np.ndarray] | None) -> None:
        """Compare with these label maps (frame -> map at the video's size); None forgets them."""
        if masks is None or self.model.video is None:
            self.tracker = None
            self.gt_panel.clear("No ground truth: Diagnostics > Load ground truth…")
        else:
            masks = fit_masks(masks, self.model.video)
            if not masks:
                raise UsageError("the ground-truth folder holds no masks")
            self.tracker = GroundTruthTracker(masks)
            for frame in self.tracker.scored_frames:
                if self.model.frame_state(frame) is not FrameState.EMPTY:
                    self.tracker.update(frame, np.asarray(self.model.labels(frame)))
            self.gt_panel.status.setText(f"Ground truth on {len(masks)} frames; {len(self.tracker.scored_frames)} "
                                         "scored (DAVIS: not the first and last). Propagate to fill the plot.")
        self._refresh_views()

    def open_with_ground_truth(self, path: str | Path) -> None:
        """Open a DAVIS sequence with only its first mask as reference and all its masks as ground truth."""
        opened = open_source(path)
        if not opened.references:
            opened.video.close()
            raise UsageError(f"{path} has no Annotations folder beside it: nothing to compare with")
        self.show_with_ground_truth(opened)

    def show_with_ground_truth(self, opened: Opened) -> None:
        """Show an opened sequence with its first mask as the reference and all its masks as ground truth."""
        first = min(opened.references)
        self.window.files.set_opened(Opened(opened.video, {first: opened.references[first]}, opened.masks_from))
        self.set_ground_truth(opened.references)
        self.docks["groundtruth"].show()
        self.docks["groundtruth"].raise_()

    def open_with_ground_truth_dialog(self) -> None:
        start = str(self.window.qsettings.value("last_dir", str(Path.home())))
        path = QFileDialog.getExistingDirectory(self.window, "DAVIS sequence (JPEGImages/<res>/<name>)", start)
        if path:
            self.open_with_ground_truth(path)

    def load_ground_truth_dialog(self) -> None:
        if self.model.video is None:
            raise UsageError("open a video first")
        path = QFileDialog.getExistingDirectory(self.window, "Folder of ground-truth masks (NNNNN.png)")
        if path:
            self.set_ground_truth(read_mask_folder(path))
            self.docks["groundtruth"].show()
            self.docks["groundtruth"].raise_()

    # ---- navigation ----------------------------------------------------------------------------

    def go_to_worst(self) -> None:
        if self.tracker is None:
            raise UsageError("load ground truth first (Diagnostics menu)")
        frame = self.tracker.worst_frame()
        if frame is None:
            raise UsageError("no frame is scored yet: propagate first")
        self.model.set_current_frame(frame)

    def suggestion(self) -> int | None:
        if self.model.video is None:
            return None
        return suggest_frame(self.uncertainty, self.model.reference_frames().keys(), target=self.target,
                             calibration=self.calibration)

    def go_to_suggestion(self) -> None:
        frame = self.suggestion()
        if frame is None:
            raise UsageError("no propagated frame to judge yet: propagate first")
        self.model.set_current_frame(frame)
        estimate = self.calibration.estimate_j(self.uncertainty[frame])
        if estimate < self.target:
            text = (f"Frame {frame}: estimated J {estimate:.2f} "
                    "— correct it, or accept it as it is (R) if it is right; then propagate (P)")
        else:  # the suggestion's fallback: say so, or the person never learns when to stop looking
            # before any correction or acceptance the estimate is the raw uncertainty, often too hopeful
            # (short: the status bar cuts what does not fit in one line of the window)
            unchecked = "" if len(self.calibration) else " (not yet checked against your corrections)"
            text = (f"No frame is estimated below your target J {self.target:.2f}{unchecked}: you may be done. "
                    f"Worth a look: frame {frame} (estimated J {estimate:.2f}); R if it is right")
        self.window.statusBar().showMessage(text, 8000)

    def set_target(self, target: float) -> None:
        """The J the person needs on every frame: the suggestion looks for the first frame estimated below it.
        Kept in the settings (it is the person's standard, not the video's)."""
        target = float(target)
        if not MIN_TARGET <= target <= MAX_TARGET:
            raise UsageError(f"the quality target must be a J between {MIN_TARGET} and {MAX_TARGET}, got {target:g}")
        self.target = target
        self.window.qsettings.setValue(TARGET_KEY, target)
        self.next_button.setToolTip(_next_tip(target))

    def target_dialog(self) -> None:
        value, ok = QInputDialog.getDouble(
            self.window, "Quality target", "J every frame should reach (0.80: outlines may be a little off; "
            "0.90: tight outlines). \"Next frame to correct\" looks for the first frame estimated below it.",
            self.target, MIN_TARGET, MAX_TARGET, 2)
        if ok:
            self.set_target(value)
            self.window.statusBar().showMessage(f"Quality target J {self.target:.2f}", 4000)

    # ---- layers --------------------------------------------------------------------------------

    def set_mode(self, mode: DiagnosticMode) -> None:
        self.mode = mode
        self.gt_panel.set_mode(mode)
        action = self.actions.get(f"layer_{mode.value}") if hasattr(self, "actions") else None
        if action is not None:
            action.setChecked(True)
        self._update_layer()

    def cycle_mode(self) -> None:
        modes = list(DiagnosticMode)
        self.set_mode(modes[(modes.index(self.mode) + 1) % len(modes)])

    def _on_split(self, fraction: float) -> None:
        self.split = fraction
        if self.mode is DiagnosticMode.SPLIT:
            self._update_layer()

    def confidence(self, frame: int) -> np.ndarray | None:
        """(H, W) confidence of a propagated frame, None for frames without soft labels."""
        soft = self.soft.get(frame)
        return None if soft is None else confidence_map(soft, self.model.hw)

    def _update_layer(self) -> None:
        m = self.model
        if m.video is None or self.mode is DiagnosticMode.OFF:
            self.layer.set_rgba(None)
            return
        frame = m.current_frame
        gt = self.tracker.ground_truth.get(frame) if self.tracker is not None else None
        rgba = None
        if self.mode is DiagnosticMode.CONFIDENCE:
            conf = self.confidence(frame)
            rgba = None if conf is None else confidence_rgba(conf)
        elif self.mode is DiagnosticMode.ERRORS and gt is not None:
            rgba = error_rgba(error_map(np.asarray(m.labels(frame)), gt))
        elif self.mode is DiagnosticMode.SPLIT and gt is not None:
            colours = color_table(m.objects)[:, :3]
            rgba = split_rgba(m.video.frame(frame), colours[gt], gt, int(self.split * m.hw[1]))
        self.layer.set_rgba(rgba)

    # ---- model events --------------------------------------------------------------------------

    def _on_video_changed(self) -> None:
        self.tracker = None
        self.soft.clear()
        self.uncertainty.clear()
        self._label_ids.clear()
        self._corrected.clear()
        self._result_digest.clear()
        self.calibration = Calibration()
        self._dirty.clear()
        self._last_plan = None
        self.gt_panel.clear("No ground truth: Diagnostics > Load ground truth…")
        self.gt_panel.set_frame_count(self.model.num_frames)
        self._refresh_views()

    def _on_current_frame(self, frame: int) -> None:
        self.gt_panel.set_current(frame)
        self.strip.set_current(frame)
        self._update_layer()

    def _on_labels_changed(self, frame: int, _box) -> None:
        if self.tracker is not None and frame in self.tracker.scored_frames:
            self._dirty.add(frame)
            self._rescore.start()
        if frame == self.model.current_frame and self.mode is DiagnosticMode.ERRORS:
            self._update_layer()

    def _on_state_changed(self, frame: int, state: FrameState) -> None:
        if state is not FrameState.PROPAGATED:  # a person's frame (or cleared): its soft labels are stale
            soft, u = self.soft.pop(frame, None), self.uncertainty.pop(frame, None)
            ids = self._label_ids.pop(frame, None)
            if state is FrameState.REFERENCE and soft is not None and ids is not None and u is not None:
                self._corrected[frame] = (soft, ids, u)
            elif state is FrameState.EMPTY:
                self._corrected.pop(frame, None)
                self._result_digest.pop(frame, None)
        if state is FrameState.EMPTY and self.tracker is not None:
            self.tracker.forget(frame)
            self._dirty.discard(frame)
        self._schedule_refresh()

    def _rescore_dirty(self) -> None:
        if self.tracker is None or self.model.video is None:
            return
        for frame in sorted(self._dirty):
            if self.model.frame_state(frame) is not FrameState.EMPTY:
                self.tracker.update(frame, np.asarray(self.model.labels(frame)))
        self._dirty.clear()
        self._schedule_refresh()

    # ---- propagation runs ----------------------------------------------------------------------

    def learn_from_corrections(self) -> None:
        """Feed the calibration with every finished correction: what the result was vs what was painted."""
        m = self.model
        for frame, (soft, ids, u) in sorted(self._corrected.items()):
            if m.video is not None and m.is_reference(frame):
                labels = np.asarray(m.labels(frame))
                if _digest(labels) == self._result_digest.get(frame):  # accepted as it was (R)
                    self.calibration.accept(u, self.target)
                else:
                    self.calibration.add(u, correction_j(soft, ids, labels))
        self._corrected.clear()

    def _on_run_started(self, info) -> None:
        if info.kind != "masks":  # keypoint runs have no label maps to score
            self._run = None
            return
        self.learn_from_corrections()
        s = self.propagation.settings
        self.factors_panel.show_settings(s)
        self._last_plan = (info.start, info.direction, info.go_on)
        self._before_run = {}
        self._run = {"frames": [], "t0": time.perf_counter(), "fps": float("nan"),
                     "settings": {"backbone": s.backbone, "short_side": s.short_side or 0, **dataclasses.asdict(s.params)}}

    def _on_result(self, item: FrameResult) -> None:
        if self.model.video is None or self.model.is_reference(item.index):
            return  # a person painted it during the run: the result was not applied
        if self._run is not None and item.index not in self._before_run:
            i = item.index
            self._before_run[i] = (self.soft.get(i), self.uncertainty.get(i), self._label_ids.get(i))
        # kept as the label map's decision saw them (the background bias added), so the confidence map's
        # zero line is the drawn boundary and a correction is scored against the result as it was shown
        bias = (self._run["settings"]["background_bias"] if self._run is not None
                else self.propagation.settings.params.background_bias)
        self.soft[item.index] = kept_soft(add_background_bias(item.soft.clone(), item.label_ids, bias))
        self.uncertainty[item.index] = frame_uncertainty(item.soft)
        self._label_ids[item.index] = tuple(item.label_ids)
        self._corrected.pop(item.index, None)
        if self.model.is_reference(item.index):  # a person's frame keeps its labels: not this result's
            self._result_digest.pop(item.index, None)
        else:
            self._result_digest[item.index] = _digest(np.asarray(self.model.labels(item.index)))
        if self._run is not None:
            self._run["frames"].append(item.index)
        if self.tracker is not None and self.tracker.update(item.index, item.labels):
            self._dirty.discard(item.index)
        self._schedule_refresh()

    def _on_progress(self, _done: int, _total: int, fps: float, _left: float) -> None:
        if self._run is not None:
            self._run["fps"] = fps

    def _on_run_finished(self, applied: int, cancelled: bool) -> None:
        run, self._run = self._run, None
        before, self._before_run = self._before_run, {}
        if run is not None and cancelled:
            self._restore(before)
        if run is None or applied == 0:
            return
        frames = sorted(set(run["frames"]))
        fps = run["fps"]
        seconds = applied / fps if fps == fps and fps > 0 else time.perf_counter() - run["t0"]
        name = f"run {len(self.runs) + 1}"
        if self.tracker is not None:
            scored = [f for f in frames if f in self.tracker.scored_frames]
            curves = {}
            for row, obj in enumerate(self.tracker.object_ids):
                got = [(f, self.tracker.scores(f)) for f in scored if self.tracker.scores(f)]
                curves[obj] = (np.array([f for f, _ in got]), np.array([s[row].j for _, s in got]),
                               np.array([s[row].f for _, s in got]))
            record = RunRecord.from_curves(name, run["settings"], curves, applied, seconds)
        else:
            record = RunRecord(name, run["settings"], n_frames=applied, seconds=seconds)
        self.runs.append(record)
        self.runs_panel.set_runs(self.runs)

    def _restore(self, before: dict[int, tuple[object, float | None, tuple[int, ...] | None]]) -> None:
        """Soft labels and uncertainty of the frames a cancelled run put back, as they were before it."""
        for frame, (soft, uncertainty, ids) in before.items():
            for store, value in ((self.soft, soft), (self.uncertainty, uncertainty), (self._label_ids, ids)):
                if value is None:
                    store.pop(frame, None)
                else:
                    store[frame] = value
            if self.model.frame_state(frame) is FrameState.PROPAGATED:  # the labels the model put back
                self._result_digest[frame] = _digest(np.asarray(self.model.labels(frame)))
            else:
                self._result_digest.pop(frame, None)
        self._schedule_refresh()

    def _on_factors(self) -> None:
        settings = self.factors_panel.settings(self.propagation.settings)
        try:
            settings.params.validate()
        except UsageError as exc:
            self.window.statusBar().showMessage(str(exc), 4000)
            return
        self.propagation.set_settings(settings)
        save_settings(self.window.qsettings, settings)
        self.window.status.device.setText(device_text(settings.backbone, settings.device))

    def rerun(self) -> None:
        """Propagate the last run again (or the whole video from the first reference) with the current factors."""
        if self.propagation.running:
            raise UsageError("a propagation is already running: cancel it first (Esc)")
        m = self.model
        if m.video is None:
            raise UsageError("open a video first")
        if self._last_plan is not None and m.is_reference(self._last_plan[0]):
            start, direction, go_on = self._last_plan
        else:
            refs = sorted(m.reference_frames())
            if not refs:
                raise UsageError("paint a reference frame first")
            start, direction, go_on = refs[0], 1, True
        m.set_current_frame(start)
        self.propagation.start(direction, go_on)

    # ---- views ---------------------------------------------------------------------------------

    def _schedule_refresh(self, *_args) -> None:
        if not self._refresh.isActive():
            self._refresh.start()

    def _refresh_views(self) -> None:
        m = self.model
        if self.tracker is not None:
            colors = {o.id: o.color for o in m.objects}
            self.gt_panel.set_curves(self.tracker.curves(), colors, self.tracker.mean_jf())
        values = np.full(m.num_frames, np.nan)
        for f, u in self.uncertainty.items():
            if 0 <= f < m.num_frames:
                values[f] = u
        self.strip.set_values(values, self.suggestion() if self.uncertainty else None)
        self.strip.set_current(m.current_frame)
        self._update_layer()

    # ---- report --------------------------------------------------------------------------------

    def export_report(self, folder: str | Path) -> tuple[Path, Path]:
        """Per-frame metrics CSV and curves PNG of the scored frames, named after the video."""
        if self.tracker is None or not self.tracker.frames:
            raise UsageError("nothing to report: load ground truth and propagate first")
        curves = self.tracker.curves()
        ids = self.tracker.object_ids
        frames = next(iter(curves.values()))[0]
        j = np.array([curves[i][1] for i in ids])
        f = np.array([curves[i][2] for i in ids])
        paths = write_report(folder, self.model.video.name, ids, frames, j, f)
        self.window.statusBar().showMessage(f"Wrote {paths[0]} and {paths[1]}", 6000)
        return paths

    def export_report_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Folder for the report")
        if folder:
            self.export_report(folder)


def setup_diagnostics(window: MainWindow) -> DiagnosticsController:
    """Add the diagnostics (docks, menu, timeline curve, canvas layer, keys) to a main window."""
    return DiagnosticsController(window)
