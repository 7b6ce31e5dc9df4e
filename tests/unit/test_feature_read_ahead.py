"""FeatureStore read-ahead: the next frames' features are computed in a background thread, with the
same results as without it, and a frame that cannot be read fails where the caller asks for it."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from annotator.core.errors import VideoError
from annotator.core.features.store import FeatureStore
from annotator.core.engine.pipeline import propagate_video
from annotator.core.engine.propagation import PropagationParams
from tests.synthetic import moving_objects_clip
from tests.fakes import ArrayVideo, ColourBackbone


def _clip(n: int = 12):
    frames, masks = moving_objects_clip(n_frames=n, hw=(64, 96), size=24, step=3)
    return np.stack(frames), masks


def test_read_ahead_gives_the_same_labels_forward_and_backward():
    frames, masks = _clip()
    params = PropagationParams(precision="float32", context=4)
    runs = []
    for read_ahead in (False, True):
        store = FeatureStore(ArrayVideo(frames), ColourBackbone(), short_side=None, read_ahead=read_ahead)
        refs = {5: masks[5]}  # forward to the end, then backward to frame 0
        runs.append([(r.index, r.labels) for r in propagate_video(store, refs, len(frames), params)])
        store.close()
    assert [i for i, _ in runs[0]] == [i for i, _ in runs[1]] == [*range(6, 12), *range(4, -1, -1)]
    for (_, a), (_, b) in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_next_frames_are_computed_in_the_background():
    frames, _ = _clip()
    backbone = ColourBackbone(delay_s=0.01)
    store = FeatureStore(ArrayVideo(frames), backbone, short_side=None, batch_size=2, read_ahead=True)
    store(0)  # computes 0-1 here, then starts 2-3 in the background
    deadline = time.monotonic() + 5
    while store.computed < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.computed == 4
    assert backbone.threads[0] == threading.current_thread().name
    assert backbone.threads[1].startswith("feature-read-ahead")
    for i in (1, 2, 3):  # already there: nothing computed in the caller
        store(i)
    assert backbone.threads.count(threading.current_thread().name) == 1
    store.close()


def test_unreadable_frame_ahead_fails_only_when_asked_for():
    frames, _ = _clip()
    store = FeatureStore(ArrayVideo(frames, broken=(6,)), ColourBackbone(), short_side=None, batch_size=2,
                         read_ahead=True)
    for i in range(6):  # the read-ahead meets frame 6 early; the caller must not see that yet
        assert store(i).shape[0] == 4
    with pytest.raises(VideoError, match="frame 6"):
        store(6)
    store.close()
