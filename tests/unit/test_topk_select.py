"""The compiled running top-k: the same k largest values (and where they are) as torch.topk."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from annotator.core.engine.topk_select import RunningTopK


def _sorted_values(best: RunningTopK) -> torch.Tensor:
    return best.result()[0].sort(dim=1, descending=True).values


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_whole_frame_selection_equals_torch_topk_over_every_offer(dtype):
    gen = torch.Generator().manual_seed(3)
    parts = [torch.randn(50, 37, generator=gen).to(dtype) for _ in range(3)]
    best = RunningTopK(50, 7, threads=2)
    for slot, part in enumerate(parts):
        for first in (0, 25):  # offered in two blocks of target cells
            best.add_all(part[first: first + 25], first, offset=slot * 37)
    everything = torch.cat(parts, dim=1).float()  # (50, 3 * 37)
    expected = everything.topk(7, dim=1).values
    torch.testing.assert_close(_sorted_values(best), expected, atol=0, rtol=0)
    values, where = best.result()
    assert torch.equal(torch.gather(everything, 1, where), values)  # each value is where it says


def test_window_selection_keeps_only_candidates_inside_the_radius_and_the_frame():
    h, w, tile, radius = 5, 7, 2, 1.5
    half, side = 1, 4
    rows, cols = 3, 4
    affinity = torch.rand(rows * cols, tile * tile, side * side, generator=torch.Generator().manual_seed(0))
    best = RunningTopK(h * w, 20, threads=1)
    best.add_windows(affinity, 0, cols, tile, radius, (h, w), offset=0)
    values, where = best.result()
    for cell in range(h * w):
        y, x = divmod(cell, w)
        n = (y // tile) * cols + x // tile
        t = (y % tile) * tile + x % tile
        expected = {}
        for dy in range(-half, half + 1):
            for dx in range(-half, half + 1):
                yy, xx = y + dy, x + dx
                if dy * dy + dx * dx <= radius * radius and 0 <= yy < h and 0 <= xx < w:
                    s = (y % tile + dy + half) * side + x % tile + dx + half
                    expected[yy * w + xx] = float(affinity[n, t, s])
        kept = {int(i): float(v) for v, i in zip(values[cell], where[cell]) if v > float("-inf")}
        assert kept == expected, f"cell {(y, x)}"


def test_shape_that_does_not_fit_the_tiles_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        RunningTopK(10, 3).add_windows(torch.zeros(1, 4, 9), 0, 1, 2, 1.0, (2, 5), 0)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="fork after threads: POSIX (Linux)")
def test_a_process_forked_after_threaded_selection_still_selects():
    gen = torch.Generator().manual_seed(5)
    affinity = torch.randn(64, 300, generator=gen)
    parent = RunningTopK(64, 5, threads=2)
    parent.add_all(affinity, 0, 0)  # threads have run in this process
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: a threaded runtime would terminate or hang here
        child = RunningTopK(64, 5, threads=2)
        child.add_all(affinity, 0, 0)
        os.write(write, b"ok" if torch.equal(child.result()[0], parent.result()[0]) else b"differs")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 16) == b"ok" and status == 0


def test_every_build_is_compiled_at_import_not_during_a_run():
    """A first compile inside a run holds the GIL for long stretches (the GUI's event loop froze)."""
    from annotator.core.engine import topk_select

    builds = (topk_select._select_windows_threads, topk_select._select_windows_serial,
              topk_select._select_all_threads, topk_select._select_all_serial)
    for build in builds:
        assert len(build.overloads) == 2, build  # bfloat16 bits and float32, ready before any call
        assert not build._can_compile  # an unexpected type fails instead of compiling mid-run
