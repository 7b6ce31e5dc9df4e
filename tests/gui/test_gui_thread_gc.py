"""Cyclic garbage is collected on the GUI thread, never by the interpreter in a worker thread."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

pytestmark = pytest.mark.gui


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cycle collector frees it


def test_a_window_moves_cycle_collection_to_the_gui_thread(qtbot, make_window):
    import numpy as np

    make_window(np.zeros((2, 16, 16, 3), np.uint8))
    assert not gc.isenabled()  # the interpreter no longer collects in whichever thread allocates
    collected_in: list[str] = []

    class Watched(_Node):
        def __del__(self) -> None:
            collected_in.append(threading.current_thread().name)

    def worker() -> None:  # a worker thread makes garbage in cycles and plenty of allocations
        # more cycles than the first generation's threshold (700): the count of live containers stays
        # above it until a collection, so the GUI thread's timer finds a collection due (temporary
        # lists alone are freed again and leave the count where it was: the test then waited in vain)
        for _ in range(2 * gc.get_threshold()[0]):
            Watched()
        [[object() for _ in range(50)] for _ in range(2000)]

    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join()
    probe = _Node()
    alive = weakref.ref(probe)
    del probe
    qtbot.waitUntil(lambda: alive() is None, timeout=5000)  # the GUI thread's timer collected
    assert collected_in and set(collected_in) == {threading.main_thread().name}


def _make_every_generation_due(keep: list) -> None:
    """Counts as the interpreter leaves them when all three generations are due (keeps what it makes)."""
    for _ in range(gc.get_threshold()[2] + 1):
        gc.collect(1)  # each middle collection counts towards the oldest generation
    for _ in range(gc.get_threshold()[1] + 1):
        gc.collect(0)
    keep.extend([] for _ in range(gc.get_threshold()[0] + 100))  # young objects that survive


def test_a_full_collection_waits_until_the_old_objects_grew_by_a_quarter(qtbot, make_window):
    """The interpreter's rule: a full collection (a pause of ~0.5 ms per 1000 objects, on the GUI
    thread) only when the objects that grew old since the last one are a quarter of those it kept."""
    import numpy as np

    from annotator.gui import gui_thread_gc

    make_window(np.zeros((2, 16, 16, 3), np.uint8))
    assert gc.get_freeze_count() > 0  # the start-up objects are out of every collection
    state = gui_thread_gc._State
    keep: list = []
    state.long_lived_total, state.long_lived_pending = 1_000_000, 0
    _make_every_generation_due(keep)
    assert gc.get_count()[2] > gc.get_threshold()[2]
    assert gui_thread_gc.collect_due_generations() == 1  # due by count, not worth its pause
    assert state.long_lived_pending >= gc.get_threshold()[0]  # the kept young objects grew old
    state.long_lived_pending = 250_001
    _make_every_generation_due(keep)
    assert gui_thread_gc.collect_due_generations() == 2
    assert state.long_lived_pending == 0
    assert state.long_lived_total == len(gc.get_objects(generation=2)) > 0


def test_a_full_collection_waits_for_the_end_of_a_background_job(qtbot, make_window):
    """No full collection's pause while a job streams frames in, unless the old objects doubled."""
    import numpy as np

    from annotator.gui import gui_thread_gc
    from annotator.gui.worker import GeneratorWorker

    make_window(np.zeros((2, 16, 16, 3), np.uint8))
    state = gui_thread_gc._State
    keep: list = []
    jobs_seen: list[int] = []
    release = threading.Event()

    def job():
        jobs_seen.append(state.jobs)
        release.wait(10)
        yield 1

    worker = GeneratorWorker(job)
    ended: list[bool] = []
    worker.finished.connect(ended.append)
    worker.start()
    try:
        qtbot.waitUntil(lambda: bool(jobs_seen), timeout=5000)
        assert jobs_seen == [1]  # the worker told the collector before its thread ran
        state.long_lived_total, state.long_lived_pending = 1_000_000, 300_000
        _make_every_generation_due(keep)
        assert gui_thread_gc.collect_due_generations() == 1  # due, but held back during the job
        state.long_lived_total, state.long_lived_pending = 1_000_000, 1_000_001
        _make_every_generation_due(keep)
        assert gui_thread_gc.collect_due_generations() == 2  # the old objects doubled: run anyway
    finally:
        release.set()
    qtbot.waitUntil(lambda: bool(ended), timeout=5000)
    assert state.jobs == 0
    state.long_lived_total, state.long_lived_pending = 1_000_000, 300_000
    _make_every_generation_due(keep)
    assert gui_thread_gc.collect_due_generations() == 2  # the job ended: the held-back one runs
