"""The job document as JSON Schema, for producers in any language.

The schema is an attachment of `_design/queshot` (`job.schema.json`, served
by CouchDB at /<db>/_design/queshot/job.schema.json), rendered from
designdocs/context.json like the rules it describes; it ships in the wheel
with the design docs. tests/test_job_schema.py holds it to
validate_doc_update: what it accepts, a producer may create, and the reverse.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from . import designdocs

ATTACHMENT = "job.schema.json"


def job_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a job a producer may create."""
    ddoc = next(d for d in designdocs.load().design_docs if d.name == "queshot")
    return json.loads(base64.b64decode(ddoc.doc["_attachments"][ATTACHMENT]["data"]))
