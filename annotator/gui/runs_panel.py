"""The run list: every propagation run with its settings, J&F and frames/s; two runs compared.

Selecting one run shows its J&F curve; selecting two shows both curves on one plot and, below,
the frame-by-frame difference (second minus first), so a factor's effect is seen where it
happens, not only in the mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from annotator.core.runs.experiments import RunRecord, compare_runs

RUN_COLORS = ((64, 160, 255), (255, 150, 40))
NO_RUNS_TEXT = "Runs appear here when a sequence with ground truth is propagated."


def _fmt(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "—"


class RunsPanel(QWidget):
    """A table of :class:`RunRecord` and a comparison plot of the selected runs."""

    frame_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runs: list[RunRecord] = []
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["run", "settings", "J&F", "frames/s"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.MultiSelection)
        header = self.table.horizontalHeader()
        # the short columns fit their contents and "settings" takes the rest: with fixed 100 px
        # columns a narrow dock scrolled the settings header out of view ("etting")
        for col in (0, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setToolTip("Select two runs to compare them")
        self.table.itemSelectionChanged.connect(self._show_selection)
        self.plot = pg.PlotWidget(background=(30, 30, 32))
        self.plot.setLabel("left", "J&F")
        self.plot.setYRange(0, 1.02, padding=0)
        self.plot.addLegend(offset=(-4, -4), labelTextSize="8pt")
        self.diff_plot = pg.PlotWidget(background=(30, 30, 32))
        self.diff_plot.setLabel("left", "difference")
        self.diff_plot.setLabel("bottom", "frame")
        self.diff_plot.setXLink(self.plot)
        self.diff_plot.addItem(pg.InfiniteLine(pos=0, angle=0, pen=pg.mkPen((150, 150, 150), width=1)))
        self.summary = QLabel(NO_RUNS_TEXT)
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.table, 2)
        layout.addWidget(self.plot, 3)
        layout.addWidget(self.diff_plot, 2)
        layout.addWidget(self.summary)
        self._items: list[pg.PlotDataItem] = []

    def set_runs(self, runs: Sequence[RunRecord]) -> None:
        self.runs = list(runs)
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            for col, text in enumerate((run.name, run.describe(), _fmt(run.jf), _fmt(run.fps, 1))):
                item = QTableWidgetItem(text)
                if col >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self._show_selection()

    def select(self, rows: Sequence[int]) -> None:
        self.table.clearSelection()
        for r in rows:
            self.table.selectRow(r)

    def selected(self) -> list[RunRecord]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.runs[r] for r in rows if r < len(self.runs)]

    def _clear_plots(self) -> None:
        for item in self._items:
            item.getViewBox().removeItem(item) if item.getViewBox() is not None else None
        self._items.clear()
        self.plot.plotItem.legend.clear()

    def _show_selection(self) -> None:
        self._clear_plots()
        chosen = self.selected()[-2:]
        for k, run in enumerate(chosen):
            item = self.plot.plot(np.asarray(run.frames, float), run.jf_per_frame(),
                                  pen=pg.mkPen(RUN_COLORS[k], width=2), symbol="o", symbolSize=5,
                                  symbolBrush=pg.mkBrush(*RUN_COLORS[k]), symbolPen=None,
                                  name=f"{run.name}: {run.describe()}")
            item.sigPointsClicked.connect(self._on_points_clicked)
            self._items.append(item)
        if len(chosen) == 2:
            frames, diff = compare_runs(chosen[0], chosen[1])
            brushes = [pg.mkBrush(80, 200, 120) if d >= 0 else pg.mkBrush(230, 80, 80) for d in diff]
            bars = pg.BarGraphItem(x=frames.astype(float), height=diff, width=0.8, brushes=brushes)
            self.diff_plot.addItem(bars)
            self._items.append(bars)
            better = int((diff > 0).sum())
            self.summary.setText(
                f"{chosen[1].name} − {chosen[0].name}: J&F {chosen[1].jf - chosen[0].jf:+.3f} "
                f"(better on {better} of {len(diff)} frames)")
        elif len(chosen) == 1:
            self.summary.setText(f"{chosen[0].name}: J&F {_fmt(chosen[0].jf)}, {_fmt(chosen[0].fps, 1)} frames/s. "
                                 "Select a second run to compare.")
        elif self.runs:  # the placeholder would say there are none
            self.summary.setText(f"{len(self.runs)} run(s): select one to see its J&F curve, two to compare them.")
        else:
            self.summary.setText(NO_RUNS_TEXT)

    def _on_points_clicked(self, _item, points, *_args) -> None:
        if len(points):
            self.frame_clicked.emit(int(round(points[0].pos().x())))
