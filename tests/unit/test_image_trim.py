"""The image keeps the bytecode of every standard library module dynamic_nginx imports.

scripts/trim-bytecode runs before dynamic_nginx is installed, so it names those modules
itself; a module missing from its list would lose its bytecode and be compiled again at
every start of the watcher and the reloader.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SOURCES = Path(__file__).parents[2] / "typecheck" / "dynamic_nginx"
SCRIPT = Path(__file__).parents[2] / "scripts" / "trim-bytecode"


def stdlib_imports(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
    return {name for name in found if name.split(".")[0] in sys.stdlib_module_names}


def test_trim_keeps_every_stdlib_module_dynamic_nginx_imports() -> None:
    assert SOURCES.is_dir() and SCRIPT.is_file(), "run in the image's test stage (/src)"
    script = ast.parse(SCRIPT.read_text())
    listed = next(
        {ast.literal_eval(e) for e in node.value.elts}
        for node in ast.walk(script)
        if isinstance(node, ast.Assign)
        and getattr(node.targets[0], "id", "") == "STDLIB"
        and isinstance(node.value, ast.List)
    )
    needed = stdlib_imports(SOURCES)
    assert len(needed) > 10
    assert needed <= listed, f"add to STDLIB in scripts/trim-bytecode: {sorted(needed - listed)}"
