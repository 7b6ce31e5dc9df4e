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
        for _ in range(50):
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
