"""Two daemons with one ``daemon.name`` on one outbox (issue 10, item 13): the second refuses
to start, naming the first; a name whose holder is gone is free again."""

from __future__ import annotations

import json
import socket
import subprocess

from daemon.ops.status import status_dir
from daemon.service import EXIT_NAME_IN_USE
from tests.daemon_harness import SHORT_CLIP, drop, wait_outcome
from tests.helpers import wait_until

FAULT = ["backend.name=fault"]


def test_a_second_daemon_with_the_same_name_refuses_to_start_and_names_the_first(daemons, tmp_path) -> None:
    first = daemons("twin", FAULT).wait_ready()
    before = first.status()["daemon"]
    second = daemons("twin", FAULT)
    assert second.proc.wait(timeout=60) == EXIT_NAME_IN_USE
    said = second.log_path.read_text()
    assert f"pid {before['pid']} on host {before['host']}" in said and "daemon.name" in said
    assert first.status()["daemon"]["instance_id"] == before["instance_id"], "the first one's status is untouched"
    drop(SHORT_CLIP, first.inbox, "still.mp4")
    assert wait_outcome(first.outbox, "still.mp4")[0] == "result"


def test_the_name_of_a_killed_daemon_is_free_at_once_on_the_same_host(daemons) -> None:
    first = daemons("phoenix", FAULT).wait_ready()
    first.kill9()
    again = daemons("phoenix", FAULT)
    wait_until(lambda: again.status().get("daemon", {}).get("pid") == again.proc.pid, 60, again.log_tail)
    assert again.alive()


def test_a_status_left_by_another_host_is_free_once_its_heartbeat_stays_still(daemons, tmp_path) -> None:
    path = status_dir(tmp_path / "outbox") / "roamer.json"
    path.parent.mkdir(parents=True)
    # Another host's daemon died without a word; its clock may be anywhere, so only a heartbeat
    # that stops changing (watched on our own clock) frees the name.
    path.write_text(json.dumps({"state": "busy", "heartbeat_at": "2099-01-01T00:00:00.000Z",
                                "daemon": {"name": "roamer", "host": f"not-{socket.gethostname()}", "pid": 1, "instance_id": "x"}}))  # fmt: skip
    daemon = daemons("roamer", FAULT)
    wait_until(lambda: daemon.status().get("daemon", {}).get("pid") == daemon.proc.pid, 60, daemon.log_tail)
    assert [e for e in daemon.log_events() if e.get("event") == "daemon.name_was_stale"]


def test_the_refusal_is_not_a_crash_loop_reason_to_hide(daemons) -> None:
    first = daemons("solo", FAULT).wait_ready()
    done = subprocess.run([*_command(first)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == EXIT_NAME_IN_USE
    assert "another daemon named 'solo'" in done.stderr


def _command(daemon) -> list[str]:
    import sys

    from tests.daemon_harness import FAST

    return [sys.executable, "-m", "daemon", "run", "--inbox", str(daemon.inbox), "--outbox", str(daemon.outbox),
            "daemon.name=solo", f"daemon.state_dir={daemon.root / 'state2'}", *FAST, *FAULT]  # fmt: skip
