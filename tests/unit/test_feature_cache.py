"""The on-disk feature cache: a second store on the same video computes nothing, and a broken cache is rebuilt."""

from __future__ import annotations

import torch

from annotator.core.features.store import FeatureStore
from annotator.core.video import open_video
from tests.fakes import ColourBackbone
from tests.synthetic import moving_objects_clip, write_frames


def test_second_store_reads_features_back_from_disk(tmp_path):
    frames, _ = moving_objects_clip(n_frames=5, hw=(64, 96), size=24, step=4)
    folder = write_frames(tmp_path / "clip", frames)
    with open_video(folder) as video:
        first = FeatureStore(video, ColourBackbone(), short_side=None, disk_cache=tmp_path / "cache")
        expected = [first(i) for i in range(5)]
        assert first.computed == 5
    with open_video(folder) as video:
        second = FeatureStore(video, ColourBackbone(), short_side=None, disk_cache=tmp_path / "cache")
        got = [second(i) for i in range(5)]
        assert second.computed == 0
    for a, b in zip(expected, got):
        torch.testing.assert_close(a, b, atol=2e-3, rtol=0)  # stored as fp16


def test_corrupt_cache_is_rebuilt_not_an_error(tmp_path):
    frames, _ = moving_objects_clip(n_frames=4, hw=(64, 96), size=24, step=4)
    folder = write_frames(tmp_path / "clip", frames)
    with open_video(folder) as video:
        FeatureStore(video, ColourBackbone(), short_side=None, disk_cache=tmp_path / "cache")(0)
    for npy in (tmp_path / "cache").rglob("features.npy"):
        npy.write_bytes(b"garbage")
    with open_video(folder) as video:
        store = FeatureStore(video, ColourBackbone(), short_side=None, disk_cache=tmp_path / "cache")
        assert store(1).shape == (4, 8, 12)
        assert store.computed >= 1


def test_other_backbone_or_resolution_uses_another_cache(tmp_path):
    frames, _ = moving_objects_clip(n_frames=3, hw=(64, 96), size=24, step=4)
    folder = write_frames(tmp_path / "clip", frames)
    with open_video(folder) as video:
        FeatureStore(video, ColourBackbone(), short_side=None, disk_cache=tmp_path / "cache")(0)
        smaller = FeatureStore(video, ColourBackbone(), short_side=32, disk_cache=tmp_path / "cache")
        assert smaller(0).shape == (4, 4, 6)
        assert smaller.computed > 0
