"""Fixtures shared by the unit and GUI tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fork_server():
    """A warm worker process that forks a child per crash-test case (torch is imported once)."""
    if not hasattr(os, "fork"):
        pytest.skip("the crash tests fork (POSIX only)")
    from tests.crash_worker import ForkServer

    server = ForkServer(REPO)
    yield server
    server.close()


@pytest.fixture()
def clip(tmp_path):
    """Four frames of a moving square in a folder, its first mask as a PNG, and the true label maps."""
    from tests.synthetic import clip_on_disk

    return clip_on_disk(tmp_path)
