"""Generic FUSE and network mounts are polled (issue 10, item 7).

inotify only reports changes made through this kernel on that mount; a FUSE daemon (bindfs,
rclone, sshfs) serves changes made behind the mount without any event, so such inboxes were
only picked up by the slow rescan. Fixtures cover the mountinfo lines; a real bindfs mount
shows a file written behind the mount being processed long before any rescan.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.observers.polling import PollingObserver

from daemon.intake.folder import mounts
from daemon.intake.folder.mounts import choose_observer, filesystem_type, needs_polling, polling_reason
from tests.daemon_harness import SHORT_CLIP, wait_outcome

MOUNTINFO = "\n".join([
    "1 0 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
    "40 1 0:39 / /srv/bind rw,nosuid,nodev - fuse /srv/src rw,user_id=0,group_id=0",
    "41 1 0:40 / /srv/cloud rw,nosuid,nodev shared:7 - fuse.rclone remote: rw,user_id=0",
    "42 1 0:41 / /srv/ssh rw,nosuid - fuse.sshfs me@host:/in rw,user_id=0",
    "43 1 8:17 / /media/usb rw - fuseblk /dev/sdb1 rw,user_id=0",
    "44 1 0:42 / /srv/nfs rw - nfs4 host:/export rw,vers=4.2",
    "45 1 0:43 / /srv/ceph rw - ceph 10.0.0.1:/ rw",
    "46 1 0:44 / /srv/gluster rw - fuse.glusterfs host:/vol rw",
])  # fmt: skip


@pytest.mark.parametrize(
    ("path", "fstype"),
    [("/srv/bind/inbox", "fuse"), ("/srv/cloud/in", "fuse.rclone"), ("/srv/ssh/x", "fuse.sshfs"),
     ("/media/usb/inbox", "fuseblk"), ("/srv/nfs/in", "nfs4"), ("/srv/ceph/in", "ceph"), ("/srv/gluster/in", "fuse.glusterfs")],
)  # fmt: skip
def test_fuse_and_network_mounts_from_mountinfo_are_polled_with_a_reason(path: str, fstype: str) -> None:
    assert filesystem_type(path, MOUNTINFO) == fstype
    assert needs_polling(fstype)
    assert fstype in (polling_reason(fstype) or "")


@pytest.mark.parametrize("fstype", ["fuse", "fuseblk", "fuse.bindfs", "fuse.rclone", "fuse.s3fs", "bindfs", "rclone", "smb", "ceph", "glusterfs", "lustre"])
def test_every_fuse_and_network_type_needs_polling(fstype: str) -> None:
    assert needs_polling(fstype)


def test_the_chosen_polling_observer_logs_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mounts, "filesystem_type", lambda _path: "fuse.rclone")
    with capture_logs() as logs:
        observer = choose_observer(tmp_path, "auto", 0.5)
    assert isinstance(observer, PollingObserver)
    chosen = [e for e in logs if e["event"] == "inbox.observer_chosen"]
    assert chosen[0]["observer"] == "polling" and "FUSE" in chosen[0]["reason"]


@pytest.fixture
def bindfs_inbox(tmp_path: Path):
    """``tmp_path/inbox`` is a bindfs (FUSE) view of ``tmp_path/behind``."""
    if shutil.which("bindfs") is None or not Path("/dev/fuse").exists():
        pytest.skip("needs bindfs and /dev/fuse (apt-get install bindfs)")
    behind, inbox = tmp_path / "behind", tmp_path / "inbox"
    behind.mkdir()
    inbox.mkdir()
    done = subprocess.run(["bindfs", str(behind), str(inbox)], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip(f"bindfs cannot mount here: {done.stderr.strip()}")
    try:
        yield behind, inbox
    finally:
        subprocess.run(["umount", "-l", str(inbox)], capture_output=True, check=False)


def test_a_file_written_behind_a_real_fuse_mount_is_picked_up_by_polling(daemons, bindfs_inbox) -> None:
    behind, inbox = bindfs_inbox
    assert filesystem_type(inbox) == "fuse"
    # No rescan within the test: only the polling observer can see the file.
    daemon = daemons(overrides=["backend.name=fault", "inbox.rescan_interval_s=3600"], inbox=inbox).wait_ready()
    part = behind / ".behind.part"
    part.write_bytes(SHORT_CLIP.read_bytes())
    part.rename(behind / "behind.mp4")  # written behind the mount: no inotify event on inbox/
    assert wait_outcome(daemon.outbox, "behind.mp4", timeout=120)[0] == "result"
    chosen = [e for e in daemon.log_events() if e.get("event") == "inbox.observer_chosen"]
    assert chosen and chosen[0]["observer"] == "polling" and "FUSE" in chosen[0]["reason"]
