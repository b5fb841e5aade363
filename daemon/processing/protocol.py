"""The supervisor <-> worker wire format: one JSON object per line.

Supervisor -> worker, on the worker's stdin: ``init`` (config), ``job``, ``cancel``, ``exit``.
Worker -> supervisor, on a dedicated pipe (not stdout: third-party libraries print there):
``loading``, ``ready``, ``load_failed``, ``started``, ``progress``, ``done``, ``failed``,
``cancelled``. Every worker message doubles as a heartbeat.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any


class MessageWriter:
    """Thread-safe line writer on a file descriptor (the pipeline's writer thread reports too)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, kind: str, **fields: Any) -> None:
        data = (json.dumps({"type": kind, **fields}, allow_nan=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]


def decode(line: bytes) -> dict[str, Any] | None:
    """Parse one line; None for noise (a malformed line is logged by the caller, not fatal)."""
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    return message if isinstance(message, dict) and "type" in message else None
