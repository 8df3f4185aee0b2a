"""Handlers from specs, and dev-mode reloading on real files watched with inotify."""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_until

from queshot.reload import HandlerImportError, ReloadingHandler, load_handler


def write(path: Path, text: str) -> None:
    """Write `text`; a rewrite keeps the old mtime, so together with an equal size
    the cached bytecode looks current (as after a quick same-size edit)."""
    old = path.stat() if path.exists() else None
    path.write_text(text)
    if old:
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path; modules imported from it are forgotten afterwards.
    Bytecode is cached even under PYTHONDONTWRITEBYTECODE, as for most users."""
    before = set(sys.modules)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


@pytest.fixture
def package(folder: Path) -> Path:
    """An empty package with a unique name (modules stay imported across tests)."""
    path = folder / f"jobs_{uuid.uuid4().hex[:8]}"
    path.mkdir()
    write(path / "__init__.py", "")
    return path


HANDLER = 'import json\n\n\ndef handle(job):\n    return "{}"\n'


def test_new_code_for_new_calls_old_code_for_running_ones(package: Path) -> None:
    write(package / "handlers.py", HANDLER.format("v1"))
    with ReloadingHandler(f"{package.name}.handlers:handle", debounce=0.05) as handler:
        assert handler.watched == {package / "handlers.py", package / "__init__.py"}
        running = handler.get()
        assert running(None) == "v1"
        write(package / "handlers.py", HANDLER.format("v2"))
        wait_until(lambda: handler.get()(None) == "v2", timeout=5.0, every=0.02)
        assert running(None) == "v1"
        assert handler.reloads == 1


def test_a_change_to_a_helper_reaches_the_handler_through_other_modules(package: Path) -> None:
    write(package / "helpers.py", 'def value():\n    return "h1"\n')
    write(
        package / "service.py", "from .helpers import value\n\n\ndef run():\n    return value()\n"
    )
    write(
        package / "handlers.py",
        "from . import service\n\n\ndef handle(job):\n    return service.run()\n",
    )
    with ReloadingHandler(f"{package.name}.handlers:handle", debounce=0.05) as handler:
        assert handler.get()(None) == "h1"
        write(package / "helpers.py", 'def value():\n    return "h2"\n')
        wait_until(lambda: handler.get()(None) == "h2", timeout=5.0, every=0.02)


def test_a_top_level_module_follows_its_sibling_modules(folder: Path) -> None:
    jobs, helper = (f"{prefix}_{uuid.uuid4().hex[:8]}" for prefix in ("jobs", "helper"))
    write(folder / f"{helper}.py", "VALUE = 1\n")
    write(
        folder / f"{jobs}.py", f"import {helper}\n\n\ndef handle(job):\n    return {helper}.VALUE\n"
    )
    with ReloadingHandler(f"{jobs}:handle", debounce=0.05) as handler:
        assert handler.watched == {folder / f"{jobs}.py", folder / f"{helper}.py"}
        write(folder / f"{helper}.py", "VALUE = 2\n")
        wait_until(lambda: handler.get()(None) == 2, timeout=5.0, every=0.02)


def test_a_broken_edit_is_reported_and_the_previous_code_keeps_serving(
    package: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="queshot.reload")
    path = package / "handlers.py"
    module = f"{package.name}.handlers"
    write(path, HANDLER.format("v1"))

    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]

    with ReloadingHandler(f"{module}:handle", debounce=0.05) as handler:
        write(path, 'def handle(job):\n    return "v2"\n\nx = = 1\n')
        wait_until(lambda: len(errors()) == 1, timeout=5.0, every=0.02)
        assert errors()[0].startswith(f"reload of {module} failed, keeping the previous code: ")
        assert errors()[0].endswith("handlers.py:4: SyntaxError: invalid syntax")
        assert handler.get()(None) == "v1"

        # Raising halfway through the import: the half-run module is put back too.
        write(path, 'def handle(job):\n    return "v3"\n\nraise RuntimeError("boom")\n')
        wait_until(lambda: len(errors()) == 2, timeout=5.0, every=0.02)
        assert errors()[1].endswith("handlers.py:4: RuntimeError: boom")
        assert handler.get()(None) == "v1"
        assert sys.modules[module].handle(None) == "v1"

        write(path, HANDLER.format("v4"))
        wait_until(lambda: handler.get()(None) == "v4", timeout=5.0, every=0.02)
        assert handler.reloads == 1


def test_a_burst_of_saves_reloads_once(package: Path) -> None:
    write(package / "handlers.py", HANDLER.format("v1"))
    with ReloadingHandler(f"{package.name}.handlers:handle", debounce=0.3) as handler:
        for version in range(2, 7):
            write(package / "handlers.py", HANDLER.format(f"v{version}"))
            time.sleep(0.03)
        wait_until(lambda: handler.reloads > 0, timeout=5.0, every=0.02)
        time.sleep(0.5)
        assert handler.reloads == 1
        assert handler.get()(None) == "v6"


def test_load_handler_resolves_nested_attributes(package: Path) -> None:
    write(
        package / "handlers.py",
        "class Jobs:\n    @staticmethod\n    def send(job):\n        return 1\n",
    )
    assert load_handler(f"{package.name}.handlers:Jobs.send")(None) == 1


@pytest.mark.parametrize(
    ("source", "attr", "message"),
    [
        (None, "handle", "no module named '{package}.missing'"),
        ("x = = 1\n", "handle", "does not import: {path}:1: SyntaxError: invalid syntax"),
        ("import os\nos.nope()\n", "handle", "does not import: {path}:2: AttributeError: "),
        ("import no_such_dependency_xyz\n", "handle", "{path}:1: ModuleNotFoundError: "),
        ("X = 1\n", "handle", "{package}.missing has no attribute 'handle'"),
        ("X = 1\n", "X", "{package}.missing.X is not callable (it is 'int')"),
        ("class A:\n    pass\n", "A.run", "{package}.missing.A has no attribute 'run'"),
    ],
)
def test_load_handler_says_what_is_wrong(
    package: Path, source: str | None, attr: str, message: str
) -> None:
    path = package / "missing.py"
    if source is not None:
        write(path, source)
    spec = f"{package.name}.missing:{attr}"
    with pytest.raises(HandlerImportError) as caught:
        load_handler(spec)
    text = str(caught.value)
    assert text.startswith(f"handler {spec!r}: ")
    assert message.format(package=package.name, path=path) in text
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("spec", ["jobs:", ":handle", "a:b:c"])
def test_a_malformed_spec_is_refused(spec: str) -> None:
    with pytest.raises(HandlerImportError, match="expected 'package.module:callable'"):
        load_handler(spec)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("X = 1\n", "no Tasks registry"),
        ("from queshot import Tasks\na = Tasks()\nb = Tasks()\n", "2 Tasks registries"),
    ],
)
def test_a_module_spec_needs_exactly_one_tasks_registry(
    package: Path, source: str, found: str
) -> None:
    write(package / "several.py", source)
    spec = f"{package.name}.several"
    with pytest.raises(HandlerImportError) as caught:
        load_handler(spec)
    assert str(caught.value) == (
        f"handler {spec!r}: module {spec} has {found}: name one as module:attribute, "
        "or a handler function as module:function"
    )


def test_a_module_spec_is_its_tasks_registry(package: Path) -> None:
    write(package / "mytasks.py", "from queshot import Tasks\ntasks = Tasks()\n")
    registry = load_handler(f"{package.name}.mytasks")
    assert type(registry).__name__ == "Tasks"
