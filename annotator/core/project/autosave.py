"""Autosave and crash recovery: the annotation is mirrored to a recovery folder every few seconds.

A recovery folder is an ordinary project folder (see :mod:`annotator.core.project`: same atomic,
kill-safe saves, only changed frames written) plus ``lock.json`` naming the process that owns it,
the project it belongs to (if any) and the video, and ``session.lock``, a file the owner holds an
advisory lock on (``flock``) for as long as it runs. The owner removes the folder when it closes
with nothing unsaved; otherwise the folder stays, and :func:`find_recoverable` lists it at the next
start, as crashed (its session lock is free without a close) or as left with unsaved work.

Why a held lock and not the process id: the system drops the lock when the process ends, however
it ends, while a process id is soon given to another process (always so for PID 1 in a container),
and a crash would then look like a live session forever. The pid decides only for folders without
a ``session.lock`` (written by an older version) or where ``flock`` does not exist (Windows).

The GUI passes the root folder (its per-user data folder); this module never looks for one, and
nothing is written from ``__del__``: call :meth:`Autosaver.flush` and :meth:`Autosaver.close`.
Qt-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator.core.model.annotation import AnnotationModel
from annotator.core.io.atomic import atomic_write_text
from annotator.core.errors import ProjectError, SaveError
try:
    import fcntl
except ImportError:  # Windows: liveness falls back to the process id
    fcntl = None  # type: ignore[assignment]

from annotator.core.project.folder import (PROJECT_FILE, ChangeTracker, LocateVideo, ProjectContent, load_project,
                                    read_project_file, save_project)

__all__ = ["LOCK_FILE", "SESSION_LOCK_FILE", "Autosaver", "Recoverable", "SessionLock", "autosave_folder", "discard",
           "find_recoverable", "pid_alive", "recover", "session_lock_held"]

LOCK_FILE = "lock.json"
SESSION_LOCK_FILE = "session.lock"
DEFAULT_INTERVAL_S = 5.0
DEFAULT_CHUNK_FRAMES = 8


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs (on Windows only our own id counts as alive)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process there
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return False
    return True


class SessionLock:
    """An exclusive advisory lock on a file, held while a session runs (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock; `SaveError` when another session holds it. No-op where flock does not exist."""
        if fcntl is None or self._fd is not None:
            return
        try:
            # O_CLOEXEC: a program this process starts must not keep the lock after we die (a
            # forked child without exec still would, until it exits)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise SaveError(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise SaveError(f"{self.path.parent} is in use by another session") from exc
        self._fd = fd

    def release(self) -> None:
        """Let go of the lock (what the system does when the process ends)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def session_lock_held(path: str | os.PathLike[str]) -> bool | None:
    """Whether a running session holds the lock file at ``path``; None when this cannot be told
    (no such file: an older version's folder; or no flock on this system)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock just taken
    return False


def _read_lock(folder: Path) -> dict[str, Any] | None:
    try:
        lock = json.loads((folder / LOCK_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(lock, dict) or isinstance(lock.get("pid"), bool) or not isinstance(lock.get("pid"), int):
        return None
    return lock


def _session_running(folder: Path, lock: Mapping[str, Any]) -> bool:
    """Whether the session that wrote ``lock`` still runs: its session lock is held (else its pid runs here)."""
    held = session_lock_held(folder / SESSION_LOCK_FILE)
    if held is not None:
        return held
    return pid_alive(lock["pid"]) and lock.get("host", socket.gethostname()) == socket.gethostname()


def _in_use(folder: Path) -> bool:
    """Whether the folder belongs to another running session or holds work that may still be recovered."""
    if not folder.exists():
        return False
    lock = _read_lock(folder)
    if lock is None:
        return (folder / PROJECT_FILE).exists()
    if lock.get("closed") or (folder / PROJECT_FILE).exists():
        return True
    # nothing saved yet: free unless a running session other than this process owns it
    ours = lock["pid"] == os.getpid() and lock.get("host", socket.gethostname()) == socket.gethostname()
    return not ours and _session_running(folder, lock)


def autosave_folder(root: str | os.PathLike[str], key: str) -> Path:
    """A free recovery folder under ``root`` for ``key`` (a project folder or a video path).

    The same key gives the same folder from session to session, unless that folder is taken by
    another running session or holds recoverable work: then a folder of this process's own is used.
    """
    name = hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    candidates = [name, f"{name}-{os.getpid()}", *(f"{name}-{os.getpid()}-{n}" for n in range(2, 1000))]
    for candidate in candidates:
        folder = Path(root) / candidate
        if not _in_use(folder):
            return folder
    raise SaveError(f"no free autosave folder for {key} under {root}")


class Autosaver:
    """Mirrors a model into a recovery folder: when due (:meth:`tick`), on request, and on close.

    ``tick()`` saves once ``interval_s`` passed since the last save or ``chunk_frames`` frames
    changed (a propagation run streaming in), whichever comes first, and only when something
    changed. ``propagation`` returns the settings to record with the frames (may be None).
    """

    def __init__(self, model: AnnotationModel, folder: str | os.PathLike[str], *, project: str | os.PathLike[str] | None = None,
                 interval_s: float = DEFAULT_INTERVAL_S, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                 video_hash: str | None = None, propagation: Callable[[], Mapping[str, Any] | None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.folder = Path(folder).absolute()
        self.project = Path(project).absolute() if project is not None else None
        self.interval_s = float(interval_s)
        self.chunk_frames = max(1, int(chunk_frames))
        self.video_hash = video_hash
        self._propagation = propagation
        self._clock = clock
        self._changes: ChangeTracker | None = None
        self._last = 0.0
        self._started = ""
        self._video: str | None = None
        self.session_lock = SessionLock(self.folder / SESSION_LOCK_FILE)
        self.saves = 0

    @property
    def running(self) -> bool:
        return self._changes is not None

    @property
    def pending(self) -> int:
        """Frames changed since the last autosave."""
        return len(self._changes.frames) if self._changes is not None else 0

    def start(self) -> None:
        """Take over the folder (anything in it is dropped: recover it first) and mark every frame to save."""
        if self.model.video is None:
            raise ProjectError("nothing to autosave: no video is open")
        try:
            if self.folder.exists():
                shutil.rmtree(self.folder)
            self.folder.mkdir(parents=True)
        except OSError as exc:
            raise SaveError(f"cannot create the autosave folder {self.folder}: {exc.strerror or exc}") from exc
        self._started = time.strftime("%Y-%m-%dT%H:%M:%S")
        self._video = str(Path(self.model.video.path).absolute())
        self.session_lock.acquire()  # before lock.json: no instant where the folder looks crashed
        try:
            self._write_lock(closed=False)
        except BaseException:
            self.session_lock.release()
            raise
        self._changes = ChangeTracker(self.model)
        self._changes.mark_all()
        self._last = self._clock()

    def set_project(self, project: str | os.PathLike[str] | None) -> None:
        """The project the autosaved work belongs to changed (a "save as")."""
        self.project = Path(project).absolute() if project is not None else None
        if self.running:
            self._write_lock(closed=False)

    def _write_lock(self, *, closed: bool) -> None:
        lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": self._started,
                "project": str(self.project) if self.project is not None else None,
                "video": self._video,  # of the session, even once the model moved on (abandon)
                "closed": closed}
        atomic_write_text(self.folder / LOCK_FILE, json.dumps(lock, indent=1) + "\n")

    def due(self) -> bool:
        c = self._changes
        if c is None or not c.dirty:
            return False
        return len(c.frames) >= self.chunk_frames or self._clock() - self._last >= self.interval_s

    def tick(self) -> bool:
        """Save if due; True when it saved."""
        if not self.due():
            return False
        self.flush()
        return True

    def flush(self) -> int:
        """Save what changed now; returns the number of frames written."""
        if self._changes is None:
            return 0
        self._last = self._clock()
        if not self._changes.dirty:
            return 0
        settings = self._propagation() if self._propagation is not None else None
        result = save_project(self.model, self.folder, changes=self._changes, video_hash=self.video_hash,
                              propagation=settings, own_entries=(LOCK_FILE, SESSION_LOCK_FILE))
        self.video_hash = result.video_hash
        self.saves += 1
        return result.frames_written

    def close(self, *, unsaved: bool) -> None:
        """Stop. With ``unsaved`` work the folder is flushed and kept for the next start; else it is removed."""
        if self._changes is None:
            return
        try:
            if unsaved:
                self.flush()
                self._write_lock(closed=True)
            else:
                shutil.rmtree(self.folder, ignore_errors=True)
        finally:
            self.session_lock.release()
            self._changes.close()
            self._changes = None


    def abandon(self) -> None:
        """Stop without saving (the model already holds something else) and keep the folder as it is."""
        if self._changes is None:
            return
        try:
            self._write_lock(closed=True)
        except SaveError:
            pass  # the lock stays "not closed": the next start sees a crash, which is still recoverable
        finally:
            self.session_lock.release()
            self._changes.close()
            self._changes = None


@dataclass(frozen=True)
class Recoverable:
    """Autosaved work found at start-up."""

    folder: Path
    project: Path | None
    video: str | None
    modified: str | None
    frames: int
    crashed: bool
    """True when its process ended without closing (a crash or kill); False: closed with unsaved work."""

    @property
    def name(self) -> str:
        """The project's or the video's name."""
        return self.project.name if self.project is not None else Path(self.video or "?").name

    def describe(self) -> str:
        what = self.name
        how = "after a crash" if self.crashed else "unsaved when the app closed"
        return f"{what}: {self.frames} labelled frame(s), {how} (last saved {self.modified or 'unknown'})"


def find_recoverable(root: str | os.PathLike[str], *, project: str | os.PathLike[str] | None = None,
                     video: str | os.PathLike[str] | None = None) -> list[Recoverable]:
    """Recovery folders under ``root`` not owned by a running process, newest first.

    ``project`` keeps only those that belong to that project folder; ``video`` only those of that
    video (a file or frame folder) made outside any project.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    want = Path(project).absolute() if project is not None else None
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        lock = _read_lock(folder)
        if lock is None or not (folder / PROJECT_FILE).is_file():
            continue
        closed = bool(lock.get("closed"))
        if not closed and _session_running(folder, lock):
            continue  # a session that is still running
        owner = lock.get("project")
        owner_path = Path(owner) if isinstance(owner, str) else None
        if want is not None and owner_path != want:
            continue
        try:
            data = read_project_file(folder)
        except ProjectError:
            continue  # nothing readable was saved before the crash
        source = lock.get("video") if isinstance(lock.get("video"), str) else data.video.absolute
        if video is not None and (owner_path is not None or not _same_path(source, video)):
            continue
        found.append(Recoverable(folder, owner_path, source, data.modified, len(data.states), not closed))
    found.sort(key=lambda r: r.modified or "", reverse=True)
    return found


def _same_path(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def recover(recoverable: Recoverable | str | os.PathLike[str], model: AnnotationModel, *,
            locate_video: LocateVideo | None = None,
            confirm_mismatch: Callable[[Path], bool] | None = None) -> ProjectContent:
    """Load autosaved work into ``model`` (the folder stays until a new :class:`Autosaver` takes it)."""
    folder = recoverable.folder if isinstance(recoverable, Recoverable) else Path(recoverable)
    return load_project(folder, model, locate_video=locate_video, confirm_mismatch=confirm_mismatch)


def discard(recoverable: Recoverable | str | os.PathLike[str]) -> None:
    """Delete autosaved work the user does not want back."""
    folder = recoverable.folder if isinstance(recoverable, Recoverable) else Path(recoverable)
    shutil.rmtree(folder, ignore_errors=True)
