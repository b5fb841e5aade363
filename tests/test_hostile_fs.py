"""Hostile file systems (issue 5): a full or read-only outbox, an inbox that vanishes, an
unreadable input, outcome folders replaced by symlinks, and Windows sharing violations.

The outbox faults use real mounts: tests run as root, where ``chmod 0o555`` does not stop a
write, so a small tmpfs is remounted read-only or filled up instead. The status file lives on
its own small tmpfs (``outbox/.posed``) so it can still report ``degraded`` while the outbox
refuses writes; on a real read-only outbox the status file is frozen too, and the
``job.deferred`` log line is what tells. An unreadable input needs a daemon that is not root:
it runs as ``nobody`` via ``setpriv``. EPERM/EBUSY from a Windows process holding a file cannot
happen on Linux: ``retry_transient`` is tested with injected errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from daemon.publishing import publish
from daemon.errors import PublishError
from tests.daemon_harness import FAST, REPO, SHORT_CLIP, DaemonProcess, drop, outcomes, wait_outcome, write_bytes
from tests.helpers import wait_until

FAULT = ["backend.name=fault", "outbox.publish_retry_s=1"]
IS_ROOT = os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A fresh tmpfs at ``path`` (created if needed), always unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def fill(directory: Path) -> Path:
    filler = directory / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _events(daemon: DaemonProcess, name: str) -> list[dict]:
    return [e for e in daemon.log_events() if e.get("event") == name]


def _outbox_fault_is_waited_out(daemons, tmp_path: Path, break_outbox, repair_outbox, reason: str) -> None:
    with tmpfs(tmp_path / "outbox", "2m") as outbox, tmpfs(outbox / ".posed", "1m"):
        daemon = daemons(overrides=FAULT).wait_ready()
        drop(SHORT_CLIP, daemon.inbox, "before.mp4")
        assert wait_outcome(outbox, "before.mp4")[0] == "result"
        state = break_outbox(outbox)

        drop(SHORT_CLIP, daemon.inbox, "during.mp4")
        wait_until(lambda: len(_events(daemon, "job.deferred")) >= 2, 30, "the job deferred, then retried and deferred again")
        status = daemon.wait_state("degraded", timeout=10)
        assert reason in status["degraded_reason"] and "outbox not writable" in status["degraded_reason"]
        assert (daemon.inbox / "during.mp4").is_file(), "the input must stay in the inbox"
        assert "during.mp4.result.json" not in outcomes(outbox) and "during.mp4.error.json" not in outcomes(outbox)
        assert not (daemon.inbox / ".posed" / "locks" / "during.mp4.lock").exists(), "the claim is released while waiting"
        assert daemon.alive() and status["counters"]["worker_crashes"] == 0 and status["counters"]["errors"] == 0

        repair_outbox(outbox, state)
        kind, result = wait_outcome(outbox, "during.mp4", timeout=30)
        assert kind == "result" and len(result["frames"]) == 60
        wait_until(lambda: (daemon.inbox / "done" / "during.mp4").is_file(), 10)
        recovered = daemon.wait_state("ready", timeout=10)
        assert recovered["degraded_reason"] is None and recovered["counters"]["errors"] == 0
        assert sorted(outcomes(outbox)) == ["before.mp4.result.json", "during.mp4.result.json"]
        assert daemon.stop() == 0


def test_a_read_only_outbox_keeps_the_input_reports_degraded_and_recovers(daemons, tmp_path):
    _outbox_fault_is_waited_out(
        daemons, tmp_path,
        break_outbox=lambda outbox: remount(outbox, "ro"),
        repair_outbox=lambda outbox, _: remount(outbox, "rw"),
        reason="Read-only file system",
    )  # fmt: skip


def test_a_full_outbox_keeps_the_input_reports_degraded_and_recovers(daemons, tmp_path):
    _outbox_fault_is_waited_out(
        daemons, tmp_path,
        break_outbox=fill,
        repair_outbox=lambda outbox, filler: filler.unlink(),
        reason="No space left on device",
    )  # fmt: skip


def test_a_vanished_inbox_is_waited_for_without_a_crash_loop(daemons):
    daemon = daemons(overrides=FAULT).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "first.mp4")
    assert wait_outcome(daemon.outbox, "first.mp4")[0] == "result"
    wait_until(lambda: (daemon.inbox / "done" / "first.mp4").exists(), 10)
    away = daemon.inbox.with_name("inbox-away")
    os.rename(daemon.inbox, away)  # /mnt/c unmounted across a Windows sleep looks like this
    wait_until(lambda: _events(daemon, "inbox.unavailable"), 10)

    process = psutil.Process(daemon.proc.pid)
    cpu_before, started = sum(process.cpu_times()[:2]), time.monotonic()
    wait_until(lambda: time.monotonic() - started >= 3.0, 10)  # a measuring window, not synchronisation
    cpu_used = sum(process.cpu_times()[:2]) - cpu_before
    assert cpu_used < 0.6 * 3.0, f"the daemon burnt {cpu_used:.2f} s of CPU in 3 s waiting for its inbox"
    assert daemon.alive() and not daemon.inbox.exists(), "the daemon must not re-create a vanished inbox"

    os.rename(away, daemon.inbox)
    wait_until(lambda: _events(daemon, "inbox.available"), 10)
    drop(SHORT_CLIP, daemon.inbox, "second.mp4")
    assert wait_outcome(daemon.outbox, "second.mp4")[0] == "result"
    status = daemon.wait_state("ready")
    assert len(_events(daemon, "inbox.unavailable")) == 1, "one outage, one report: no flapping"
    assert status["counters"]["worker_restarts"] == 0 and status["daemon"]["pid"] == daemon.proc.pid


def test_an_unmounted_and_remounted_inbox_is_watched_again(daemons, tmp_path):
    with tmpfs(tmp_path / "inbox", "8m") as inbox:
        daemon = daemons(overrides=FAULT).wait_ready()
        drop(SHORT_CLIP, inbox, "one.mp4")
        assert wait_outcome(daemon.outbox, "one.mp4")[0] == "result"
    # Unmounted, the mount point is an empty directory again, as /mnt/c is without its drive;
    # then a fresh file system is mounted there. Its root can have the same (st_dev, st_ino)
    # as the old one, so the watcher may not notice the switch: the periodic rescan finds the
    # file within inbox.rescan_interval_s (2 s here).
    with tmpfs(tmp_path / "inbox", "8m") as inbox:
        drop(SHORT_CLIP, inbox, "two.mp4")
        assert wait_outcome(daemon.outbox, "two.mp4", timeout=30)[0] == "result"
        assert daemon.alive() and daemon.status()["counters"]["worker_restarts"] == 0
        assert daemon.stop() == 0


AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
SITE_PACKAGES = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))


def _nobody_env(home: Path) -> dict[str, str]:
    # The venv's interpreter may live under /root (mode 0700 here): use one of the same
    # version that nobody can run, with the venv's packages on its path.
    path = os.pathsep.join([SITE_PACKAGES, str(REPO)])
    return {**os.environ, "POSED_LOG_FORMAT": "json", "HOME": str(home), "PYTHONPATH": path}


def _python_for_nobody(home: Path) -> str | None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, shutil.which(f"python{version}"), f"/usr/bin/python{version}"):
        if not candidate:
            continue
        # The daemon spawns its worker with sys.executable: that must work as nobody too.
        code = (f"import subprocess, sys, daemon.service; assert sys.version.startswith('{version}'); "
                "subprocess.run([sys.executable, '-c', 'import cv2'], check=True)")  # fmt: skip
        probe = subprocess.run([*AS_NOBODY, candidate, "-c", code], capture_output=True, env=_nobody_env(home), cwd=REPO,
                               timeout=60, check=False)  # fmt: skip
        if probe.returncode == 0:
            return candidate
    return None


class NobodyDaemon(DaemonProcess):
    """The same daemon, run as the unprivileged user ``nobody``."""

    python = sys.executable

    def start(self) -> NobodyDaemon:
        command = [
            *AS_NOBODY, self.python, "-m", "daemon", "run",
            "--inbox", str(self.inbox), "--outbox", str(self.outbox), f"daemon.name={self.name}",
            f"daemon.state_dir={self.root / 'state'}", *FAST, *self.overrides,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            env = _nobody_env(self.root / "home")
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        return self


@pytest.fixture
def nobody_root():
    if not IS_ROOT or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the daemon as another user")
    root = Path(tempfile.mkdtemp(prefix="posed-nobody-"))
    os.chmod(root, 0o755)
    for sub in ("inbox", "outbox", "state", "home"):
        (root / sub).mkdir()
        os.chown(root / sub, 65534, 65534)
    python = _python_for_nobody(root / "home")
    if python is None:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip("no Python interpreter of this version that the user nobody may run")
    NobodyDaemon.python = python
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_an_unreadable_input_waits_and_is_processed_once_readable(nobody_root):
    daemon = NobodyDaemon(nobody_root, "nobody", FAULT).start()
    try:
        daemon.wait_ready(60)
        assert psutil.Process(daemon.proc.pid).uids().effective == 65534
        locked = nobody_root / "inbox" / "locked.mp4"
        part = locked.with_name(".locked.part")
        part.write_bytes(SHORT_CLIP.read_bytes())
        os.chmod(part, 0o600)  # owned by root: the daemon gets EACCES
        os.rename(part, locked)
        wait_until(lambda: [e for e in _events(daemon, "inbox.not_openable") if e.get("path") == str(locked)], 20)
        drop(SHORT_CLIP, daemon.inbox, "readable.mp4")  # the queue keeps flowing meanwhile
        assert wait_outcome(daemon.outbox, "readable.mp4")[0] == "result"
        assert locked.is_file() and not [n for n in outcomes(daemon.outbox) if n.startswith("locked")]
        assert len([e for e in _events(daemon, "inbox.not_openable") if e.get("path") == str(locked)]) == 1, "logged once"
        # Events, not the state at one instant (a loaded machine may still show "busy" finishing
        # readable.mp4): the unreadable input was never claimed nor started, and nothing degraded.
        assert not [e for e in daemon.log_events() if e.get("event") in ("claim.acquired", "job.start")
                    and "locked.mp4" in (e.get("video"), e.get("input"))]  # fmt: skip
        assert daemon.status()["state"] in ("ready", "busy") and daemon.status()["degraded_reason"] is None

        os.chmod(locked, 0o644)  # as on Windows, where EACCES usually means "still being copied"
        assert wait_outcome(daemon.outbox, "locked.mp4")[0] == "result"
        wait_until(lambda: (daemon.inbox / "done" / "locked.mp4").is_file(), 10)
        # The final state: the status file is rewritten every status interval, so it may lag the
        # outcomes a moment; wait for the one that counts both results.
        wait_until(lambda: daemon.status().get("state") == "ready" and daemon.status()["counters"]["results"] == 2, 30,
                   lambda: f"status: {daemon.status()}")  # fmt: skip
        assert daemon.status()["counters"]["errors"] == 0
    finally:
        daemon.stop()


def test_a_symlinked_outcome_folder_is_never_followed_and_nothing_is_processed_twice(daemons, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    daemon = daemons(overrides=FAULT).wait_ready()
    os.symlink(elsewhere, daemon.inbox / "failed")  # planted by someone who can write the inbox
    write_bytes(daemon.inbox, "evil", b"* * * * * root touch /tmp/owned\n")  # no video: goes to failed/
    kind, report = wait_outcome(daemon.outbox, "evil")
    assert kind == "error" and report["error"]["code"] == "E_UNSUPPORTED"
    # evil's own move failures: the symlink "failed" is itself reported as a rejected input, and
    # its events must not stand in for evil's (on a loaded machine they come first).
    def evil_move_failures() -> list[dict]:
        return [e for e in _events(daemon, "input.move_failed") if e.get("input") == "evil"]

    wait_until(evil_move_failures, 10, daemon.log_tail)
    assert "not a real directory" in evil_move_failures()[0]["error"]
    assert list(elsewhere.iterdir()) == [], "the input was moved through the symlink"
    assert (daemon.inbox / "evil").is_file(), "published but not movable: it stays"
    # Settles again and again, but is never processed a second time.
    wait_until(lambda: len(evil_move_failures()) >= 3, 20, daemon.log_tail)
    assert [n for n in outcomes(daemon.outbox) if n.startswith("evil")] == ["evil.error.json"]
    assert len([e for e in _events(daemon, "claim.acquired") if e.get("video") == "evil"]) == 1
    # The planted symlink is itself an input that is not a file: answered once, never again.
    assert [n for n in outcomes(daemon.outbox) if n.startswith("failed")] == ["failed.error.json"]

    os.unlink(daemon.inbox / "failed")  # repaired: the next retry moves it
    wait_until(lambda: (daemon.inbox / "failed" / "evil").is_file(), 10)
    assert not (daemon.inbox / "failed").is_symlink() and list(elsewhere.iterdir()) == []
    wait_until(lambda: _events(daemon, "input.moved_late"), 10, daemon.log_tail)  # logged just after the rename we saw
    assert daemon.wait_state("ready", timeout=10)


def test_a_replaced_input_under_a_stuck_name_is_processed_as_new(daemons):
    # done/ cannot be created at all: every move fails, the input stays, published.
    daemon = daemons(overrides=[*FAULT, "inbox.done_dir=/proc/posed-cannot-exist"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "clip.mp4")
    assert wait_outcome(daemon.outbox, "clip.mp4")[0] == "result"
    wait_until(lambda: _events(daemon, "input.move_failed"), 10)
    assert len([e for e in _events(daemon, "claim.acquired") if e.get("video") == "clip.mp4"]) == 1
    drop(SHORT_CLIP, daemon.inbox, "clip.mp4")  # a new upload under the same name: a new job
    assert wait_outcome(daemon.outbox, "clip.mp4~2")[0] == "result"
    assert len([e for e in _events(daemon, "claim.acquired") if e.get("video") == "clip.mp4"]) == 2


# -- Windows sharing violations (cannot be produced on Linux: injected) ----------------------


class Flaky:
    """Raises the given errno ``times`` times, then returns "done"."""

    def __init__(self, code: int, times: int) -> None:
        self.code, self.times, self.calls = code, times, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.times:
            raise OSError(self.code, os.strerror(self.code))
        return "done"


@pytest.mark.parametrize("code", [errno.EPERM, errno.EACCES, errno.EBUSY], ids=["EPERM", "EACCES", "EBUSY"])
def test_a_sharing_violation_is_retried_until_windows_lets_go(code):
    action = Flaky(code, times=2)
    assert publish.retry_transient(action, what="publish x", deadline_s=5.0) == "done"
    assert action.calls == 3


def test_a_sharing_violation_that_outlasts_the_deadline_is_raised():
    action = Flaky(errno.EBUSY, times=1000)
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        publish.retry_transient(action, what="publish x", deadline_s=0.3)
    # It gives up (the elapsed bound is only a hang guard: a busy CI box may oversleep).
    assert caught.value.errno == errno.EBUSY and action.calls > 1 and time.monotonic() - started < 60


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EDQUOT], ids=["ENOSPC", "EROFS", "EDQUOT"])
def test_a_full_or_read_only_outbox_is_not_retried_but_raised_as_publish_error(code):
    action = Flaky(code, times=1)
    with pytest.raises(PublishError):
        publish.retry_transient(action, what="publish x", deadline_s=5.0)
    assert action.calls == 1


def test_publishing_waits_out_a_reader_holding_the_target_open(tmp_path, monkeypatch):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    real_link, refusals = os.link, []

    def link_held_open(src, dst, **kwargs):
        if len(refusals) < 2:
            refusals.append(dst)
            raise OSError(errno.EPERM, "Operation not permitted (held open by a Windows process)")
        return real_link(src, dst, **kwargs)

    monkeypatch.setattr(publish.os, "link", link_held_open)
    # EPERM from link also means "no hard links here" (NO_LINKS): the rename fallback runs.
    monkeypatch.setattr(publish.os, "rename", _flaky_rename(os.rename, errno.EPERM, 2))
    tmp = publish.write_json_tmp(outbox, "result", {"ok": True})
    final = publish.publish_document(tmp, outbox, "clip.mp4", ".result.json", deadline_s=5.0)
    assert final.name == "clip.mp4.result.json" and final.read_text().strip().startswith("{")
    assert not tmp.exists()


def _flaky_rename(real, code: int, times: int):
    calls = []

    def rename(src, dst, **kwargs):
        if len(calls) < times:
            calls.append(dst)
            raise OSError(code, os.strerror(code))
        return real(src, dst, **kwargs)

    return rename


def test_moving_an_input_never_follows_a_symlinked_folder(tmp_path):
    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    inbox.mkdir()
    elsewhere.mkdir()
    (inbox / "a.mp4").write_bytes(b"x")
    os.symlink(elsewhere, inbox / "done")
    with pytest.raises(OSError, match="not a real directory"):
        publish.move_to(inbox / "a.mp4", inbox / "done")
    assert (inbox / "a.mp4").exists() and list(elsewhere.iterdir()) == []


def test_moving_a_255_byte_name_twice_keeps_it_within_the_limit(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    name = "é" * 125 + ".mp4"
    for _ in range(2):
        (inbox / name).write_bytes(b"x")
        publish.move_to(inbox / name, inbox / "done")
    moved = sorted(p.name for p in (inbox / "done").iterdir())
    assert len(moved) == 2 and all(len(n.encode()) <= 255 for n in moved)
    assert any(n.endswith("~2.mp4") for n in moved)


# -- kill -9 between publishing an outcome and moving its input ------------------------------


def _writer(tmp_path: Path):
    from daemon.config import load_config
    from daemon.publishing.outcomes import OutcomeWriter

    cfg = load_config(overrides=[f"inbox.path={tmp_path / 'inbox'}", f"outbox.path={tmp_path / 'outbox'}"])
    (tmp_path / "inbox").mkdir(exist_ok=True)
    (tmp_path / "outbox").mkdir(exist_ok=True)
    return OutcomeWriter(cfg, tmp_path / "outbox")


def test_an_outcome_published_by_a_daemon_killed_before_the_move_is_not_made_twice(tmp_path):
    from daemon.publishing.receipts import Receipt

    first = _writer(tmp_path)
    video = tmp_path / "inbox" / "clip.mp4"
    video.write_bytes(b"video")
    stat = os.stat(video)
    document = first.error_document("clip.mp4@dead-000001", first.input_info(video, stat), {"code": "E_X"}, 1, None)
    published = first.publish_json(document, "clip.mp4", ".error.json", Receipt(video, stat, "clip.mp4@dead-000001", "failed"))
    # ... and here the daemon was killed: the input never moved. Whoever claims it next:
    second = _writer(tmp_path)
    assert second.answered.finish_if_published(video, os.stat(video)) is True
    assert not video.exists() and (tmp_path / "inbox" / "failed" / "clip.mp4").exists()
    assert sorted(outcomes(tmp_path / "outbox")) == [published.name]
    assert not list((tmp_path / "outbox" / ".posed" / "receipts").iterdir()), "the receipt goes with the move"


def test_a_receipt_without_a_published_outcome_means_process_it(tmp_path):
    from daemon.publishing.receipts import Receipt

    writer = _writer(tmp_path)
    video = tmp_path / "inbox" / "clip.mp4"
    video.write_bytes(b"video")
    # Killed after writing the receipt, before the link: nothing was published.
    writer.answered.write_receipt(Receipt(video, os.stat(video), "clip.mp4@dead-000002", "done"), tmp_path / "outbox" / "clip.mp4.result.json")
    assert writer.answered.finish_if_published(video, os.stat(video)) is False and video.exists()
    assert not list((tmp_path / "outbox" / ".posed" / "receipts").iterdir())


def test_a_receipt_for_another_file_under_the_same_name_means_process_it(tmp_path):
    from daemon.publishing.receipts import Receipt

    writer = _writer(tmp_path)
    video = tmp_path / "inbox" / "clip.mp4"
    video.write_bytes(b"first upload")
    old = os.stat(video)
    document = writer.error_document("clip.mp4@dead-000003", writer.input_info(video, old), {"code": "E_X"}, 1, None)
    writer.publish_json(document, "clip.mp4", ".error.json", Receipt(video, old, "clip.mp4@dead-000003", "failed"))
    os.unlink(video)
    write_bytes(tmp_path / "inbox", "clip.mp4", b"a new upload, other bytes")
    assert writer.answered.finish_if_published(video, os.stat(video)) is False and video.exists()


def test_a_read_only_outbox_refuses_to_publish_without_a_receipt(tmp_path):
    from daemon.publishing.receipts import Receipt

    writer = _writer(tmp_path)
    video = tmp_path / "inbox" / "clip.mp4"
    video.write_bytes(b"video")
    (tmp_path / "outbox" / ".posed").mkdir()
    (tmp_path / "outbox" / ".posed" / "receipts").write_text("a file where the folder should be")
    document = writer.error_document("clip.mp4@x-1", writer.input_info(video, os.stat(video)), {"code": "E_X"}, 1, None)
    with pytest.raises(PublishError, match="receipt"):
        writer.publish_json(document, "clip.mp4", ".error.json", Receipt(video, os.stat(video), "clip.mp4@x-1", "failed"))
    assert outcomes(tmp_path / "outbox") == {}


def test_an_inbox_flipped_to_000_mid_job_leaves_the_job_retryable(nobody_root):
    """Issue 10, item 5: the loop crashed a tick, the job was dropped with its lock kept and
    its temp result leaked, and the video sat without outcome until a restart."""
    daemon = NobodyDaemon(nobody_root, "nobody", [*FAULT, "backend.fault.slow_ms_per_frame=50"]).start()
    inbox = nobody_root / "inbox"
    try:
        daemon.wait_ready(60)
        drop(SHORT_CLIP, inbox, "flipped.mp4")
        os.chown(inbox / "flipped.mp4", 65534, 65534)
        wait_until(lambda: (daemon.status().get("current_job") or {}).get("frames_done"), 60, daemon.log_tail)
        os.chmod(inbox, 0o000)  # mid-job: the worker holds the video open, the inbox is now closed
        wait_until(lambda: _events(daemon, "job.deferred"), 60, daemon.log_tail)
        assert daemon.alive() and not _events(daemon, "daemon.tick_failed")
        assert not [n for n in outcomes(daemon.outbox) if n.startswith("flipped")], "nothing published unchecked"
        wait_until(lambda: not list((daemon.outbox / ".tmp").iterdir()), 20, "the temp result was leaked")

        os.chmod(inbox, 0o755)
        assert wait_outcome(daemon.outbox, "flipped.mp4", timeout=120)[0] == "result"
        wait_until(lambda: (inbox / "done" / "flipped.mp4").is_file(), 30)
        wait_until(lambda: os.listdir(inbox / ".posed" / "locks") == [], 30, "a lock was left behind")
        assert [n for n in outcomes(daemon.outbox) if n.startswith("flipped")] == ["flipped.mp4.result.json"]
        assert not _events(daemon, "daemon.tick_failed")
    finally:
        os.chmod(inbox, 0o755)
        daemon.stop()
