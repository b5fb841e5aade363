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
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

RETRY_ERRORS = (BusyLoadingError, ConnectionError, TimeoutError)
COMMAND_RETRIES = 5
BACKOFF_CAP_S = 2.0
BACKOFF_BASE_S = 0.1
CONNECT_TIMEOUT_S = 5.0
HEALTH_INTERVAL_S = 1.0
COMMAND_TIMEOUT_S = 5.0  # redis-py's default socket timeout, unless the URL sets socket_timeout
MAX_BLOCK_S = 10.0  # BullMQ's longest BZPOPMIN (worker.default_maximum_block_timeout)
PING_TIMEOUTS_FOR_OUTAGE = 2  # one slow ping on a loaded host is not an outage; a refused connection is


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


def connect_blocking(url: str) -> Redis:
    """The client for BullMQ's blocking wait (``BZPOPMIN`` of up to ``MAX_BLOCK_S``).

    redis-py's socket timeout (5 s by default, or the URL's ``socket_timeout``) applies to every
    read; BullMQ's idle wait blocks 5 s, or up to 10 s before a delayed job, so the read timed
    out on a healthy, idle Redis and the daemon reported an outage for a moment every few
    cycles (issue 21, item 4). Here a read may take the longest block plus that timeout."""
    client = connect(url)
    kwargs = client.connection_pool.connection_kwargs  # the URL's own options are in here too
    kwargs["socket_timeout"] = MAX_BLOCK_S + (kwargs.get("socket_timeout") or COMMAND_TIMEOUT_S)
    return client


def insecure_tls(url: str) -> str | None:
    """Why this ``rediss://`` URL leaves TLS unverified (``ssl_cert_reqs=none|optional``,
    ``ssl_check_hostname=false``), or None. redis-py accepts both silently; posed says so in
    its log (``queue.tls_unverified``), its status file and ``posed doctor`` (issue 21, item 7)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "rediss":
        return None
    query = {key.lower(): values[-1].strip().lower() for key, values in parse_qs(parts.query).items()}
    if query.get("ssl_cert_reqs") in ("none", "cert_none", "optional", "cert_optional"):
        return (f"TLS certificate verification is off (ssl_cert_reqs={query['ssl_cert_reqs']}): anyone on the path to Redis "
                "can pose as it and read the password and every job; give ssl_ca_certs=<CA file> instead")  # fmt: skip
    if query.get("ssl_check_hostname") in ("false", "0", "no", "n", "off"):
        return "TLS host name check is off (ssl_check_hostname=false): any certificate the CA signed is accepted for this host"
    return None


def is_connection_error(exc: BaseException) -> bool:
    """Redis unreachable, restarting or loading, rather than a bug or a refused command."""
    return isinstance(exc, (*RETRY_ERRORS, ConnectionRefusedError, ConnectionResetError, asyncio.TimeoutError)) or (
        isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError)
    )


def redact(url: str) -> str:
    """The URL without its password, for logs and status."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user + ':***' if ':' in credentials else user}@{host}"


@dataclass(frozen=True)
class QueueHealth:
    state: str  # "starting" | "connected" | "degraded" | "closed"
    reason: str | None = None


class HealthWatch:
    """Connected or degraded, from a ping every second and from failing commands.

    redis-py reconnects by itself on the next command, so "reconnect with backoff" is the
    callers' loops backing off while this reports degraded, and the next answered ping.
    """

    def __init__(self, shown_url: str) -> None:
        self.shown_url = shown_url
        self.now = QueueHealth("starting")
        self._slow_pings = 0

    async def watch(self, client: Redis) -> None:
        from daemon.log import get_logger

        log = get_logger(__name__)
        while True:
            try:
                await asyncio.wait_for(client.ping(), timeout=2 * HEALTH_INTERVAL_S)
                if self.now.state != "connected":
                    log.info("queue.connected", url=self.shown_url)
                self.now = QueueHealth("connected")
                self._slow_pings = 0
            except asyncio.CancelledError:
                raise
            except (asyncio.TimeoutError, TimeoutError) as exc:  # slow, not refused: degraded if it lasts
                self._slow_pings += 1  # a known reason (refused, TLS failed) is more useful than "timeout": kept
                if self._slow_pings >= PING_TIMEOUTS_FOR_OUTAGE and self.now.state != "degraded":
                    self.degrade(exc)
            except Exception as exc:  # noqa: BLE001 - any other failure to answer is "degraded"
                self.degrade(exc)
            await asyncio.sleep(HEALTH_INTERVAL_S)

    def degrade(self, exc: BaseException) -> None:
        from daemon.log import get_logger

        reason = f"redis unreachable at {self.shown_url}: {type(exc).__name__}: {exc}".rstrip(": ")
        if self.now.state != "degraded":
            get_logger(__name__).warning("queue.degraded", reason=reason)
        self.now = QueueHealth("degraded", reason)

    def close(self) -> None:
        self.now = QueueHealth("closed")
