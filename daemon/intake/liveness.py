"""Who a process is, and whether the owner of a claim is provably gone.

A PID alone proves nothing: PIDs are reused, a rebooted host reuses them all, and two
containers or WSL distros on one kernel each have their own PID numbering. So an owner is
named by host, machine id, boot id, PID namespace, PID and the PID's start time. A PID is
only looked up when the owner shares our kernel boot and PID namespace; for anyone else the
heartbeat age is the only evidence.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
BOOT_ID_PATH = PROC / "sys/kernel/random/boot_id"
MACHINE_ID_PATH = Path("/etc/machine-id")

# Alive, but /proc/<pid>/stat is hidden from us (hidepid=): cannot prove PID reuse.
START_TIME_UNKNOWN = -1


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    machine_id: str  # "" when /etc/machine-id is absent (some containers)
    boot_id: str
    pid_ns: str  # e.g. "pid:[4026531836]"; "" when unknown
    pid: int
    start_time: int  # clock ticks after boot, field 22 of /proc/<pid>/stat

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            machine_id=_read_first_line(MACHINE_ID_PATH),
            boot_id=_read_first_line(BOOT_ID_PATH),
            pid_ns=_pid_namespace(),
            pid=pid,
            start_time=process_start_time(pid) or 0,
        )

    def same_machine(self, other: ProcessIdentity) -> bool:
        return self.host == other.host and self.machine_id == other.machine_id

    def same_pid_space(self, other: ProcessIdentity) -> bool:
        """True when ``other.pid`` can be looked up in our /proc and means the same process."""
        return (
            self.same_machine(other)
            and bool(self.boot_id)
            and self.boot_id == other.boot_id
            and self.pid_ns == other.pid_ns
        )


@dataclass(frozen=True)
class Verdict:
    stale: bool
    reason: str  # for logs: "pid 1234 is gone", "heartbeat 75 s old"


def judge_owner(
    owner: ProcessIdentity,
    silent_for_s: float,
    me: ProcessIdentity,
    stale_after_s: float,
    start_time_of: Callable[[int], int | None] | None = None,  # None: process_start_time
) -> Verdict:
    """Whether a claim's owner is provably gone, or silent for longer than ``stale_after_s``.

    ``silent_for_s`` is how long WE have seen its heartbeat unchanged, on our monotonic clock:
    comparing the heartbeat's timestamp with our wall clock would make every claim of a host
    whose clock runs minutes behind look stale (and ours look fresh to it forever).
    An owner in our own PID space whose PID still runs with the same start time is live,
    whatever its heartbeat says: WSL's wall clock jumps after Windows sleeps, and a
    heartbeat-based takeover there would run one video twice.
    """
    start_time_of = start_time_of or process_start_time
    if me.same_pid_space(owner):
        started = start_time_of(owner.pid)
        if started is None:
            return Verdict(True, f"pid {owner.pid} is gone")
        if started not in (owner.start_time, START_TIME_UNKNOWN):
            return Verdict(True, f"pid {owner.pid} was reused (start time {started}, claim says {owner.start_time})")
        return Verdict(False, f"pid {owner.pid} is alive")
    if me.same_machine(owner) and owner.boot_id != me.boot_id:
        return Verdict(True, "host rebooted since the claim")
    return Verdict(silent_for_s > stale_after_s, f"heartbeat unchanged for {silent_for_s:.0f} s")


def owner_tag(me: ProcessIdentity, instance_id: str) -> str:
    """A file-name-safe tag naming this process well enough to tell later that it is gone:
    ``<boot id>-<pid namespace>-<pid>-<start time>-<instance>``."""
    boot = "".join(ch for ch in me.boot_id if ch.isalnum())[:12] or "noboot"
    namespace = "".join(ch for ch in me.pid_ns if ch.isdigit()) or "0"
    instance = "".join(ch for ch in instance_id if ch.isalnum())[:8]
    return f"{boot}-{namespace}-{me.pid}-{me.start_time}-{instance}"


def tagged_owner_gone(tag: str, me: ProcessIdentity, start_time_of: Callable[[int], int | None] | None = None) -> bool | None:
    """True when the process ``tag`` names is provably gone, False when it runs, None when we
    cannot tell (another host, boot or PID namespace, or not a tag at all)."""
    parts = tag.split("-")
    if len(parts) != 5 or not (parts[2].isdigit() and parts[3].isdigit()):
        return None
    if owner_tag(me, "").rsplit("-", 3)[0] != "-".join(parts[:2]):
        return None  # not our boot and PID namespace: its PID means nothing here
    started = (start_time_of or process_start_time)(int(parts[2]))
    return started is None or started not in (int(parts[3]), START_TIME_UNKNOWN)


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks after boot; None when it is gone or a zombie."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:  # ENOENT: gone (or hidden); ESRCH: exiting right now
        return _start_time_if_hidden(pid)
    # comm (field 2) may hold spaces and parentheses; fields after the last ")" are plain.
    fields = text.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None  # a zombie does no work; its claim is abandoned
    return int(fields[19])  # field 22 counted from 1; fields[0] is field 3


def _start_time_if_hidden(pid: int) -> int | None:
    # /proc mounted with hidepid= hides other users' processes; kill(0) still tells.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, owned by another user
    return START_TIME_UNKNOWN


def _pid_namespace() -> str:
    try:
        return os.readlink(PROC / "self/ns/pid")
    except OSError:
        return ""


def _read_first_line(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
