"""Status-bar messages too long for a narrow window end in "…" rather than being cut mid-word."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from gui_helpers import square_clip

LONG = ("Opened sample: 40 frames, 854×480, 1 mask(s) from "
        "/home/researcher/projects/annotation/datasets/davis2017/Annotations/480p/dog-agility")


def test_a_long_status_message_is_elided_in_a_narrow_window_and_whole_in_a_wide_one(make_window, qtbot):
    frames, _ = square_clip(n=3)
    w = make_window(frames)
    bar = w.statusBar()
    for width in (640, 900):
        w.resize(width, 600)
        qtbot.waitUntil(lambda: w.width() == width)
        bar.showMessage(LONG, 60_000)
        QApplication.processEvents()
        shown, room = bar.shown_message(), bar.message_rect()
        assert bar.currentMessage() == LONG  # the text itself is whole (and in the tooltip)
        assert shown.endswith("…") and LONG.startswith(shown[:-1]), shown
        assert bar.fontMetrics().horizontalAdvance(shown) <= room.width()
        permanent = [c for c in (w.status.position, w.status.zoom, w.status.device) if c.isVisible() and c.width()]
        assert all(room.right() < c.x() for c in permanent)  # not under the permanent widgets
        assert bar.toolTip() == LONG
        bar.grab()  # painted without an error
    w.resize(1900, 600)
    qtbot.waitUntil(lambda: w.width() == 1900)
    bar.showMessage("Saved dog-agility (24 frame(s) written)", 60_000)
    QApplication.processEvents()
    assert bar.shown_message() == bar.currentMessage() and bar.toolTip() == ""
    bar.grab()
