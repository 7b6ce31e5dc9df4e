"""The timeline's per-frame rows (frame states, uncertainty curve, slider) put each frame at one x."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionSlider, QWidget

from gui_helpers import square_clip


def _cursor_x(strip: QWidget, window: QWidget) -> float:
    """Window x of the middle of the white current-frame cursor a strip draws (read from its pixels)."""
    image = strip.grab().toImage()
    y = strip.height() // 2
    xs = [x for x in range(image.width()) if min(image.pixelColor(x, y).getRgb()[:3]) > 235]
    assert xs, f"no cursor drawn in {type(strip).__name__}"
    return strip.mapTo(window, QPoint(0, 0)).x() + (min(xs) + max(xs) + 1) / 2


def _handle_x(slider, window: QWidget) -> float:
    """Window x of the middle of the slider's handle (where the style draws it)."""
    opt = QStyleOptionSlider()
    slider.initStyleOption(opt)
    rect = slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt, QStyle.SubControl.SC_SliderHandle,
                                         slider)
    return slider.mapTo(window, QPoint(rect.x(), 0)).x() + rect.width() / 2


@pytest.mark.parametrize("frames", [25, 300])  # cells wider than the slider's handle, and narrower
def test_every_timeline_row_puts_a_frame_at_the_same_x(make_window, qtbot, frames):
    clip, _ = square_clip(n=frames, hw=(32, 48), size=8, step=0)
    w = make_window(clip)
    t, d = w.timeline, w.diagnostics
    qtbot.waitUntil(lambda: len(d.strip.values) == frames)
    for width in (900, 1280, 1700):
        w.resize(width, 600)
        qtbot.waitUntil(lambda: w.width() == width)
        QApplication.processEvents()
        for frame in (0, frames // 2, frames - 1):
            w.model.set_current_frame(frame)
            states, curve, handle = _cursor_x(t.strip, w), _cursor_x(d.strip, w), _handle_x(t.slider, w)
            where = f"window {width} px, frame {frame}/{frames}: states {states}, uncertainty {curve}, slider {handle}"
            assert abs(states - curve) <= 1.5, where
            assert abs(states - handle) <= 1.5, where
        # a click on either strip at a frame's x goes to that frame
        w.model.set_current_frame(0)
        frame = frames // 3
        w.model.set_current_frame(frame)
        x = _cursor_x(t.strip, w)
        w.model.set_current_frame(0)
        for strip in (d.strip, t.strip):
            local = strip.mapFrom(w, QPoint(round(x), 0)).x()
            qtbot.mouseClick(strip, Qt.MouseButton.LeftButton, pos=QPoint(local, strip.height() // 2))
            assert abs(w.model.current_frame - frame) <= (0 if frames < 100 else 1), (width, type(strip).__name__)
            w.model.set_current_frame(0)
