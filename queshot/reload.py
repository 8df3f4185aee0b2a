"""Where job handlers come from: a "package.module:callable" spec (or a
module of tasks, "package.module", whose Tasks registry dispatches by name),
imported once (`load_handler`) or, in dev mode, imported again whenever its
source changes (`ReloadingHandler`, the worker's `--reload`).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import logging
import sys
import sysconfig
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .filewatch import FileWatcher
from .tasks import find_tasks

log = logging.getLogger(__name__)


class HandlerImportError(ValueError):
    """A handler spec that does not lead to a callable; the message names the spec."""


def load_handler(spec: str) -> Callable[..., Any]:
    """Import the module named by `spec` ("package.module:callable", or
    "module:attr.sub") and return the callable; HandlerImportError says which
    step failed, with file and line when the module does not import."""
    module_name, attrs = _split(spec)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (module_name + ".").startswith(missing + "."):
            raise HandlerImportError(
                f"handler {spec!r}: no module named {missing!r} "
                "(is the folder that holds it on sys.path / PYTHONPATH?)"
            ) from None
        raise HandlerImportError(
            f"handler {spec!r}: {module_name} does not import: {_describe(exc)}"
        ) from exc
    return _resolve(spec, module, attrs)


def _split(spec: str) -> tuple[str, list[str]]:
    module_name, colon, attr = spec.partition(":")
    if not module_name or (colon and not attr) or ":" in attr:
        raise HandlerImportError(
            f"handler {spec!r}: expected 'package.module:callable' (or 'module:attr.sub'), "
            "or a module of tasks"
        )
    return module_name, attr.split(".") if attr else []


def _resolve(spec: str, module: ModuleType, attrs: list[str]) -> Callable[..., Any]:
    """The callable `attrs` name in `module`; no attrs: the module's Tasks registry."""
    if not attrs:
        try:
            return find_tasks(module)
        except LookupError as exc:
            raise HandlerImportError(f"handler {spec!r}: {exc}") from None
    target: Any = module
    for depth, name in enumerate(attrs):
        try:
            target = getattr(target, name)
        except AttributeError:
            owner = ".".join([module.__name__, *attrs[:depth]])
            raise HandlerImportError(
                f"handler {spec!r}: {owner} has no attribute {name!r}"
            ) from None
    if not callable(target):
        raise HandlerImportError(
            f"handler {spec!r}: {'.'.join([module.__name__, *attrs])} is not callable "
            f"(it is {type(target).__name__!r})"
        )
    return target


def _describe(exc: BaseException) -> str:
    """One line for an import that failed: "file:line: Type: message", the line
    being the innermost one of the user's code (not the stdlib's or a library's)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_shown(exc.filename)}:{exc.lineno}: {type(exc).__name__}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".py")]
    ours = [f for f in frames if f.filename != __file__ and not _installed(Path(f.filename))]
    where = f"{_shown(ours[-1].filename)}:{ours[-1].lineno}: " if ours else ""
    return f"{where}{type(exc).__name__}: {exc}"


def _shown(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename


@functools.cache
def _installed_roots() -> tuple[Path, ...]:
    paths = sysconfig.get_paths()
    keys = ("stdlib", "platstdlib", "purelib", "platlib")
    return tuple({Path(paths[key]).resolve() for key in keys if key in paths})


def _installed(path: Path) -> bool:
    """Standard library or installed packages: never ours to watch or blame."""
    if {"site-packages", "dist-packages"} & set(path.parts):
        return True
    return any(path.is_relative_to(root) for root in _installed_roots())


# -- the modules of the handler's project --------------------------------------------


def _project_root(module: ModuleType) -> Path:
    """The top-level package's folder, or the folder of a top-level module."""
    file = Path(module.__file__ or "").resolve()
    depth = module.__name__.count(".")
    is_package = file.name == "__init__.py"
    folder = file.parent
    for _ in range(depth if is_package else max(depth - 1, 0)):
        folder = folder.parent
    return folder


def _source_file(module: ModuleType | None, root: Path) -> Path | None:
    """The module's .py file when it belongs to the project under `root`."""
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py"):
        return None
    path = Path(file).resolve()
    if not path.is_relative_to(root) or _installed(path):
        return None
    return path


def _imported_names(module: ModuleType, source: bytes) -> set[str]:
    """Every module name an import statement in `source` may load, parents included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            relative = "." * node.level + (node.module or "")
            try:
                base = importlib.util.resolve_name(relative, module.__package__)
            except (ImportError, ValueError):
                continue
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            names.update(_with_parents(target))
    return names


def _with_parents(name: str) -> list[str]:
    """Importing a.b.c imports a, then a.b, then a.b.c."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@dataclass
