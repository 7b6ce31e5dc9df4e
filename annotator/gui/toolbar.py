"""A toolbar that stays usable in a narrow window: what does not fit goes behind an overflow button.

Qt's toolbar already moves the items that do not fit behind its extension button (clicking it
shows them in extra rows), but two things defeat it in practice: a widget that may shrink (a
slider) is squeezed to a few pixels instead of moving there, and a label added on its own stays
while the box it names moves away. :func:`labelled` makes the pair one item that is never
squeezed. And the style draws the button as a faint 12 px "»" that all but vanishes on a dark
palette: :class:`OverflowToolBar` widens it and draws its chevrons in the palette's text colour.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QApplication, QHBoxLayout, QLabel, QProxyStyle, QSizePolicy, QStyle,
                               QStyleFactory, QToolBar, QToolButton, QWidget)

EXTENSION_WIDTH = 24
"""Width of the overflow button, px (the Fusion style's 12 px is a hard target to hit)."""
EXTENSION_TOOLTIP = "More tools (the window is too narrow to show them all)"


class _WideExtensionStyle(QProxyStyle):
    """The application's style with a wider toolbar overflow button."""

    def pixelMetric(self, metric, option=None, widget=None) -> int:  # noqa: N802 - Qt API
        value = super().pixelMetric(metric, option, widget)
        if metric == QStyle.PixelMetric.PM_ToolBarExtensionExtent:
            return max(value, EXTENSION_WIDTH)
        return value


def chevrons_icon(color: QColor, orientation: Qt.Orientation = Qt.Orientation.Horizontal,
                  size: int = 16, ratio: float = 2.0) -> QIcon:
    """Two chevrons ("»", or pointing down for a vertical toolbar) drawn in ``color``."""
    pixmap = QPixmap(round(size * ratio), round(size * ratio))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(QPen(color, 1.6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
    for start in (3.5, 8.5):
        points = [(start, 4.0), (start + 4.0, 8.0), (start, 12.0)]
        if orientation == Qt.Orientation.Vertical:
            points = [(y, x) for x, y in points]
        painter.drawPolyline([QPointF(x, y) for x, y in points])
    painter.end()
    return QIcon(pixmap)


class OverflowToolBar(QToolBar):
    """A QToolBar whose overflow ("»") button is wide, explained and drawn in the text colour."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(title, parent)
        base = QStyleFactory.create(QApplication.style().name())  # the app's style, not the desktop's
        self._style = _WideExtensionStyle(base)
        self._style.setParent(self)
        self.setStyle(self._style)
        self.orientationChanged.connect(lambda _o: self._dress_extension())
        self._dress_extension()

    def extension_button(self) -> QToolButton | None:
        """Qt's overflow button (shown only while some items do not fit)."""
        return self.findChild(QToolButton, "qt_toolbar_ext_button")

    def _dress_extension(self) -> None:
        button = self.extension_button()
        if button is None:
            return
        button.setIcon(chevrons_icon(self.palette().color(self.palette().ColorRole.ButtonText), self.orientation()))
        button.setToolTip(EXTENSION_TOOLTIP)
        button.setAccessibleName("More tools")

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.StyleChange):
            self._dress_extension()  # the chevrons follow the text colour


def labelled(text: str, widget: QWidget) -> QWidget:
    """``widget`` after a label, as one toolbar item: the two overflow together, never squeezed."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(4, 0, 2, 0)
    row.setSpacing(4)
    label = QLabel(text)
    label.setBuddy(widget)
    row.addWidget(label)
    row.addWidget(widget)
    box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)  # minimum width = its size hint
    return box
