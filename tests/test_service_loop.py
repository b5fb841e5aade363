"""The main loop's own safety net: a bug in one tick is survived, a bug in every tick is not."""

from __future__ import annotations

import pytest

from daemon import service
from daemon.config import load_config
from daemon.service import Daemon


def test_a_failing_tick_is_logged_and_survived_but_a_persistent_failure_ends_the_daemon(tmp_path, monkeypatch):
    cfg = load_config(overrides=[f"inbox.path={tmp_path / 'in'}", f"outbox.path={tmp_path / 'out'}"])
    daemon = Daemon(cfg)
    calls = []

    def broken_tick(now):
        calls.append(now)
        raise RuntimeError("bug in a tick")

    monkeypatch.setattr(daemon, "tick", broken_tick)
    for _ in range(service.MAX_FAILED_TICKS - 1):
        daemon._guarded_tick(0.0)
    monkeypatch.setattr(daemon, "tick", lambda now: None)
    daemon._guarded_tick(0.0)  # a good tick resets the count
    monkeypatch.setattr(daemon, "tick", broken_tick)
    for _ in range(service.MAX_FAILED_TICKS - 1):
        daemon._guarded_tick(0.0)
    with pytest.raises(RuntimeError, match="bug in a tick"):
        daemon._guarded_tick(0.0)
    assert len(calls) == 2 * service.MAX_FAILED_TICKS - 1
