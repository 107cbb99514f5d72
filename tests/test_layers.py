"""The plugin package sits on top of the library: no module of sem_core imports hydra_plugins,
not even inside a function (Hydra's plugin discovery is what loads sem's plugins)."""

import ast
from pathlib import Path

SEM_CORE = Path(__file__).resolve().parent.parent / "sem_core"


def test_no_module_of_sem_core_imports_the_plugin_package():
    offenders = []
    for path in sorted(SEM_CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(SEM_CORE.parent)}:{node.lineno} {n}" for n in names
                          if n.split(".")[0] == "hydra_plugins"]
    assert offenders == []
