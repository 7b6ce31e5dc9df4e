"""Cyclic garbage collection on the GUI thread only, without long pauses.

Python runs its cycle collector in whichever thread happens to allocate. When that is a worker
thread (building a backbone, propagating), it can finalise Qt wrappers whose destruction needs the
GUI thread, while the GUI thread waits for the GIL to call back into Python: both stop for good.
Seen as a propagation run frozen in a test, every Python thread waiting. So automatic collection
is switched off and a timer on the GUI thread collects, generation by generation, as the
interpreter would have.

"As the interpreter would have" includes its rule for the oldest generation: a full collection
walks every object in the process (about 270 ms for 580 000 objects on this project's CI machine,
the GUI frozen meanwhile), so the interpreter runs one only when the objects that grew old since
the last one are a quarter of those that were old then. A collector that ran one at every tenth
middle collection froze the GUI for 325 ms in the middle of a propagation run (a CI failure). The
objects that exist when the collector is installed (the imported modules of Qt, torch and numpy,
most of the process's objects) are never garbage, so they are frozen out of every collection.

While a background job runs (:class:`annotator.gui.worker.GeneratorWorker` calls :func:`job_started`
and :func:`job_finished`), a full collection that is due waits for the job's end, when the person
is no longer watching frames stream in; only if the old objects have doubled meanwhile does it run
anyway, so that memory stays bounded in a long run. (A single 150 ms event-loop gap in one CI run of
the responsiveness test, not reproduced since, may have been such a pause.)
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QTimer

_timer: QTimer | None = None

# the interpreter's own rule (CPython's gcmodule.c): a full collection when the objects that
# survived into the oldest generation since the last one exceed this share of those it kept
_FULL_COLLECTION_SHARE = 0.25
# while a background job runs, a due full collection waits until the old objects grew by this share
_FULL_COLLECTION_SHARE_DURING_JOBS = 1.0


class _State:
    """Counts the collector keeps between timer ticks."""

    long_lived_total = 0  # objects in the oldest generation after the last full collection
    long_lived_pending = 0  # objects moved into the oldest generation since
    jobs = 0  # background jobs running now


def job_started() -> None:
    """A background job started (GUI thread): full collections wait for its end, within a bound."""
    _State.jobs += 1


def job_finished() -> None:
    """A background job ended (GUI thread); a full collection it held back runs at the next tick."""
    _State.jobs = max(0, _State.jobs - 1)


def collect_on_gui_thread(interval_ms: int = 500) -> None:
    """Install the collector (once per process; call on the GUI thread with a Qt application)."""
    global _timer
    app = QCoreApplication.instance()
    if _timer is not None or app is None:
        return
    gc.disable()
    gc.collect()
    gc.freeze()  # start-up objects: never garbage, never scanned again
    _State.long_lived_total = 0
    _State.long_lived_pending = 0
    _timer = QTimer(app)
    _timer.timeout.connect(collect_due_generations)
    _timer.start(interval_ms)


def collect_due_generations() -> int:
    """Collect the generations that are due, as the interpreter would; returns the oldest collected
    (-1 for none). Called by the timer; public for tests."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    oldest_due = -1
    for generation in range(3):
        if counts[generation] <= thresholds[generation]:
            break
        oldest_due = generation
    share = _FULL_COLLECTION_SHARE_DURING_JOBS if _State.jobs else _FULL_COLLECTION_SHARE
    if oldest_due == 2 and _State.long_lived_pending <= _State.long_lived_total * share:
        oldest_due = 1  # a full collection is not worth its pause yet (or not during a job)
    if oldest_due < 0:
        return oldest_due
    if oldest_due == 2:
        gc.collect(2)
        _State.long_lived_total = len(gc.get_objects(generation=2))
        _State.long_lived_pending = 0
    elif oldest_due == 1:
        # the young objects that survive this collection move into the oldest generation
        young = len(gc.get_objects(generation=0)) + len(gc.get_objects(generation=1))
        found = gc.collect(1)
        _State.long_lived_pending += max(0, young - found)
    else:
        gc.collect(0)
    return oldest_due
