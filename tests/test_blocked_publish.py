"""A rename Windows blocks is retried by schedule, not by sleeping (issue 10, item 4).

The main loop used to sleep through EPERM/EBUSY for up to 30 s per file: no heartbeat, no
status, a systemd watchdog at risk. A real daemon whose first 7 attempts to publish a result
are refused keeps writing its status while the publish waits, then publishes exactly once.
"""

from __future__ import annotations

import subprocess
import sys

from tests.daemon_harness import FAST, REPO, SHORT_CLIP, DaemonProcess, drop, outcomes
from tests.helpers import wait_until

REFUSALS = 7  # backoff 0.05 s doubling, capped at 2 s: several seconds of refused renames


class BlockedDaemon(DaemonProcess):
    def start(self) -> BlockedDaemon:
        command = [
            sys.executable, "-m", "tests.blocked_rename", str(REFUSALS), "run", "--inbox", str(self.inbox),
            "--outbox", str(self.outbox), f"daemon.name={self.name}", f"daemon.state_dir={self.root / 'state'}",
            *FAST, *self.overrides,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={"POSED_LOG_FORMAT": "json", **__import__("os").environ})  # fmt: skip
        return self


def _events(daemon: DaemonProcess, name: str) -> list[dict]:
    return [e for e in daemon.log_events() if e.get("event") == name]


def test_a_blocked_publish_waits_on_a_schedule_while_the_status_heartbeat_goes_on(tmp_path) -> None:
    daemon = BlockedDaemon(tmp_path, "blocked", ["backend.name=fault", "outbox.publish_retry_s=120"]).start()
    try:
        daemon.wait_ready(60)
        drop(SHORT_CLIP, daemon.inbox, "held.mp4")
        wait_until(lambda: _events(daemon, "publish.retry_scheduled"), 60, daemon.log_tail)
        heartbeats = set()
        while not (daemon.outbox / "held.mp4.result.json").exists():  # the publish is pending
            heartbeats.add(daemon.status().get("heartbeat_at"))
            assert daemon.alive(), daemon.log_tail()
            wait_until(lambda: daemon.status().get("heartbeat_at") not in heartbeats
                       or (daemon.outbox / "held.mp4.result.json").exists(), 60, "the heartbeat stopped")  # fmt: skip
        retries = _events(daemon, "publish.retry_scheduled")
        assert len(retries) == REFUSALS, "every refusal was rescheduled, none slept through"
        assert len(heartbeats) >= 3, f"status written while the publish waited: {sorted(heartbeats)}"
        wait_until(lambda: (daemon.inbox / "done" / "held.mp4").exists(), 30)
        assert sorted(outcomes(daemon.outbox)) == ["held.mp4.result.json"], "published exactly once"
        assert _events(daemon, "job.outcome")[0]["published"] == "held.mp4.result.json"
    finally:
        assert daemon.stop() == 0
