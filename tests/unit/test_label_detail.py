"""Label detail (patch label transfer): sub-cell labels travel with the cells that match."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.core.analysis.metrics import jaccard
from annotator.core.errors import UsageError
from annotator.core.engine.keyframes import fill_span
from annotator.core.engine.propagation import PropagationParams, pack_labels, propagate, unpack_labels
from tests.fakes import ColourBackbone


def _panning_clip(n: int = 5, hw: tuple[int, int] = (48, 96), seed: int = 0):
    """A camera pan of one cell (8 px) per frame over cells of random colour, with a 2-pixel-wide
    vertical bar (the object) at a fixed place inside one cell: the bar is a quarter of a cell wide,
    so on the stride-8 grid it is a quarter-full cell everywhere."""
    rng = np.random.default_rng(seed)
    h, w = hw
    cells = rng.integers(40, 215, size=(h // 8, w // 8 + n, 3), dtype=np.uint8)
    base = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)  # (h, w + 8n, 3)
    mask = np.zeros(base.shape[:2], np.uint8)
    mask[8:40, 8 * n + 2: 8 * n + 4] = 1  # rows 8..39, pixels 2 and 3 of one cell column
    # frame t shows columns 8t... of the scene: the bar moves one cell left per frame, always in view
    frames = np.stack([base[:, 8 * t: 8 * t + w] for t in range(n)])
    masks = np.stack([mask[:, 8 * t: 8 * t + w] for t in range(n)])
    return frames, masks


def _features(frames: np.ndarray):
    backbone = ColourBackbone()
    feats = backbone(torch.from_numpy(frames).permute(0, 3, 1, 2))
    return lambda i: feats[i]


def test_pack_and_unpack_are_inverse_and_keep_each_block_in_its_cell():
    fine = torch.arange(2 * 6 * 8, dtype=torch.float32).reshape(2, 6, 8)
    packed = pack_labels(fine, 2)
    assert packed.shape == (8, 3, 4)
    # cell (1, 2) of label 1 holds that label's 2x2 block at rows 2..3, columns 4..5
    np.testing.assert_array_equal(packed[4:8, 1, 2].numpy(), fine[1, 2:4, 4:6].reshape(-1).numpy())
    torch.testing.assert_close(unpack_labels(packed, 2), fine)
    assert pack_labels(fine, 1) is fine and unpack_labels(fine, 1) is fine


@pytest.mark.parametrize("detail, least_j", [(1, None), (4, 0.9), (8, 0.95)])
def test_a_bar_thinner_than_a_cell_survives_propagation_with_sub_cell_labels(detail, least_j):
    frames, masks = _panning_clip()
    # k = 1: each cell takes the labels of its one best match, the same cell one frame back
    params = PropagationParams(reference_flow=0, colour_grow=False, label_detail=detail, radius=3, precision="float32", context=2, topk=1)
    results = list(propagate(_features(frames), {0: masks[0]}, 0, len(frames), params))
    assert [r.index for r in results] == [1, 2, 3, 4]
    h, w = frames.shape[1:3]
    for r in results:
        assert r.soft.shape == (2, h // 8 * detail, w // 8 * detail)  # the label grid, not the feature grid
        j = jaccard(r.labels == 1, masks[r.index] == 1)
        if least_j is None:
            assert j == 0.0  # one label per cell: a quarter-full cell is background after the argmax
        else:
            assert j >= least_j


def test_a_span_filled_from_both_ends_keeps_sub_cell_labels():
    frames, masks = _panning_clip(n=6)
    params = PropagationParams(reference_flow=0, colour_grow=False, label_detail=8, radius=3, precision="float32", fusion="match", topk=1)
    out = {r.index: r for r in fill_span(_features(frames), {0: masks[0], 5: masks[5]}, 0, 5, params)}
    assert sorted(out) == [1, 2, 3, 4] and all(r.keyframes == 2 for r in out.values())
    assert min(jaccard(out[i].labels == 1, masks[i] == 1) for i in out) >= 0.95


def test_label_detail_out_of_range_is_a_usage_error():
    with pytest.raises(UsageError, match="label detail"):
        PropagationParams(label_detail=0).validate()
    with pytest.raises(UsageError, match="label detail"):
        PropagationParams(label_detail=9).validate()
