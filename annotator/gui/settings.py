"""Propagation settings in the app: kept in QSettings between sessions, edited in a dialog.

What a run depends on is one :class:`~annotator.core.runs.settings.RunSettings` (the core's settings, the
same the command line and the batch use); this module only stores it (:func:`save_settings`,
:func:`load_settings`) and edits it (:class:`SettingsDialog`). Defaults come from the core.
"""

from __future__ import annotations

from dataclasses import asdict, replace

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QGroupBox, QLabel,
                               QLineEdit, QPushButton, QVBoxLayout, QWidget)

from annotator.core.errors import AnnotatorError, UsageError
from annotator.core.engine.part_groups import format_part_groups, parse_part_groups
from annotator.core.engine.presets import PRESETS
from annotator.core.engine.propagation import PropagationParams
from annotator.core.runs.settings import RunSettings
from annotator.gui.factor_rows import FactorWidgets, RadiusFollowsWorkingSize, backbone_combo, short_side_spin

DEVICES = ("auto", "cpu", "cuda", "mps")
BACKBONE_PRECISIONS: dict[str, bool | None] = {"auto": None, "float32": False, "half": True}
"""The backbone precision choices and the ``RunSettings.half`` of each ("auto": half where the device has
it). Not the precision of the affinity matmuls, ``PropagationParams.precision``."""


def precision_name(half: bool | None) -> str:
    """The choice of :data:`BACKBONE_PRECISIONS` that gives ``half``."""
    return next(name for name, value in BACKBONE_PRECISIONS.items() if value is half)


SETTINGS_VERSION = 3
"""Version 3 (session 38) keeps only what differs from the defaults, the backbone, device, working size,
backbone precision and mirror features too, so a default changed by a later release reaches everyone
who had not changed it. Version 2 (session 37) did so for the propagation factors only and stored the
five features settings always; version 1 (no version key) stored everything. A later change of one of
those defaults must read the old default stored by an older version as no choice (as
``_CHANGED_DEFAULTS_SINCE_V1`` and ``_STORED_ALWAYS_BEFORE_V3`` do)."""
_CHANGED_DEFAULTS_SINCE_V1 = {"reference_flow": 0.0, "radius": 16.0}
"""Factors whose default changed after version 1, with the value version 1 then stored for everyone: a
version-1 file holding exactly that value was holding the old default, not a choice, and takes the new one
(the reference flow since session 37; the radius, 16 -> 20 with the working size, since session 39). The
background bias was -0.2 in session 47 only, -0.1 before and after: version 3 stored it from no one who kept
the default."""
_STORED_ALWAYS_BEFORE_V3 = {"short_side": 480}
"""Features settings whose default changed after versions 1 and 2 stored them for everyone, with the value
they stored: the working size, 480 -> 600 since session 39. Such a file holding it held no choice."""


def _stored_params(params: PropagationParams) -> dict:
    # part groups as their command-line spec: QSettings does not keep nested tuples
    return {**asdict(params), "part_groups": format_part_groups(params.part_groups)}


def save_settings(qsettings: QSettings, settings: RunSettings) -> None:
    """Keep ``settings`` for the next session (what the app edits: backbone, device, resolution, factors).

    A value at its default is not stored (an older value of it is removed): the next release's default
    applies to it."""
    defaults = _stored(RunSettings())
    for name, value in _stored(settings).items():
        if value == defaults[name]:
            qsettings.remove(f"propagation/{name}")
        else:
            qsettings.setValue(f"propagation/{name}", value)
    qsettings.setValue("propagation/version", SETTINGS_VERSION)


def _stored(settings: RunSettings) -> dict:
    """What :func:`save_settings` keeps of ``settings``, by key under ``propagation/``."""
    return {"backbone": settings.backbone, "device": settings.device, "short_side": settings.short_side or 0,
            "feature_precision": precision_name(settings.half), "flip": settings.flip,
            **_stored_params(settings.params)}


def load_settings(qsettings: QSettings) -> RunSettings:
    """The settings :func:`save_settings` kept; a value that does not parse falls back to its default."""
    defaults = RunSettings()
    params = {}
    version = qsettings.value("propagation/version")
    version_1 = version is None
    try:
        before_3 = version_1 or int(version) < 3
    except (TypeError, ValueError):
        before_3 = False
    for name, value in asdict(defaults.params).items():
        stored = qsettings.value(f"propagation/{name}", value)
        try:
            if version_1 and name in _CHANGED_DEFAULTS_SINCE_V1 and float(stored) == _CHANGED_DEFAULTS_SINCE_V1[name]:
                stored = value  # version 1 stored every factor: this was the old default, not a choice
            if name == "part_groups":
                params[name] = parse_part_groups(str(stored or ""))
            else:
                params[name] = stored in (True, "true", "1") if isinstance(value, bool) else type(value)(stored)
        except (TypeError, ValueError, UsageError):
            params[name] = value
    try:
        p = PropagationParams(**params)
        p.validate()
        short_side = int(qsettings.value("propagation/short_side", defaults.short_side or 0))
        if before_3 and short_side == _STORED_ALWAYS_BEFORE_V3["short_side"]:
            short_side = defaults.short_side or 0  # stored for everyone then: the old default, not a choice
    except Exception:  # noqa: BLE001 - a corrupt settings file must not stop the app
        return defaults
    precision = str(qsettings.value("propagation/feature_precision", precision_name(defaults.half)))
    return replace(defaults, params=p, backbone=str(qsettings.value("propagation/backbone", defaults.backbone)),
                   device=str(qsettings.value("propagation/device", defaults.device)), short_side=short_side or None,
                   half=BACKBONE_PRECISIONS.get(precision, defaults.half),
                   flip=qsettings.value("propagation/flip", defaults.flip) in (True, "true", "1"))