class _Project:
    """The handler module and the project modules it imports, directly or not."""

    files: dict[Path, str]  # source file -> module name
    order: list[str]  # dependencies before the modules that import them
    imports: dict[str, set[str]]

    @classmethod
    def of(cls, module_name: str, previous: _Project | None = None) -> _Project:
        module = sys.modules[module_name]
        root = _project_root(module)
        files: dict[Path, str] = {}
        order: list[str] = []
        imports: dict[str, set[str]] = {}

        def visit(name: str) -> None:
            imports[name] = set()
            path = _source_file(sys.modules[name], root)
            if path is None:
                return
            files[path] = name
            try:
                found = _imported_names(sys.modules[name], path.read_bytes())
            except (OSError, SyntaxError):  # being edited: keep what it imported before
                found = previous.imports.get(name, set()) if previous else set()
            for dep in sorted(found.union(_with_parents(name)) - {name}):
                if _source_file(sys.modules.get(dep), root) is None:
                    continue
                imports[name].add(dep)
                if dep not in imports:
                    visit(dep)
            order.append(name)

        visit(module_name)
        return cls(files, order, imports)

    def to_reload(self, changed: set[str]) -> list[str]:
        """The changed modules and every module that imports one of them, in order."""
        stale = set(changed)
        for name in self.order:
            if self.imports[name] & stale:
                stale.add(name)
        return [name for name in self.order if name in stale]


class ReloadingHandler:
    """A handler that follows its source (dev mode). `get()` returns the callable
    of the last successful import: work already running keeps the function it
    was given (old code), new work gets the new one. A change that does not
    import is logged and the previous code keeps serving.

    Each reload imports the changed modules (and the project modules that
    import them) into new module objects, so a running job's function keeps its
    old globals too."""

    def __init__(self, spec: str, *, debounce: float = 0.3) -> None:
        self.spec = spec
        self.reloads = 0
        self._module_name, self._attrs = _split(spec)
        self._handler = load_handler(spec)
        self._project = _Project.of(self._module_name)
        self._pending: set[str] = set()
        self._watcher = FileWatcher(
            self._reload, debounce=debounce, accept=lambda path: path in self._project.files
        )

    def get(self) -> Callable[..., Any]:
        """The current handler; cheap enough to call once per job."""
        return self._handler

    @property
    def watched(self) -> frozenset[Path]:
        """The source files whose change reloads the handler."""
        return frozenset(self._project.files)

    def start(self) -> None:
        if not self._project.files:
            log.warning("%s is installed, not project source: nothing to watch", self.spec)
        self._watcher.watch({path.parent for path in self._project.files})
        self._watcher.start()
        log.info("reloading %s when any of %d files changes", self.spec, len(self._project.files))

    def close(self) -> None:
        self._watcher.close()

    def __enter__(self) -> ReloadingHandler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reload(self, paths: set[Path]) -> None:
        """Runs on the watcher's thread, one burst of changes at a time."""
        self._pending.update(self._project.files[p] for p in paths if p in self._project.files)
        if not self._pending:
            return
        importlib.invalidate_caches()
        replaced: dict[str, ModuleType] = {}
        name = self._module_name
        try:
            for name in self._project.to_reload(self._pending):
                replaced[name] = sys.modules[name]
                _import_afresh(name, replaced[name])
            name = self._module_name
            handler = _resolve(self.spec, sys.modules[name], self._attrs)
        except Exception as exc:
            for module_name, module in replaced.items():
                _install(module_name, module)
            reason = str(exc) if isinstance(exc, HandlerImportError) else _describe(exc)
            log.error("reload of %s failed, keeping the previous code: %s", name, reason)
            return
        changed = ", ".join(sorted(self._pending))
        self._pending.clear()
        self._handler = handler
        self.reloads += 1
        self._project = _Project.of(self._module_name, self._project)
        self._watcher.watch({path.parent for path in self._project.files})
        log.info("reloaded %s (changed: %s)", self.spec, changed)


def _forget_bytecode(module: ModuleType) -> None:
    """Drop the module's cached bytecode so the reload compiles the source:
    the cache is checked by mtime (whole seconds) and size, which a quick
    same-size edit does not change."""
    if module.__file__:
        with contextlib.suppress(OSError):
            Path(importlib.util.cache_from_source(module.__file__)).unlink(missing_ok=True)


def _import_afresh(name: str, old: ModuleType) -> None:
    """Execute the module's current source into a NEW module object and put it
    in sys.modules (and on its parent package). The old module object is left
    as it was, so functions of running jobs keep their code and their globals."""
    _forget_bytecode(old)
    spec = importlib.util.spec_from_file_location(
        name, old.__file__, submodule_search_locations=old.__spec__.submodule_search_locations
    )
    module = importlib.util.module_from_spec(spec)
    _install(name, module)
    spec.loader.exec_module(module)


def _install(name: str, module: ModuleType) -> None:
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)
