"""torch as pyinstaller-hooks-contrib's own hook collects it (its libraries, its data, the
platform-specific parts: CUDA packages on Linux, MKL on Windows), less one thing: that hook also
makes every torch submodule a hidden import (thousands, torch.compile's and the test suites'
included), which more than doubles the analysis time on a small machine. Here torch's modules are
found by following imports from what the app imports, as for any package; the modules torch.compile
needs are left out (the spec's excludes), since the app never compiles.
"""

import os

import _pyinstaller_hooks_contrib.stdhooks as _stdhooks
from PyInstaller.utils import hooks as _hooks

_path = os.path.join(os.path.dirname(_stdhooks.__file__), "hook-torch.py")
_namespace = {"__name__": "hook-torch", "__file__": _path}
_real = _hooks.collect_submodules
_hooks.collect_submodules = lambda *args, **kwargs: []  # the contrib hook imports it from here
try:
    with open(_path, encoding="utf-8") as _file:
        exec(compile(_file.read(), _path, "exec"), _namespace)
finally:
    _hooks.collect_submodules = _real
globals().update({key: value for key, value in _namespace.items() if not key.startswith("__")})
