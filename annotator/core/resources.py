"""Running out of GPU memory without crashing: retry with smaller chunks, then on the CPU.

``run_with_oom_fallback(fn, chunk=8, device="cuda", on_fallback=print)`` calls ``fn(chunk, device)``;
when it raises a CUDA (or MPS) out-of-memory error the cached allocator is emptied and ``fn`` is
called again with half the chunk, down to ``min_chunk``, and then once more on the CPU. Each
retreat is reported through ``on_fallback`` with a one-line message. :class:`OomFallback` keeps
what it learned, so later calls start at the chunk and device that worked. Qt-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from annotator.core.errors import AnnotatorError

__all__ = ["OomFallback", "is_out_of_memory", "run_with_oom_fallback"]

T = TypeVar("T")


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator (or CPU allocator) out-of-memory error."""
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _empty_cache(device: torch.device) -> None:
    try:
        if device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
        elif device.type == "mps" and hasattr(torch, "mps"):
            torch.mps.empty_cache()
    except Exception:  # noqa: BLE001 - freeing memory is best effort; the retry decides
        pass


class OomFallback:
    """The chunk size and device that currently work; :meth:`run` retreats on out-of-memory."""

    def __init__(self, chunk: int, device: torch.device | str, *, min_chunk: int = 1,
                 on_fallback: Callable[[str], None] | None = None, cpu_fallback: bool = True) -> None:
        self.chunk = max(int(min_chunk), int(chunk))
        self.min_chunk = max(1, int(min_chunk))
        self.device = torch.device(device)
        self.on_fallback = on_fallback
        self.cpu_fallback = cpu_fallback
        self.fallbacks: list[str] = []

    def run(self, fn: Callable[[int, torch.device], T]) -> T:
        while True:
            try:
                return fn(self.chunk, self.device)
            except Exception as exc:  # noqa: BLE001 - anything but out-of-memory is re-raised
                if not is_out_of_memory(exc):
                    raise
                del exc  # drop the traceback's references to the tensors that filled the memory
                _empty_cache(self.device)
                self._retreat()

    def _retreat(self) -> None:
        if self.chunk > self.min_chunk:
            self.chunk = max(self.min_chunk, self.chunk // 2)
            message = f"out of memory on {self.device}: retrying in chunks of {self.chunk}"
        elif self.device.type != "cpu" and self.cpu_fallback:
            old = self.device
            self.device = torch.device("cpu")
            message = f"out of memory on {old} even in chunks of {self.chunk}: continuing on the CPU (slower)"
        else:
            raise AnnotatorError(f"out of memory on {self.device} even in chunks of {self.chunk}: "
                                 "lower the working resolution (--short-side) or close other programs")
        self.fallbacks.append(message)
        if self.on_fallback is not None:
            self.on_fallback(message)


def run_with_oom_fallback(fn: Callable[[int, torch.device], T], *, chunk: int = 8,
                          device: torch.device | str = "cuda", min_chunk: int = 1,
                          on_fallback: Callable[[str], None] | None = None, cpu_fallback: bool = True) -> T:
    """Call ``fn(chunk, device)``, retreating on out-of-memory as the module docstring says."""
    return OomFallback(chunk, device, min_chunk=min_chunk, on_fallback=on_fallback,
                       cpu_fallback=cpu_fallback).run(fn)
