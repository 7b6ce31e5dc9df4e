"""Running top-k of affinities per target cell, compiled (numba) for the CPU engine.

The matmuls that compare a target frame with its context stay in torch (they are what the CPU's
bfloat16/float32 GEMM kernels are for); choosing the k largest of each target cell's in-radius
candidates is what torch does slowly on a CPU (``topk`` over every square-window candidate, half of
the engine's time, plus a -inf bias as large as the affinities). Here one pass reads each
candidate once, only those inside the radius and inside the frame, and compares it with the
smallest value kept so far: almost every candidate is rejected by that one comparison.

Affinities may be float32 or bfloat16 (read through an int16 view and widened bit-exactly), so the
selection is exact for either precision; only the order of equal values may differ from torch's.
"""

from __future__ import annotations

import math
import os
import threading

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

# A launch is serialised: numba's fallback "workqueue" threading layer (where OpenMP is missing) must
# not be entered by two threads at once, and two propagations may run in one process (a library
# user's threads, the GUI's worker beside a script).
_LAUNCH = threading.Lock()


@intrinsic
def _bits_to_float32(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.uint32), codegen


def _to_float32(value):  # pragma: no cover - replaced by the overload inside compiled code
    raise NotImplementedError


@overload(_to_float32, inline="always")
def _to_float32_impl(value):
    if isinstance(value, types.Integer):  # bfloat16 bits, seen through an int16 view
        return lambda value: _bits_to_float32(np.uint32(np.uint16(value)) << np.uint32(16))
    return lambda value: np.float32(value)


@njit(inline="always")
def _keep(values, where, smallest, slot, cell, value, index):
    """Replace the smallest kept value of ``cell`` by ``value`` and find the new smallest."""
    values[cell, slot[cell]] = value
    where[cell, slot[cell]] = index
    low, low_at = values[cell, 0], 0
    for j in range(1, values.shape[1]):
        if values[cell, j] < low:
            low, low_at = values[cell, j], j
    smallest[cell], slot[cell] = low, low_at


@njit(inline="always")
def _select_tile(affinity, n, first_tile, cols, tile, half, radius, h, w, offset, values, where, smallest, slot):
    """Tile n's affinities (T*T, S*S) with its S x S window -> the running top-k of its cells."""
    side = tile + 2 * half
    r2 = radius * radius
    row, col = divmod(first_tile + n, cols)
    for t in range(tile * tile):
        ty, tx = divmod(t, tile)
        y, x = row * tile + ty, col * tile + tx
        if y >= h or x >= w:
            continue
        cell = y * w + x
        low = smallest[cell]
        for dy in range(max(-half, -y), min(half, h - 1 - y) + 1):
            reach = int(math.floor(math.sqrt(r2 - dy * dy)))
            start = (ty + dy + half) * side + tx + half
            source = offset + (y + dy) * w + x
            for dx in range(max(-reach, -x), min(reach, w - 1 - x) + 1):
                value = _to_float32(affinity[n, t, start + dx])
                if value > low:
                    _keep(values, where, smallest, slot, cell, value, source + dx)
                    low = smallest[cell]


