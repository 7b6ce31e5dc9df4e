"""What the backbone tests share: float32 on every CPU, one torch thread, random frames, a norm check.

Import the two fixtures into a test module to make them autouse there (they are not in conftest.py
because only the backbone tests want them).
"""

from __future__ import annotations

import pytest
import torch

from annotator.core.features.backbones import device as device_mod


@pytest.fixture(autouse=True)
def float32_cpu(monkeypatch):
    """These tests check weights and numerics in float32: make the CPU look like one without bfloat16
    (on one with it, the default would be bfloat16); the precision tests set it as they need."""
    monkeypatch.setattr(device_mod, "cpu_has_bf16", lambda: False)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Two OpenMP threads on a shared, busy CPU can wait a scheduler tick per op; one is steadier.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_frames(b: int = 2, h: int = 64, w: int = 96, seed: int = 0) -> torch.Tensor:
    """(b, 3, h, w) uint8 noise frames, the same for the same seed."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, h, w), generator=gen, dtype=torch.uint8)


def assert_unit_norm(feats: torch.Tensor) -> None:
    norms = feats.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
