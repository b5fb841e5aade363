"""The lock file itself: its name, the owner record inside, and raw reads and writes.

Every open uses ``O_NOFOLLOW``: a symlink planted at a lock path is never followed, for
reading or writing. Records are read whole and judged by ``daemon.intake.claim``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

from daemon.intake.liveness import ProcessIdentity

LOCKS_SUBDIR = Path(".posed") / "locks"
LOCK_SUFFIX = ".lock"
# NAME_MAX is 255 bytes; ".stale-<12>-<19 digits>" (39 bytes) must still fit after a lock name.
MAX_PLAIN_NAME_BYTES = 200
TRUNCATED_NAME_BYTES = 150
MAX_LOCK_BYTES = 64 * 1024
RECORD_VERSION = 1

_CREATE_FLAGS = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: a FIFO planted at a lock path must not hang the daemon in open().
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
WRITE_FLAGS = os.O_RDWR | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# Field annotations are strings (postponed evaluation); JSON numbers may lose their ".0".
_JSON_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float)}


def lock_dir_for(inbox: str | os.PathLike[str]) -> Path:
    return Path(inbox) / LOCKS_SUBDIR


def lock_name_for(video_name: str) -> str:
    """``<video name>.lock``; names over 200 bytes are cut and get a sha1 suffix."""
    if not video_name or "/" in video_name or video_name in (".", ".."):
        raise ValueError(f"not a file name: {video_name!r}")
    encoded = os.fsencode(video_name)
    if len(encoded) <= MAX_PLAIN_NAME_BYTES:
        return video_name + LOCK_SUFFIX
    head = encoded[:TRUNCATED_NAME_BYTES].decode("utf-8", errors="ignore")  # drop a cut character
    return f"{head}~{hashlib.sha1(encoded).hexdigest()}{LOCK_SUFFIX}"


@dataclass(frozen=True)
class ClaimIdentity:
    """This daemon process: who writes the locks."""

    process: ProcessIdentity
    instance_id: str  # a random uuid per daemon process
    daemon_name: str

    @classmethod
    def current(cls, instance_id: str, daemon_name: str = "") -> ClaimIdentity:
        process = ProcessIdentity.current()
        return cls(process=process, instance_id=instance_id, daemon_name=daemon_name or process.host)


@dataclass(frozen=True)
class LockOwner:
    """The JSON inside a lock file."""

    video_name: str
    host: str
    machine_id: str
    boot_id: str
    pid_ns: str
    pid: int
    start_time: int
    instance_id: str
    daemon_name: str
    claimed_at: str
    claimed_at_unix: float
    heartbeat: str
    heartbeat_unix: float
    attempt: int  # 1, plus one per takeover from an owner that died or went silent
    version: int = RECORD_VERSION

    @classmethod
    def new(cls, identity: ClaimIdentity, video_name: str, now: float, attempt: int) -> LockOwner:
        process = identity.process
        return cls(
            video_name=video_name, host=process.host, machine_id=process.machine_id, boot_id=process.boot_id,
            pid_ns=process.pid_ns, pid=process.pid, start_time=process.start_time,
            instance_id=identity.instance_id, daemon_name=identity.daemon_name,
            claimed_at=_iso(now), claimed_at_unix=now, heartbeat=_iso(now), heartbeat_unix=now, attempt=attempt,
        )

    @classmethod
    def from_json(cls, raw: bytes) -> LockOwner:
        """Parse a lock file; ValueError for a torn write or anything else unexpected."""
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("lock JSON is not an object")
        values = {}
        for spec in fields(cls):
            value = data.get(spec.name)
            if not isinstance(value, _JSON_TYPES[spec.type]) or isinstance(value, bool):
                raise ValueError(f"lock JSON field {spec.name} is missing or has the wrong type")
            values[spec.name] = value
        return cls(**values)

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self)) + "\n").encode("utf-8")

    def with_heartbeat(self, now: float) -> LockOwner:
        return replace(self, heartbeat=_iso(now), heartbeat_unix=now)

    @property
    def process(self) -> ProcessIdentity:
        return ProcessIdentity(self.host, self.machine_id, self.boot_id, self.pid_ns, self.pid, self.start_time)

    def same_claim(self, other: LockOwner) -> bool:
        return self.instance_id == other.instance_id and self.claimed_at == other.claimed_at

    def describe(self) -> str:
        return f"{self.daemon_name} (host {self.host}, pid {self.pid}, instance {self.instance_id})"


@dataclass(frozen=True)
class LockRead:
    """One look at a lock path."""

    missing: bool = False
    refused: str = ""  # why we will not touch it: "symlink", "not a regular file", I/O error
    owner: LockOwner | None = None  # None: torn, garbage or unreadable
    signature: tuple[int, int, int] | None = None  # (inode, size, mtime_ns)
    mtime: float = 0.0


def read_lock(path: Path) -> LockRead:
    """Read a lock without following a symlink or blocking on a FIFO."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return LockRead(missing=True)
    except OSError as exc:
        return _read_refused(path, exc)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return LockRead(refused="not a regular file")
        raw = read_all(fd)
    except OSError as exc:
        return LockRead(refused=f"cannot read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    signature = (info.st_ino, info.st_size, info.st_mtime_ns)
    return LockRead(owner=parse_owner(raw), signature=signature, mtime=info.st_mtime)


def create_exclusive(path: Path, owner: LockOwner) -> bool:
    """Create ``path`` exclusively with ``owner`` inside; False if it already exists."""
    try:
        fd = os.open(path, _CREATE_FLAGS, 0o600)
    except FileExistsError:  # also for a symlink, even a dangling one: O_EXCL never follows
        return False
    except FileNotFoundError:
        make_lock_dir(path.parent)
        try:
            fd = os.open(path, _CREATE_FLAGS, 0o600)
        except FileExistsError:
            return False
    try:
        write_all(fd, owner.to_json())
    except OSError:
        os.close(fd)
        unlink_quietly(path)  # an empty lock would block this video for stale_after_s
        raise
    os.close(fd)
    return True


def _read_refused(path: Path, exc: OSError) -> LockRead:
    if exc.errno == errno.ELOOP:
        return LockRead(refused="symlink")
    if exc.errno in (errno.EACCES, errno.EPERM):
        # Another user's 0600 lock: we cannot read it, but its mtime still ages.
        try:
            info = os.lstat(path)
        except OSError:
            return LockRead(missing=True)
        if stat.S_ISREG(info.st_mode):
            return LockRead(signature=(info.st_ino, info.st_size, info.st_mtime_ns), mtime=info.st_mtime)
    return LockRead(refused=f"cannot open: {exc.strerror or exc}")


def parse_owner(raw: bytes) -> LockOwner | None:
    try:
        return LockOwner.from_json(raw)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return None


def read_all(fd: int) -> bytes:
    chunks = []
    total = 0
    while total < MAX_LOCK_BYTES:
        chunk = os.pread(fd, MAX_LOCK_BYTES - total, total)
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes, offset: int = 0) -> None:
    written = 0
    while written < len(data):
        count = os.pwrite(fd, data[written:], offset + written)
        if count == 0:
            raise OSError(errno.EIO, "write made no progress")
        written += count


def make_lock_dir(lock_dir: Path) -> None:
    # Create .posed/ and locks/ only, never the inbox itself: when /mnt/c is unmounted,
    # creating the inbox would write to the empty mount point on the Linux side.
    for directory in (lock_dir.parent, lock_dir):
        try:
            directory.mkdir()
        except FileExistsError:
            pass


def unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, tz=timezone.utc).isoformat(timespec="milliseconds")
