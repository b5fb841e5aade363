"""Inbox watching: ignore rules, mount detection, settling, and recovery of a vanished inbox."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from daemon.intake.folder import mounts
from daemon.config import InboxConfig
from daemon.intake.folder.inbox import (
    InboxWatcher,
    SettleTracker,
    choose_observer,
    filesystem_type,
    is_candidate,
    needs_polling,
    parse_mountinfo,
)
from tests.helpers import wait_for_file, wait_until

WSL_MOUNTINFO = "\n".join(
    [
        "1 0 8:32 / / rw,relatime - ext4 /dev/sdc rw,discard,errors=remount-ro",
        "60 1 0:51 / /mnt/wsl rw,relatime shared:1 - tmpfs none rw",
        r"96 1 0:57 / /mnt/c rw,noatime - 9p drvfs rw,dirsync,aname=drvfs;path=C:\;uid=1000;gid=1000;"
        "symlinkroot=/mnt/,mmap,access=client,msize=262144,trans=virtio",
        r"120 96 0:60 / /mnt/c/My\040Videos rw shared:5 master:1 - cifs //nas/videos rw,vers=3.0",
        "130 1 0:70 / /srv/share rw - nfs4 server:/export rw",
        "131 1 0:71 / /srv/share rw - ext4 /dev/sdd rw",
        "this line is not mountinfo",
        "",
    ]
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.mp4",
        ".DS_Store",
        "clip.mp4.part",
        "clip.MP4.PART",
        "clip.mp4.tmp",
        "clip.mp4.crdownload",
        "clip.mp4.partial",
        "clip.xomelen9.partial",
        "~$clip.mp4",
        "clip.job.json",
        "clip.JOB.JSON",
        "",
    ],
)
def test_partial_hidden_and_sidecar_names_are_not_candidates(name: str) -> None:
    assert not is_candidate(name)


@pytest.mark.parametrize("name", ["clip.mp4", "CLIP.MOV", "notes.txt", "clip", "my video (1).mkv", "part.mp4"])
def test_videos_and_unsupported_files_are_candidates(name: str) -> None:
    assert is_candidate(name)


# --- mounts -----------------------------------------------------------------------------


def test_mountinfo_parser_unescapes_mount_points_and_skips_junk() -> None:
    mounts = parse_mountinfo(WSL_MOUNTINFO)
    assert ("/mnt/c", "9p") in mounts
    assert ("/mnt/c/My Videos", "cifs") in mounts
    assert ("/", "ext4") in mounts
    assert len(mounts) == 6


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/mnt/c/Users/me/posed/inbox", "9p"),
        ("/mnt/c", "9p"),
        ("/mnt/c/My Videos/inbox", "cifs"),
        ("/mnt/cdrive/inbox", "ext4"),  # a prefix of the string is not a parent directory
        ("/home/me/inbox", "ext4"),
        ("/mnt/wsl/x", "tmpfs"),
        ("/srv/share/inbox", "ext4"),  # the later mount on the same point covers the earlier
    ],
)
def test_filesystem_type_uses_the_longest_containing_mount_point(path: str, fstype: str) -> None:
    assert filesystem_type(path, WSL_MOUNTINFO) == fstype


def test_filesystem_type_reads_this_machines_mountinfo(tmp_path: Path) -> None:
    assert filesystem_type(tmp_path) != "unknown"


@pytest.mark.parametrize("fstype", ["9p", "drvfs", "cifs", "smb3", "smbfs", "nfs", "nfs4", "fuse.sshfs", "virtiofs"])
def test_windows_and_network_filesystems_need_polling(fstype: str) -> None:
    assert needs_polling(fstype)


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "unknown"])
def test_local_filesystems_do_not_need_polling(fstype: str) -> None:
    assert not needs_polling(fstype)


@pytest.fixture
def chosen(tmp_path: Path) -> Iterator[Callable[[str, float], BaseObserver]]:
    """choose_observer, stopping what it built: the inotify observer starts a thread at once."""
    built: list[BaseObserver] = []

    def choose(mode: str, interval: float) -> BaseObserver:
        built.append(choose_observer(tmp_path, mode, interval))
        return built[-1]

    yield choose
    for observer in built:
        observer.stop()


def test_auto_mode_polls_on_a_windows_drive(
    chosen: Callable[[str, float], BaseObserver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mounts, "filesystem_type", lambda _path: "9p")
    with capture_logs() as logs:
        observer = chosen("auto", 0.25)
    assert isinstance(observer, PollingObserver)
    assert observer.timeout == 0.25
    chosen = [entry for entry in logs if entry["event"] == "inbox.observer_chosen"]
    assert chosen and chosen[0]["fstype"] == "9p" and chosen[0]["observer"] == "polling"


def test_auto_mode_uses_inotify_on_a_local_disk(chosen: Callable[[str, float], BaseObserver]) -> None:
    with capture_logs() as logs:
        observer = chosen("auto", 1.0)
    assert isinstance(observer, Observer)
    assert [entry["observer"] for entry in logs if entry["event"] == "inbox.observer_chosen"] == ["native"]


def test_configured_modes_are_obeyed(chosen: Callable[[str, float], BaseObserver]) -> None:
    assert isinstance(chosen("polling", 1.0), PollingObserver)
    assert isinstance(chosen("inotify", 1.0), Observer)
    with pytest.raises(ValueError):
        chosen("magic", 1.0)


# --- settling (fake clock, real files) --------------------------------------------------


def test_file_is_ready_once_after_it_settles(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=2.0, clock=clock)
    video = tmp_path / "a.mp4"
    video.write_bytes(b"data")
    tracker.observe(video)
    clock.advance(1.9)
    tracker.observe(video)
    assert tracker.poll() == []
    clock.advance(0.1)
    assert tracker.poll() == [video]
    tracker.observe(video)
    assert tracker.poll() == []


def test_any_change_restarts_the_settle_timer(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=2.0, clock=clock)
    video = tmp_path / "a.mp4"
    video.write_bytes(b"first")
    tracker.observe(video)
    clock.advance(1.5)
    with video.open("ab") as handle:
        handle.write(b"more")
    tracker.observe(video)
    clock.advance(1.5)
    assert tracker.poll() == []
    clock.advance(0.5)
    assert tracker.poll() == [video]


def test_preallocated_file_is_not_ready_while_its_mtime_changes(tmp_path: Path) -> None:
    # Explorer sets the final size first, then fills the file: only the mtime moves.
    clock = FakeClock()
    tracker = SettleTracker(settle_s=2.0, clock=clock)
    video = tmp_path / "a.mp4"
    with video.open("wb") as handle:
        handle.truncate(4096)
    base_ns = video.stat().st_mtime_ns
    for step in range(1, 6):
        os.utime(video, ns=(base_ns, base_ns + step * 1_000_000))
        tracker.observe(video)
        clock.advance(1.0)
        assert tracker.poll() == [], f"ready while being filled (step {step})"
    clock.advance(1.0)
    tracker.observe(video)
    assert tracker.poll() == [video]


def test_changed_file_is_offered_again_after_it_settles(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    video = tmp_path / "a.mp4"
    video.write_bytes(b"v1")
    tracker.observe(video)
    clock.advance(1.0)
    assert tracker.poll() == [video]
    video.write_bytes(b"version 2")
    tracker.observe(video)
    clock.advance(1.0)
    assert tracker.poll() == [video]


def test_vanished_file_is_forgotten(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    video = tmp_path / "a.mp4"
    video.write_bytes(b"data")
    tracker.observe(video)
    video.unlink()
    tracker.observe(video)
    clock.advance(5.0)
    assert tracker.poll() == []
    assert tracker.tracked() == []


def test_empty_file_is_ready_after_settling(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    video = tmp_path / "empty.mp4"
    video.touch()
    tracker.observe(video)
    clock.advance(1.0)
    assert tracker.poll() == [video]


def test_ready_files_are_sorted_by_mtime_then_name(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    for name, mtime_s in [("c.mp4", 100), ("b.mp4", 50), ("a.mp4", 100)]:
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime_s, mtime_s))
        tracker.observe(tmp_path / name)
    clock.advance(1.0)
    assert [path.name for path in tracker.poll()] == ["b.mp4", "a.mp4", "c.mp4"]


def test_symlinks_are_rejected_once_and_never_ready(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    target = tmp_path / "elsewhere.mp4"
    target.write_bytes(b"data")
    link = tmp_path / "link.mp4"
    dangling = tmp_path / "dangling.mp4"
    link.symlink_to(target)
    dangling.symlink_to(tmp_path / "missing.mp4")
    for _ in range(3):
        tracker.observe(link)
        tracker.observe(dangling)
        clock.advance(1.0)
        assert tracker.poll() == []
    assert tracker.rejected() == [link, dangling]
    assert tracker.rejected() == []


def test_directories_are_ignored_silently(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    folder = tmp_path / "looks_like.mp4"
    folder.mkdir()
    tracker.observe(folder)
    clock.advance(1.0)
    assert tracker.poll() == []
    assert tracker.rejected() == []


def test_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    tracker.observe(fifo)
    clock.advance(1.0)
    assert tracker.poll() == []
    assert tracker.rejected() == [fifo]


def test_file_that_cannot_be_opened_is_not_ready_until_it_can(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A Windows copy in progress may deny read sharing; 9p reports that as EACCES.
    clock = FakeClock()
    tracker = SettleTracker(settle_s=1.0, clock=clock)
    video = tmp_path / "busy.mp4"
    video.write_bytes(b"data")
    real_open = os.open
    locked = {"on": True}

    def open_denying_busy_file(path: object, flags: int, *args: object) -> int:
        if locked["on"] and Path(os.fsdecode(path)) == video:  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_denying_busy_file)
    tracker.observe(video)
    clock.advance(3.0)
    with capture_logs() as logs:
        assert tracker.poll() == []
        assert tracker.poll() == []
    assert [entry["event"] for entry in logs] == ["inbox.not_openable"]  # said once, not per tick
    locked["on"] = False
    assert tracker.poll() == [video]


# --- the watcher, with real observers ---------------------------------------------------

WatcherFactory = Callable[..., InboxWatcher]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    wait_until(
        lambda: not (set(threading.enumerate()) - before),
        timeout=3.0,
        message=lambda: f"threads left running: {set(threading.enumerate()) - before}",
    )


@pytest.fixture
def make_watcher(tmp_path: Path) -> Iterator[WatcherFactory]:
    watchers: list[InboxWatcher] = []

    def make(mode: str = "polling", **overrides: object) -> InboxWatcher:
        settings: dict[str, object] = {
            "path": str(tmp_path / "inbox"),
            "observer": mode,
            "poll_interval_s": 0.1,
            "rescan_interval_s": 60.0,  # long: tests see what the observer delivers
            "settle_s": 0.3,
        }
        settings.update(overrides)
        watcher = InboxWatcher(InboxConfig(**settings))  # type: ignore[arg-type]
        watchers.append(watcher)
        watcher.start()
        return watcher

    try:
        yield make
    finally:
        for watcher in watchers:
            watcher.stop()


def next_ready(watcher: InboxWatcher, timeout: float = 5.0) -> list[Path]:
    return wait_until(watcher.ready, timeout, "no file became ready")


def ready_during(watcher: InboxWatcher, seconds: float) -> list[Path]:
    """Tick like the daemon's main loop for ``seconds``; everything offered meanwhile."""
    offered: list[Path] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        offered += watcher.ready()
        time.sleep(0.05)
    return offered


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_new_file_is_reported_once_after_it_settles(make_watcher: WatcherFactory, mode: str) -> None:
    watcher = make_watcher(mode)
    video = watcher.path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42")
    assert next_ready(watcher) == [video]
    assert ready_during(watcher, 0.5) == []


