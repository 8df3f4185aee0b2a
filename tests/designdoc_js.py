"""The rendered design doc's JavaScript, run in QuickJS (the engine CouchDB
3.4+ uses) without a server: validate_doc_update, update handlers and the
lib/job module's functions, called as CouchDB would call them."""

from __future__ import annotations

import json
from typing import Any

import quickjs

from queshot import designdocs

HARNESS = """
function require(path) {
  var node = ddoc;
  path.split('/').forEach(function (part) { node = node[part]; });
  var module = { exports: {} };
  (new Function('require', 'exports', 'module', node))(require, module.exports, module);
  return module.exports;
}
var vdu = eval('(' + ddoc.validate_doc_update + ')');
function validate(args) {
  try { vdu(args[0], args[1], args[2], args[3]); return 'null'; }
  catch (e) { return JSON.stringify(e); }
}
function update(name, doc, body, userCtx) {
  var handler = eval('(' + ddoc.updates[name] + ')');
  var req = { body: JSON.stringify(body), query: {}, userCtx: userCtx };
  return JSON.stringify(handler.apply(ddoc, [doc, req]));
}
var job = require('lib/job');
function lib(name, args) {
  return JSON.stringify(job[name].apply(null, args));
}
"""


def _parsed(value: Any) -> str:
    """JavaScript that makes `value` by JSON.parse, as CouchDB's query server
    does (a literal in the source would hit QuickJS's parser's own depth limit)."""
    return f"JSON.parse({json.dumps(json.dumps(value))})"


class DesignDocJS:
    """`_design/queshot` as rendered from designdocs/, loaded into QuickJS."""

    def __init__(self) -> None:
        ddoc = next(d.doc for d in designdocs.load().design_docs if d.name == "queshot")
        self._context = quickjs.Context()
        self._context.eval(f"var ddoc = {json.dumps(ddoc)};")
        self._context.eval(HARNESS)

    def validate(
        self, new: dict, old: dict | None, user: dict[str, Any], sec: dict[str, Any]
    ) -> tuple[str, str] | None:
        """validate_doc_update: None when allowed, else (error, reason)."""
        result = json.loads(self._context.eval(f"validate({_parsed([new, old, user, sec])})"))
        return None if result is None else next(iter(result.items()))

    def update(
        self,
        name: str,
        doc: dict[str, Any] | None,
        body: dict[str, Any],
        user: dict[str, Any] | None = None,
    ) -> list[Any]:
        """An update handler's [new doc or null, response], called by `user`
        (a userCtx; default: no name, no roles)."""
        args = ", ".join(_parsed(a) for a in (name, doc, body, user or {}))
        return json.loads(self._context.eval(f"update({args})"))

    def lib(self, name: str, *args: Any) -> Any:
        """A function of lib/job, called with JSON arguments."""
        return json.loads(self._context.eval(f"lib({json.dumps(name)}, {json.dumps(args)})"))
