"""Shared fixtures: real daemons in temp dirs, always stopped, never leaked."""

from __future__ import annotations

import pytest

from tests.daemon_harness import MEDIA, DaemonProcess


def pytest_configure(config):
    if not MEDIA.is_dir():
        raise pytest.UsageError(f"test media not found at {MEDIA} (../shared/media beside the repository)")


@pytest.fixture
def daemons(tmp_path):
    """Factory for daemon processes sharing tmp_path/inbox and tmp_path/outbox by default."""
    started: list[DaemonProcess] = []

    def make(name: str = "t1", overrides: list[str] | None = None, **kwargs) -> DaemonProcess:
        daemon = DaemonProcess(tmp_path, name, overrides, **kwargs).start()
        started.append(daemon)
        return daemon

    yield make
    for daemon in started:
        if daemon.alive():
            daemon.stop()


@pytest.fixture
def redis_server(tmp_path):
    """A real redis-server on a free localhost port, data in tmp_path/redis; always stopped."""
    from tests.redis_server import INSTALL_HINT, REDIS_SERVER, RedisServer

    if REDIS_SERVER is None:
        pytest.fail(INSTALL_HINT)
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
