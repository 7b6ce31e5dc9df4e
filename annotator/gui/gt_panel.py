"""The ground-truth panel: J and F of every object over time, clickable, with the overlay mode.

One pyqtgraph curve per object for J (solid, with a point per scored frame) and one for F
(dashed); the title carries the mean J&F. Clicking a point makes its frame current; a vertical
line follows the current frame. The buttons choose the canvas's diagnostic layer (errors,
confidence, split view) and export the report.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QButtonGroup, QHBoxLayout, QLabel, QPushButton, QRadioButton, QSlider,
                               QVBoxLayout, QWidget)

from annotator.gui.diagnostic_overlay import DiagnosticMode


def object_pen_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """The object's colour, lifted when too dark to read on the dark plot."""
    r, g, b = color
    if max(r, g, b) < 170:
        r, g, b = min(255, r + 90), min(255, g + 90), min(255, b + 90)
    return r, g, b


class GroundTruthPanel(QWidget):
    """Plot of per-frame J/F per object; emits ``frame_clicked`` and ``mode_changed``."""

    frame_clicked = Signal(int)
    mode_changed = Signal(object)  # DiagnosticMode
    split_changed = Signal(float)  # 0..1 of the image width
    worst_requested = Signal()
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background=(30, 30, 32))
        self.plot.setYRange(0, 1.02, padding=0)
        self.plot.setLabel("bottom", "frame")
        # frames are integers: never "frame (x0.001)" with ticks at -400..400 around an empty plot
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.addLegend(offset=(-4, -4), labelTextSize="8pt")
        self.cursor = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen((255, 255, 255, 120), width=1))
        self.plot.addItem(self.cursor)
        self.curves: dict[tuple[int, str], pg.PlotDataItem] = {}
        self.status = QLabel("No ground truth: Diagnostics > Load ground truth…")
        self.status.setWordWrap(True)
        self.set_frame_count(1)

        worst = QPushButton("Worst frame (W)")
        worst.setToolTip("Jump to the frame with the lowest J&F")
        worst.clicked.connect(self.worst_requested.emit)
        export = QPushButton("Export report…")
        export.setToolTip("Per-frame metrics as CSV and the curves as PNG")
        export.clicked.connect(self.export_requested.emit)
        modes = QHBoxLayout()
        modes.addWidget(QLabel("Canvas:"))
        self.mode_buttons = QButtonGroup(self)
        for k, (mode, text, tip) in enumerate((
                (DiagnosticMode.OFF, "result", "The propagated masks only"),
                (DiagnosticMode.ERRORS, "errors", "Red: false positive, blue: false negative, yellow: wrong object"),
                (DiagnosticMode.CONFIDENCE, "confidence", "Heat map of doubt: top-2 margin of the soft labels"),
                (DiagnosticMode.SPLIT, "split", "Result on the left, ground truth on the right of the divider"))):
            button = QRadioButton(text)
            button.setToolTip(tip)
            button.setChecked(k == 0)
            self.mode_buttons.addButton(button, k)
            button.toggled.connect(lambda on, m=mode: self.mode_changed.emit(m) if on else None)
            modes.addWidget(button)
        modes.addStretch(1)
        self.split = QSlider(Qt.Orientation.Horizontal)
        self.split.setRange(0, 100)
        self.split.setValue(50)
        self.split.setToolTip("Where the split view divides result and ground truth")
        self.split.valueChanged.connect(lambda v: self.split_changed.emit(v / 100))
        buttons = QHBoxLayout()
        buttons.addWidget(worst)
        buttons.addWidget(export)
        buttons.addWidget(QLabel("Split"))
        buttons.addWidget(self.split, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.plot, 1)
        layout.addLayout(modes)
        legend = QLabel("<span style='color:#ff3c3c'>■</span> false positive  "
                        "<span style='color:#288cff'>■</span> false negative  "
                        "<span style='color:#ffdc00'>■</span> wrong object")
        legend.setToolTip("Colours of the error layer")
        layout.addWidget(legend)
        layout.addLayout(buttons)
        layout.addWidget(self.status)

    def set_mode(self, mode: DiagnosticMode) -> None:
        index = list(DiagnosticMode).index(mode)
        button = self.mode_buttons.button(index)
        if button is not None:
            button.setChecked(True)

    def set_current(self, frame: int) -> None:
        self.cursor.setValue(frame)

    def set_frame_count(self, frames: int) -> None:
        """Show the video's frames 0..frames-1 on the x axis (until curves arrive and it is panned)."""
        self.plot.setXRange(0, max(frames - 1, 1), padding=0.02)

    def clear(self, text: str = "") -> None:
        for item in self.curves.values():
            self.plot.removeItem(item)
        self.curves.clear()
        self.plot.setTitle("")
        if text:
            self.status.setText(text)

    def set_curves(self, curves: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]],
                   colors: dict[int, tuple[int, int, int]], mean_jf: float) -> None:
        """Show ``{object id: (frames, J, F)}``; one J and one F curve per object."""
        curves = {obj: c for obj, c in curves.items() if len(c[0])}
        for key in [k for k in self.curves if k[0] not in curves]:
            self.plot.removeItem(self.curves.pop(key))
        for obj, (frames, j, f) in sorted(curves.items()):
            color = object_pen_color(colors.get(obj, (255, 255, 255)))
            for kind, values in (("J", j), ("F", f)):
                item = self.curves.get((obj, kind))
                if item is None:
                    dashed = kind == "F"
                    item = pg.PlotDataItem(
                        pen=pg.mkPen(color, width=2, style=Qt.PenStyle.DashLine if dashed else Qt.PenStyle.SolidLine),
                        symbol="t" if dashed else "o", symbolSize=6 if dashed else 7,
                        symbolBrush=pg.mkBrush(*color), symbolPen=None, name=f"{kind} object {obj}")
                    item.sigPointsClicked.connect(self._on_points_clicked)
                    self.plot.addItem(item)
                    self.curves[(obj, kind)] = item
                item.setData(np.asarray(frames, dtype=float), np.asarray(values, dtype=float))
        n = len(next(iter(curves.values()))[0]) if curves else 0
        if n:
            self.plot.setTitle(f"mean J&F {mean_jf:.3f} over {n} frame(s)", color="#dddddd", size="10pt")
            self.status.setText("Click a point to go to its frame.")
        else:
            self.plot.setTitle("")

    def _on_points_clicked(self, _item, points, *_args) -> None:
        if len(points):
            self.frame_clicked.emit(int(round(points[0].pos().x())))
