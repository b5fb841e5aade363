"""Clock skew between hosts (issue 10, item 2) and temp files of dead daemons (item 9).

Staleness is measured on our own monotonic clock (how long we have seen a lock unchanged),
never by comparing another host's heartbeat time with our wall clock; a daemon verifies its
claim just before publishing; temp files are swept only when their writer is provably gone.
The end-to-end proof runs two real daemons, one with its wall clock 5 minutes ahead and one
5 minutes behind (``tests.skewed_clock``: libfaketime hangs Python's timed waits here), each in
its own PID namespace so neither can check the other's PID (as for two hosts).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from daemon.intake.claim import ClaimIdentity, ClaimManager, LockOwner, lock_dir_for
from daemon.intake.liveness import ProcessIdentity, owner_tag, tagged_owner_gone
from daemon.publishing.publish import TMP_DIR, new_tmp_path
from daemon.publishing.tmp_sweep import TempSweeper
from tests.daemon_harness import FAST, REPO, SHORT_CLIP, DaemonProcess, drop, outcomes, wait_outcome
from tests.helpers import wait_until

STALE_AFTER_S = 60.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _other_host(name: str) -> ClaimIdentity:
    me = ProcessIdentity.current()
    return ClaimIdentity(replace(me, host=f"host-{name}", machine_id=name, boot_id=name), uuid.uuid4().hex, name)


def test_a_live_claim_of_a_host_ten_minutes_behind_is_never_taken_over(tmp_path: Path) -> None:
    wall_behind, wall_ahead, ours = Clock(1_800_000_000 - 300), Clock(1_800_000_000 + 300), Clock(0.0)
    holder = ClaimManager(lock_dir_for(tmp_path), _other_host("behind"), STALE_AFTER_S, clock=wall_behind)
    rival = ClaimManager(lock_dir_for(tmp_path), _other_host("ahead"), STALE_AFTER_S, clock=wall_ahead, monotonic=ours)
    claim = holder.try_claim("clip.mp4")
    assert claim is not None
    for _ in range(10):  # its heartbeat looks 600 s old by our wall clock, yet it keeps changing
        assert rival.try_claim("clip.mp4") is None
        ours.now += STALE_AFTER_S * 0.6
        wall_behind.now += STALE_AFTER_S * 0.6
        wall_ahead.now += STALE_AFTER_S * 0.6
        assert holder.heartbeat(claim)
    assert holder.still_ours(claim)
    assert rival.try_claim("clip.mp4") is None  # sees the last heartbeat; then the holder dies
    ours.now += STALE_AFTER_S + 1  # silent, as measured by us: now it is stale
    taken = rival.try_claim("clip.mp4")
    assert taken is not None and taken.attempt == 2
    assert not holder.still_ours(claim), "the fence sees the takeover before any heartbeat"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temp_files_go_only_once_their_writer_is_provably_gone(tmp_path: Path) -> None:
    me = ProcessIdentity.current()
    ours = Clock(0.0)
    dead_tag = owner_tag(replace(me, pid=_dead_pid()), "dead")
    other_host_tag = owner_tag(replace(me, boot_id="another-host-boot"), "far")
    files = {
        "mine": new_tmp_path(tmp_path, "result", owner_tag(me, "me")),
        "dead": new_tmp_path(tmp_path, "result", dead_tag),
        "far": new_tmp_path(tmp_path, "result", other_host_tag),
        "old-style": tmp_path / TMP_DIR / f"{uuid.uuid4().hex}.result.partial",
    }
    for path in files.values():
        path.write_bytes(b"{")
        os.utime(path, (1.0, 1.0))  # an ancient mtime proves nothing about its writer
    assert tagged_owner_gone(dead_tag, me) is True and tagged_owner_gone(owner_tag(me, "x"), me) is False
    assert tagged_owner_gone(other_host_tag, me) is None

    sweeper = TempSweeper(tmp_path, lambda tag: tagged_owner_gone(tag, me), STALE_AFTER_S, monotonic=ours)
    assert sweeper.sweep() == 1
    assert not files["dead"].exists() and all(files[k].exists() for k in ("mine", "far", "old-style"))
    ours.now += STALE_AFTER_S / 2
    files["far"].write_bytes(b"{ more")  # its writer is alive and still writing
    ours.now += STALE_AFTER_S / 2 + 1
    assert sweeper.sweep() == 1 and not files["old-style"].exists() and files["far"].exists()
    ours.now += STALE_AFTER_S + 1
    assert sweeper.sweep() == 1 and not files["far"].exists()
    assert files["mine"].exists(), "a live writer's file is never swept"


FAULT_SLOW = ["backend.name=fault", "backend.fault.slow_ms_per_frame=25"]


def test_a_daemon_whose_claim_was_taken_over_discards_its_work_instead_of_publishing(daemons) -> None:
    # Heartbeats so rare that only the fence can notice the takeover before publishing.
    daemon = daemons(overrides=[*FAULT_SLOW, "claim.heartbeat_interval_s=1000", "claim.stale_after_s=3000"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "taken.mp4")
    lock = lock_dir_for(daemon.inbox) / "taken.mp4.lock"
    wait_until(lambda: daemon.status().get("current_job"), 60, "the job to start")
    thief = _other_host("thief")  # another host took it over: its lock replaces ours
    lock.unlink()
    lock.write_bytes(LockOwner.new(thief, "taken.mp4", 1.0, attempt=2).to_json())
    wait_until(lambda: [e for e in daemon.log_events() if e.get("event") == "job.discarded_claim_lost"], 60,
               lambda: daemon.log_tail())  # fmt: skip
    assert not [name for name in outcomes(daemon.outbox) if name.startswith("taken")]
    assert (daemon.inbox / "taken.mp4").is_file(), "the input stays for its new owner"
    assert json.loads(lock.read_bytes())["instance_id"] == thief.instance_id, "the new owner's lock is untouched"
    wait_until(lambda: not list((daemon.outbox / TMP_DIR).iterdir()), 20, "the discarded temp result")


# --- two daemons, two clocks ------------------------------------------------------------


class SkewedDaemon(DaemonProcess):
    """A daemon in its own PID namespace (its PID means nothing to the other: like another
    host) whose wall clock runs ``offset`` seconds off (``tests.skewed_clock``)."""

    def __init__(self, root: Path, name: str, offset: str, overrides: list[str]) -> None:
        super().__init__(root, name, overrides)
        self.offset = offset

    def start(self) -> SkewedDaemon:
        command = [
            "unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM",
            sys.executable, "-m", "tests.skewed_clock", self.offset, "run", "--inbox", str(self.inbox), "--outbox", str(self.outbox),
            f"daemon.name={self.name}", f"daemon.state_dir={self.root / ('state-' + self.name)}",
            *FAST, *self.overrides,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "POSED_LOG_FORMAT": "json"})  # fmt: skip
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM to the daemon itself (PID 1 of its namespace), then wait for it to exit."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        for child in psutil.Process(self.proc.pid).children():
            child.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError(f"{self.name} did not stop; log:\n{self.log_tail()}") from None


def _can_skew() -> str | None:
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return "needs root and unshare for a second PID namespace"
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False)
    return None if probe.returncode == 0 else f"cannot make a PID namespace here: {probe.stderr.decode()[:200]}"


@pytest.mark.skipif(_can_skew() is not None, reason=str(_can_skew()))
def test_two_daemons_ten_minutes_apart_share_an_inbox_without_loss_or_duplicates(tmp_path: Path) -> None:
    behind = SkewedDaemon(tmp_path, "behind", "-300", FAULT_SLOW)
    ahead = SkewedDaemon(tmp_path, "ahead", "+300", FAULT_SLOW)
    names = [f"v{i}.mp4" for i in range(8)]
    try:
        behind.start().wait_ready(90)
        for name in names:
            drop(SHORT_CLIP, behind.inbox, name)
        wait_until(lambda: [e for e in behind.log_events() if e.get("event") == "job.start"], 60, lambda: behind.log_tail())
        ahead.start().wait_ready(90)  # starts while behind holds a live claim and a temp result
        for name in names:
            wait_outcome(behind.outbox, name, timeout=180)
        wait_until(lambda: not any((behind.inbox / n).exists() for n in names), 30, "every input moved")
    finally:
        codes = [daemon.stop() for daemon in (ahead, behind) if daemon.proc is not None]
    assert codes == [0, 0]
    published = sorted(outcomes(behind.outbox))
    assert published == sorted(f"{n}.result.json" for n in names), "one result each, nothing lost or doubled"
    events = [e.get("event") for d in (ahead, behind) for e in d.log_events()]
    assert "claim.takeover" not in events and "claim.lost" not in events and "job.discarded_claim_lost" not in events
    assert sorted(os.listdir(lock_dir_for(behind.inbox))) == [], "no lock left behind"
    assert list((behind.outbox / TMP_DIR).iterdir()) == [], "no temp file left behind"
    assert sorted(p.name for p in (behind.inbox / "done").iterdir()) == sorted(names)
    workers = {d.name: [e for e in d.log_events() if e.get("event") == "job.outcome"] for d in (ahead, behind)}
    assert sum(len(v) for v in workers.values()) == len(names)


def test_a_killed_daemons_temp_result_is_swept_by_a_running_one(daemons, tmp_path) -> None:
    """Item 9: swept at run time, as soon as the writer is provably gone, not at the next start."""
    # Same outbox, separate inboxes: the survivor runs all along but never takes the video.
    survivor = daemons("survivor", ["backend.name=fault", "inbox.rescan_interval_s=0.5"], inbox=tmp_path / "inbox-s").wait_ready()
    victim = daemons("victim", [*FAULT_SLOW, "backend.fault.slow_ms_per_frame=200"]).wait_ready()
    drop(SHORT_CLIP, victim.inbox, "cut.mp4")
    wait_until(lambda: (victim.status().get("current_job") or {}).get("frames_done"), 60, victim.log_tail)
    leftover = list((victim.outbox / TMP_DIR).iterdir())
    assert len(leftover) == 1
    victim.kill9()
    wait_until(lambda: [e for e in survivor.log_events() if e.get("event") == "outbox.swept_tmp"], 60, survivor.log_tail)
    assert not leftover[0].exists() and survivor.alive()
    swept = [e for e in survivor.log_events() if e.get("event") == "outbox.swept_tmp"]
    assert swept[0]["file"] == leftover[0].name and "gone" in swept[0]["reason"]
