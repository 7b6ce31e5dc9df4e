"""The timeline: a frame slider, a strip of frame-state markers, play/pause and the frame number.

Markers: references in the reference colour (a tall tick), propagated frames as a filled band
(a lighter shade where the frame was fused from the keyframes at both ends of its span, the
model's :meth:`~annotator.core.model.annotation.AnnotationModel.keyframes`), empty frames left dark, keypoint references (frames where a person placed points) as a magenta
tick in the lower half; the current frame has a white cursor. Clicking or dragging on the strip
seeks; the mouse wheel anywhere on the timeline steps a frame per notch (down = forward, the slider
included, whose own wheel went the other way). The widget listens to the model and writes the current frame back through its setter.

Every per-frame row (the state strip, rows other modules add with :meth:`Timeline.add_row` such as
the uncertainty curve, and the slider) lies in one column of a grid and maps frame i to the same x
range (:class:`FrameAxis`), so that a frame is straight above or below itself in every row; what
names or acts on a row (legend, labels, buttons, the frame number) goes to a column of its own on
the right.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, QSignalBlocker, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPaintEvent, QResizeEvent, QWheelEvent
from PySide6.QtWidgets import QGridLayout, QLabel, QSlider, QStyle, QStyleOptionSlider, QToolButton, QWidget

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


class FrameAxis:
    """Where frame i lies across a per-frame row of the timeline, ``width`` px wide, of ``n`` frames.

    ``inset`` px are left out at both ends and the rest is cut into ``n`` equal cells, frame i in
    cell i. The inset is for the slider: its handle's centre runs from half a handle in from one
    end of the groove to half a handle in from the other, so the slider is laid half a cell out
    from the first and last cells' centres (:class:`SliderLane`), which fits in the row when a cell
    is at least a handle wide, and needs the inset when the cells are narrower (long videos).
    ``handle`` is the slider handle's length in px (0 before the slider is placed: no inset).
    """

    def __init__(self, handle: float = 0.0) -> None:
        self.handle = handle

    def inset(self, width: float, n: int) -> float:
        if n <= 1:
            return 0.0
        # the slider's ends at the row's ends: 2 * inset + cell == handle
        return max(0.0, (n * self.handle - width) / (2 * (n - 1)))

    def cell(self, width: float, n: int) -> float:
        return max(width - 2 * self.inset(width, n), 1.0) / max(n, 1)

    def left(self, frame: int, width: float, n: int) -> float:
        """x of the left edge of ``frame``'s cell."""
        return self.inset(width, n) + frame * self.cell(width, n)

    def centre(self, frame: int, width: float, n: int) -> float:
        return self.left(frame, width, n) + self.cell(width, n) / 2

    def frame_at(self, x: float, width: float, n: int) -> int:
        """The frame whose cell holds ``x`` (the first / last beyond the ends)."""
        n = max(n, 1)
        return max(0, min(n - 1, int((x - self.inset(width, n)) // self.cell(width, n))))


class FrameLane(QWidget):
    """A per-frame row of the timeline: frame i drawn in cell i of the timeline's shared :class:`FrameAxis`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axis = FrameAxis()  # the timeline gives its own to the rows it holds

    def frame_count(self) -> int:
        raise NotImplementedError

    def cell_width(self) -> float:
        return self.axis.cell(self.width(), self.frame_count())

    def frame_left(self, frame: int) -> float:
        return self.axis.left(frame, self.width(), self.frame_count())

    def frame_centre(self, frame: int) -> float:
        return self.axis.centre(frame, self.width(), self.frame_count())

    def frame_at(self, x: float) -> int:
        return self.axis.frame_at(x, self.width(), self.frame_count())


class FrameStateStrip(FrameLane):
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

    def frame_count(self) -> int:
        return len(self._states)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        self.seek.emit(self.frame_at(event.position().x()))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.seek.emit(self.frame_at(event.position().x()))

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        w, h = self.width(), self.height()
        p.fillRect(0, 0, w, h, STATE_COLORS[FrameState.EMPTY])
        n = len(self._states)
        if n == 0:
            return
        cell, x0 = self.cell_width(), self.frame_left(0)
        # runs of propagated frames as one band each, by their number of keyframes (fast for long videos)
        colors = {1: STATE_COLORS[FrameState.PROPAGATED], 2: TWO_KEYFRAMES_COLOR}
        start, kind = None, 0
        for i, s in enumerate([*self._states, FrameState.EMPTY]):
            k = 0 if s is not FrameState.PROPAGATED else (2 if i in self._two_keyframes else 1)
            if k != kind:
                if start is not None:
                    p.fillRect(QRectF(x0 + start * cell, 3, (i - start) * cell, h - 6), colors[kind])
                start, kind = (i if k else None), k
        for i, s in enumerate(self._states):
            if s is FrameState.REFERENCE:
                p.fillRect(QRectF(x0 + i * cell, 0, max(cell, 2.0), h), STATE_COLORS[FrameState.REFERENCE])
        for i in self._keypoint_references:
            p.fillRect(QRectF(x0 + i * cell, h / 2, max(cell, 2.0), h / 2), KEYPOINT_REFERENCE_COLOR)
        cur = self.model.current_frame
        p.setPen(QColor(255, 255, 255))
        x = self.frame_centre(cur)
        p.fillRect(QRectF(x - 1, 0, 2, h), QColor(255, 255, 255))
        p.end()


class SliderLane(QWidget):
    """The frame slider as a row of the timeline: placed so that its handle is centred on the
    current frame's cell of the other rows (a plain slider's handle runs from half a handle in
    from one end to half a handle in from the other, not over the frames' cells)."""

    handle_changed = Signal()

    def __init__(self, slider: QSlider, axis: FrameAxis, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slider = slider
        self.axis = axis
        slider.setParent(self)
        self.setFixedHeight(slider.sizeHint().height())
        slider.rangeChanged.connect(lambda _lo, _hi: self.place())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(self.slider.sizeHint().width(), self.slider.sizeHint().height())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(self.slider.minimumSizeHint().width(), self.slider.sizeHint().height())

    def handle_length(self) -> int:
        opt = QStyleOptionSlider()
        self.slider.initStyleOption(opt)
        rect = self.slider.style().subControlRect(QStyle.ComplexControl.CC_Slider, opt,
                                                  QStyle.SubControl.SC_SliderHandle, self.slider)
        return rect.width()

    def place(self) -> None:
        handle = self.handle_length()
        if handle != self.axis.handle:
            self.axis.handle = handle
            self.handle_changed.emit()
        n = self.slider.maximum() - self.slider.minimum() + 1
        width = self.width()
        # the handle's centre at frame 0 on the first cell's centre, at the last frame on the last's
        x = round(self.axis.centre(0, width, n) - handle / 2)
        self.slider.setGeometry(x, 0, max(width - 2 * x, handle), self.height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.place()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt API
        super().changeEvent(event)
        if event.type() == QEvent.Type.StyleChange:
            self.place()


class Timeline(QWidget):
    """Play button + per-frame rows (state strip, others added, slider) + their legend and the frame label."""

    def __init__(self, model: AnnotationModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.axis = FrameAxis()
        self.strip = FrameStateStrip(model)
        self.strip.axis = self.axis
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # arrow keys belong to the frame shortcuts
        self.slider_lane = SliderLane(self.slider, self.axis)
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
        self.legend = legend
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(6, 2, 6, 2)
        self.grid.setHorizontalSpacing(6)
        self.grid.setVerticalSpacing(2)
        self.grid.setColumnStretch(1, 1)
        # (lane, what goes on its right) from the top; the slider and the frame label stay last
        self._rows: list[tuple[FrameLane, QWidget | None]] = [(self.strip, legend)]
        self._lanes: list[FrameLane] = [self.strip]
        self.slider_lane.handle_changed.connect(lambda: [lane.update() for lane in self._lanes])
        self._relayout()

        self.slider.valueChanged.connect(model.set_current_frame)
        self.strip.seek.connect(model.set_current_frame)
        self.play_button.toggled.connect(self.set_playing)
        ev = model.events
        ev.video_changed.connect(self.reload)
        ev.current_frame_changed.connect(self._on_frame)
        ev.frame_state_changed.connect(lambda f, s: self._update_label() if f == model.current_frame else None)

    def add_row(self, lane: FrameLane, side: QWidget | None = None) -> None:
        """Add a per-frame row above the slider: ``lane`` gets the timeline's :class:`FrameAxis`, so
        frame i lies at the same x in it as in every other row; ``side`` (its name, buttons) goes
        on its right, in the column of the legend and the frame label, never into the lane."""
        lane.axis = self.axis
        self._rows.append((lane, side))
        self._lanes.append(lane)
        self._relayout()

    def _relayout(self) -> None:
        while self.grid.count():
            self.grid.takeAt(0)
        rows = [*self._rows, (self.slider_lane, self.label)]
        self.grid.addWidget(self.play_button, 0, 0, len(rows), 1, Qt.AlignmentFlag.AlignVCenter)
        for r, (lane, side) in enumerate(rows):
            self.grid.addWidget(lane, r, 1)
            if side is not None:
                self.grid.addWidget(side, r, 2)

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
