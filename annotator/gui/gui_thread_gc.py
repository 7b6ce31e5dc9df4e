"""Cyclic garbage collection on the GUI thread only.

Python runs its cycle collector in whichever thread happens to allocate. When that is a worker
thread (building a backbone, propagating), it can finalise Qt wrappers whose destruction needs the
GUI thread, while the GUI thread waits for the GIL to call back into Python: both stop for good.
Seen as a propagation run frozen in a test, every Python thread waiting. So automatic collection
is switched off and a timer on the GUI thread collects, generation by generation, as the
interpreter would have.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QTimer

_timer: QTimer | None = None


def collect_on_gui_thread(interval_ms: int = 500) -> None:
    """Install the collector (once per process; call on the GUI thread with a Qt application)."""
    global _timer
    app = QCoreApplication.instance()
    if _timer is not None or app is None:
        return
    _timer = QTimer(app)
    _timer.timeout.connect(_collect_due_generations)
    _timer.start(interval_ms)
    gc.disable()


def _collect_due_generations() -> None:
    counts, thresholds = gc.get_count(), gc.get_threshold()
    oldest_due = -1
    for generation in range(3):
        if counts[generation] <= thresholds[generation]:
            break
        oldest_due = generation
    if oldest_due >= 0:
        gc.collect(oldest_due)
