"""The tool's own error hierarchy: every expected failure is one of these, with a one-line message.

The command line prints ``str(error)`` and exits with ``error.exit_code``; the GUI shows the
same line in a dialog. Anything else that escapes is a bug.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


class AnnotatorError(Exception):
    """Base of every error the user can cause; ``str()`` is a one-line message for people."""

    exit_code: int = 1


class VideoError(AnnotatorError):
    """A video, frame folder or DAVIS sequence cannot be opened or decoded."""

    exit_code = 3


class MaskError(AnnotatorError):
    """A label map (mask PNG) is unreadable, of the wrong size, or has unknown colours/ids."""

    exit_code = 4


class BackboneError(AnnotatorError):
    """A backbone name is unknown or its weights cannot be found or loaded."""

    exit_code = 5


class ProjectError(AnnotatorError):
    """An annotation project cannot be opened, migrated or saved."""

    exit_code = 6


class UsageError(AnnotatorError):
    """Arguments that make no sense together (e.g. no reference frame to propagate from)."""

    exit_code = 2


class SaveError(AnnotatorError):
    """A file cannot be written (disk full, no permission, ...); the previous version is kept."""

    exit_code = 7


EXIT_CODES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (1, "a batch finished but some of its videos failed (the summary says which); an unforeseen system error"),
    (UsageError.exit_code, "usage: options that make no sense, an output that exists without --overwrite"),
    (VideoError.exit_code, "video: missing, unreadable or undecodable video, frame folder or DAVIS sequence"),
    (MaskError.exit_code, "mask: unreadable mask, wrong size, unknown colours or ids"),
    (BackboneError.exit_code, "backbone: unknown backbone or stage, weights missing or unloadable"),
    (ProjectError.exit_code, "project: not a project, corrupt project.json, video moved or changed"),
    (SaveError.exit_code, "save: an output cannot be written (no permission, disk full)"),
    (130, "interrupted (Ctrl+C)"),
)
"""The one table of exit codes of the ``annotator`` command; README.md states it and a test holds the two equal."""


def size_text(hw: Sequence[int]) -> str:
    """A size as messages write it, width x height (``854x480``), from an (H, W, ...) shape."""
    return f"{int(hw[1])}x{int(hw[0])}"


def read_bytes(path: str | os.PathLike[str], error: type[AnnotatorError], what: str, *,
               missing: str | None = None) -> bytes:
    """The bytes of the file ``path``; an OS error becomes ``error`` with a one-line message that calls the
    file ``what`` ("mask file"); ``missing`` replaces the message for a file that does not exist."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise error(missing or f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not a {what}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
