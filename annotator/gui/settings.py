"""Propagation settings (backbone, device, factors, working resolution) and the dialog that edits them.

The defaults come from :class:`~annotator.core.propagation.PropagationParams`; the values persist
in `QSettings` between sessions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                               QGroupBox, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from annotator.core.backbones import DEFAULT_FLIP
from annotator.core.errors import AnnotatorError, UsageError
from annotator.core.part_groups import format_part_groups, parse_part_groups
from annotator.core.presets import PRESETS
from annotator.core.propagation import PropagationParams

BACKBONES = ("lite0", "resnet18", "resnet50")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "float32", "half")


@dataclass(frozen=True)
class PropagationSettings:
    """Everything a propagation run depends on besides the annotation."""

    backbone: str = "lite0"
    device: str = "auto"
    short_side: int = 480
    params: PropagationParams = field(default_factory=PropagationParams)
    feature_precision: str = "auto"
    """Backbone precision: "auto" (half where the device has it), "float32", or "half"."""
    flip: bool = DEFAULT_FLIP
    """Mirror test-time augmentation of the features (twice the backbone time)."""

    @property
    def half(self) -> bool | None:
        return {"auto": None, "float32": False, "half": True}.get(self.feature_precision)

    def backbone_key(self) -> tuple:
        """What the loaded backbone depends on."""
        return (self.backbone, self.device, self.feature_precision, self.flip)

    def feature_key(self) -> tuple:
        """What cached features depend on (the factors do not change features)."""
        return (*self.backbone_key(), self.short_side)

    def save(self, qsettings: QSettings) -> None:
        qsettings.setValue("propagation/backbone", self.backbone)
        qsettings.setValue("propagation/device", self.device)
        qsettings.setValue("propagation/short_side", self.short_side)
        qsettings.setValue("propagation/feature_precision", self.feature_precision)
        qsettings.setValue("propagation/flip", self.flip)
        # part groups as their command-line spec: QSettings does not keep nested tuples
        stored = {**asdict(self.params), "part_groups": format_part_groups(self.params.part_groups)}
        for name, value in stored.items():
            qsettings.setValue(f"propagation/{name}", value)

    @classmethod
    def load(cls, qsettings: QSettings) -> PropagationSettings:
        defaults = cls()
        params = {}
        for name, value in asdict(defaults.params).items():
            stored = qsettings.value(f"propagation/{name}", value)
            try:
                if name == "part_groups":
                    params[name] = parse_part_groups(str(stored or ""))
                else:
                    params[name] = stored in (True, "true", "1") if isinstance(value, bool) else type(value)(stored)
            except (TypeError, ValueError, UsageError):
                params[name] = value
        try:
            p = PropagationParams(**params)
            p.validate()
            short_side = int(qsettings.value("propagation/short_side", defaults.short_side))
        except Exception:  # noqa: BLE001 - a corrupt settings file must not stop the app
            return defaults
        precision = str(qsettings.value("propagation/feature_precision", defaults.feature_precision))
        return cls(str(qsettings.value("propagation/backbone", defaults.backbone)),
                   str(qsettings.value("propagation/device", defaults.device)), short_side, p,
                   precision if precision in PRECISIONS else defaults.feature_precision,
                   qsettings.value("propagation/flip", defaults.flip) in (True, "true", "1"))


class SettingsDialog(QDialog):
    """Edit :class:`PropagationSettings`; ``settings()`` returns the result."""

    def __init__(self, settings: PropagationSettings, device_text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Propagation settings")
        self._base = settings
        layout = QVBoxLayout(self)

        preset_row = QFormLayout()
        self.preset = QComboBox()
        for p in PRESETS.values():
            self.preset.addItem(p.name.capitalize(), p.name)
            self.preset.setItemData(self.preset.count() - 1, p.measured, Qt.ItemDataRole.ToolTipRole)
        self.preset.addItem("Custom", "")
        self.preset.setToolTip("Speed against quality: sets mirror augmentation, radius, context length and "
                               "stride (measured on DAVIS 2016; hover an entry for its figures)")
        preset_row.addRow("Preset", self.preset)
        layout.addLayout(preset_row)

        model_box = QGroupBox("Features")
        form = QFormLayout(model_box)
        self.backbone = QComboBox()
        self.backbone.setEditable(True)  # checkpoint:PATH and lite0:s4 are typed in
        self.backbone.addItems(BACKBONES)
        self.backbone.setCurrentText(settings.backbone)
        self.backbone.setToolTip("lite0 (embedded), resnet18/resnet50 (torchvision weights), or checkpoint:PATH")
        form.addRow("Backbone", self.backbone)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setCurrentText(settings.device)
        self.device.setToolTip(f"auto = CUDA > MPS > CPU{f' (now: {device_text})' if device_text else ''}")
        form.addRow("Device", self.device)
        self.short_side = QSpinBox()
        self.short_side.setRange(0, 2160)
        self.short_side.setSingleStep(32)
        self.short_side.setSuffix(" px")
        self.short_side.setSpecialValueText("original")
        self.short_side.setValue(settings.short_side)
        self.short_side.setToolTip("Frames are resized to this short side before feature extraction")
        form.addRow("Working resolution (short side)", self.short_side)
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setCurrentText(settings.feature_precision)
        self.precision.setToolTip("auto: half precision where the device computes it (float16 on a GPU, "
                                  "bfloat16 on a CPU with AVX512-BF16/AMX: about 3x faster features, same "
                                  "J&F on DAVIS); float32: always full precision")
        form.addRow("Backbone precision", self.precision)
        self.flip = QCheckBox("Mirror augmentation (features of the frame and its mirror image; 2x time)")
        self.flip.setChecked(settings.flip)
        form.addRow("", self.flip)
        layout.addWidget(model_box)

        factors = QGroupBox("Propagation factors")
        form = QFormLayout(factors)
        p = settings.params
        self.context = self._spin(0, 200, p.context, "m: recent propagated frames kept in the context")
        form.addRow("Context length m", self.context)
        self.context_stride = self._spin(1, 50, p.context_stride,
                                         "Spacing of the context frames: t-1, t-1-s, t-1-2s, ... (1 = consecutive)")
        form.addRow("Context stride", self.context_stride)
        self.topk = self._spin(1, 200, p.topk, "k: affinities kept per target position")
        form.addRow("Top-k", self.topk)
        self.temperature = QDoubleSpinBox()
        self.temperature.setDecimals(3)
        self.temperature.setRange(0.001, 10.0)
        self.temperature.setSingleStep(0.01)
        self.temperature.setValue(p.temperature)
        form.addRow("Temperature τ", self.temperature)
        self.radius = QDoubleSpinBox()
        self.radius.setRange(0.0, 200.0)
        self.radius.setValue(p.radius)
        self.radius.setSuffix(" cells")
        form.addRow("Radius", self.radius)
        self.radius_refs = QCheckBox("Radius also applies to reference frames")
        self.radius_refs.setChecked(p.radius_for_references)
        form.addRow("", self.radius_refs)
        self.reference_stride = self._spin(1, 8, p.reference_stride,
                                           "Whole-frame references: every cell inside the radius, every s-th cell "
                                           "of every s-th row outside it (1 = every cell)")
        form.addRow("Reference stride", self.reference_stride)
        self.context_labels = QComboBox()
        self.context_labels.addItems(["soft", "hard"])
        self.context_labels.setCurrentText(p.context_labels)
        form.addRow("Context labels", self.context_labels)
        self.both_ways = QCheckBox("Fill the frames between two references from both ends, fused")
        self.both_ways.setChecked(p.both_ways)
        self.both_ways.setToolTip("On: P re-fills the spans on both sides of a reference, each from the keyframes "
                                  "at its two ends. Off: P propagates forward to the next reference only, "
                                  "using only the references behind it")
        form.addRow("", self.both_ways)
        self.part_groups = QLineEdit(format_part_groups(p.part_groups))
        self.part_groups.setPlaceholderText("none, e.g. 1-25,26-50")
        self.part_groups.setToolTip("Object ids that are parts of one whole: groups separated by ',', members "
                                    "joined by '+', each an id or a range A-B (1-3+7,8-12). A pixel goes to the "
                                    "group whose parts together are the most probable, then to its likeliest part, "
                                    "so many parts per object do not lose the object's edges to background.")
        form.addRow("Part groups", self.part_groups)
        self.part_groups_error = QLabel()
        self.part_groups_error.setStyleSheet("color: #c0392b")
        self.part_groups_error.setWordWrap(True)
        self.part_groups_error.hide()
        form.addRow("", self.part_groups_error)
        layout.addWidget(factors)

        self._show_preset()
        self.preset.activated.connect(self._apply_preset)
        for spin in (self.context, self.context_stride, self.reference_stride):
            spin.valueChanged.connect(self._show_preset)
        self.radius.valueChanged.connect(self._show_preset)
        self.flip.toggled.connect(self._show_preset)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        reset = QPushButton("Restore defaults")
        buttons.addButton(reset, QDialogButtonBox.ButtonRole.ResetRole)
        reset.clicked.connect(self._restore_defaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def _apply_preset(self) -> None:
        name = self.preset.currentData()
        if name:
            chosen = PRESETS[name]
            self.flip.setChecked(chosen.flip)
            self.radius.setValue(chosen.radius)
            self.context.setValue(chosen.context)
            self.context_stride.setValue(chosen.context_stride)
            self.reference_stride.setValue(chosen.reference_stride)

    def _show_preset(self) -> None:
        """Select the preset the fields hold, or Custom."""
        params = replace(self._base.params, context=self.context.value(), context_stride=self.context_stride.value(),
                         reference_stride=self.reference_stride.value(), radius=self.radius.value())
        name = next((p.name for p in PRESETS.values() if p.matches(params, self.flip.isChecked())), "")
        self.preset.setCurrentIndex(self.preset.findData(name))

    def _restore_defaults(self) -> None:
        self._base = PropagationSettings()
        self._show(self._base)

    @staticmethod
    def _spin(lo: int, hi: int, value: int, tip: str) -> QSpinBox:
        spin = QSpinBox()
        spin.setRange(lo, hi)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def _show(self, s: PropagationSettings) -> None:
        self.backbone.setCurrentText(s.backbone)
        self.device.setCurrentText(s.device)
        self.short_side.setValue(s.short_side)
        self.precision.setCurrentText(s.feature_precision)
        self.flip.setChecked(s.flip)
        self.context.setValue(s.params.context)
        self.context_stride.setValue(s.params.context_stride)
        self.topk.setValue(s.params.topk)
        self.temperature.setValue(s.params.temperature)
        self.radius.setValue(s.params.radius)
        self.radius_refs.setChecked(s.params.radius_for_references)
        self.reference_stride.setValue(s.params.reference_stride)
        self.context_labels.setCurrentText(s.params.context_labels)
        self.both_ways.setChecked(s.params.both_ways)
        self.part_groups.setText(format_part_groups(s.params.part_groups))

    def accept(self) -> None:
        """Close only with part groups that parse; otherwise say why beside the field."""
        try:
            parse_part_groups(self.part_groups.text())
        except UsageError as exc:
            self.part_groups_error.setText(str(exc))
            self.part_groups_error.show()
            self.part_groups.setFocus()
            return
        super().accept()

    def settings(self) -> PropagationSettings:
        # factors this dialog does not show (upsampling, matmul precision, flow) are kept as they were
        params = replace(self._base.params, context=self.context.value(), context_stride=self.context_stride.value(),
                         reference_stride=self.reference_stride.value(), topk=self.topk.value(),
                         temperature=self.temperature.value(), radius=self.radius.value(),
                         radius_for_references=self.radius_refs.isChecked(),
                         context_labels=self.context_labels.currentText(), both_ways=self.both_ways.isChecked(),
                         part_groups=parse_part_groups(self.part_groups.text()))
        return PropagationSettings(self.backbone.currentText().strip() or "lite0", self.device.currentText(),
                                   self.short_side.value(), params, self.precision.currentText(),
                                   self.flip.isChecked())


def device_text(backbone: str, device: str) -> str:
    """Status-bar text: the backbone and the device it runs on ("auto" resolved: CPU, CUDA or MPS)."""
    from annotator.core.backbones.device import resolve_device

    try:
        shown = resolve_device(device).type
    except AnnotatorError:
        shown = device
    return f"{backbone} · {shown.upper()}"
