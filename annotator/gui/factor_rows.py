"""The propagation factors the settings dialog and the factors panel both edit, bound in one table.

Each row of :data:`FACTOR_ROWS` names a :class:`PropagationParams` field, its form label and the
widget that edits it; :class:`FactorWidgets` builds the widgets, shows a ``PropagationParams`` in
them and reads one back, so the two views never disagree on a range, a label or a field. The
working resolution and the backbone choice are shared the same way (:func:`short_side_spin`,
:func:`backbone_combo`), and so is the radius following the working resolution
(:class:`RadiusFollowsWorkingSize`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from annotator.core.engine.flow import FLOW_PRESETS
from annotator.core.engine.presets import scaled_radius
from annotator.core.engine.propagation import PropagationParams

BACKBONES = ("lite0", "lite1", "lite2", "lite0&lite2", "resnet18", "resnet50")


def _spin(lo: int, hi: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(lo, hi)
    spin.setToolTip(tip)
    return spin


def _temperature() -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(3)
    spin.setRange(0.001, 10.0)
    spin.setSingleStep(0.01)
    spin.setToolTip("τ: softmax temperature of the kept affinities")
    return spin


def _radius() -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setRange(0.0, 200.0)
    spin.setSuffix(" cells")
    spin.setToolTip("Spatial radius in feature cells (stride 8)")
    return spin


def _double(lo: float, hi: float, step: float, tip: str) -> QDoubleSpinBox:
    """A spin box for a weight or bias: two decimals, ``lo``..``hi`` in steps of ``step``."""
    spin = QDoubleSpinBox()
    spin.setDecimals(2)
    spin.setRange(lo, hi)
    spin.setSingleStep(step)
    spin.setToolTip(tip)
    return spin


def _background_bias() -> QDoubleSpinBox:
    return _double(-0.95, 0.95, 0.05,
                   "Added to the background's probability before each pixel takes its most probable label: "
                   "below 0 masks grow, above 0 they shrink (propagated masks come out a little too small on "
                   "most videos; compact objects whose masks already spill want 0)")


def _appearance() -> QDoubleSpinBox:
    return _double(0.0, 4.0, 0.25,
                   "Weight of the appearance model: a classifier of object and background fitted on the painted "
                   "frames adds its evidence for an object to the masks of frames propagated one way (after "
                   "the last painted frame, before the first; not between two): recovers parts propagation "
                   "missed; 0 = off")


def _reference_flow() -> QDoubleSpinBox:
    return _double(0.0, 1.0, 0.05,
                   "Weight of each painted frame's own mask carried by optical flow onto the frames propagated "
                   "from it: pixel-exact outlines next to a painted frame; the weight falls with the distance "
                   "(weight / d at d frames); 0 = off")


def _flow_preset() -> QComboBox:
    combo = QComboBox()
    combo.addItems(FLOW_PRESETS)
    combo.setToolTip("Optical flow (OpenCV DIS) of the reference flow: finer follows outlines better and costs "
                     "more ('medium' about 3x 'fast', 'fine' about 5x 'medium'; bench/bench_flow.py "
                     "--time-presets)")
    return combo


def _radius_for_references() -> QCheckBox:
    return QCheckBox("Radius also applies to reference frames")


def _anchor() -> QCheckBox:
    box = QCheckBox("Anchor to the reference frames")
    box.setToolTip("Mix into each frame what the reference frames alone say, as much as they match compared "
                   "with the recent frames: keeps errors from growing frame after frame")
    return box


def _islands() -> QCheckBox:
    box = QCheckBox("Prune islands the reference frames do not support")
    box.setToolTip("A detached patch of an object's label (not its largest) takes what the reference frames "
                   "alone say of it: a patch of background that took the label once does not keep it")
    return box


def _colour_grow() -> QCheckBox:
    box = QCheckBox("Grow masks by colour where they are unsure")
    box.setToolTip("A graph cut by colour around each mask's outline adds the pixels whose colour is the object's "
                   "(never removes any; a frame you accept as it is hands on its masks before the grow); masks come "
                   "out too small without it, but can spill where the surroundings share the object's colours (boat's "
                   "spray). On by default; about 0.46 s more per frame: turn it off for speed")
    return box


@dataclass(frozen=True)
class FactorRow:
    """One factor: the ``PropagationParams`` field, its form label ("" for a check box) and its widget."""

    name: str
    label: str
    make: Callable[[], QWidget]


FACTOR_ROWS: tuple[FactorRow, ...] = (
    FactorRow("context", "Context length m", lambda: _spin(0, 200, "m: recent propagated frames kept in the context")),
    FactorRow("context_stride", "Context stride",
               lambda: _spin(1, 50, "Spacing of the context frames: t-1, t-1-s, t-1-2s, ... (1 = consecutive)")),
    FactorRow("topk", "Top-k", lambda: _spin(1, 200, "k: affinities kept per target cell")),
    FactorRow("temperature", "Temperature τ", _temperature),
    FactorRow("radius", "Radius", _radius),
    FactorRow("radius_for_references", "", _radius_for_references),
    FactorRow("reference_stride", "Reference stride",
               lambda: _spin(1, 8, "Whole-frame references: every cell inside the radius, every s-th cell of every "
                                   "s-th row outside it (1 = every cell)")),
    FactorRow("label_detail", "Label detail",
               lambda: _spin(1, 8, "Sub-cells per side of each feature cell that carry labels and move with the "
                                   "cells that match: finer masks (thin parts, edges) at the same matching cost "
                                   "(1 = one label per cell)")),
    FactorRow("background_bias", "Background bias", _background_bias),
    FactorRow("appearance", "Appearance weight", _appearance),
    FactorRow("reference_flow", "Reference flow", _reference_flow),
    FactorRow("flow_preset", "Flow precision", _flow_preset),
    FactorRow("anchor", "", _anchor),
    FactorRow("islands", "", _islands),
    FactorRow("colour_grow", "", _colour_grow),
)


class FactorWidgets:
    """A widget per row of :data:`FACTOR_ROWS`, reachable by field name (``fields.topk``)."""

    def __init__(self) -> None:
        self.widgets: dict[str, QWidget] = {f.name: f.make() for f in FACTOR_ROWS}

    def __getattr__(self, name: str) -> QWidget:
        try:
            return self.__dict__["widgets"][name]
        except KeyError:
            raise AttributeError(name) from None

    def add_rows(self, form: QFormLayout) -> None:
        for f in FACTOR_ROWS:
            form.addRow(f.label, self.widgets[f.name])

    def show(self, params: PropagationParams, *, quietly: bool = False) -> None:
        """Show ``params``; ``quietly``: without emitting change signals."""
        blockers = [QSignalBlocker(w) for w in self.widgets.values()] if quietly else []
        for name, widget in self.widgets.items():
            value = getattr(params, name)
            if isinstance(widget, QCheckBox):
                widget.setChecked(bool(value))
            elif isinstance(widget, QComboBox):
                widget.setCurrentText(str(value))
            else:
                widget.setValue(value)  # type: ignore[attr-defined]
        del blockers

    def read(self, params: PropagationParams) -> PropagationParams:
        """``params`` with the fields of the table replaced by what the widgets show."""
        return replace(params, **{name: _value(w) for name, w in self.widgets.items()})

    def on_change(self, slot: Callable[..., object]) -> None:
        """Call ``slot`` after every edit of any of the widgets."""
        for widget in self.widgets.values():
            if isinstance(widget, QCheckBox):
                widget.toggled.connect(slot)
            elif isinstance(widget, QComboBox):
                widget.currentTextChanged.connect(slot)
            else:
                widget.valueChanged.connect(slot)  # type: ignore[attr-defined]


def _value(widget: QWidget) -> object:
    """What a factor's widget holds: a check box's state, a list's text, a spin box's number."""
    if isinstance(widget, QCheckBox):
        return widget.isChecked()
    if isinstance(widget, QComboBox):
        return widget.currentText()
    return widget.value()  # type: ignore[attr-defined]


def short_side_spin() -> QSpinBox:
    """The working resolution: short side in pixels, 0 = "original"."""
    spin = QSpinBox()
    spin.setRange(0, 2160)
    spin.setSingleStep(32)
    spin.setSuffix(" px")
    spin.setSpecialValueText("original")
    spin.setToolTip("Working resolution: frames are resized to this short side before feature extraction")
    return spin


class RadiusFollowsWorkingSize:
    """When the working resolution changes, the radius (in feature cells) scales with it: the same reach in
    pixels, as the command line gives a ``--short-side`` without ``-r`` (600 -> 480: radius 20 -> 16).
    "original" (0) leaves the radius as it is (its size in pixels is not known here). A view that sets
    the resolution with its signals blocked calls :meth:`sync` after."""

    def __init__(self, short_side: QSpinBox, radius: QDoubleSpinBox) -> None:
        self._short_side, self._radius = short_side, radius
        self._last = short_side.value()
        short_side.valueChanged.connect(self._changed)

    def sync(self) -> None:
        """Take the resolution shown now as the one the radius belongs to."""
        self._last = self._short_side.value()

    def _changed(self, value: int) -> None:
        old, self._last = self._last, value
        if old and value and old != value:
            self._radius.setValue(scaled_radius(self._radius.value(), old, value))


def backbone_combo() -> QComboBox:
    """An editable list of the backbones (``checkpoint:PATH``, ``lite0:s4`` and other ensembles are typed in)."""
    combo = QComboBox()
    combo.setEditable(True)
    combo.addItems(BACKBONES)
    combo.setToolTip("lite0 (embedded, fastest), lite1/lite2 (embedded, larger), resnet18/resnet50 (torchvision "
                     "weights), checkpoint:PATH, or an ensemble joined with '&' (lite0&lite2: both networks' "
                     "features, weighted equally)")
    return combo