def test_missing_inbox_is_created_at_start(make_watcher: WatcherFactory, tmp_path: Path) -> None:
    watcher = make_watcher(path=str(tmp_path / "deep" / "inbox"))
    assert watcher.path.is_dir()
    assert watcher.available


def test_files_already_there_at_start_are_found(make_watcher: WatcherFactory, tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "old.mov").write_bytes(b"old")
    watcher = make_watcher("inotify")
    assert [path.name for path in next_ready(watcher)] == ["old.mov"]


def test_rescan_finds_files_the_observer_missed(tmp_path: Path) -> None:
    def deaf_observer(_path: Path, _mode: str, _interval: float) -> BaseObserver:
        return PollingObserver(timeout=3600)  # never polls during the test

    cfg = InboxConfig(path=str(tmp_path / "inbox"), poll_interval_s=0.1, rescan_interval_s=0.3, settle_s=0.2)
    with InboxWatcher(cfg, observer_factory=deaf_observer) as watcher:
        video = watcher.path / "missed.mp4"
        video.write_bytes(b"data")
        assert next_ready(watcher) == [video]


def test_ignored_names_are_never_reported(make_watcher: WatcherFactory) -> None:
    watcher = make_watcher("inotify")
    for name in ["clip.mp4.part", ".hidden.mp4", "clip.job.json", "~$clip.mp4"]:
        (watcher.path / name).write_bytes(b"x")
    (watcher.path / "real.mp4").write_bytes(b"x")
    assert [path.name for path in next_ready(watcher)] == ["real.mp4"]
    assert ready_during(watcher, 0.5) == []


