"""Design documents as code: load a couchapp folder, render it, check it, push it.

Layout (ARCHITECTURE.md): each folder of the source is `_design/<folder>`; inside, a
folder is an object and a file a key named after the file without its
extension (`views/pending/map.js` -> `views.pending.map`); `.json` files are
parsed; `_attachments/` holds files served by CouchDB; other folders starting
with `_` hold Jinja partials that templates include (CouchDB reserves `_`
keys, so none is lost), in a design doc's folder or beside the folders (shared
by all of them). Every text file is a Jinja2 template rendered with
`context.json` of the source folder; a template may `{% include %}` another
(from its own folder, else from the source folder), which is how one CommonJS
module reaches `lib/` (handlers, validate_doc_update) and each map function of
every design doc (pouchdb-server has no require() in maps).
`_security.json` beside the folders is applied to every database pushed to
(by `sync.py`, which pushes what this module renders).

Every function is compiled locally (QuickJS, as CouchDB 3.4+ runs) before
anything is written: CouchDB accepts a broken validate_doc_update or update
handler and then refuses every write.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import quickjs

from .jobs import DESIGN_DOCS

log = logging.getLogger(__name__)

CONTEXT_FILE = "context.json"
SECURITY_FILE = "_security.json"
ATTACHMENTS = "_attachments"
BUILTIN_REDUCERS = ("_count", "_sum", "_stats", "_approx_count_distinct")
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml")


class DesignDocError(Exception):
    """A design document that cannot be pushed; the message names the source file."""


def default_source() -> Path:
    """The queue's own design docs: inside the wheel, or the checkout's `designdocs/`."""
    return DESIGN_DOCS


@dataclass
class DesignDoc:
    """One rendered design document and where each of its keys came from."""

    name: str
    doc: dict[str, Any]
    sources: dict[str, Path] = field(default_factory=dict)
    partials: list[Path] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"_design/{self.name}"

    def view_names(self) -> list[str]:
        views = self.doc.get("views", {})
        return sorted(k for k, v in views.items() if isinstance(v, dict) and "map" in v)

    def source_of(self, key: str) -> str:
        path = self.sources.get(key)
        return str(path) if path else f"_design/{self.name} {key}"


@dataclass
class Bundle:
    """Everything rendered from one source folder."""

    source: Path
    design_docs: list[DesignDoc]
    security: dict[str, Any] | None


# -- loading and rendering -------------------------------------------------------


def load(source: Path | str | None = None, context: dict[str, Any] | None = None) -> Bundle:
    """Render and check every design doc under `source`; raises DesignDocError."""
    root = source_root(source)
    values = _read_json(root / CONTEXT_FILE) if (root / CONTEXT_FILE).exists() else {}
    if not isinstance(values, dict):
        raise DesignDocError(f"{root / CONTEXT_FILE}: must be a JSON object of template values")
    values.update(context or {})
    security = _read_json(root / SECURITY_FILE) if (root / SECURITY_FILE).exists() else None
    folders = [f for f in sorted(root.iterdir()) if f.is_dir() and not f.name.startswith(".")]
    shared = [
        p for f in folders if f.name.startswith("_") for p in sorted(f.rglob("*")) if p.is_file()
    ]
    docs = [
        _load_ddoc(folder, root, values, shared)
        for folder in folders
        if not folder.name.startswith("_")
    ]
    if not docs:
        raise DesignDocError(f"{root}: no design-doc folders in it")
    for ddoc in docs:
        check_javascript(ddoc)
    return Bundle(root, docs, security)


def source_root(source: Path | str | None) -> Path:
    root = Path(source) if source is not None else default_source()
    if not root.is_dir():
        raise DesignDocError(f"{root}: no such design-doc folder")
    return root


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise DesignDocError(f"{path}: {exc}") from None
    return _parse_json(text, path)


def _parse_json(text: str, path: Path) -> Any:
    """Parse JSON; a mistake is reported as `file:line: reason`, like the JavaScript's."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DesignDocError(f"{path}:{exc.lineno}: invalid JSON: {exc}") from None


def _load_ddoc(
    folder: Path, root: Path, context: dict[str, Any], shared_partials: list[Path]
) -> DesignDoc:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([folder, root]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.globals.update(context)
    ddoc = DesignDoc(folder.name, {"_id": f"_design/{folder.name}", "language": "javascript"})
    ddoc.partials += shared_partials
    attachments: dict[str, Any] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder)
        if any(part.startswith((".", "#")) for part in rel.parts) or rel.name.endswith("~"):
            continue  # hidden files, editor backups and lock files
        if rel.parts[0].startswith("_") and rel.parts[0] != ATTACHMENTS:
            ddoc.partials.append(path)  # Jinja partials: included by templates, not keys
            continue
        if rel.parts[0] == ATTACHMENTS:
            name = "/".join(rel.parts[1:])
            attachments[name] = _attachment(env, folder, rel)
            ddoc.sources[f"{ATTACHMENTS}/{name}"] = path
            continue
        keys = [*rel.parts[:-1], rel.stem]
        text = _render(env, folder, rel)
        value: Any = _parse_json(text, path) if path.suffix == ".json" else text.strip()
        _set(ddoc.doc, keys, value, path)
        ddoc.sources[".".join(keys)] = path
    if attachments:
        ddoc.doc["_attachments"] = attachments
    return ddoc


