"""One liveness rule for `posed status` and the Node client (issue 10, item 14; README "Health").

A daemon on this kernel whose pid is gone is down at once; a clean stop says "stopped"; any
other daemon is down when its heartbeat is older than 5 status intervals, the age measured so
that a skewed clock between daemon and reader does not kill a live daemon.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from daemon.ops.health import DOWN_AFTER_INTERVALS, judge
from tests.daemon_harness import REPO, DaemonProcess, write_bytes
from tests.helpers import wait_until


def _run_posed_status(outbox) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", "status", "--outbox", str(outbox)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _posed_status(daemon: DaemonProcess) -> str:
    return _run_posed_status(daemon.outbox).stdout


def test_a_killed_daemon_is_down_at_once_and_a_stopped_one_says_stopped(daemons):
    killed = daemons("killed", overrides=["backend.name=fault"]).wait_ready()
    stopped = daemons("stopped", overrides=["backend.name=fault"]).wait_ready()
    both = _run_posed_status(killed.outbox)
    assert both.stdout.count(": alive (heartbeat") == 2 and both.returncode == 0

    pid = killed.proc.pid
    killed.kill9()
    assert _run_posed_status(killed.outbox).returncode == 0, "one daemon still alive: exit 0"
    assert stopped.stop() == 0
    # No waiting for a heartbeat to age: the very next look tells.
    done = _run_posed_status(killed.outbox)
    lines = {line.split(" ")[0]: line for line in done.stdout.splitlines() if not line.startswith(" ")}
    assert lines["killed"].endswith(f": DOWN (pid {pid} is gone)"), lines
    assert "[last state ready]" in lines["killed"]
    assert ": stopped (stopped cleanly at" in lines["stopped"], lines
    assert done.returncode == 5, "no daemon alive on this outbox: exit 5 (README, Health)"


def test_posed_status_without_any_status_file_exits_1(tmp_path):
    done = _run_posed_status(tmp_path / "outbox")
    assert done.returncode == 1 and "no daemon status" in done.stdout


def _remote(doc: dict, heartbeat_age_s: float, now: float) -> dict:
    """The same document as if written by a daemon on another host, ``heartbeat_age_s`` ago."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - heartbeat_age_s)) + f".{int((now - heartbeat_age_s) % 1 * 1000):03d}Z"
    return {**doc, "daemon": {**doc["daemon"], "boot_id": "another-host"}, "heartbeat_at": stamp}


def test_elsewhere_a_daemon_is_down_after_five_status_intervals(daemons):
    daemon = daemons(overrides=["backend.name=fault", "daemon.status_interval_s=2"]).wait_ready()
    doc = daemon.status()
    assert doc["status_interval_s"] == 2 and DOWN_AFTER_INTERVALS == 5
    now = time.time()
    assert judge(_remote(doc, 9.0, now), now=now).verdict == "alive"
    verdict = judge(_remote(doc, 11.0, now), now=now)
    assert verdict.verdict == "down" and verdict.reason == "no heartbeat for 11 s (limit 5 x 2 s)"
    # The daemon's clock lags ours by 10 minutes, but its file was just written: alive.
    assert judge(_remote(doc, 600.0, now), file_mtime=now - 1, now=now).verdict == "alive"
    assert judge(_remote(doc, 600.0, now), file_mtime=now - 11, now=now).verdict == "down"
    # On this kernel a running pid is not enough: a wedged main loop stops the heartbeat too.
    wedged = judge({**doc, "heartbeat_at": "2000-01-01T00:00:00Z"}, file_mtime=now - 11, now=now)
    assert wedged.verdict == "down" and wedged.reason.startswith("no heartbeat for 11 s")


def test_the_last_error_in_the_status_expires(daemons):
    daemon = daemons(overrides=["backend.name=fault", "daemon.last_error_ttl_s=1"]).wait_ready()
    write_bytes(daemon.inbox, "notes.mp4", b"not a video\n" * 10)
    error = wait_until(lambda: daemon.status().get("last_error"), 60)
    assert error["code"] == "E_NOT_A_VIDEO"
    wait_until(lambda: "last_error" in daemon.status() and daemon.status()["last_error"] is None, 60)
    assert daemon.status()["counters"]["errors"] == 1, "the count stays; only the last error expires"
    json.dumps(daemon.status())
