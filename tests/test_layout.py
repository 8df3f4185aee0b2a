"""The shape of the package, checked: imports point one way (CLI -> admin,
sync, bench, demo -> queue and worker -> the worker's parts -> protocol ->
jobs and couch), with no circle, and a producer's `import queshot` loads
neither the worker runtime nor watchdog. Read from the source, no server."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "queshot"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_at_load(path: Path) -> set[str]:
    """The queshot modules `path` imports when it is loaded: module-level
    imports, not those inside functions (lazy) or `if TYPE_CHECKING:`."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "queshot" or target.startswith("queshot."):
                subs = [f"{target}.{alias.name}" for alias in node.names]
                found |= {s for s in subs if s in MODULES} or {target}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("queshot")}
    return found - {name}


MODULES = {module_name(p) for p in PACKAGE.rglob("*.py")}
GRAPH = {module_name(p): imports_at_load(p) for p in PACKAGE.rglob("*.py")}


def reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in GRAPH.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_there_is_no_import_circle() -> None:
    circles = sorted(name for name in GRAPH if name in reachable(name))
    assert circles == []


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("queshot.jobs", set()),
        ("queshot.couch", set()),
        ("queshot.protocol", {"queshot.couch", "queshot.jobs"}),
    ],
)
def test_the_lowest_rooms_import_only_below_them(module: str, allowed: set[str]) -> None:
    assert reachable(module) <= allowed


def test_the_worker_imports_nothing_above_it() -> None:
    above = {"queshot.queue", "queshot.admin", "queshot.cli", "queshot.bench", "queshot.demo"}
    above |= {"queshot.sync", "queshot.designdocs"}
    for module in GRAPH:
        if module.startswith("queshot.worker"):
            assert not reachable(module) & above, module


def test_protocol_is_the_only_module_naming_handlers_and_views() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name == "protocol.py":
            continue
        text = path.read_text()
        for call in ("db.update(DDOC", ".view(DDOC", 'update("queshot"', 'view("queshot"'):
            assert call not in text, f"{path.name} names {call}"


def test_import_queshot_loads_neither_the_worker_nor_watchdog() -> None:
    probe = (
        "import queshot, sys; "
        "print(sorted(m for m in sys.modules if m == 'watchdog' or m.startswith('queshot.worker')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# The rooms stay small enough to read at once; ARCHITECTURE.md says why these
# exceptions are as they are.
MAX_FILE_LINES = 400
MAX_CLASS_LINES = 250
LONGER_FILES = {"queshot.couch", "queshot.protocol"}
LONGER_CLASSES = {"queshot.worker.Worker"}


def test_no_file_is_over_the_limit_but_the_ones_architecture_names() -> None:
    long = {
        module_name(path)
        for path in PACKAGE.rglob("*.py")
        if len(path.read_text().splitlines()) > MAX_FILE_LINES
    }
    assert long <= LONGER_FILES


def test_no_class_is_over_the_limit_but_the_ones_architecture_names() -> None:
    long = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno >= MAX_CLASS_LINES:
                long.add(f"{module_name(path)}.{node.name}")
    assert long <= LONGER_CLASSES


def test_a_child_process_module_never_talks_to_couchdb() -> None:
    """What runs in a worker's child process (--processes) reaches the
    database only through its parent: it imports neither couch nor protocol."""
    assert not reachable("queshot.worker.child") & {"queshot.couch", "queshot.protocol"}
    assert reachable("queshot.worker.child") <= {
        "queshot.jobs",
        "queshot.tasks",
        "queshot.reload",
        "queshot.filewatch",
    }
