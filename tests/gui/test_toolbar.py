"""The toolbar at narrow widths: every item whole on screen or behind an overflow button one can see.

The main window is made narrower than its toolbar (800 and 640 px against ~1330 px of items); what
does not fit must go behind Qt's extension button, that button must stand out from the toolbar in
the app's own (dark) palette, and clicking it must bring every item into the window. An item shown
squeezed below its size (a slider a few pixels wide) or a label shown without the box it names
counts as cut off.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QToolBar, QToolButton, QWidget

from annotator.gui.app import dark_palette
from gui_helpers import square_clip

pytestmark = pytest.mark.gui


def _luminance(c: QColor) -> float:
    return 0.2126 * c.red() + 0.7152 * c.green() + 0.0722 * c.blue()


def _rect_in(window: QWidget, widget: QWidget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def _items(bar: QToolBar) -> list[QWidget]:
    return [bar.widgetForAction(a) for a in bar.actions() if not a.isSeparator()]


def _narrow_window(qtbot, make_window, width: int):
    frames, truth = square_clip(n=3)
    w = make_window(frames, {0: truth[0]})
    w.setPalette(dark_palette())  # what the app runs with: the overflow button must show on it
    w.resize(width, 600)
    qtbot.waitUntil(lambda: w.width() == width)
    bar = w.findChild(QToolBar, "tools")
    ext = bar.findChild(QToolButton, "qt_toolbar_ext_button")
    qtbot.waitUntil(lambda: ext.isVisible() and any(not i.isVisible() for i in _items(bar)))
    return w, bar, ext


def _glyph_contrast(button: QToolButton, background: QColor) -> float:
    """The largest luminance step between the button's pixels and the toolbar's background."""
    image = button.grab().toImage()
    bg = _luminance(background)
    return max(abs(_luminance(image.pixelColor(x, y)) - bg)
               for x in range(image.width()) for y in range(image.height()))


@pytest.mark.parametrize("width", [800, 640])
def test_narrow_window_shows_whole_items_and_puts_the_rest_behind_a_visible_overflow_button(
        qtbot, make_window, width):
    w, bar, ext = _narrow_window(qtbot, make_window, width)
    items = _items(bar)
    ext_rect = _rect_in(w, ext)
    for item in (i for i in items if i.isVisible()):
        r = _rect_in(w, item)
        assert w.rect().contains(r) and not r.intersects(ext_rect), type(item).__name__
        assert item.width() >= item.sizeHint().width(), f"{type(item).__name__} squeezed to {item.width()} px"
    for label, named in zip(items, items[1:]):  # a bare label goes where the box it names goes
        if isinstance(label, QLabel):
            assert label.isVisible() == named.isVisible(), f"{label.text()!r} shown without its box"
    # the overflow button: big enough to hit, drawn as clearly as the toolbar's text
    assert ext.width() >= 20 and ext.toolTip()
    palette = bar.palette()
    background = palette.color(bar.backgroundRole())
    text_contrast = abs(_luminance(palette.color(palette.ColorRole.ButtonText)) - _luminance(background))
    assert _glyph_contrast(ext, background) >= 0.5 * text_contrast
    # clicking it brings every item into the window, whole
    qtbot.mouseClick(ext, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: all(i.isVisible() and w.rect().contains(_rect_in(w, i)) for i in items), timeout=3000)
    for item in items:
        assert item.width() >= item.sizeHint().width(), f"{type(item).__name__} squeezed to {item.width()} px"
    qtbot.mouseClick(ext, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: any(not i.isVisible() for i in items), timeout=3000)


def test_toolbar_actions_at_full_width_need_no_overflow(qtbot, make_window):
    frames, truth = square_clip(n=3)
    w = make_window(frames, {0: truth[0]})
    w.resize(1400, 600)
    bar = w.findChild(QToolBar, "tools")
    ext = bar.findChild(QToolButton, "qt_toolbar_ext_button")
    qtbot.waitUntil(lambda: all(i.isVisible() for i in _items(bar)))
    assert not ext.isVisible()
