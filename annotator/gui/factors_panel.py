"""Live factors: the paper's implementation factors beside the canvas, and "Re-run".

Editing a value changes the propagation settings at once (the next run uses them); "Re-run"
propagates the last run again with them, so the effect of one factor is one click away, and the
run list keeps both runs. Backbone and stage are joined into the backbone spec (``lite0:s4``).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from annotator.core.propagation import PropagationParams
from annotator.gui.settings import BACKBONES, PropagationSettings

STAGES = ("default", "s3", "s4", "s5", "s6", "s7", "s4+s5")


def split_backbone(spec: str) -> tuple[str, str]:
    """``"lite0:s4"`` -> ``("lite0", "s4")``; no stage -> ``"default"``. ``checkpoint:PATH`` stays whole."""
    if spec.startswith("checkpoint:"):
        return spec, "default"
    name, _, stage = spec.partition(":")
    return name, stage or "default"


def join_backbone(name: str, stage: str) -> str:
    return name if stage in ("", "default") or name.startswith("checkpoint:") else f"{name}:{stage}"


class FactorsPanel(QWidget):
    """Widgets for every factor; ``settings_changed`` on each edit, ``rerun_requested`` on the button."""

    settings_changed = Signal()  # read them with settings(base)
    rerun_requested = Signal()

    def __init__(self, settings: PropagationSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout()
        self.backbone = QComboBox()
        self.backbone.setEditable(True)
        self.backbone.addItems(BACKBONES)
        self.backbone.setToolTip("lite0 (embedded), resnet18/50 (torchvision weights), checkpoint:PATH")
        self.stage = QComboBox()
        self.stage.addItems(STAGES)
        self.stage.setToolTip("Feature stage of lite0 (default s5)")
        self.context = self._spin(0, 200, "m: recent propagated frames kept in the context")
        self.context_stride = self._spin(1, 50, "Spacing of the context frames: t-1, t-1-s, ... (1 = consecutive)")
        self.topk = self._spin(1, 200, "k: affinities kept per target cell")
        self.temperature = QDoubleSpinBox()
        self.temperature.setDecimals(3)
        self.temperature.setRange(0.001, 10.0)
        self.temperature.setSingleStep(0.01)
        self.temperature.setToolTip("τ: softmax temperature of the kept affinities")
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.0, 200.0)
        self.radius.setSuffix(" cells")
        self.radius.setToolTip("Spatial radius in feature cells (stride 8)")
        self.radius_refs = QCheckBox("also for reference frames")
        self.reference_stride = self._spin(1, 8, "Whole-frame references: every s-th cell outside the radius")
        self.short_side = QSpinBox()
        self.short_side.setRange(0, 2160)
        self.short_side.setSingleStep(32)
        self.short_side.setSuffix(" px")
        self.short_side.setSpecialValueText("original")
        self.short_side.setToolTip("Working resolution: short side of the frames the backbone sees")
        for label, widget in (("Backbone", self.backbone), ("Stage", self.stage), ("Context m", self.context),
                              ("Context stride", self.context_stride), ("Top-k", self.topk), ("Temperature τ", self.temperature), ("Radius", self.radius),
                              ("", self.radius_refs), ("Reference stride", self.reference_stride),
                              ("Resolution", self.short_side)):
            form.addRow(label, widget)
        self.rerun = QPushButton("Re-run")
        self.rerun.setToolTip("Propagate the last run again with these factors (kept in the run list)")
        self.rerun.clicked.connect(self.rerun_requested.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.rerun)
        layout.addStretch(1)
        self.show_settings(settings)
        for w in (self.context, self.context_stride, self.reference_stride, self.topk, self.short_side):
            w.valueChanged.connect(self._emit)
        for w in (self.temperature, self.radius):
            w.valueChanged.connect(self._emit)
        self.radius_refs.toggled.connect(self._emit)
        self.backbone.currentTextChanged.connect(self._emit)
        self.stage.currentTextChanged.connect(self._emit)

    @staticmethod
    def _spin(lo: int, hi: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setToolTip(tip)
        return spin

    def show_settings(self, s: PropagationSettings) -> None:
        """Show ``s`` without emitting (the settings dialog changed them)."""
        name, stage = split_backbone(s.backbone)
        widgets = (self.backbone, self.stage, self.context, self.context_stride, self.topk, self.temperature, self.radius,
                   self.radius_refs, self.reference_stride, self.short_side)
        blockers = [QSignalBlocker(w) for w in widgets]
        self.backbone.setCurrentText(name)
        self.stage.setCurrentText(stage if stage in STAGES else "default")
        self.context.setValue(s.params.context)
        self.context_stride.setValue(s.params.context_stride)
        self.topk.setValue(s.params.topk)
        self.temperature.setValue(s.params.temperature)
        self.radius.setValue(s.params.radius)
        self.radius_refs.setChecked(s.params.radius_for_references)
        self.reference_stride.setValue(s.params.reference_stride)
        self.short_side.setValue(s.short_side)
        del blockers

    def settings(self, base: PropagationSettings | None = None) -> PropagationSettings:
        """The settings the widgets show (context labels and tile from ``base``)."""
        base = base or PropagationSettings()
        params: PropagationParams = replace(base.params, context=self.context.value(),
                                            context_stride=self.context_stride.value(), topk=self.topk.value(),
                                            temperature=self.temperature.value(), radius=self.radius.value(),
                                            radius_for_references=self.radius_refs.isChecked(),
                                            reference_stride=self.reference_stride.value())
        spec = join_backbone(self.backbone.currentText().strip() or "lite0", self.stage.currentText())
        return replace(base, backbone=spec, short_side=self.short_side.value(), params=params)

    def _emit(self, *_args) -> None:
        self.settings_changed.emit()
