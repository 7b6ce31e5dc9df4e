"""Atomic writes: the old file survives every failure and no temp file is left behind."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from annotator.core.io import atomic
from annotator.core.io.atomic import atomic_write_bytes, atomic_write_text
from annotator.core.errors import AnnotatorError, SaveError

OLD = b"old contents \x00\xff" * 10


def _only(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def test_writes_new_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "mask.png"
    atomic_write_bytes(target, b"\x89PNG data")
    assert target.read_bytes() == b"\x89PNG data"
    assert _only(tmp_path) == ["mask.png"]


def test_replaces_existing_file(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(OLD)
    atomic_write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert _only(tmp_path) == ["a.json"]


def test_text_uses_encoding_and_keeps_newlines(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "caf\u00e9\r\nx\n", encoding="latin-1")
    assert target.read_bytes() == b"caf\xe9\r\nx\n"
    atomic_write_text(target, "\u00e9")
    assert target.read_bytes() == "\u00e9".encode("utf-8")


def test_temp_file_is_hidden_in_same_folder_and_synced_before_rename(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", str(fd)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(src)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    atomic_write_bytes(tmp_path / "x.png", b"abc")

    kinds = [kind for kind, _ in events]
    assert kinds.index("fsync") < kinds.index("replace")
    tmp = next(arg for kind, arg in events if kind == "replace")
    assert os.path.dirname(tmp) == str(tmp_path)
    name = os.path.basename(tmp)
    assert name.startswith(".") and name.endswith(".tmp")


def test_disk_full_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    target = tmp_path / "00003.png"
    target.write_bytes(OLD)
    real_write = os.write
    calls = []

    def write_then_fail(fd, data):
        calls.append(len(data))
        if len(calls) == 1:  # a partial write first, as a filling disk does
            return real_write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", write_then_fail)
    with pytest.raises(SaveError) as info:
        atomic_write_bytes(target, b"x" * 1000)

    monkeypatch.undo()
    assert len(calls) == 2
    assert target.read_bytes() == OLD
    assert _only(tmp_path) == ["00003.png"]
    message = str(info.value)
    assert message == f"cannot save {target}: {os.strerror(errno.ENOSPC)}"
    assert isinstance(info.value, AnnotatorError) and info.value.exit_code == 7
    assert isinstance(info.value.__cause__, OSError)


def test_errno_without_message_still_gives_reason(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(OLD)

    def fail(fd):
        raise OSError(errno.ENOSPC)  # no strerror attached

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(SaveError, match=os.strerror(errno.ENOSPC)):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert _only(tmp_path) == ["f.bin"]


def test_failed_rename_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(OLD)

    def deny(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "replace", deny)
    with pytest.raises(SaveError, match="cannot save .*f.bin"):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert _only(tmp_path) == ["f.bin"]


def test_missing_folder_is_a_save_error(tmp_path):
    target = tmp_path / "nope" / "f.bin"
    with pytest.raises(SaveError, match=os.strerror(errno.ENOENT)):
        atomic_write_bytes(target, b"data")
    assert not (tmp_path / "nope").exists()


def test_interrupt_removes_temp_and_propagates(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    target.write_bytes(OLD)

    def interrupt(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "write", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new")
    monkeypatch.undo()
    assert target.read_bytes() == OLD
    assert _only(tmp_path) == ["f.bin"]


def test_temp_name_collision_is_retried(tmp_path, monkeypatch):
    tokens = iter(["aaaaaaaa", "aaaaaaaa", "bbbbbbbb"])
    monkeypatch.setattr(atomic.secrets, "token_hex", lambda n: next(tokens))
    (tmp_path / ".f.bin.aaaaaaaa.tmp").write_bytes(b"someone else's")
    atomic_write_bytes(tmp_path / "f.bin", b"new")
    assert (tmp_path / "f.bin").read_bytes() == b"new"
    assert (tmp_path / ".f.bin.aaaaaaaa.tmp").read_bytes() == b"someone else's"


@pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")
def test_permissions_follow_umask_and_existing_file(tmp_path):
    old_umask = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.png"
        atomic_write_bytes(fresh, b"a")
        assert stat.S_IMODE(fresh.stat().st_mode) == 0o644  # not mkstemp's 0600

        kept = tmp_path / "kept.png"
        kept.write_bytes(OLD)
        kept.chmod(0o640)
        atomic_write_bytes(kept, b"b")
        assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    finally:
        os.umask(old_umask)
