"""The timeline: a frame slider, a strip of frame-state markers, play/pause and the frame number.

Markers: references in the reference colour (a tall tick), propagated frames as a filled band
(a lighter shade where the frame was fused from the keyframes at both ends of its span, the
model's :meth:`~annotator.core.model.annotation.AnnotationModel.keyframes`), empty frames left dark, keypoint references (frames where a person placed points) as a magenta
tick in the lower half; the current frame has a white cursor. Clicking or dragging on the strip
seeks; the mouse wheel anywhere on the timeline steps a frame per notch (down = forward, the slider
included, whose own wheel went the other way). The widget listens to the model and writes the current frame back through its setter.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, QSignalBlocker, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QWheelEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QToolButton, QVBoxLayout, QWidget

from annotator.core.model.annotation import AnnotationModel, FrameState

STATE_COLORS = {
    FrameState.REFERENCE: QColor(255, 196, 0),
    FrameState.PROPAGATED: QColor(64, 160, 255),
    FrameState.EMPTY: QColor(70, 70, 74),
}
TWO_KEYFRAMES_COLOR = QColor(150, 220, 255)
"""Propagated frames fused from both ends of a span (the plain propagated colour: from one keyframe)."""
KEYPOINT_REFERENCE_COLOR = QColor(230, 70, 230)
WHEEL_NOTCH = 120  # angleDelta units of one wheel notch (Qt); trackpads send fractions of it


class FrameStateStrip(QWidget):
    """One marker per frame coloured by its state; click/drag to seek."""

    seek = Signal(int)

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.setMinimumHeight(16)
        self.setMaximumHeight(16)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Frame states: yellow = reference (painted by you), blue = propagated from one "
                        "keyframe, light blue = propagated from the keyframes on both sides, dark = empty; "
                        "magenta below = keypoints placed by you")
        self._states: list[FrameState] = []
        self._two_keyframes: set[int] = set()
        self._keypoint_references: set[int] = set()
        ev = model.events
        ev.video_changed.connect(self.reload)
        ev.frame_state_changed.connect(self._on_state)
        ev.points_changed.connect(self._on_points)
        ev.current_frame_changed.connect(lambda _f: self.update())

    def reload(self) -> None:
        self._states = self.model.frame_states()
        self._two_keyframes = {i for i in range(len(self._states)) if self.model.keyframes(i) == 2}
        self._keypoint_references = set(self.model.keypoint_references())
        self.update()

    def _on_points(self, frame: int) -> None:
        if frame < len(self._states) and self.model.is_keypoint_reference(frame):
            self._keypoint_references.add(frame)
        else:
            self._keypoint_references.discard(frame)
        self.update()

    def _on_state(self, frame: int, state: FrameState) -> None:
        if frame < len(self._states):
            self._states[frame] = state
            if self.model.keyframes(frame) == 2:
                self._two_keyframes.add(frame)
            else:
                self._two_keyframes.discard(frame)
            self.update()

    def _frame_at(self, x: float) -> int:
        n = max(len(self._states), 1)
        return max(0, min(n - 1, int(x / max(self.width(), 1) * n)))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.seek.emit(self._frame_at(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.seek.emit(self._frame_at(event.position().x()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, STATE_COLORS[FrameState.EMPTY])
        n = len(self._states)
        if n == 0:
            return
        cell = w / n
        # runs of propagated frames as one band each, by their number of keyframes (fast for long videos)
        colors = {1: STATE_COLORS[FrameState.PROPAGATED], 2: TWO_KEYFRAMES_COLOR}
        start, kind = None, 0
        for i, s in enumerate([*self._states, FrameState.EMPTY]):
            k = 0 if s is not FrameState.PROPAGATED else (2 if i in self._two_keyframes else 1)
            if k != kind:
                if start is not None:
                    p.fillRect(QRectF(start * cell, 3, (i - start) * cell, h - 6), colors[kind])
                start, kind = (i if k else None), k
        for i, s in enumerate(self._states):
            if s is FrameState.REFERENCE:
                p.fillRect(QRectF(i * cell, 0, max(cell, 2.0), h), STATE_COLORS[FrameState.REFERENCE])
        for i in self._keypoint_references:
            p.fillRect(QRectF(i * cell, h / 2, max(cell, 2.0), h / 2), KEYPOINT_REFERENCE_COLOR)
        cur = self.model.current_frame
        p.setPen(QColor(255, 255, 255))
        x = (cur + 0.5) * cell
        p.fillRect(QRectF(x - 1, 0, 2, h), QColor(255, 255, 255))
        p.end()


class Timeline(QWidget):
    """Slider + state strip + play button + frame label."""

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.strip = FrameStateStrip(model)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # arrow keys belong to the frame shortcuts
        self.play_button = QToolButton()
        self.play_button.setCheckable(True)
        self.play_button.setText("▶")
        self.play_button.setToolTip("Play / pause (K)")
        self.label = QLabel()
        self.label.setMinimumWidth(120)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._wheel_rest = 0  # angleDelta not yet turned into a frame step
        for child in (self.slider, self.strip):  # the slider's own wheel went the other way
            child.installEventFilter(self)

        entries = [(STATE_COLORS[FrameState.REFERENCE], "reference"), (STATE_COLORS[FrameState.PROPAGATED], "propagated"),
                   (TWO_KEYFRAMES_COLOR, "both ways"), (STATE_COLORS[FrameState.EMPTY], "empty")]
        legend = QLabel("  ".join(f"<span style='color:{color.name()}'>■</span> {text}" for color, text in entries))
        legend.setToolTip(self.strip.toolTip())
        bars = QVBoxLayout()
        bars.setSpacing(2)
        bars.addWidget(self.strip)
        bars.addWidget(self.slider)
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 2, 6, 2)
        row.addWidget(self.play_button)
        row.addLayout(bars, 1)
        side = QVBoxLayout()
        side.setSpacing(0)
        side.addWidget(self.label)
        side.addWidget(legend)
        row.addLayout(side)

        self.slider.valueChanged.connect(model.set_current_frame)
        self.strip.seek.connect(model.set_current_frame)
        self.play_button.toggled.connect(self.set_playing)
        ev = model.events
        ev.video_changed.connect(self.reload)
        ev.current_frame_changed.connect(self._on_frame)
        ev.frame_state_changed.connect(lambda f, s: self._update_label() if f == model.current_frame else None)

    def reload(self) -> None:
        self.set_playing(False)
        with QSignalBlocker(self.slider):
            self.slider.setRange(0, max(self.model.num_frames - 1, 0))
            self.slider.setValue(self.model.current_frame)
        self._update_label()

    def _on_frame(self, frame: int) -> None:
        with QSignalBlocker(self.slider):
            self.slider.setValue(frame)
        self._update_label()

    def _update_label(self) -> None:
        m = self.model
        if m.video is None:
            self.label.setText("no video")
            return
        state = m.frame_state(m.current_frame).value
        if m.keyframes(m.current_frame) == 2:
            state += " both ways"
        # 0-based like the exported file names (00018.png is frame 18)
        self.label.setText(f"frame {m.current_frame} / {m.num_frames - 1}  ·  {state}")

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def set_playing(self, playing: bool) -> None:
        if playing and self.model.video is not None:
            if self.model.current_frame >= self.model.num_frames - 1:
                self.model.set_current_frame(0)
            self._timer.start(int(1000 / max(self.model.video.fps, 1.0)))
        else:
            self._timer.stop()
        with QSignalBlocker(self.play_button):
            self.play_button.setChecked(self._timer.isActive())
            self.play_button.setText("⏸" if self._timer.isActive() else "▶")

    def toggle_playing(self) -> None:
        self.set_playing(not self.playing)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        m = self.model
        self._wheel_rest += event.angleDelta().y()
        steps = int(self._wheel_rest / WHEEL_NOTCH)
        if steps and m.video is not None:
            self._wheel_rest -= steps * WHEEL_NOTCH
            # wheel down (negative delta) moves forward, as a scrolled list moves down
            m.set_current_frame(min(max(m.current_frame - steps, 0), m.num_frames - 1))
        event.accept()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched in (self.slider, self.strip) and event.type() == QEvent.Type.Wheel:
            self.wheelEvent(event)  # type: ignore[arg-type]
            return True
        return super().eventFilter(watched, event)

    def _tick(self) -> None:
        m = self.model
        if m.current_frame >= m.num_frames - 1:
            self.set_playing(False)
        else:
            m.set_current_frame(m.current_frame + 1)
