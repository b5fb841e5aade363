"""Job fields from Redis, measured before anything recursive parses them (issue 21, item 1).

A producer controls a job's ``data`` and ``opts``: JSON nested 3,000 levels deep is 18 KB and
makes every recursive parser or encoder (Python's ``json``, BullMQ's ``Job.fromJSON``) raise
``RecursionError``. So the raw text is measured first, by a flat scan that never recurses, and
only text within ``MAX_JOB_FIELD_BYTES`` and ``MAX_JSON_DEPTH`` is handed to ``json.loads``.
The Node producer applies the same two bounds before anything reaches Redis.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JOB_FIELD_BYTES = 256 * 1024  # metadata alone may be 64 KiB as JSON; a path at most 4 KiB
MAX_JSON_DEPTH = 32  # the schema needs 3 levels; metadata gets the rest
# Fields BullMQ's Job.fromJSON parses with json.loads, and a harmless stand-in for each.
PARSED_FIELDS = {"data": "{}", "opts": "{}", "progress": "0", "stacktrace": "[]", "parent": None}
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def oversize(text: Any, max_bytes: int = MAX_JOB_FIELD_BYTES, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``text`` must not be parsed (too long, too deep), or None. Never recurses."""
    if not isinstance(text, (str, bytes)):
        return None
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > max_bytes:
        return f"is {size} bytes of JSON; at most {max_bytes} are accepted"
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                return f"nests deeper than {max_depth} levels"
        elif token in "]}":
            depth -= 1
    return None


def loads(text: Any, default: Any = None) -> Any:
    """``json.loads`` of text within the bounds; ``default`` for anything else or invalid JSON."""
    if oversize(text) is not None:
        return default
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return default


def defuse(raw: dict[str, Any]) -> dict[str, str]:
    """Replace, in a job hash as Redis returned it, every field ``Job.fromJSON`` would parse that
    is out of bounds; return ``{field: why}`` for the ones replaced (empty: untouched)."""
    problems = {}
    for field, stand_in in PARSED_FIELDS.items():
        why = oversize(raw.get(field))
        if why is None:
            continue
        problems[field] = why
        if stand_in is None:
            raw.pop(field, None)
        else:
            raw[field] = stand_in
    return problems
