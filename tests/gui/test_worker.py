"""The background-job worker: a cancel that comes after the job's last item still cancels."""

from __future__ import annotations

import threading

import pytest

from annotator.gui.worker import GeneratorWorker

pytestmark = pytest.mark.gui


def test_cancel_after_the_jobs_last_item_but_before_it_is_handled_cancels(qtbot):
    # The job is done before the GUI thread handles its first item; the receiver cancels on that
    # item. The items still queued are dropped, so "finished" must say cancelled: a receiver that
    # applied one item of three must not take the run as complete (it puts the model back).
    ended = threading.Event()

    def job():
        try:
            yield from range(3)
        finally:
            ended.set()

    worker = GeneratorWorker(job)
    got = []

    def on_result(item):
        got.append(item)
        worker.cancel()

    worker.result.connect(on_result)
    with qtbot.waitSignal(worker.finished, timeout=10_000) as blocker:
        worker.start()
        assert ended.wait(10)  # the GUI thread has handled nothing yet
    assert got == [0]
    assert blocker.args == [True]
