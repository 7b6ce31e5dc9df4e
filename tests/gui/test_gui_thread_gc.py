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
