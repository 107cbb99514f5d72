"""sem's layers point one way (docs/design.md, "Layers").

Read from the source with ``ast``, so imports inside functions count as much as those at the
top of a module: they run as soon as the function does. Only imports under
``if TYPE_CHECKING:`` are left out: they never run (a type named in an annotation).

- no import cycle among sem_core's modules;
- each module imports only from its own layer or the layers below it (``LAYERS``);
- the plugin package sits on top of the library: no module of sem_core imports
  hydra_plugins (Hydra's plugin discovery is what loads sem's plugins);
- the pure modules import no Hydra or OmegaConf;
- no module global carries state: no ``global`` statement, and a module-level container is a
  constant (an UPPER_CASE name);
- importing sem_core changes no hook of the interpreter (the entry points install them).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEM_CORE = ROOT / "sem_core"

# sem_core's layers, top first: a module imports from its own layer and the ones below. Each
# entry is a module or a package (all its modules). The package's __init__ (``from sem_core
# import Experiment``) is in none: it runs before any of its modules anyway.
LAYERS = {
    "entry points": ("cli", "commands", "multi", "experiment", "hydra_app", "argv", "help_text", "grid", "util"),
    "sweep": ("sweep", "sweep_plan", "sweep_checks", "resume"),
    "launch": ("launch", "slurm"),
    "job": ("callback", "task", "row_store", "compose"),
    "run": ("lifecycle", "run", "observers", "stdio", "_tee", "signals", "pipes", "job_return", "seeding"),
    "I/O": (
        "records",
        "claims",
        "mongo",
        "results",
        "clean",
        "repro",
        "capture",
        "dvc",
        "settings",
        "sources",
        "host",
        "metrics",
        "resolvers",
        "sweep_folder",
        "sweep_summary",
        "starter",
        "run_gate",
        "config_yaml",
        "traces",
    ),
    "pure": ("ids", "plan", "schema", "groups", "nested", "run_status", "errors", "sequences"),
}
# Imports that reach up a layer, each with its reason (docs/design.md lists them too).
UPWARD_IMPORTS = {
    # an array task is the entry point of its own process: it loads the model file as `python m.py` does
    ("sem_core.launch.slurm_task", "sem_core.experiment"),
}
# plain functions and types: no Hydra, no OmegaConf
PURE_MODULES = tuple(f"sem_core.{name}" for name in LAYERS["pure"])


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _in_a_package(path: Path) -> bool:
    # sem_core/conf/ holds a model-file template (package data), not a module of the library
    return all((folder / "__init__.py").exists() for folder in path.parents if SEM_CORE in (folder, *folder.parents))


MODULES = {_module_name(p): p for p in sorted(SEM_CORE.rglob("*.py")) if _in_a_package(p)}


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _runtime_imports(tree: ast.AST):
    """Every Import/ImportFrom node that can run, at any depth (functions, classes, try)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if _is_type_checking(node):
            stack.extend(getattr(node, "orelse", []))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imported_names(module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every module ``module`` imports at run time. ``from a import b``
    names ``a.b`` when that is a module of sem_core, else ``a``."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:
            base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            out.append((node.lineno, full if full in MODULES else base))
    return out


def _owning_module(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        targets = {_owning_module(name) for _line, name in imported_names(module) if name.split(".")[0] == "sem_core"}
        graph[module] = {t for t in targets if t and t != module}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(start: str) -> None:
        # iterative depth-first search: (node, iterator over its successors)
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    # the contract below can fail: a cycle closed by an import inside a function is one
    tree = ast.parse("import os\ndef f():\n    from sem_core import b\n")
    assert sorted(n.lineno for n in _runtime_imports(tree)) == [1, 3]
    guarded = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n")
    assert sorted(n.names[0].name for n in _runtime_imports(guarded)) == ["TYPE_CHECKING", "b"]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_sem_core_modules():
    assert find_cycles(import_graph()) == []


def test_no_module_of_sem_core_imports_the_plugin_package():
    offenders = [
        f"{module}:{line} {name}"
        for module in MODULES
        for line, name in imported_names(module)
        if name.split(".")[0] == "hydra_plugins"
    ]
    assert offenders == []


@pytest.mark.parametrize("module", PURE_MODULES)
def test_the_pure_modules_import_no_hydra_or_omegaconf(module):
    offenders = [
        f"{module}:{line} {name}"
        for line, name in imported_names(module)
        if name.split(".")[0] in ("hydra", "omegaconf")
    ]
    assert offenders == []


def layer_of(module: str) -> int | None:
    """The position of ``module``'s layer in ``LAYERS`` (0: top), None for the package itself."""
    if module == "sem_core":
        return None
    top = module.split(".")[1]
    for position, names in enumerate(LAYERS.values()):
        if top in names:
            return position
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py and docs/design.md")


def test_every_import_points_down_the_layers():
    graph = import_graph()
    names = list(LAYERS)
    upward = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            here, there = layer_of(module), layer_of(target)
            if here is not None and there is not None and there < here and (module, target) not in UPWARD_IMPORTS:
                upward.append(f"{module} ({names[here]}) -> {target} ({names[there]})")
    assert upward == []


def test_the_design_page_shows_each_module_in_its_layer():
    # docs/design.md's table of layers is this contract, read by people: they must agree
    page = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    table = page[page.index("| Layer |") :].split("\n\n")[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if "sem_core/" in line]
    shown = {}
    for layer, cell in rows:
        name = next((key for key in LAYERS if layer.strip().lower().startswith(key.lower())), layer.strip())
        shown[name] = set(re.findall(r"`sem_core/([a-z_]+)(?:\.py|/)`", cell))
    assert shown == {layer: set(names) for layer, names in LAYERS.items()}


def test_the_known_upward_imports_still_exist():
    # an exception whose import is gone is removed from the list, so that it cannot come back unseen
    graph = import_graph()
    assert [pair for pair in sorted(UPWARD_IMPORTS) if pair[1] not in graph.get(pair[0], ())] == []


# module globals that still carry state, each being replaced by an object that owns it
STATEFUL_GLOBALS_LEFT = {
    "sem_core.settings:_said",
    "sem_core.mongo.reader:_known_urls",
    "sem_core.mongo.reader:_databases",
}
MUTABLE_CALLS = (
    "dict",
    "list",
    "set",
    "defaultdict",
    "OrderedDict",
    "deque",
    "Counter",
    "WeakValueDictionary",
    "WeakKeyDictionary",
)


def _is_container(value: ast.AST | None) -> bool:
    if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
        return True
    func = value.func if isinstance(value, ast.Call) else None
    return getattr(func, "id", getattr(func, "attr", None)) in MUTABLE_CALLS


def _assigned_names(node: ast.stmt) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
    return [t.id for t in targets if isinstance(t, ast.Name)]


def stateful_globals() -> set[str]:
    """``module:name`` of every module-level container bound to a name that is not a constant
    (UPPER_CASE), and of every ``global`` statement."""
    found = set()
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found |= {f"{module}:{name}" for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}
        for node in tree.body:
            if _is_container(getattr(node, "value", None)):
                found |= {f"{module}:{name}" for name in _assigned_names(node) if name not in (name.upper(), "__all__")}
    return found


def test_no_module_global_carries_state():
    assert sorted(stateful_globals() - STATEFUL_GLOBALS_LEFT) == []


def test_the_stateful_globals_left_still_exist():
    # one that is gone leaves the list, so that it cannot come back unseen
    assert sorted(STATEFUL_GLOBALS_LEFT - stateful_globals()) == []


def test_the_pure_modules_and_the_package_run_without_hydra():
    # a fresh interpreter: importing sem_core and its pure modules loads neither Hydra nor OmegaConf
    code = (
        "import sys, importlib\n"
        f"for name in ['sem_core', *{list(PURE_MODULES)!r}]:\n"
        "    importlib.import_module(name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'hydra', 'omegaconf'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_importing_sem_core_changes_no_interpreter_hook():
    # every module of the library, imported in a fresh interpreter: sys.excepthook and
    # warnings.formatwarning are what Python set (sem's entry points install sem's own)
    names = sorted(MODULES)
    code = (
        "import sys, warnings, importlib\n"
        "hooks = (sys.excepthook, warnings.formatwarning, warnings.showwarning)\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert (sys.excepthook, warnings.formatwarning, warnings.showwarning) == hooks, 'changed'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_installed_hooks_make_sem_warnings_one_line_and_leave_other_warnings_as_they_were():
    code = (
        "import sys, warnings\n"
        "from sem_core.errors import SemWarning, install_hooks\n"
        "install_hooks(); installed = (sys.excepthook, warnings.formatwarning)\n"
        "install_hooks(); assert (sys.excepthook, warnings.formatwarning) == installed, 'wrapped twice'\n"
        "print(warnings.formatwarning('careful', SemWarning, 'f.py', 1), end='')\n"
        "print(warnings.formatwarning('plain', UserWarning, 'f.py', 1).splitlines()[0])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["sem: warning: careful", "f.py:1: UserWarning: plain"]
