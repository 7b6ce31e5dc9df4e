"""Atomic file writes: a file on disk is always either its old or its new version, never half.

Data goes to a hidden temp file in the target's folder (``.NAME.XXXXXXXX.tmp``), is flushed
and fsynced, then renamed over the target with ``os.replace`` (atomic on POSIX and Windows
when both names are on one file system, which the same folder guarantees). Any ``OSError``
on the way (disk full, no permission, missing folder) removes the temp file, leaves the
previous file untouched and raises :class:`~annotator.core.errors.SaveError`.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

from annotator.core.errors import SaveError

__all__ = ["atomic_write_bytes", "atomic_write_text"]

# Keeps ".{name}.{8 hex}.tmp" under the usual 255-byte file-name limit.
_MAX_NAME_STEM = 200
_CREATE_ATTEMPTS = 16


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the file at ``path`` with ``data`` atomically; raise ``SaveError`` on failure.

    A new file gets the permissions the process umask gives; an existing file keeps its
    permission bits.
    """
    target = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(target)
    view = memoryview(data).cast("B")
    tmp: str | None = None
    try:
        fd, tmp = _create_temp(folder, name)
        try:
            _write_all(fd, view)
            os.fsync(fd)
        finally:
            os.close(fd)
        _copy_mode(target, tmp)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        raise SaveError(f"cannot save {target}: {_reason(exc)}") from exc
    finally:
        # Runs for every failure, KeyboardInterrupt included: a stray temp file is never left.
        if tmp is not None:
            _remove_quietly(tmp)
    _fsync_folder(folder)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Encode ``text`` and write it with :func:`atomic_write_bytes` (newlines are kept as given)."""
    atomic_write_bytes(path, text.encode(encoding))


def _create_temp(folder: str, name: str) -> tuple[int, str]:
    # os.open with O_EXCL instead of tempfile.mkstemp: mkstemp forces mode 0600, which
    # would leave saved masks unreadable to other users.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_CREATE_ATTEMPTS):
        tmp = os.path.join(folder, f".{name[:_MAX_NAME_STEM]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


def _write_all(fd: int, view: memoryview) -> None:
    # os.write may write fewer bytes than asked (signals, pipes, some network file systems).
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_mode(target: str, tmp: str) -> None:
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return
    try:
        os.chmod(tmp, mode)
    except OSError:
        pass  # permissions are a nicety; the data is what must not be lost


def _fsync_folder(folder: str) -> None:
    # Makes the rename itself durable. Windows cannot open folders this way, and some file
    # systems refuse fsync on a folder; the file is already complete on disk in that case.
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _reason(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror
    code = exc.errno
    if code is None and len(exc.args) == 1 and isinstance(exc.args[0], int):
        code = exc.args[0]  # OSError(errno.ENOSPC) sets no .errno: a lone argument is not one
    if code:
        return os.strerror(code)
    return str(exc) or type(exc).__name__
