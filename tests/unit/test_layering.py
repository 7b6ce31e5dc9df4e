"""The layers of annotator.core hold: each sub-package imports only those below it, and none the GUI.

Read from the source (every import statement, those inside functions too), so a layer broken on a
path no test runs is still caught. The order, lowest first: ``errors``; ``video``; ``model`` and
``io`` (a label map is both); ``features``; ``engine``; ``analysis``; ``project``; ``runs``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import annotator.core

CORE = Path(annotator.core.__file__).parent
SUBPACKAGES = {"video", "model", "io", "features", "engine", "analysis", "project", "runs"}

MAY_IMPORT: dict[str, set[str]] = {
    "video": set(),
    "model": {"video", "io"},
    "io": {"video", "model"},
    "features": {"video"},
    "engine": {"video", "model", "io", "features"},
    "analysis": {"video", "model", "io", "features", "engine"},
    "project": {"video", "model", "io"},
    "runs": {"video", "model", "io", "features", "engine", "analysis", "project"},
}
"""What each sub-package may import besides itself and ``annotator.core.errors``."""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in ``path``; ``from annotator.core import x`` gives ``annotator.core.x``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "annotator.core":
                found += [(node.lineno, f"annotator.core.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _violations(core: Path = CORE) -> list[str]:
    bad = []
    for path in sorted(core.rglob("*.py")):
        parts = path.relative_to(core).parts
        layer = parts[0] if len(parts) > 1 else None  # None: core/__init__.py, core/errors.py
        for line, module in _imports(path):
            where = f"{path.relative_to(core.parent)}:{line} imports {module}"
            top = module.split(".")[0]
            if top in ("PySide6", "shiboken6", "PyQt5", "PyQt6", "pyqtgraph") or module.startswith(
                    ("annotator.gui", "annotator.cli")):
                bad.append(f"{where} (the core never imports the GUI, Qt or the command line)")
                continue
            if not module.startswith("annotator.core."):
                continue
            target = module.split(".")[2]
            if target == "errors" or target == layer:
                continue
            if layer is None:
                bad.append(f"{where} (errors.py imports nothing of the core)")
            elif target not in SUBPACKAGES:
                bad.append(f"{where} (not a sub-package of annotator.core)")
            elif target not in MAY_IMPORT[layer]:
                bad.append(f"{where} ({layer} may import only {', '.join(sorted(MAY_IMPORT[layer])) or 'errors'})")
    return bad


def test_every_subpackage_is_in_the_layering_and_has_a_docstring():
    found = {p.name for p in CORE.iterdir() if (p / "__init__.py").is_file()}
    assert found == SUBPACKAGES == set(MAY_IMPORT)
    assert {p.name for p in CORE.glob("*.py")} == {"__init__.py", "errors.py"}  # every module is in a layer
    for name in found:
        assert ast.get_docstring(ast.parse((CORE / name / "__init__.py").read_text(encoding="utf-8"))), name


def test_each_layer_imports_only_the_layers_below_it():
    assert _violations() == []


def test_the_check_finds_an_engine_import_in_io_and_qt_inside_a_function(tmp_path):
    core = tmp_path / "core"
    (core / "io").mkdir(parents=True)
    (core / "io" / "__init__.py").write_text('"""io"""\n')
    (core / "io" / "bad.py").write_text("from annotator.core.engine.propagation import propagate\n\n\n"
                                        "def f():\n    from PySide6 import QtCore\n")
    found = _violations(core)
    assert len(found) == 2
    assert "core/io/bad.py:1 imports annotator.core.engine.propagation (io may import only model, video)" in found[0]
    assert "core/io/bad.py:5 imports PySide6" in found[1]