class SettingsDialog(QDialog):
    """Edit :class:`RunSettings`; ``settings()`` returns the result."""

    def __init__(self, settings: RunSettings, device_text: str = "", parent: QWidget | None = None) -> None:
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
        self.preset.setToolTip("Speed against quality: sets mirror augmentation, radius, context length, the "
                               "strides, label detail, island pruning, background bias and working resolution "
                               "(measured on DAVIS 2016; the chosen one's figures are below)")
        preset_row.addRow("Preset", self.preset)
        self.preset_measured = QLabel()  # what the chosen preset was measured to give, without hovering
        self.preset_measured.setWordWrap(True)
        self.preset_measured.setStyleSheet("color: palette(dark)")
        preset_row.addRow("", self.preset_measured)
        layout.addLayout(preset_row)

        model_box = QGroupBox("Features")
        form = QFormLayout(model_box)
        self.backbone = backbone_combo()
        form.addRow("Backbone", self.backbone)
        self.device = QComboBox()
        self.device.addItems(DEVICES)
        self.device.setToolTip(f"auto = CUDA > MPS > CPU{f' (now: {device_text})' if device_text else ''}")
        form.addRow("Device", self.device)
        self.short_side = short_side_spin()
        form.addRow("Working resolution (short side)", self.short_side)
        self.precision = QComboBox()
        self.precision.addItems(list(BACKBONE_PRECISIONS))
        self.precision.setToolTip("auto: half precision where the device computes it (float16 on a GPU, "
                                  "bfloat16 on a CPU with AVX512-BF16/AMX: about 3x faster features, same "
                                  "J&F on DAVIS); float32: always full precision")
        form.addRow("Backbone precision", self.precision)
        self.flip = QCheckBox("Mirror augmentation (features of the frame and its mirror image; 2x time)")
        form.addRow("", self.flip)
        layout.addWidget(model_box)

        factors = QGroupBox("Propagation factors")
        form = QFormLayout(factors)
        self.fields = FactorWidgets()
        self.fields.add_rows(form)
        self.context_labels = QComboBox()
        self.context_labels.addItems(["soft", "hard"])
        form.addRow("Context labels", self.context_labels)
        self.both_ways = QCheckBox("Fill the frames between two references from both ends, fused")
        self.both_ways.setToolTip("On: P re-fills the spans on both sides of a reference, each from the keyframes "
                                  "at its two ends. Off: P propagates forward to the next reference only, "
                                  "using only the references behind it")
        form.addRow("", self.both_ways)
        self.part_groups = QLineEdit()
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

        self._show(settings)
        # a preset or shown settings set the resolution first and their own radius after it, so theirs stands
        self._radius_follows = RadiusFollowsWorkingSize(self.short_side, self.fields.radius)
        self._show_preset()
        self.preset.activated.connect(self._apply_preset)
        self.fields.on_change(self._show_preset)
        self.flip.toggled.connect(self._show_preset)
        self.short_side.valueChanged.connect(self._show_preset)

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
            self.short_side.setValue(chosen.short_side)
            self.fields.show(chosen.apply(self.fields.read(self._base.params)))

    def _show_preset(self) -> None:
        """Select the preset the fields hold, or Custom."""
        params = self.fields.read(self._base.params)
        short_side = self.short_side.value() or None
        name = next((p.name for p in PRESETS.values() if p.matches(params, self.flip.isChecked(), short_side)), "")
        self.preset.setCurrentIndex(self.preset.findData(name))
        self.preset_measured.setText(PRESETS[name].measured if name else
                                     "Your own values: no preset holds them")

    def _restore_defaults(self) -> None:
        self._base = RunSettings()
        self._show(self._base)

    def _show(self, s: RunSettings) -> None:
        self.backbone.setCurrentText(s.backbone)
        self.device.setCurrentText(s.device)
        self.short_side.setValue(s.short_side or 0)
        self.precision.setCurrentText(precision_name(s.half))
        self.flip.setChecked(s.flip)
        self.fields.show(s.params)
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

    def settings(self) -> RunSettings:
        # factors this dialog does not show (upsampling, matmul precision, flow) are kept as they were
        params = replace(self.fields.read(self._base.params), context_labels=self.context_labels.currentText(),
                         both_ways=self.both_ways.isChecked(), part_groups=parse_part_groups(self.part_groups.text()))
        return replace(self._base, backbone=self.backbone.currentText().strip() or "lite0",
                       device=self.device.currentText(), short_side=self.short_side.value() or None, params=params,
                       half=BACKBONE_PRECISIONS[self.precision.currentText()], flip=self.flip.isChecked())


def device_text(backbone: str, device: str) -> str:
    """Status-bar text: the backbone and the device it runs on ("auto" resolved: CPU, CUDA or MPS)."""
    from annotator.core.features.backbones.device import resolve_device

    try:
        shown = resolve_device(device).type
    except AnnotatorError:
        shown = device
    return f"{backbone} · {shown.upper()}"
