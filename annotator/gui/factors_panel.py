"""Live factors: the paper's implementation factors beside the canvas, and "Re-run".

Editing a value changes the propagation settings at once (the next run uses them); "Re-run"
propagates the last run again with them, so the effect of one factor is one click away, and the
run list keeps both runs. Backbone and stage are joined into the backbone spec (``lite0:s4``).
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QSignalBlocker, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QPushButton, QVBoxLayout, QWidget

from annotator.core.features.backbones import DEFAULT_LITE0_STAGE, ENSEMBLE_SEPARATOR
from annotator.core.runs.settings import RunSettings
from annotator.gui.factor_rows import FactorWidgets, RadiusFollowsWorkingSize, backbone_combo, short_side_spin

STAGES = ("default", "s3", "s4", "s5", "s6", "s7", "s4+s5")


def split_backbone(spec: str) -> tuple[str, str]:
    """``"lite0:s4"`` -> ``("lite0", "s4")``; no stage -> ``"default"``. ``checkpoint:PATH`` stays whole.

    An ensemble whose members all name the same stage gives it (``"lite0:s5&lite2:s5"`` ->
    ``("lite0&lite2", "s5")``); other ensembles stay whole.
    """
    if spec.startswith("checkpoint:"):
        return spec, "default"
    if ENSEMBLE_SEPARATOR in spec:
        parts = [split_backbone(member) for member in spec.split(ENSEMBLE_SEPARATOR)]
        stages = {stage for _, stage in parts}
        if len(stages) == 1 and not any(name.startswith("checkpoint:") for name, _ in parts):
            return ENSEMBLE_SEPARATOR.join(name for name, _ in parts), stages.pop()
        return spec, "default"
    name, _, stage = spec.partition(":")
    return name, stage or "default"


def join_backbone(name: str, stage: str) -> str:
    """The inverse of :func:`split_backbone`: an ensemble's stage goes to every member that names none."""
    if stage in ("", "default") or name.startswith("checkpoint:"):
        return name
    if ENSEMBLE_SEPARATOR in name:
        return ENSEMBLE_SEPARATOR.join(member if ":" in member else f"{member}:{stage}"
                                       for member in name.split(ENSEMBLE_SEPARATOR))
    return f"{name}:{stage}"


class FactorsPanel(QWidget):
    """Widgets for every factor; ``settings_changed`` on each edit, ``rerun_requested`` on the button."""

    settings_changed = Signal()  # read them with settings(base)
    rerun_requested = Signal()

    def __init__(self, settings: RunSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout()
        self.backbone = backbone_combo()
        self.stage = QComboBox()
        self.stage.addItems(STAGES)
        self.stage.setToolTip(f"Feature stage of lite0/lite1/lite2, of every member of an ensemble "
                              f"(default {DEFAULT_LITE0_STAGE})")
        form.addRow("Backbone", self.backbone)
        form.addRow("Stage", self.stage)
        self.fields = FactorWidgets()
        self.fields.add_rows(form)
        self.short_side = short_side_spin()
        form.addRow("Resolution", self.short_side)
        self.rerun = QPushButton("Re-run")
        self.rerun.setToolTip("Propagate the last run again with these factors (kept in the run list)")
        self.rerun.clicked.connect(self.rerun_requested.emit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.rerun)
        layout.addStretch(1)
        self._radius_follows = RadiusFollowsWorkingSize(self.short_side, self.fields.radius)
        self.show_settings(settings)
        self.fields.on_change(self._emit)
        self.short_side.valueChanged.connect(self._emit)
        self.backbone.currentTextChanged.connect(self._emit)
        self.stage.currentTextChanged.connect(self._emit)

    def show_settings(self, s: RunSettings) -> None:
        """Show ``s`` without emitting (the settings dialog changed them)."""
        name, stage = split_backbone(s.backbone)
        blockers = [QSignalBlocker(w) for w in (self.backbone, self.stage, self.short_side)]
        self.backbone.setCurrentText(name)
        self.stage.setCurrentText(stage if stage in STAGES else "default")
        self.short_side.setValue(s.short_side or 0)
        self.fields.show(s.params, quietly=True)
        del blockers
        self._radius_follows.sync()  # the resolution was set unheard

    def settings(self, base: RunSettings | None = None) -> RunSettings:
        """The settings the widgets show (the rest from ``base``)."""
        base = base or RunSettings()
        spec = join_backbone(self.backbone.currentText().strip() or "lite0", self.stage.currentText())
        return replace(base, backbone=spec, short_side=self.short_side.value() or None,
                       params=self.fields.read(base.params))

    def _emit(self, *_args) -> None:
        self.settings_changed.emit()
