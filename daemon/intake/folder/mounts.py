"""Which file system holds a path, and which watchdog observer can see changes there.

Linux's inotify only reports writes made through this kernel. On WSL2 the Windows drives
(/mnt/c, DrvFs over 9p) are written by Windows itself, so inotify never fires for files
Explorer copies there (microsoft/WSL#4739, gorakhargosh/watchdog#1072); network file
systems behave the same. watchdog picks inotify on Linux regardless of the mount, so we
read /proc/self/mountinfo and pick polling ourselves (as watchfiles and VS Code do).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from daemon.log import get_logger

log = get_logger(__name__)

MOUNTINFO_PATH = Path("/proc/self/mountinfo")
UNKNOWN_FSTYPE = "unknown"

# inotify sees only writes made through this kernel's VFS on this mount. It is blind to:
# Windows writing to /mnt/c (9p/DrvFs),
WINDOWS_FSTYPES = frozenset({"9p", "drvfs", "v9fs"})
# other hosts writing to a network or cluster file system,
NETWORK_FSTYPES = frozenset({
    "cifs", "smb", "smb3", "smbfs", "nfs", "nfs4", "ncpfs", "afs", "coda", "ceph", "glusterfs",
    "gfs2", "ocfs2", "lustre", "beegfs", "gpfs", "orangefs", "davfs", "virtiofs", "vboxsf", "vmhgfs",
})  # fmt: skip
# and FUSE: the file system's own daemon (bindfs, rclone, sshfs, s3fs...) serves changes made
# behind it (to bindfs's source folder, in the cloud, on the ssh server) without any event.
# mountinfo shows "fuse", "fuseblk" or "fuse.<program>"; a few programs name themselves.
FUSE_FSTYPES = frozenset({"fuse", "fuseblk", "bindfs", "rclone", "sshfs", "s3fs", "gcsfuse", "ntfs-3g"})
# Kept for callers that list the known blind types.
POLLING_FSTYPES = WINDOWS_FSTYPES | NETWORK_FSTYPES | FUSE_FSTYPES

# mountinfo(5) escapes space, tab, newline and backslash in paths as \ooo octal.
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def parse_mountinfo(text: str) -> list[tuple[str, str]]:
    """(mount point, fstype) for each line of a mountinfo text, in file order."""
    mounts: list[tuple[str, str]] = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            # Optional fields (shared:N, master:N) vary in number; " - " ends them.
            separator = fields.index("-", 6)
            mounts.append((_unescape(fields[4]), fields[separator + 1]))
        except (ValueError, IndexError):
            continue  # not a mountinfo line; skip rather than guess
    return mounts


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def filesystem_type(path: str | os.PathLike[str], mountinfo: str | None = None) -> str:
    """The fstype of the longest mount point containing ``path`` (resolved).

    Args:
        path: any path; it need not exist yet.
        mountinfo: the text of /proc/self/mountinfo; read from /proc when None.

    Returns:
        e.g. "ext4", "9p"; "unknown" when mountinfo cannot be read (not Linux).
    """
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO_PATH.read_text(errors="surrogateescape")
        except OSError:
            return UNKNOWN_FSTYPE
    target = os.path.realpath(path)
    best_length, fstype = -1, UNKNOWN_FSTYPE
    for mount_point, kind in parse_mountinfo(mountinfo):
        # ">=": a later line on the same mount point is mounted over the earlier one.
        if _is_under(target, mount_point) and len(mount_point) >= best_length:
            best_length, fstype = len(mount_point), kind
    return fstype


def _is_under(target: str, mount_point: str) -> bool:
    if mount_point == "/" or target == mount_point:
        return True
    return target.startswith(mount_point.rstrip("/") + "/")


def polling_reason(fstype: str) -> str | None:
    """Why inotify misses changes on ``fstype``; None where it sees them all."""
    kind = fstype.lower()
    if kind in WINDOWS_FSTYPES:
        return f"{fstype}: files Windows writes (DrvFs over 9p) raise no inotify event"
    if kind in NETWORK_FSTYPES:
        return f"{fstype} is a network file system: files other hosts write raise no inotify event"
    if kind in FUSE_FSTYPES or kind.startswith(("fuse.", "fuseblk.")):
        return f"{fstype} is a FUSE file system: changes its daemon serves from behind the mount raise no inotify event"
    return None


def needs_polling(fstype: str) -> bool:
    """True where inotify misses changes, so only a polling observer sees new files."""
    return polling_reason(fstype) is not None


def choose_observer(path: str | os.PathLike[str], mode: str, poll_interval_s: float) -> BaseObserver:
    """A not yet started watchdog observer for ``path``.

    Args:
        path: the directory that will be watched.
        mode: "auto" (polling where inotify is blind), "inotify" or "polling".
        poll_interval_s: seconds between scans of the polling observer.
    """
    if mode not in ("auto", "inotify", "polling"):
        raise ValueError(f"observer mode {mode!r} is not one of auto, inotify, polling")
    fstype = filesystem_type(path)
    blind_because = polling_reason(fstype)
    blind = blind_because is not None
    if mode == "polling" or (mode == "auto" and blind):
        reason = "configured" if mode == "polling" else blind_because
        log.info("inbox.observer_chosen", observer="polling", mode=mode, fstype=fstype, reason=reason,
                 path=str(path), poll_interval_s=poll_interval_s)
        return PollingObserver(timeout=poll_interval_s)
    reason = "configured" if mode == "inotify" else f"inotify works on {fstype}"
    log.info("inbox.observer_chosen", observer="native", mode=mode, fstype=fstype, reason=reason, path=str(path))
    if blind:
        # Only the periodic rescan will find files written from Windows or another host.
        log.warning("inbox.observer_blind", fstype=fstype, path=str(path), reason=blind_because)
    return Observer()
