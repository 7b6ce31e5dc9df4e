"""Entry point of the desktop app: ``run_app(path)`` builds the QApplication and the main window.

``run_app(None)`` opens the bundled sample clip (with its first-frame mask) so that a new user
can press P and watch propagation at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from annotator.gui.main_window import MainWindow

ICON = Path(__file__).resolve().parent.parent / "resources" / "icon.png"
"""The app's icon (drawn by packaging/make_icon.py); the window's, and the packaged app's."""


def dark_palette() -> QPalette:
    """A neutral dark theme: colours of masks read better over dark chrome."""
    p = QPalette()
    base, window, text = QColor(30, 30, 32), QColor(45, 45, 48), QColor(220, 220, 220)
    for role, color in ((QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
                        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
                        (QPalette.ColorRole.ToolTipBase, window), (QPalette.ColorRole.ToolTipText, text),
                        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
                        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.Highlight, QColor(52, 120, 200)),
                        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
                        (QPalette.ColorRole.PlaceholderText, QColor(140, 140, 140))):
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    return p


def make_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists, e.g. under pytest-qt), styled."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("annotator")
    app.setOrganizationName("annotator")
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    if ICON.is_file():
        app.setWindowIcon(QIcon(str(ICON)))
    return app


def create_window(path: str | None = None, **kwargs) -> MainWindow:
    """A main window with ``path`` (or the sample clip) opened; bad input leaves it empty."""
    window = MainWindow(**kwargs)
    window.projects.open_path(path)  # a project folder, or anything the file actions open
    return window


def run_app(path: str | None = None) -> int:
    """Run the desktop app until its window closes; returns the exit code."""
    app = make_app()
    app.setAttribute(Qt.ApplicationAttribute.AA_DontShowIconsInMenus, False)
    window = MainWindow()
    window.projects.enable_autosave()  # the per-user data folder; tests' windows do not autosave
    window.show()
    # after the window is on screen, so that dialogs have a parent: offer to recover work a crash
    # left behind, else open the path
    QTimer.singleShot(0, lambda: window.projects.startup(path))
    return app.exec()