def test_file_renamed_from_a_partial_name_is_reported(make_watcher: WatcherFactory) -> None:
    watcher = make_watcher("inotify")
    partial = watcher.path / "clip.mp4.part"
    partial.write_bytes(b"data")
    assert ready_during(watcher, 0.5) == []
    partial.rename(watcher.path / "clip.mp4")
    assert next_ready(watcher) == [watcher.path / "clip.mp4"]


def test_file_deleted_before_it_settles_is_never_reported(make_watcher: WatcherFactory) -> None:
    watcher = make_watcher("inotify", settle_s=0.5)
    video = watcher.path / "brief.mp4"
    video.write_bytes(b"data")
    wait_until(lambda: watcher.ready() == [] and watcher.pending(), 3.0, "file never tracked")
    video.unlink()
    assert ready_during(watcher, 1.0) == []


def test_slow_writer_is_not_ready_until_writes_stop(make_watcher: WatcherFactory) -> None:
    # settle_s far above the writer's 0.25 s gaps: on a loaded machine the writer thread may be
    # descheduled for a while, and a file quiet for settle_s is rightly offered.
    watcher = make_watcher("polling", settle_s=3.0)
    video = watcher.path / "slow.mp4"
    finished = threading.Event()

    def write_slowly() -> None:
        with video.open("wb") as handle:
            for _ in range(12):  # ~3 s
                handle.write(b"x" * 4096)
                handle.flush()
                time.sleep(0.25)
        finished.set()

    writer = threading.Thread(target=write_slowly)
    writer.start()
    try:
        while not finished.is_set():
            assert watcher.ready() == [], "offered while the writer was still writing"
            time.sleep(0.05)
    finally:
        writer.join()
    stopped_at = time.monotonic()
    assert next_ready(watcher) == [video]
    assert time.monotonic() - stopped_at >= 0.7  # it waited for the quiet period
    assert video.stat().st_size == 12 * 4096


