"""Soft labels to image size: bilinear as CRW/DINO, and guided upsampling that snaps edges to the frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from annotator.core.engine.upsampling import box_filter, guided_filter, soft_to_labels, upsample_soft


def test_box_filter_is_the_clipped_window_mean():
    x = torch.arange(30, dtype=torch.float32).reshape(1, 5, 6)
    out = box_filter(x, 1)
    assert out[0, 2, 3] == pytest.approx(x[0, 1:4, 2:5].mean().item())
    assert out[0, 0, 0] == pytest.approx(x[0, 0:2, 0:2].mean().item())  # corner: 2x2 window
    assert out[0, 4, 5] == pytest.approx(x[0, 3:5, 4:6].mean().item())


def test_guided_filter_keeps_a_constant_and_follows_guide_edges():
    const = torch.full((1, 20, 20), 0.3)
    guide = torch.rand(20, 20)
    torch.testing.assert_close(guided_filter(guide, const, 3, 1e-3), const, atol=1e-5, rtol=0)


def blocky_case():
    """A frame with a sharp vertical edge at x=37 and soft labels whose transition is blurred across it."""
    h, w = 32, 64
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, 37:] = 220
    truth = np.zeros((h, w), np.uint8)
    truth[:, 37:] = 1
    grid = torch.zeros(2, 4, 8)
    grid[1, :, 5:] = 1.0  # object from cell 5 (pixel 40) on: the grid cannot place the edge at 37
    grid[1, :, 4] = 0.1  # bilinear crosses 0.5 near x=39, two columns right of the edge
    grid[0] = 1 - grid[1]
    return frame, truth, grid


def test_guided_upsampling_puts_the_boundary_on_the_image_edge():
    frame, truth, grid = blocky_case()
    bilinear = soft_to_labels(grid, (0, 1), truth.shape, "bilinear")
    guided = soft_to_labels(grid, (0, 1), truth.shape, "guided", frame)
    assert (guided != truth).sum() < (bilinear != truth).sum()
    assert (guided != truth).sum() <= truth.shape[0]  # at most one column off


def test_upsample_modes_and_errors():
    _, truth, grid = blocky_case()
    assert upsample_soft(grid, (32, 64)).shape == (2, 32, 64)
    with pytest.raises(ValueError, match="needs the frame"):
        upsample_soft(grid, (32, 64), "guided")
    with pytest.raises(ValueError, match="unknown upsampling"):
        upsample_soft(grid, (32, 64), "bicubic")  # type: ignore[arg-type]
