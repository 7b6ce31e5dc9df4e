"""Entry point of the packaged app: the ``annotator`` command, the desktop app when given no command.

The bundle's one executable is what ``annotator`` is in a Python install: ``annotator`` (or
``annotator gui [PATH]``) opens the desktop app, ``annotator --version``, ``annotator demo``,
``annotator propagate ...`` and the other subcommands run as on the command line.

Two things only a frozen app needs:

* ``multiprocessing.freeze_support()`` first: ``propagate --jobs N`` runs its videos in worker
  processes started with "spawn", which here re-run this executable.
* A splash screen while the app loads. Importing the app imports torch and numba's compiled top-k
  selection (annotator/core/engine/topk_select.py, compiled for explicit signatures when it is imported,
  so never on a worker thread mid-run). The first start of a new build compiles it (~10-30 s; then
  it loads from the per-user cache that rthook_numba_cache.py chose). That all happens before any
  window exists, so no window freezes; the splash says that the app is starting while this import
  runs on a thread and the main thread keeps the splash painted.

``ANNOTATOR_SMOKE_GUI=SECONDS`` is for packaging/smoke_test.sh: once the main window shows a video
with frames, the app stays up SECONDS, prints one ``smoke-gui:`` line (window title, frames, the
longest wait of the event loop) and exits 0; exit 1 when no video opens within
``ANNOTATOR_SMOKE_TIMEOUT`` seconds (default 300) or an error is shown. With
``ANNOTATOR_SMOKE_PROPAGATE=N`` it also presses P and cancels the run after N propagated frames.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time


def _gui_requested(argv: list[str]) -> bool:
    return not argv or (argv[0] == "gui" and not {"-h", "--help"} & set(argv))


def _application():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication(sys.argv[:1])


def _import_behind_splash():
    """Import the app's core (torch, numba) on a thread while a splash shows; returns the splash."""
    import threading

    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
    from PySide6.QtWidgets import QSplashScreen

    app = _application()
    pixmap = QPixmap(420, 150)
    pixmap.fill(QColor(45, 45, 48))
    import annotator  # the package's __init__ only: its version

    icon = QPixmap(os.path.join(os.path.dirname(annotator.__file__), "resources", "icon.png"))
    painter = QPainter(pixmap)
    if not icon.isNull():
        painter.drawPixmap(20, 27, icon.scaled(96, 96, Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))
    painter.setPen(QColor(220, 220, 220))
    font = QFont()
    font.setPointSize(18)
    painter.setFont(font)
    painter.drawText(136, 70, "Annotator")
    font.setPointSize(9)
    painter.setFont(font)
    painter.drawText(136, 96, "Starting… the first start of a new version")
    painter.drawText(136, 114, "prepares its propagation code (up to a minute).")
    painter.end()
    splash = QSplashScreen(pixmap)
    splash.show()
    app.processEvents()

    failed: list[BaseException] = []

    def load() -> None:
        try:
            import annotator.cli  # noqa: F401 - torch, and numba's compile or cache load
        except BaseException as exc:  # noqa: BLE001 - re-raised by the import on the main thread
            failed.append(exc)

    thread = threading.Thread(target=load, name="annotator-load", daemon=True)
    thread.start()
    while thread.is_alive():
        app.processEvents()
        thread.join(0.03)
    return splash


class _GuiSmoke:
    """See the module docstring (ANNOTATOR_SMOKE_GUI)."""

    def __init__(self, seconds: float, frames: int, timeout: float) -> None:
        from PySide6.QtCore import QTimer

        self.app = _application()
        self.seconds, self.frames, self.timeout = seconds, frames, timeout
        self.started = time.monotonic()
        self.window = None
        self.opened_at: float | None = None
        self.last_tick: float | None = None
        self.max_gap = 0.0
        self.done_frames = 0
        self.run = "not asked" if frames <= 0 else "waiting"
        self.timer = QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        now = time.monotonic()
        if self.opened_at is not None and self.last_tick is not None:
            self.max_gap = max(self.max_gap, now - self.last_tick)
        self.last_tick = now
        if self.window is None:
            self._find_window(now)
            return
        if self.window.error_box is not None:
            self._finish(1, f"error shown: {self.window.error_box.text()}")
        elif self.run in ("not asked", "cancelled", "finished") and now - self.opened_at >= self.seconds:
            self._finish(0, "up")

    def _find_window(self, now: float) -> None:
        for widget in self.app.topLevelWidgets():
            model = getattr(widget, "model", None)
            if widget.isVisible() and type(widget).__name__ == "MainWindow" and model is not None \
                    and model.num_frames > 0:
                self.window, self.opened_at = widget, now
                print(f"smoke-gui: window up {now - self.started:.1f} s after the event loop started, "
                      f"{model.num_frames} frames", flush=True)
                if self.frames > 0:
                    self._propagate()
                return
        if now - self.started > self.timeout:
            self._finish(1, f"no video opened within {self.timeout:.0f} s")

    def _propagate(self) -> None:
        controller = self.window.propagation
        controller.frame_done.connect(self._frame_done)
        controller.finished.connect(self._run_finished)
        controller.failed.connect(lambda text: self._finish(1, f"propagation failed: {text}"))
        self.run = "running"
        self.window.propagate(1)

    def _frame_done(self, _frame: int) -> None:
        self.done_frames += 1
        if self.done_frames == self.frames:
            self.window.propagation.cancel()

    def _run_finished(self, applied: int, cancelled: bool) -> None:
        self.run = "cancelled" if cancelled else "finished"
        print(f"smoke-gui: propagation {self.run} after {self.done_frames} frame(s) "
              f"({applied} applied)", flush=True)

    def _finish(self, code: int, what: str) -> None:
        if not self.timer.isActive():
            return  # already finished
        self.timer.stop()
        title = self.window.windowTitle() if self.window is not None else "-"
        frames = self.window.model.num_frames if self.window is not None else 0
        up = time.monotonic() - self.opened_at if self.opened_at is not None else 0.0
        print(f"smoke-gui: {what}: title {title!r}, {frames} frames, stayed up {up:.1f} s, "
              f"propagation {self.run} ({self.done_frames} frames), "
              f"longest event-loop wait {self.max_gap * 1000:.0f} ms", flush=True)
        self.app.exit(code)


def main() -> None:
    multiprocessing.freeze_support()  # a batch's worker process stops here, after its work
    argv = sys.argv[1:]
    gui = _gui_requested(argv)
    splash = _import_behind_splash() if gui and not os.environ.get("ANNOTATOR_NO_SPLASH") else None
    smoke = os.environ.get("ANNOTATOR_SMOKE_GUI")
    if gui and smoke:
        keep = _GuiSmoke(float(smoke), int(os.environ.get("ANNOTATOR_SMOKE_PROPAGATE", "0")),  # noqa: F841
                         float(os.environ.get("ANNOTATOR_SMOKE_TIMEOUT", "300")))

    from annotator.cli import main as cli_main

    if splash is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, splash.close)  # once the event loop runs, the main window is showing
    sys.exit(cli_main(argv))


if __name__ == "__main__":
    main()
