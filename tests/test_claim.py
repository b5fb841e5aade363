"""Lock-file claims: exclusivity, heartbeats, staleness and safe takeover."""

from __future__ import annotations

import json
import os
import random
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.intake.claim import (
    Claim,
    ClaimIdentity,
    ClaimLost,
    ClaimManager,
    LockOwner,
    lock_dir_for,
    lock_name_for,
)
from daemon.intake.liveness import ProcessIdentity, process_start_time

STALE_AFTER_S = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def me() -> ClaimIdentity:
    return ClaimIdentity.current(uuid.uuid4().hex, "me")


@pytest.fixture
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def manager(inbox: Path, identity: ClaimIdentity | None = None, **kwargs: object) -> ClaimManager:
    identity = identity or ClaimIdentity.current(uuid.uuid4().hex, "other")
    if "clock" in kwargs:  # one fake clock for the heartbeats written and the silences measured
        kwargs.setdefault("monotonic", kwargs["clock"])
    return ClaimManager(lock_dir_for(inbox), identity, STALE_AFTER_S, **kwargs)  # type: ignore[arg-type]


def identity_like(base: ClaimIdentity, name: str, **process_changes: object) -> ClaimIdentity:
    """Another daemon: same machine as ``base`` unless ``process_changes`` say otherwise."""
    process = replace(base.process, **process_changes)  # type: ignore[arg-type]
    return ClaimIdentity(process=process, instance_id=uuid.uuid4().hex, daemon_name=name)


def foreign(base: ClaimIdentity, name: str = "far") -> ClaimIdentity:
    return identity_like(base, name, host="another-host", machine_id="m2", boot_id="b2")


def lock_json(claims: ClaimManager, video: str) -> dict:
    return json.loads(claims.lock_path_for(video).read_bytes())


def leftovers(inbox: Path) -> list[str]:
    return sorted(name for name in os.listdir(lock_dir_for(inbox)) if not name.endswith(".lock"))


# --- names ------------------------------------------------------------------------------


def test_lock_name_is_the_video_name_plus_lock() -> None:
    assert lock_name_for("clip 1.mp4") == "clip 1.mp4.lock"
    assert lock_dir_for("/in") == Path("/in/.posed/locks")


def test_long_video_names_are_cut_and_get_a_hash_suffix() -> None:
    first = "é" * 150 + "-one.mp4"
    second = "é" * 150 + "-two.mp4"
    name = lock_name_for(first)
    assert name != lock_name_for(second)
    assert name.endswith(".lock")
    assert len(name.encode()) + len(".stale-0123456789ab-1800000000000000000") <= 255
    assert name.startswith("é" * 75 + "~")
    odd = lock_name_for("a" + "é" * 150)  # the 150-byte cut falls inside a character
    assert odd.startswith("a" + "é" * 74 + "~")


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b.mp4"])
def test_names_that_are_not_file_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        lock_name_for(bad)


# --- claiming ---------------------------------------------------------------------------