@njit(inline="always")
def _select_row(affinity, p, first_cell, offset, values, where, smallest, slot, w, grid_w, stride, radius):
    """Cell first_cell + p's affinities with a context frame's cells -> its running top-k.

    The Q candidates are a grid of ``grid_w`` columns taken every ``stride`` cells of a frame
    ``w`` cells wide; with ``radius`` >= 0 the candidates within it are skipped (another pass
    compares those at every cell).
    """
    cell = first_cell + p
    low = smallest[cell]
    if stride == 1 and radius < 0:
        for q in range(affinity.shape[1]):
            value = _to_float32(affinity[p, q])
            if value > low:
                _keep(values, where, smallest, slot, cell, value, offset + q)
                low = smallest[cell]
        return
    y, x = divmod(cell, w)
    r2 = radius * radius
    for row in range(affinity.shape[1] // grid_w):
        dy = row * stride - y
        # columns x0..x1 of this grid row lie within the radius and are skipped
        x0, x1 = 1, 0
        if radius >= 0 and dy * dy <= r2:
            reach = int(math.floor(math.sqrt(r2 - dy * dy)))
            x0, x1 = (x - reach + stride - 1) // stride, (x + reach) // stride
        for col in range(grid_w):
            if x0 <= col <= x1:
                continue
            value = _to_float32(affinity[p, row * grid_w + col])
            if value > low:
                _keep(values, where, smallest, slot, cell, value, offset + row * stride * w + col * stride)
                low = smallest[cell]


# Each selection in two builds: threads (prange) and serial. A process forked after OpenMP threads
# ran must not enter OpenMP again (GNU OpenMP terminates or hangs it), so forked children use serial.
# The signatures are explicit, so every build is compiled (or loaded from numba's cache) when this
# module is imported, never on a worker thread in the middle of a run: a first compile there held
# the GIL long enough to freeze the GUI's event loop (174 ms gaps; minutes in one fresh install).
_TILES = ("void({a}, int64, int64, int64, int64, float64, int64, int64, int64, "
          "float32[:, ::1], int64[:, ::1], float32[::1], int64[::1])")
_ROWS = ("void({a}, int64, int64, float32[:, ::1], int64[:, ::1], float32[::1], int64[::1], "
         "int64, int64, int64, float64)")
_WINDOW_SIGNATURES = [_TILES.format(a=a) for a in ("int16[:, :, ::1]", "float32[:, :, ::1]")]
_ROW_SIGNATURES = [_ROWS.format(a=a) for a in ("int16[:, ::1]", "float32[:, ::1]")]


@njit(_WINDOW_SIGNATURES, parallel=True, cache=True)
def _select_windows_threads(affinity, first_tile, cols, tile, half, radius, h, w, offset, values, where, smallest, slot):
    for n in prange(affinity.shape[0]):
        _select_tile(affinity, n, first_tile, cols, tile, half, radius, h, w, offset, values, where, smallest, slot)


@njit(_WINDOW_SIGNATURES, cache=True)
def _select_windows_serial(affinity, first_tile, cols, tile, half, radius, h, w, offset, values, where, smallest, slot):
    for n in range(affinity.shape[0]):
        _select_tile(affinity, n, first_tile, cols, tile, half, radius, h, w, offset, values, where, smallest, slot)


@njit(_ROW_SIGNATURES, parallel=True, cache=True)
def _select_all_threads(affinity, first_cell, offset, values, where, smallest, slot, w, grid_w, stride, radius):
    for p in prange(affinity.shape[0]):
        _select_row(affinity, p, first_cell, offset, values, where, smallest, slot, w, grid_w, stride, radius)


@njit(_ROW_SIGNATURES, cache=True)
def _select_all_serial(affinity, first_cell, offset, values, where, smallest, slot, w, grid_w, stride, radius):
    for p in range(affinity.shape[0]):
        _select_row(affinity, p, first_cell, offset, values, where, smallest, slot, w, grid_w, stride, radius)


class _Mode:
    forked = False


def _after_fork_in_child() -> None:
    _Mode.forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _as_numpy(affinity: torch.Tensor) -> np.ndarray:
    if affinity.dtype == torch.bfloat16:
        return affinity.view(torch.int16).numpy()
    if affinity.dtype != torch.float32:
        affinity = affinity.float()
    return affinity.numpy()


class RunningTopK:
    """The k largest affinities seen so far for each of ``cells`` target cells, and where they came from.

    ``where`` holds a flat index into the context's cells: ``frame slot * cells_per_frame + cell``,
    the row of the concatenated context labels that the value weights. Unfilled places hold -inf.
    """

    def __init__(self, cells: int, k: int, threads: int | None = None) -> None:
        self.values = np.full((cells, k), -np.inf, dtype=np.float32)
        self.where = np.zeros((cells, k), dtype=np.int64)
        self._smallest = np.full(cells, -np.inf, dtype=np.float32)
        self._slot = np.zeros(cells, dtype=np.int64)
        wanted = threads if threads is not None else torch.get_num_threads()
        self._threads = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))

    def add_windows(self, affinity: torch.Tensor, first_tile: int, cols: int, tile: int, radius: float,
                    hw: tuple[int, int], offset: int) -> None:
        """Offer the affinities (n, T*T, S*S) of tiles ``first_tile``.. (row-major, ``cols`` per row)
        with their windows of side S = T + 2 floor(radius); only candidates inside ``radius`` and
        inside the h x w frame count. ``offset``: flat index of the context frame's first cell."""
        half = int(math.floor(radius))
        if affinity.shape[1] != tile * tile or affinity.shape[2] != (tile + 2 * half) ** 2:
            raise ValueError(f"affinity of shape {tuple(affinity.shape)} does not fit tile {tile}, radius {radius}")
        kernel = self._kernel(_select_windows_threads, _select_windows_serial)
        with _LAUNCH:
            kernel(_as_numpy(affinity.contiguous()), first_tile, cols, tile, half, float(radius),
                   hw[0], hw[1], offset, self.values, self.where, self._smallest, self._slot)

    def add_all(self, affinity: torch.Tensor, first_cell: int, offset: int, *, w: int | None = None,
                stride: int = 1, skip_radius: float | None = None) -> None:
        """Offer the affinities (P', Q) of target cells ``first_cell``.. with Q cells of a context frame.

        By default the Q cells are the whole frame. With ``stride`` s they are every s-th cell of
        every s-th row of a frame ``w`` cells wide (the grid ``frame[::s, ::s]``), and with
        ``skip_radius`` the candidates within that radius of each target cell are left out (a window
        pass offers those at every cell)."""
        width = affinity.shape[1] if w is None else w
        grid_w = -(-width // stride)
        if affinity.shape[1] % grid_w:
            raise ValueError(f"{affinity.shape[1]} candidates are not rows of {grid_w} (w={width}, stride={stride})")
        radius = -1.0 if skip_radius is None else float(skip_radius)
        kernel = self._kernel(_select_all_threads, _select_all_serial)
        with _LAUNCH:
            kernel(_as_numpy(affinity.contiguous()), first_cell, offset, self.values, self.where,
                   self._smallest, self._slot, width, grid_w, stride, radius)

    def _kernel(self, threads, serial):
        if _Mode.forked or self._threads == 1:
            return serial
        numba.set_num_threads(self._threads)  # per calling thread in numba
        return threads

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Values (P, k) float32 and flat context indices (P, k) int64, as torch tensors."""
        return torch.from_numpy(self.values), torch.from_numpy(self.where)
