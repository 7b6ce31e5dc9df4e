"""Helpers of the GUI tests: tiny clips and runs waited for (the fakes are in tests/fakes.py)."""

from __future__ import annotations

import time

import numpy as np

from tests.synthetic import write_frames


def square_clip(n: int = 6, hw=(64, 96), size: int = 20, step: int = 4, seed: int = 0):
    """A red textured square moving right over a grey textured background; returns (frames, truth)."""
    rng = np.random.default_rng(seed)
    h, w = hw
    frames = np.empty((n, h, w, 3), np.uint8)
    truth = np.zeros((n, h, w), np.uint8)
    bg = np.clip(rng.normal(110, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    for t in range(n):
        f = bg.copy()
        y0, x0 = 20, 8 + step * t
        f[y0:y0 + size, x0:x0 + size] = np.clip(rng.normal((200, 40, 40), 10, (size, size, 3)), 0, 255)
        frames[t] = f
        truth[t, y0:y0 + size, x0:x0 + size] = 1
    return frames, truth


def run_propagation(qtbot, window, direction: int = 1, go_on: bool = False, timeout: int = 20_000):
    """Start a run from the current frame and wait for it to finish; returns (applied, cancelled)."""
    with qtbot.waitSignal(window.propagation.finished, timeout=timeout) as blocker:
        window.propagation.start(direction, go_on)
    return tuple(blocker.args)


def run_propagation_timed(qtbot, window, timeout: int = 20_000):
    """`run_propagation` while a 10 ms QTimer stamps the event loop; returns (applied, cancelled, stamps)."""
    from PySide6.QtCore import QTimer

    stamps: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    timer.start()
    try:
        applied, cancelled = run_propagation(qtbot, window, timeout=timeout)
    finally:
        timer.stop()
    return applied, cancelled, stamps


def window_on_frame_folder(make_window, folder, frames):
    """A window with ``frames`` written to ``folder`` and opened from disk (projects need a video on disk)."""
    window = make_window(frames[:2])
    assert window.files.open_path(str(write_frames(folder, list(frames))))
    return window