def test_first_claim_creates_a_private_lock_naming_its_owner(inbox: Path, me: ClaimIdentity) -> None:
    claims = manager(inbox, me)
    claim = claims.try_claim("clip.mp4")
    assert claim is not None and claim.attempt == 1
    lock = claims.lock_path_for("clip.mp4")
    assert stat.S_IMODE(lock.lstat().st_mode) == 0o600
    record = lock_json(claims, "clip.mp4")
    assert record["video_name"] == "clip.mp4"
    assert record["host"] == me.process.host
    assert record["pid"] == os.getpid()
    assert record["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert record["start_time"] == process_start_time(os.getpid())
    assert record["instance_id"] == me.instance_id
    assert record["daemon_name"] == "me"
    assert datetime.fromisoformat(record["claimed_at"]).utcoffset().total_seconds() == 0
    assert record["heartbeat_unix"] == pytest.approx(datetime.fromisoformat(record["heartbeat"]).timestamp(), abs=0.01)
    assert record["attempt"] == 1


def test_lock_held_by_a_live_daemon_is_not_claimed_again(inbox: Path, me: ClaimIdentity) -> None:
    claims = manager(inbox, me)
    assert claims.try_claim("clip.mp4") is not None
    assert manager(inbox).try_claim("clip.mp4") is None
    assert claims.try_claim("clip.mp4") is None  # nor by its own daemon while it holds it


def test_a_claim_we_gave_up_but_could_not_delete_is_ours_to_take_again(inbox: Path, me: ClaimIdentity) -> None:
    claims = manager(inbox, me)
    claim = claims.try_claim("clip.mp4")
    assert claim is not None
    # release() forgets the claim first; its delete then fails (the inbox turned unreadable).
    claims.stale.held.discard(claim.owner.claimed_at)
    assert manager(inbox).try_claim("clip.mp4") is None, "another daemon still sees our live PID"
    again = claims.try_claim("clip.mp4")
    assert again is not None and again.attempt == 2


def test_owner_of_names_the_holder(inbox: Path, me: ClaimIdentity) -> None:
    claims = manager(inbox, me)
    assert claims.owner_of("clip.mp4") is None
    claims.try_claim("clip.mp4")
    owner = manager(inbox).owner_of("clip.mp4")
    assert owner is not None and owner.instance_id == me.instance_id


def test_lock_dir_is_created_but_never_a_missing_inbox(tmp_path: Path) -> None:
    claims = manager(tmp_path / "inbox")
    assert claims.try_claim("clip.mp4") is None  # /mnt/c unmounted: do not recreate it
    assert not (tmp_path / "inbox").exists()
    (tmp_path / "inbox").mkdir()
    assert claims.try_claim("clip.mp4") is not None


def test_release_deletes_the_lock_and_the_video_can_be_claimed_again(inbox: Path) -> None:
    claims = manager(inbox)
    claim = claims.try_claim("clip.mp4")
    assert claim is not None
    assert claims.release(claim)
    assert not claims.lock_path_for("clip.mp4").exists()
    assert not claims.release(claim)
    assert manager(inbox).try_claim("clip.mp4") is not None


def test_concurrent_claims_give_each_name_to_exactly_one_daemon(inbox: Path) -> None:
    names = [f"video-{index:02d}.mp4" for index in range(50)]
    won: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def race(slot: int) -> None:
        claims = manager(inbox, ClaimIdentity.current(uuid.uuid4().hex, f"t{slot}"))
        order = names[:]
        random.Random(slot).shuffle(order)
        start.wait()
        won[slot] = [name for name in order if claims.try_claim(name) is not None]

    threads = [threading.Thread(target=race, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    counts = Counter(name for names_won in won for name in names_won)
    assert counts == Counter(names)


# --- heartbeats -------------------------------------------------------------------------


def test_heartbeat_rewrites_the_lock_in_place(inbox: Path, me: ClaimIdentity) -> None:
    clock = FakeClock()
    claims = manager(inbox, me, clock=clock)
    claim = claims.try_claim("clip.mp4")
    assert claim is not None
    lock = claims.lock_path_for("clip.mp4")
    inode = lock.stat().st_ino
    before = lock_json(claims, "clip.mp4")
    clock.advance(5.5)
    assert claims.heartbeat(claim)
    after = lock_json(claims, "clip.mp4")  # still valid JSON, padding and all
    assert lock.stat().st_ino == inode
    assert after["heartbeat_unix"] == before["heartbeat_unix"] + 5.5
    assert after["claimed_at"] == before["claimed_at"]
    assert claim.owner.heartbeat_unix == after["heartbeat_unix"]


def test_heartbeat_refresh_keeps_a_lock_live(inbox: Path, me: ClaimIdentity) -> None:
    clock = FakeClock()
    holder = manager(inbox, foreign(me), clock=clock)  # another host: only the heartbeat counts
    rival = manager(inbox, me, clock=clock)
    claim = holder.try_claim("clip.mp4")
    assert claim is not None
    for _ in range(5):
        clock.advance(STALE_AFTER_S * 0.6)
        assert holder.heartbeat(claim)
        assert rival.try_claim("clip.mp4") is None


def test_stale_lock_is_taken_over_after_ttl(inbox: Path, me: ClaimIdentity) -> None:
    clock = FakeClock()
    silent = manager(inbox, foreign(me, "silent"), clock=clock)
    rival = manager(inbox, me, clock=clock)
    assert silent.try_claim("clip.mp4") is not None
    assert rival.try_claim("clip.mp4") is None  # the first look starts our own stopwatch
    clock.advance(STALE_AFTER_S)
    assert rival.try_claim("clip.mp4") is None  # exactly at the limit: not yet
    clock.advance(15)
    with capture_logs() as logs:
        claim = rival.try_claim("clip.mp4")
    assert claim is not None and claim.attempt == 2
    assert lock_json(rival, "clip.mp4")["instance_id"] == me.instance_id
    takeover = [entry for entry in logs if entry["event"] == "claim.takeover"]
    assert takeover and takeover[0]["reason"] == "heartbeat unchanged for 75 s"
    assert "silent" in takeover[0]["previous_owner"]
    assert leftovers(inbox) == []


def test_stale_lock_of_dead_pid_is_taken_over(inbox: Path, me: ClaimIdentity, dead_pid: int) -> None:
    crashed = manager(inbox, identity_like(me, "crashed", pid=dead_pid))
    assert crashed.try_claim("clip.mp4") is not None
    with capture_logs() as logs:
        claim = manager(inbox, me).try_claim("clip.mp4")  # at once, heartbeat still fresh
    assert claim is not None and claim.attempt == 2
    reasons = [entry["reason"] for entry in logs if entry["event"] == "claim.takeover"]
    assert reasons == [f"pid {dead_pid} is gone"]


def test_lock_of_a_reused_pid_is_taken_over(inbox: Path, me: ClaimIdentity) -> None:
    # Our own PID, but a different start time: the owner died and the PID was reused.
    reused = identity_like(me, "old", start_time=me.process.start_time - 1)
    manager(inbox, reused).try_claim("clip.mp4")
    claim = manager(inbox, me).try_claim("clip.mp4")
    assert claim is not None and claim.attempt == 2


def test_lock_from_before_a_reboot_is_taken_over(inbox: Path, me: ClaimIdentity) -> None:
    manager(inbox, identity_like(me, "before-reboot", boot_id="an-older-boot")).try_claim("clip.mp4")
    assert manager(inbox, me).try_claim("clip.mp4") is not None


def test_live_owner_in_this_process_is_never_taken_over(inbox: Path, me: ClaimIdentity) -> None:
    clock = FakeClock()
    holder = manager(inbox, me, clock=clock)
    assert holder.try_claim("clip.mp4") is not None
    clock.advance(3600)  # silent for an hour, e.g. a clock jump after Windows slept
    assert manager(inbox, clock=clock).try_claim("clip.mp4") is None
    verdict = holder.verdict_for("clip.mp4")
    assert verdict is not None and not verdict.stale


def test_owner_in_another_pid_namespace_is_judged_by_heartbeat(
    inbox: Path, me: ClaimIdentity, dead_pid: int
) -> None:
    # Another WSL distro or container on this kernel: its PID means nothing in our /proc.
    clock = FakeClock()
    neighbour = identity_like(me, "distro2", pid=dead_pid, pid_ns="pid:[1]")
    manager(inbox, neighbour, clock=clock).try_claim("clip.mp4")
    rival = manager(inbox, me, clock=clock)
    assert rival.try_claim("clip.mp4") is None
    clock.advance(STALE_AFTER_S + 1)
    assert rival.try_claim("clip.mp4") is not None


@pytest.mark.parametrize("content", [b"", b'{"video_name": "clip.mp4", "ho', b"\x00\xff garbage", b"[1, 2]"])
def test_torn_or_garbage_lock_is_taken_over_once_unchanged_on_our_clock(inbox: Path, content: bytes) -> None:
    clock = FakeClock()
    claims = manager(inbox, clock=clock)
    lock = claims.lock_path_for("clip.mp4")
    lock.parent.mkdir(parents=True)
    lock.write_bytes(content)
    old = lock.stat().st_mtime - 10 * STALE_AFTER_S
    os.utime(lock, (old, old))  # an mtime from a far-off clock proves nothing
    assert claims.try_claim("clip.mp4") is None  # maybe its owner is still writing it
    clock.advance(STALE_AFTER_S + 5)
    with capture_logs() as logs:
        claim = claims.try_claim("clip.mp4")
    assert claim is not None and claim.attempt == 2
    reason = next(entry["reason"] for entry in logs if entry["event"] == "claim.takeover")
    assert reason == f"unreadable lock, unchanged for {STALE_AFTER_S + 5:.0f} s"


@pytest.mark.parametrize("dangling", [False, True])
def test_symlink_at_the_lock_path_is_removed_never_followed(inbox: Path, tmp_path: Path, dangling: bool) -> None:
    claims = manager(inbox)
    lock = claims.lock_path_for("clip.mp4")
    lock.parent.mkdir(parents=True)
    target = tmp_path / "precious.txt"
    if not dangling:
        target.write_text("keep me")
    lock.symlink_to(target)
    with capture_logs() as logs:
        claim = claims.try_claim("clip.mp4")
    assert claim is not None
    assert not lock.is_symlink() and lock.is_file()
    assert target.read_text() == "keep me" if not dangling else not target.exists()
    assert claims.owner_of("clip.mp4").instance_id == claims.identity.instance_id
    removed = [entry for entry in logs if entry["event"] == "claim.planted_link_removed"]
    assert len(removed) == 1 and removed[0]["target"] == str(target)


def test_fifo_at_the_lock_path_is_refused_without_blocking(inbox: Path) -> None:
    claims = manager(inbox)
    lock = claims.lock_path_for("clip.mp4")
    lock.parent.mkdir(parents=True)
    os.mkfifo(lock)
    assert claims.try_claim("clip.mp4") is None


def test_heartbeat_raises_claim_lost_after_a_takeover(inbox: Path, me: ClaimIdentity) -> None:
    clock = FakeClock()
    sleeper = manager(inbox, foreign(me, "sleeper"), clock=clock)
    claim = sleeper.try_claim("clip.mp4")
    assert claim is not None
    taker = manager(inbox, me, clock=clock)
    assert taker.try_claim("clip.mp4") is None
    clock.advance(STALE_AFTER_S + 1)
    winner = taker.try_claim("clip.mp4")
    assert winner is not None
    with pytest.raises(ClaimLost) as lost:
        sleeper.heartbeat(claim)
    assert lost.value.video_name == "clip.mp4"
    assert not sleeper.release(claim)  # must not delete the new owner's lock
    assert lock_json(sleeper, "clip.mp4")["instance_id"] == me.instance_id


def test_heartbeat_raises_claim_lost_when_the_lock_was_deleted(inbox: Path) -> None:
    claims = manager(inbox)
    claim = claims.try_claim("clip.mp4")
    assert claim is not None
    claim.lock_path.unlink()
    with pytest.raises(ClaimLost):
        claims.heartbeat(claim)
    assert not claim.lock_path.exists()  # a heartbeat never recreates a lock


def test_heartbeat_never_writes_through_a_symlink(inbox: Path, tmp_path: Path) -> None:
    claims = manager(inbox)
    claim = claims.try_claim("clip.mp4")
    assert claim is not None
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    claim.lock_path.unlink()
    claim.lock_path.symlink_to(target)
    with pytest.raises(ClaimLost):
        claims.heartbeat(claim)
    assert target.read_text() == "keep me"


# --- takeover races ---------------------------------------------------------------------


def test_concurrent_takeovers_give_each_dead_lock_to_exactly_one_daemon(
    inbox: Path, me: ClaimIdentity, dead_pid: int
) -> None:
    names = [f"video-{index:02d}.mp4" for index in range(50)]
    crashed = manager(inbox, identity_like(me, "crashed", pid=dead_pid))
    for name in names:
        assert crashed.try_claim(name) is not None
    won: list[list[Claim]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def race(slot: int) -> None:
        claims = manager(inbox, identity_like(me, f"t{slot}"))
        order = names[:]
        random.Random(slot).shuffle(order)
        start.wait()
        won[slot] = [claim for name in order if (claim := claims.try_claim(name)) is not None]

    threads = [threading.Thread(target=race, args=(slot,)) for slot in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    claims_won = [claim for slot_claims in won for claim in slot_claims]
    assert Counter(claim.video_name for claim in claims_won) == Counter(names)
    assert {claim.attempt for claim in claims_won} == {2}
    for claim in claims_won:  # every winner still holds its lock
        assert lock_json(crashed, claim.video_name)["instance_id"] == claim.owner.instance_id
    assert leftovers(inbox) == []


def test_takeover_backs_off_when_the_owner_revives_after_judgement(
    inbox: Path, me: ClaimIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    sleeper = manager(inbox, foreign(me, "sleeper"), clock=clock)
    claim = sleeper.try_claim("clip.mp4")
    assert claim is not None
    taker = manager(inbox, me, clock=clock)
    assert taker.try_claim("clip.mp4") is None
    clock.advance(STALE_AFTER_S + 1)
    real_rename = os.rename

    def heartbeat_then_rename(source: object, destination: object) -> None:
        if Path(os.fsdecode(source)) == claim.lock_path:  # type: ignore[arg-type]
            sleeper.heartbeat(claim)  # the owner wakes up in the gap between look and rename
        real_rename(source, destination)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "rename", heartbeat_then_rename)
    with capture_logs() as logs:
        assert taker.try_claim("clip.mp4") is None
    assert "claim.takeover_aborted" in [entry["event"] for entry in logs]
    assert sleeper.heartbeat(claim)  # the revived owner still holds its lock
    assert leftovers(inbox) == []


def test_claim_mutex_left_by_a_dead_claimer_is_cleared(inbox: Path, me: ClaimIdentity, dead_pid: int) -> None:
    ghost = identity_like(me, "ghost", pid=dead_pid)
    manager(inbox, ghost).try_claim("clip.mp4")
    mutex = manager(inbox, ghost).lock_path_for("clip.mp4").with_name("clip.mp4.lock.claiming")
    mutex.write_bytes(LockOwner.new(ghost, "clip.mp4", 1.0, attempt=1).to_json())
    assert manager(inbox, me).try_claim("clip.mp4") is not None
    assert leftovers(inbox) == []


def test_claim_mutex_held_by_a_live_claimer_blocks_others(inbox: Path, me: ClaimIdentity, dead_pid: int) -> None:
    manager(inbox, identity_like(me, "crashed", pid=dead_pid)).try_claim("clip.mp4")
    busy = identity_like(me, "busy")
    mutex = manager(inbox, busy).lock_path_for("clip.mp4").with_name("clip.mp4.lock.claiming")
    mutex.write_bytes(LockOwner.new(busy, "clip.mp4", 1.0, attempt=1).to_json())
    assert manager(inbox, me).try_claim("clip.mp4") is None
    assert mutex.exists()


# --- sweeping ---------------------------------------------------------------------------


def test_sweep_removes_only_dead_locks_whose_video_is_gone(inbox: Path, me: ClaimIdentity, dead_pid: int) -> None:
    crashed = manager(inbox, identity_like(me, "crashed", pid=dead_pid))
    clock = FakeClock()
    live = manager(inbox, me, clock=clock)
    for name in ("gone.mp4", "present.mp4"):
        crashed.try_claim(name)
    live.try_claim("live-gone.mp4")
    (inbox / "present.mp4").write_bytes(b"still here")
    garbage = crashed.lock_path_for("garbage.mp4")
    garbage.write_bytes(b"{torn")
    os.utime(garbage, (1.0, 1.0))
    debris = garbage.with_name("x.mp4.lock.stale-abc-1000000000")
    debris.write_bytes(b"")
    assert {item.lock_path.name for item in live.sweep_stale(inbox)} == {"gone.mp4.lock"}  # dead pid: at once
    clock.advance(STALE_AFTER_S + 1)  # the others must first be seen unchanged this long
    fresh_debris = garbage.with_name(f"y.mp4.lock.stale-abc-{time.time_ns()}")
    fresh_debris.write_bytes(b"")

    listed = live.sweep_stale(inbox, remove=False)
    assert {item.lock_path.name for item in listed} == {"garbage.mp4.lock", debris.name}
    assert not any(item.removed for item in listed)
    assert garbage.exists()

    swept = live.sweep_stale(inbox)
    assert {item.lock_path.name for item in swept if item.removed} == {"garbage.mp4.lock", debris.name}
    remaining = sorted(os.listdir(lock_dir_for(inbox)))
    assert remaining == sorted(["present.mp4.lock", "live-gone.mp4.lock", fresh_debris.name])


def test_sweep_does_nothing_while_the_inbox_is_missing(tmp_path: Path, me: ClaimIdentity, dead_pid: int) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    manager(inbox, identity_like(me, "crashed", pid=dead_pid)).try_claim("clip.mp4")
    claims = manager(inbox, me)
    assert claims.sweep_stale(tmp_path / "not-mounted") == []
    assert claims.lock_path_for("clip.mp4").exists()


# --- liveness ---------------------------------------------------------------------------


def test_process_start_time_is_known_for_live_and_none_for_dead_pids(dead_pid: int) -> None:
    assert process_start_time(os.getpid()) == ProcessIdentity.current().start_time > 0
    assert process_start_time(dead_pid) is None
