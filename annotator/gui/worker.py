"""The one background-job abstraction of the GUI: run a generator in a thread, stream what it yields.

``GeneratorWorker(make_generator)`` runs ``make_generator()`` on a `QThread` and emits, on the
GUI thread (queued connections):

* ``result(object)`` for every value the generator yields, as soon as it is produced;
* ``progress(int, int)`` (done, total) after each yield when ``total`` is known;
* ``error(object)`` with the exception if the generator raises;
* ``finished(bool)`` once at the end, True when it was cancelled.

``cancel()`` may be called from the GUI thread at any time: the flag is checked between yields, so
the job stops after the item it is computing (never in the middle of one) and nothing half-done
is ever emitted. Inputs must be captured before starting; the generator must not touch widgets
or the model, only return values that the receiver applies on the GUI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from PySide6.QtCore import QObject, QThread, Signal

from annotator.gui import gui_thread_gc


class _Runner(QObject):
    """Lives on the worker thread; pulls the generator and emits what comes out."""

    result = Signal(object)
    progress = Signal(int, int)
    error = Signal(object)
    done = Signal(bool)

    def __init__(self, make_generator: Callable[[], Iterator[object]], total: int | None,
                 cancelled: threading.Event) -> None:
        super().__init__()
        self._make = make_generator
        self._total = total
        self._cancelled = cancelled

    def run(self) -> None:
        count = 0
        try:
            generator = self._make()
            try:
                for item in generator:
                    if self._cancelled.is_set():  # the item was computed after cancel: drop it
                        break
                    self.result.emit(item)
                    count += 1
                    if self._total is not None:
                        self.progress.emit(count, self._total)
                    if self._cancelled.is_set():
                        break
            finally:
                close = getattr(generator, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # noqa: BLE001 - reported to the GUI, which shows it
            self.error.emit(exc)
        self.done.emit(self._cancelled.is_set())


class GeneratorWorker(QObject):
    """A cancellable background job streaming the items of a generator; see the module docstring."""

    result = Signal(object)
    progress = Signal(int, int)
    error = Signal(object)
    finished = Signal(bool)

    def __init__(self, make_generator: Callable[[], Iterator[object]], *, total: int | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cancelled = threading.Event()
        self._thread = QThread()
        self._thread.setObjectName("annotator-worker")
        self._runner = _Runner(make_generator, total, self._cancelled)
        self._runner.moveToThread(self._thread)
        self._thread.started.connect(self._runner.run)
        # Relays: the runner lives on the worker thread, so these are queued onto ours.
        self._runner.result.connect(self._on_result)
        self._runner.progress.connect(self.progress.emit)
        self._runner.error.connect(self.error.emit)
        self._runner.done.connect(self._on_done)
        self._running = False

    def start(self) -> None:
        self._running = True
        gui_thread_gc.job_started()  # no full collection's pause while frames stream in
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop after the item in progress; results after this call are dropped."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def running(self) -> bool:
        return self._running

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the thread ends (tests and shutdown only)."""
        return self._thread.wait(msecs)

    def _on_result(self, item: object) -> None:
        # items already queued when cancel() was called are dropped: cancel takes effect at once
        if not self._cancelled.is_set():
            self.result.emit(item)

    def _on_done(self, cancelled: bool) -> None:
        self._thread.quit()
        self._thread.wait()
        self._running = False
        gui_thread_gc.job_finished()
        # cancel() after the job's last item but before this: the items still queued were dropped
        # (_on_result), so the job is cancelled for the receiver too, not finished half-applied
        self.finished.emit(cancelled or self._cancelled.is_set())