def test_preallocated_file_being_filled_is_not_ready_until_writes_stop(make_watcher: WatcherFactory) -> None:
    # settle_s far above the writer's 0.25 s gaps: on a loaded machine the writer thread may be
    # descheduled for a while, and a file quiet for settle_s is rightly offered.
    watcher = make_watcher("polling", settle_s=3.0)
    video = watcher.path / "explorer.mp4"
    chunk = 4096
    finished = threading.Event()

    def fill_like_explorer() -> None:
        fd = os.open(video, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.ftruncate(fd, 10 * chunk)  # final size first
            for index in range(10):  # ~2.5 s
                time.sleep(0.25)
                os.pwrite(fd, b"y" * chunk, index * chunk)
        finally:
            os.close(fd)
        finished.set()

    writer = threading.Thread(target=fill_like_explorer)
    writer.start()
    try:
        wait_for_file(video)
        while not finished.is_set():
            assert watcher.ready() == [], "offered while the size was final but data still arriving"
            time.sleep(0.05)
    finally:
        writer.join()
    assert next_ready(watcher) == [video]
    assert b"\x00" not in video.read_bytes()


@pytest.mark.parametrize("mode", ["inotify", "polling"])
def test_inbox_removed_and_recreated_is_watched_again(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[BaseObserver] = []

    def counting_factory(path: Path, observer_mode: str, interval: float) -> BaseObserver:
        built.append(choose_observer(path, observer_mode, interval))
        return built[-1]

    cfg = InboxConfig(path=str(tmp_path / "inbox"), observer=mode, poll_interval_s=0.1,
                      rescan_interval_s=60.0, settle_s=0.2)
    with capture_logs() as logs, InboxWatcher(cfg, observer_factory=counting_factory) as watcher:
        first = watcher.path / "first.mp4"
        first.write_bytes(b"1")
        assert next_ready(watcher) == [first]

        shutil.rmtree(watcher.path)
        wait_until(lambda: watcher.ready() == [] and not watcher.available, 3.0, "outage not noticed")
        assert ready_during(watcher, 0.5) == []  # ticks while missing: no crash, no spin
        assert len(built) == 1, "an observer was started while the inbox was missing"

        watcher.path.mkdir()
        second = watcher.path / "second.mp4"
        second.write_bytes(b"2")
        assert next_ready(watcher) == [second]
        assert watcher.available
        assert len(built) == 2

    events = [entry["event"] for entry in logs]
    assert events.count("inbox.unavailable") == 1
    assert events.count("inbox.available") == 1


def test_watcher_falls_back_to_polling_when_inotify_cannot_start(tmp_path: Path) -> None:
    def exhausted_inotify(path: Path, mode: str, interval: float) -> BaseObserver:
        observer = Observer()

        def start() -> None:
            raise OSError(28, "inotify watch limit reached")

        observer.start = start  # type: ignore[method-assign]
        return observer

    cfg = InboxConfig(path=str(tmp_path / "inbox"), observer="inotify", poll_interval_s=0.1,
                      rescan_interval_s=60.0, settle_s=0.2)
    with capture_logs() as logs, InboxWatcher(cfg, observer_factory=exhausted_inotify) as watcher:
        assert watcher.available
        video = watcher.path / "clip.mp4"
        video.write_bytes(b"data")
        assert next_ready(watcher) == [video]
    assert "inbox.observer_fallback" in [entry["event"] for entry in logs]


def test_forgotten_file_is_offered_again(make_watcher: WatcherFactory) -> None:
    watcher = make_watcher("inotify")
    video = watcher.path / "retry.mp4"
    video.write_bytes(b"data")
    assert next_ready(watcher) == [video]
    watcher.forget(video)
    assert next_ready(watcher) == [video]


def test_symlink_in_the_inbox_is_rejected_not_offered(make_watcher: WatcherFactory, tmp_path: Path) -> None:
    target = tmp_path / "outside.mp4"
    target.write_bytes(b"secret")
    watcher = make_watcher("inotify")
    (watcher.path / "link.mp4").symlink_to(target)

    def tick_and_collect_rejected() -> list[Path]:
        assert watcher.ready() == []
        return watcher.rejected()

    assert wait_until(tick_and_collect_rejected, 3.0) == [watcher.path / "link.mp4"]
    assert ready_during(watcher, 0.5) == []


def test_stop_is_idempotent_and_joins_the_observer(make_watcher: WatcherFactory) -> None:
    watcher = make_watcher("polling")
    watcher.stop()
    watcher.stop()
    assert watcher.ready() == []
