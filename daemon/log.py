"""structlog setup: JSON lines for journald and pipes, a readable console on a terminal.

Logs go to stderr: stdout belongs to command output (``posed status``, ``posed bench``) and to
the one human line ``posed run`` prints when it is ready. In JSON mode every stderr line is a
JSON object: Python warnings are routed through logging, and whatever the worker's native
libraries print (MediaPipe's ``W0000 ...``, FFmpeg's ``[h264 @ ...]``) is wrapped by the
supervisor into ``worker.output`` events.
Job context (``job_id``) is bound with contextvars when a job starts, so every line about a
job carries it without passing loggers around.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

_configured = False


class _CurrentStderr:
    """Whatever ``sys.stderr`` is at the time of each write. A command run inside another
    program (``posed eval`` from a test or a notebook) must not keep writing to a stream that
    program has since replaced and closed; in the daemon it is always the same stream."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = _CurrentStderr()


def configure_logging(level: str | None = None, *, json: bool | None = None, process: str = "daemon") -> None:
    """Configure structlog and route stdlib logging (watchdog, hydra, absl) through it."""
    global _configured
    level_name = (level or os.environ.get("POSED_LOG_LEVEL", "INFO")).upper()
    numeric_level = logging.getLevelName(level_name)
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    if json is None:
        json = os.environ.get("POSED_LOG_FORMAT", "") == "json" or not sys.stderr.isatty()

    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_process(process),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # One write per line under a per-file lock: lines from several threads never interleave.
        logger_factory=structlog.WriteLoggerFactory(file=_STDERR),
        cache_logger_on_first_use=False,
    )
    # Third-party libraries log through stdlib logging; render their lines the same way.
    handler = logging.StreamHandler(_STDERR)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    logging.captureWarnings(True)  # warnings.warn() would print a bare two-line text block
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric_level, logging.INFO))
    for noisy in ("watchdog", "hydra", "absl", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    _configured = True


def _add_process(process: str):
    def add(_logger, _method, event_dict):
        event_dict.setdefault("proc", process)
        return event_dict

    return add


def get_logger(name: str = "posed") -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)


@contextmanager
def job_context(job_id: str, client_job_id: str | None = None) -> Iterator[None]:
    """Every log line inside carries ``job_id`` (the daemon's) and, when the producer gave one,
    ``client_job_id`` (the sidecar's or queue job's ``job_id``, the id the backend knows);
    nesting restores the outer values."""
    tokens = structlog.contextvars.bind_contextvars(**_job_fields(job_id, client_job_id))
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def bind_job(job_id: str, client_job_id: str | None = None) -> None:
    structlog.contextvars.bind_contextvars(**_job_fields(job_id, client_job_id))


def unbind_job() -> None:
    structlog.contextvars.unbind_contextvars("job_id", "client_job_id")


def _job_fields(job_id: str, client_job_id: str | None) -> dict[str, str]:
    return {"job_id": job_id} | ({"client_job_id": client_job_id} if client_job_id else {})