def _render(env: jinja2.Environment, folder: Path, rel: Path) -> str:
    try:
        return env.get_template(rel.as_posix()).render()
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or folder / rel}:{exc.lineno}"
        raise DesignDocError(f"{where}: template error: {exc}") from None
    except jinja2.TemplateError as exc:
        where = _template_line(exc, folder.parent) or folder / rel
        raise DesignDocError(f"{where}: template error: {exc}") from None


def _template_line(exc: Exception, folder: Path) -> str | None:
    """`file:line` of the innermost template line in a render error's traceback
    (Jinja rewrites its frames to template lines), so that an undefined name in
    an included partial names the partial."""
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename).is_relative_to(folder)
    ]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else None


def _attachment(env: jinja2.Environment, folder: Path, rel: Path) -> dict[str, Any]:
    path = folder / rel
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if content_type.startswith(TEXT_TYPES):
        data = _render(env, folder, rel).encode()
    else:
        data = path.read_bytes()
    return {"content_type": content_type, "data": base64.b64encode(data).decode()}


def _set(doc: dict[str, Any], keys: list[str], value: Any, path: Path) -> None:
    node = doc
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise DesignDocError(f"{path}: '{key}' is both a file and a folder")
    if keys[-1] in node:
        raise DesignDocError(f"{path}: key '{'.'.join(keys)}' is defined twice")
    node[keys[-1]] = value


# -- checking the JavaScript ---------------------------------------------------


def javascript_sources(doc: dict[str, Any]) -> Iterable[tuple[str, str, bool]]:
    """(key, source, is_module) for every function and CommonJS module CouchDB
    would compile from this design doc."""
    if isinstance(doc.get("validate_doc_update"), str):
        yield "validate_doc_update", doc["validate_doc_update"], False
    for section in ("updates", "filters", "shows", "lists"):
        for name, src in (doc.get(section) or {}).items():
            if isinstance(src, str):
                yield f"{section}.{name}", src, False
    for name, view in (doc.get("views") or {}).items():
        if name == "lib":
            continue
        for part in ("map", "reduce"):
            src = view.get(part) if isinstance(view, dict) else None
            if isinstance(src, str) and src not in BUILTIN_REDUCERS:
                yield f"views.{name}.{part}", src, False
    yield from _modules("lib", doc.get("lib"))
    yield from _modules("views.lib", (doc.get("views") or {}).get("lib"))


def _modules(prefix: str, node: Any) -> Iterable[tuple[str, str, bool]]:
    if isinstance(node, str):
        yield prefix, node, True
    elif isinstance(node, dict):
        for name, child in node.items():
            yield from _modules(f"{prefix}.{name}", child)


def check_javascript(ddoc: DesignDoc) -> None:
    """Compile every function of `ddoc` with QuickJS; raise DesignDocError naming
    the source file of the first one that does not compile to a function."""
    context = quickjs.Context()
    for key, src, is_module in javascript_sources(ddoc.doc):
        if is_module:
            probe = f"typeof (function (require, exports, module) {{{src}\n}})"
        else:
            probe = f"typeof ({src}\n)"
        try:
            kind = context.eval(probe)
        except quickjs.JSException as exc:
            message, _, where = str(exc).partition("\n")
            line = re.search(r":(\d+)", where)
            place = _source_line(ddoc, key, src, int(line.group(1))) if line else None
            raise DesignDocError(f"{place or ddoc.source_of(key)}: {message}") from None
        if kind != "function":
            raise DesignDocError(f"{ddoc.source_of(key)}: must be a single JavaScript function")


def _source_line(ddoc: DesignDoc, key: str, src: str, line: int) -> str | None:
    """`file:line` of line `line` of the rendered `key`. Rendering keeps no line
    map, so the line is looked up by its text: at the same line of the key's own
    file, else the one line that reads the same in that file or in a partial it
    may include. None when the key has no file of its own."""
    path = ddoc.sources.get(key)
    lines = src.splitlines()
    if path is None or not 0 < line <= len(lines):
        return None
    wanted = lines[line - 1].strip()
    own = [text.strip() for text in path.read_text().splitlines()]
    if line <= len(own) and own[line - 1] == wanted:
        return f"{path}:{line}"
    for candidate in (path, *ddoc.partials) if wanted else ():
        texts = own if candidate == path else candidate.read_text().splitlines()
        hits = [n for n, text in enumerate(texts, 1) if text.strip() == wanted]
        if len(hits) == 1:
            return f"{candidate}:{hits[0]}"
    return f"{path} (line {line} once rendered)"
