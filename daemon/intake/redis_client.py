"""The Redis connection the BullMQ intake uses, with a retry policy suited to a daemon.

BullMQ's default client retries a failing command 20 times with backoff capped at 20 s, so
after Redis comes back a worker may sleep 20 s before it notices. posed passes its own
client: same URL forms (``redis://[user:pass@]host:port/db``, ``rediss://`` for TLS), replies
decoded as BullMQ expects, backoff capped at 2 s, and a connect timeout so an unreachable
host is reported instead of hanging. Commands still fail after a bounded number of retries,
and the intake's own loops back off and report ``degraded`` meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

RETRY_ERRORS = (BusyLoadingError, ConnectionError, TimeoutError)
COMMAND_RETRIES = 5
BACKOFF_CAP_S = 2.0
BACKOFF_BASE_S = 0.1
CONNECT_TIMEOUT_S = 5.0


def connect(url: str, **overrides: Any) -> Redis:
    """A client for ``url``; nothing is sent until the first command."""
    return Redis.from_url(
        url,
        decode_responses=True,  # BullMQ parses replies as str
        retry=Retry(ExponentialBackoff(cap=BACKOFF_CAP_S, base=BACKOFF_BASE_S), COMMAND_RETRIES),
        retry_on_error=list(RETRY_ERRORS),
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_keepalive=True,
        **overrides,
    )


def is_connection_error(exc: BaseException) -> bool:
    """Redis unreachable, restarting or loading, rather than a bug or a refused command."""
    return isinstance(exc, (*RETRY_ERRORS, ConnectionRefusedError, ConnectionResetError, asyncio.TimeoutError)) or (
        isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
    )
