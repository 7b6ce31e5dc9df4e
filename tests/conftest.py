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
