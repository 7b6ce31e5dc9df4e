"""Choosing the torch device, precision and CPU thread count a backbone runs with.

``auto`` prefers CUDA, then Apple's MPS, then the CPU. Half precision is the default on
CUDA and for CPUs with native bfloat16 (where ``half`` means bfloat16); fp16 convolutions on the
CPU are slow or unsupported and MPS gains little.
Nothing here runs at import time.
"""

from __future__ import annotations

import functools
import re

import torch

from annotator.core.errors import BackboneError, UsageError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` -> cuda > mps > cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` as named.

    Raises BackboneError for an unknown name or a device this machine does not have.
    """
    text = (name or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise BackboneError("device 'mps' requested but Apple MPS is not available on this machine")
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise BackboneError(f"unknown device {name!r}; use one of {', '.join(DEVICE_CHOICES)}")
    if not torch.cuda.is_available():
        raise BackboneError(
            f"device {name!r} requested but CUDA is not available "
            f"(torch {torch.__version__}, no usable NVIDIA GPU or driver)"
        )
    index = int(match.group(1)) if match.group(1) is not None else None
    if index is not None and index >= torch.cuda.device_count():
        raise BackboneError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bf16 convolutions pay off.

    Elsewhere oneDNN emulates bf16 and it is slower than float32.
    """
    try:
        flags = open("/proc/cpuinfo", encoding="ascii", errors="ignore").read()
    except OSError:  # not Linux: trust torch's own check where it has one
        check = getattr(torch.backends.mkldnn, "is_bf16_supported", None)
        return bool(check()) if check is not None else False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_dtype(device: torch.device, half: bool | None = None) -> torch.dtype:
    """The precision a backbone runs in: half precision when ``half``, else float32.

    Half is float16 on GPUs and bfloat16 on a CPU that computes it natively (measured on an
    AVX512-BF16 CPU: lite0 at 480p 203 -> 62 ms/frame, features' cosine to float32 0.999, the same
    mean J&F on ../shared/data/davis2016). By default (``half=None``) it is on for CUDA and for such
    CPUs. Raises UsageError when half precision is asked for on a CPU without bf16 support.
    """
    if half is None:
        half = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    if half and device.type == "cpu":
        if not cpu_has_bf16():
            raise UsageError("half precision on the CPU needs AVX512-BF16 or AMX, which this CPU lacks; "
                             "drop --half")
        return torch.bfloat16
    return torch.float16 if half else torch.float32


def apply_threads(threads: int | None, device: torch.device) -> None:
    """``torch.set_num_threads(threads)`` for CPU inference, only when ``threads`` is given."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise UsageError(f"threads must be a positive integer, got {threads!r}")
    if device.type == "cpu":
        torch.set_num_threads(threads)
