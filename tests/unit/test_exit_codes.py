"""The one table of exit codes: README.md states `errors.EXIT_CODES`, and each failure it documents
is run end to end (one line on stderr, that code)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

import numpy as np
import pytest

from annotator.cli import main
from annotator.core.errors import EXIT_CODES
from annotator.core.io.labels import write_mask

README = Path(__file__).resolve().parents[2] / "README.md"
FAST = ["--short-side", "0", "--stage", "s3", "-q"]


def readme_exit_codes() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- exit codes -->", 2)[1]
    return [(int(code), meaning.strip()) for code, meaning in re.findall(r"^\| (\d+) \| (.+?) \|$", table, re.M)]


def test_the_readme_states_the_one_table_of_exit_codes():
    assert readme_exit_codes() == list(EXIT_CODES)


def refuse_mkdir(monkeypatch, under: Path) -> None:
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(under)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)


def make_failure(case: str, tmp_path: Path, clip, monkeypatch) -> list[str]:
    """The arguments of one documented failure (and what it needs on disk)."""
    folder, mask, _ = clip
    out = tmp_path / "out"
    propagate = ["propagate", str(folder), "--masks", str(mask), "--out", str(out), *FAST]
    if case == "out is a file":
        out.write_text("mine")
        return propagate
    if case == "missing video":
        return ["propagate", str(tmp_path / "nothing.mp4"), "--masks", str(mask), "--out", str(out), *FAST]
    if case == "wrong-size mask":
        write_mask(mask, np.zeros((32, 48), np.uint8))
        return propagate
    if case == "unknown backbone":
        return [*propagate, "--backbone", "vgg99"]
    if case == "not a project":
        return ["export", str(tmp_path), "--out", str(out)]
    if case == "read-only output":
        refuse_mkdir(monkeypatch, out)
        return propagate
    raise AssertionError(case)


@pytest.mark.parametrize("case, code, message", [
    ("out is a file", 2, "out is a file; give a folder for the masks"),
    ("missing video", 3, "nothing.mp4"),
    ("wrong-size mask", 4, "mask of frame 0 is 48x32 but the video is 96x64"),
    ("unknown backbone", 5, "vgg99"),
    ("not a project", 6, "is not an annotation project"),
    ("read-only output", 7, "cannot create folder"),
])
def test_each_documented_failure_gives_its_exit_code_and_one_line(case, code, message, tmp_path, clip, monkeypatch,
                                                                 capsys):
    argv = make_failure(case, tmp_path, clip, monkeypatch)
    assert main(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("annotator: error:") and message in err, err
    assert "\n" not in err and "Traceback" not in err
    assert code in dict(EXIT_CODES)


def test_an_output_under_a_file_is_named_with_the_usage_code(tmp_path, clip, capsys):
    folder, mask, _ = clip
    (tmp_path / "afile").write_text("mine")
    argv = ["propagate", str(folder), "--masks", str(mask), "--out", str(tmp_path / "afile" / "out"), *FAST]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"{tmp_path / 'afile'} is a file" in err and "\n" not in err
    assert (tmp_path / "afile").read_text() == "mine"
