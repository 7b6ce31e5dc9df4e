"""A status bar whose message ends in "…" when it does not fit, instead of being cut mid-word.

QStatusBar draws a temporary message (``showMessage``) clipped at the first permanent widget on
its right, so a long one ("Opened <name>: every frame has a mask, so …" in a narrow window) was
cut through a word or a letter. :class:`ElidingStatusBar` paints such a message itself, elided;
``currentMessage()`` is still the whole text (the tooltip shows it too), and a message that fits is
painted by QStatusBar as before.
"""

from __future__ import annotations

from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QSizeGrip, QStatusBar, QStyle, QStyleOption, QWidget

class ElidingStatusBar(QStatusBar):
    """QStatusBar, with a message too long for its room shown elided with "…"."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._permanent: list[QWidget] = []
        self.messageChanged.connect(self._on_message)

    def addPermanentWidget(self, widget: QWidget, stretch: int = 0) -> None:  # noqa: N802 - Qt API
        super().addPermanentWidget(widget, stretch)
        self._permanent.append(widget)

    def insertPermanentWidget(self, index: int, widget: QWidget, stretch: int = 0) -> int:  # noqa: N802 - Qt API
        self._permanent.append(widget)
        return super().insertPermanentWidget(index, widget, stretch)

    def removeWidget(self, widget: QWidget) -> None:  # noqa: N802 - Qt API
        if widget in self._permanent:
            self._permanent.remove(widget)
        super().removeWidget(widget)

    def message_rect(self) -> QRect:
        """Where QStatusBar draws the message: 6 px in, up to the size grip and the permanent widgets shown."""
        right = self.width() - 12
        for grip in self.findChildren(QSizeGrip, options=Qt.FindChildOption.FindDirectChildrenOnly):
            if grip.isVisible():
                right = grip.x()
        for widget in self._permanent:
            if widget.isVisible():
                right = min(right, widget.x() - 2)
        return QRect(6, 0, max(right - 6, 0), self.height())

    def shown_message(self) -> str:
        """The message as painted: whole when it fits, else cut at a character and ended with "…"."""
        return self.fontMetrics().elidedText(self.currentMessage(), Qt.TextElideMode.ElideRight,
                                             self.message_rect().width())

    def _on_message(self, text: str) -> None:
        self.setToolTip(text if text and self.shown_message() != text else "")

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._on_message(self.currentMessage())

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        text = self.currentMessage()
        shown = self.shown_message()
        if not text or shown == text or self.layoutDirection() == Qt.LayoutDirection.RightToLeft:
            super().paintEvent(event)
            return
        # QStatusBar.paintEvent, with the message elided: the panel, the permanent widgets' frames
        # (the others are hidden while a message shows), the message
        p = QPainter(self)
        opt = QStyleOption()
        opt.initFrom(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelStatusBar, opt, p, self)
        for widget in self._permanent:
            if widget.isVisible():
                frame = QStyleOption()
                frame.rect = widget.geometry().adjusted(-2, -1, 2, 1)
                frame.palette = self.palette()
                frame.state = QStyle.StateFlag.State_None
                self.style().drawPrimitive(QStyle.PrimitiveElement.PE_FrameStatusBarItem, frame, p, widget)
        p.setPen(self.palette().windowText().color())
        p.drawText(self.message_rect(), Qt.AlignmentFlag.AlignLeading | Qt.AlignmentFlag.AlignVCenter
                   | Qt.TextFlag.TextSingleLine, shown)
        p.end()
