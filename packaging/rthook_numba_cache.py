"""PyInstaller runtime hook: numba's cache goes to a per-user folder, never into the bundle.

Runs before the app's first import. The compiled top-k selection (annotator/core/engine/topk_select.py,
``cache=True`` with explicit signatures) is compiled when that module is imported and kept in
numba's cache. Left to itself, numba would write that cache next to the module, inside the bundle:
a bundle installed read-only (or for another user) would then fall back to numba's own user folder,
or find none and recompile at every start. Frozen, numba keys the cache on the executable's
modification time and size, so a rebuilt app recompiles once and then loads again.

NUMBA_CACHE_DIR set by the user wins. Otherwise the per-user cache folder of the platform:
$XDG_CACHE_HOME (or ~/.cache)/annotator/numba on Linux, ~/Library/Caches/annotator/numba on
macOS, %LOCALAPPDATA%\\annotator\\numba on Windows; if that cannot be written, a folder under the
temp dir.
"""

import os
import sys
import tempfile


def _user_cache_root() -> str:
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        return os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches")
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")


def _writable(folder: str) -> bool:
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
        return True
    except OSError:
        return False


def _choose_numba_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    user = os.path.join(_user_cache_root(), "annotator", "numba")
    if not _writable(user):
        user = os.path.join(tempfile.gettempdir(), f"annotator-numba-{getattr(os, 'getuid', lambda: 0)()}")
        if not _writable(user):
            return  # numba finds its own folder, or compiles at each start
    os.environ["NUMBA_CACHE_DIR"] = user  # inherited by the batch's worker processes too


_choose_numba_cache_dir()
