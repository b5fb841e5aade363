"""The outbox contract: the JSON Schemas of every document the daemon publishes.

Schemas live in ``daemon/schemas/*.schema.json`` (draft 2020-12) and are shared with the Node
client, which validates the same files with Ajv. A document names its own schema in its
``schema`` field (``posed.result``, ``posed.error``, ``posed.status``), so one call validates
any of them. A change that can break a reader must bump the document's major version (issue 4).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

SCHEMA_NAMES = ("result", "frame", "error", "status")
DOCUMENT_SCHEMAS = {"posed.result": "result", "posed.error": "error", "posed.status": "status"}
STATUS_DIR = Path(".posed") / "status"


def load_schema(name: str) -> dict[str, Any]:
    """A fresh copy of one schema; ``name`` is result, frame, error or status (or posed.result, ...)."""
    name = DOCUMENT_SCHEMAS.get(name, name)
    if name not in SCHEMA_NAMES:
        raise KeyError(f"no schema {name!r}; known: {', '.join(SCHEMA_NAMES)}")
    return json.loads(_schema_text(name))


def schema_path(name: str) -> Path:
    """Where a schema file lies on disk (for tools that want the file, e.g. the Node tests)."""
    return Path(str(resources.files("daemon") / "schemas" / f"{name}.schema.json"))


def validate_document(doc: Any) -> None:
    """Validate a published document against the schema its ``schema`` field names.

    Raises:
        jsonschema.ValidationError: the most relevant violation, or an unknown ``schema``.
    """
    if not isinstance(doc, dict):
        raise ValidationError(f"a posed document is a JSON object, got {type(doc).__name__}")
    name = DOCUMENT_SCHEMAS.get(doc.get("schema"))  # type: ignore[arg-type]
    if name is None:
        known = ", ".join(DOCUMENT_SCHEMAS)
        raise ValidationError(f"unknown document schema {doc.get('schema')!r}; expected one of {known}")
    error = best_match(_validator(name).iter_errors(doc))
    if error is not None:
        raise error


def validate_frame(frame: Any) -> None:
    """Validate one line of a frames file (already parsed)."""
    error = best_match(_validator("frame").iter_errors(frame))
    if error is not None:
        raise error


class ResultFileError(ValueError):
    """A result's files disagree with its manifest (truncated, replaced, out of order)."""


def iter_verified_frames(path: Path, entry: dict[str, Any], *, validate: bool = False) -> Iterator[dict[str, Any]]:
    """The frames of a frames file, one dict per line, checked on the way: frame indices
    ascending without gaps, and at the end exactly the line count, size and sha256 that the
    manifest's ``entry`` states; ``validate`` also checks each line against the frame schema."""
    digest, size, lines, expected_index = hashlib.sha256(), 0, 0, None
    with open(path, "rb") as handle:
        for line in handle:
            digest.update(line)
            size += len(line)
            lines += 1
            frame = _frame_line(line, path.name, lines)
            if expected_index is not None and frame["frame_index"] != expected_index:
                raise ResultFileError(f"{path.name} line {lines}: frame {frame['frame_index']} follows frame {expected_index - 1}")
            expected_index = frame["frame_index"] + 1
            if validate:
                validate_frame(frame)
            yield frame
    facts = {"lines": lines, "bytes": size, "sha256": digest.hexdigest()}
    wrong = {key: (facts[key], entry.get(key)) for key in facts if facts[key] != entry.get(key)}
    if wrong:
        raise ResultFileError(f"{path.name} does not match its manifest: {wrong} (found, stated)")


def _frame_line(line: bytes, name: str, number: int) -> dict[str, Any]:
    """One line of a frames file; a line cut mid-way (or otherwise not a frame) is tampering like
    any other: ResultFileError, never a bare JSONDecodeError."""
    try:
        frame = json.loads(line)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ResultFileError(f"{name} line {number} is not one whole JSON frame (cut short or damaged): {exc}") from None
    if not isinstance(frame, dict) or isinstance(frame.get("frame_index"), bool) or not isinstance(frame.get("frame_index"), int):
        raise ResultFileError(f"{name} line {number} is not a frame object with an integer frame_index")
    return frame


def validate_file(path: Path) -> dict[str, Any]:
    """Parse and validate one published file; return the document."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    validate_document(doc)
    return doc


def published_files(outbox: Path) -> list[Path]:
    """Every document a consumer may read: results, error reports and status files.

    Temp files and other dot-directories are skipped, as the Node client skips them.
    """
    outbox = Path(outbox)
    found = [
        path
        for path in sorted(outbox.iterdir())
        if path.is_file() and not path.name.startswith(".") and path.name.endswith((".result.json", ".error.json"))
    ]
    status_dir = outbox / STATUS_DIR
    if status_dir.is_dir():
        found += [p for p in sorted(status_dir.glob("*.json")) if not p.name.startswith(".")]
    return found


def validate_outbox(outbox: Path) -> list[Path]:
    """Validate every published file in ``outbox``, a result's frames file line by line against
    the frame schema and its manifest's count, size and hash; return them. Raises on the first
    bad one."""
    files = published_files(outbox)
    for path in files:
        try:
            doc = validate_file(path)
            if doc.get("schema") == "posed.result":
                frames = doc["files"]["frames"]
                for _ in iter_verified_frames(path.with_name(frames["name"]), frames, validate=True):
                    pass
        except ValidationError as exc:
            exc.message = f"{path}: {exc.message}"
            raise
    return files


@lru_cache(maxsize=None)
def _schema_text(name: str) -> str:
    return (resources.files("daemon") / "schemas" / f"{name}.schema.json").read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    # The format checker knows only the formats whose optional packages are installed; the
    # timestamp patterns in the schemas do not depend on that.
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
