"""Fixtures of the GUI tests: settings in a temporary file, a main window over an in-memory clip."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from tests.fakes import ArrayVideo, ColourBackbone


@pytest.fixture
def qsettings(tmp_path) -> QSettings:
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def make_window(qtbot, qsettings):
    """Build a main window over an in-memory clip with a fake (or given) backbone."""
    from annotator.gui.main_window import MainWindow
    from annotator.gui.opening import Opened

    def build(frames: np.ndarray, references=None, backbone=None, short_side: int | None = None):
        bb = backbone or ColourBackbone()
        w = MainWindow(settings=qsettings, backbone_factory=lambda _s: bb)
        w.propagation.set_settings(replace(w.propagation.settings, backbone="colour", short_side=short_side))
        qtbot.addWidget(w)
        w.resize(900, 600)
        w.files.set_opened(Opened(ArrayVideo(frames), dict(references or {})))
        with qtbot.waitActive(w):  # shortcuts only reach the active window
            w.show()
            w.activateWindow()
        w.canvas.setFocus()
        return w

    yield build
