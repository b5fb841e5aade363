"""Hostile names and entries (issue 5): every name gets exactly one outcome that Windows can
open, nothing in a name is ever executed, symlinks are refused and never followed, and
directories, resubmissions and inputs changed mid-job are handled.

One fault-backend daemon (the model is irrelevant here) serves the whole module; names
containing ``slow`` are processed slowly, which opens a window to change an input mid-job.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from daemon.publishing.contract import validate_document
from daemon.publishing.naming import printable_name
from tests.daemon_harness import DaemonProcess, OutboxReader, REPO, SHORT_CLIP, drop, outcomes, read_outcome, wait_outcome
from tests.helpers import wait_until
from tests.hostile_corpus import drop_named, windows_openable

TOKEN = uuid.uuid4().hex[:8]
PWNED = f"pwned-{TOKEN}"  # the file any executed name would create

NAMES: list[str | bytes] = [
    "with spaces in it.mp4",
    "Läufer 🏃 данные 東京.mp4",
    "Cafe\u0301 NFD.mp4",
    f"$(touch {PWNED}).mp4",
    f"`touch {PWNED}`.mp4",
    f"a;touch {PWNED};.mp4",
    f"x | touch {PWNED} & y.mp4",
    "-rf.mp4",
    "--help.mp4",
    "line\nbreak.mp4",
    "tab\there.mp4",
    "quote\"and'apostrophe.mp4",
    "a" * 251 + ".mp4",  # 255 bytes
    "é" * 125 + ".mp4",  # 254 bytes, 129 characters
    b"\xff\xfe not utf-8.mp4",  # legal on Linux, not valid Unicode
    "CON.mp4",
    "NUL.mp4",
    "COM1.mp4",
    "lpt\u00b9.mp4",
    "aux.MP4",
    "con .mp4",
    "Case.mp4",
    "case.mp4",
    "CASE.mp4",
]
# Trailing dot or space: not a video extension, so an error report; its name must still open.
UNSUPPORTED = ["trailing-dot.mp4.", "trailing-space.mp4 "]
FAST_FAULT = ["backend.name=fault", "backend.fault.trigger=slow", "backend.fault.slow_ms_per_frame=50"]


def _text(name: str | bytes) -> str:
    return os.fsdecode(name) if isinstance(name, bytes) else name


@pytest.fixture(scope="module")
def names_daemon(tmp_path_factory):
    root = tmp_path_factory.mktemp("names")
    daemon = DaemonProcess(root, "names", FAST_FAULT).start().wait_ready(60)
    reader = OutboxReader(daemon.outbox, validate_document)
    reader.start()
    for name in NAMES + UNSUPPORTED:
        drop_named(SHORT_CLIP, daemon.inbox, name)
    yield daemon
    reader.stop()
    assert reader.partial == []
    assert daemon.stop() == 0


def _documents(outbox: Path) -> dict[str, dict]:
    found = {}
    for name, path in outcomes(outbox).items():
        try:
            found[name] = read_outcome(path)
        except (OSError, ValueError):
            continue
    return found


def _outcomes_for(outbox: Path, input_name: str) -> dict[str, dict]:
    wanted = printable_name(input_name)
    return {name: doc for name, doc in _documents(outbox).items() if doc["input"]["name"] == wanted}


def test_every_hostile_name_gets_exactly_one_outcome_windows_can_open(names_daemon):
    inputs = [_text(n) for n in NAMES + UNSUPPORTED]
    wait_until(lambda: all(_outcomes_for(names_daemon.outbox, n) for n in inputs), 120,
               lambda: f"outcomes so far: {sorted(_documents(names_daemon.outbox))}")  # fmt: skip
    for name in inputs:
        found = _outcomes_for(names_daemon.outbox, name)
        assert len(found) == 1, f"{name!r}: {sorted(found)}"
        [(file_name, document)] = found.items()
        validate_document(document)
        assert windows_openable(file_name), f"{file_name!r} cannot be opened from Windows"
        assert not file_name.startswith("."), "a dotfile would be hidden from the consumer"
        if name in UNSUPPORTED:
            assert document["error"]["code"] == "E_UNSUPPORTED" and "extension" in document["error"]["message"]
            place = "failed"
        else:
            assert document["status"] == "ok" and len(document["frames"]) == 60, name
            place = "done"
        wait_until(lambda: os.path.lexists(os.path.join(names_daemon.inbox, place, name)), 20, f"{name!r} in {place}/")
    files = [n for n in os.listdir(names_daemon.outbox) if n.endswith(".json")]
    assert len(files) == len(inputs)
    assert len({n.casefold() for n in files}) == len(files), f"names collide case-insensitively: {sorted(files)}"
    assert all(len(n.encode("utf-8")) <= 255 for n in files)
    assert daemon_is_healthy(names_daemon)


def test_names_differing_only_in_case_get_distinct_results(names_daemon):
    cases = ["Case.mp4", "case.mp4", "CASE.mp4"]
    wait_until(lambda: all(_outcomes_for(names_daemon.outbox, n) for n in cases), 60)
    published = [next(iter(_outcomes_for(names_daemon.outbox, n))) for n in cases]
    assert len({p.casefold() for p in published}) == 3, published
    assert sorted(p.casefold() for p in published) == ["case.mp4.result.json", "case.mp4~2.result.json", "case.mp4~3.result.json"]


def test_windows_reserved_names_are_escaped(names_daemon):
    expected = {"CON.mp4": "_CON.mp4", "NUL.mp4": "_NUL.mp4", "COM1.mp4": "_COM1.mp4", "lpt\u00b9.mp4": "_lpt\u00b9.mp4",
                "aux.MP4": "_aux.MP4", "con .mp4": "_con .mp4"}  # fmt: skip
    for name, stem in expected.items():
        wait_until(lambda: _outcomes_for(names_daemon.outbox, name), 60)
        assert list(_outcomes_for(names_daemon.outbox, name)) == [f"{stem}.result.json"]
    for name in UNSUPPORTED:
        wait_until(lambda: _outcomes_for(names_daemon.outbox, name), 60)
        published = next(iter(_outcomes_for(names_daemon.outbox, name)))
        assert published.startswith(name.rstrip(". ")) and published.endswith(".error.json")


def test_an_nfd_name_from_macos_keeps_its_bytes_in_the_outcome_name(names_daemon):
    nfd = "Cafe\u0301 NFD.mp4"  # "é" as e + combining acute, as macOS uploads write it
    wait_until(lambda: _outcomes_for(names_daemon.outbox, nfd), 60)
    [file_name] = _outcomes_for(names_daemon.outbox, nfd)
    assert os.fsencode(file_name) == os.fsencode(nfd) + b".result.json", "a consumer polls for the name it wrote"
    assert (names_daemon.outbox / (nfd + ".result.json")).is_file()
    assert not (names_daemon.outbox / ("Caf\u00e9 NFD.mp4.result.json")).exists()


def test_shell_metacharacters_in_names_execute_nothing(names_daemon):
    dangerous = [n for n in NAMES if isinstance(n, str) and PWNED in n]
    wait_until(lambda: all(_outcomes_for(names_daemon.outbox, n) for n in dangerous), 60)
    places = [REPO, names_daemon.root, Path.cwd(), Path("/"), Path("/tmp"), Path.home()]
    for place in places:
        assert not (place / PWNED).exists(), f"{PWNED} created in {place}: a name was executed"
    for directory, _, files in os.walk(names_daemon.root):
        assert PWNED not in files, f"{PWNED} created in {directory}"
    for name in dangerous:  # the names arrive intact, unquoted and unexpanded
        document = next(iter(_outcomes_for(names_daemon.outbox, name).values()))
        assert document["input"]["name"] == name


def test_a_name_that_is_not_utf8_is_processed_and_reported_in_valid_json(names_daemon):
    raw = b"\xff\xfe not utf-8.mp4"
    wait_until(lambda: _outcomes_for(names_daemon.outbox, os.fsdecode(raw)), 60)
    [(file_name, _)] = _outcomes_for(names_daemon.outbox, os.fsdecode(raw)).items()
    assert file_name == "\ufffd\ufffd not utf-8.mp4.result.json"
    (names_daemon.outbox / file_name).read_bytes().decode("utf-8")  # strict: valid UTF-8
    assert os.path.lexists(os.path.join(os.fsencode(names_daemon.inbox), b"done", raw))


def test_the_same_name_submitted_twice_gets_a_second_outcome(names_daemon):
    drop(SHORT_CLIP, names_daemon.inbox, "twice.mp4")
    assert wait_outcome(names_daemon.outbox, "twice.mp4", timeout=60)[0] == "result"
    wait_until(lambda: (names_daemon.inbox / "done" / "twice.mp4").exists(), 20)
    drop(SHORT_CLIP, names_daemon.inbox, "twice.mp4")
    assert wait_outcome(names_daemon.outbox, "twice.mp4~2", timeout=60)[0] == "result"
    wait_until(lambda: (names_daemon.inbox / "done" / "twice~2.mp4").exists(), 20)
    assert (names_daemon.inbox / "done" / "twice.mp4").exists()


def test_symlinks_and_special_files_are_refused_and_never_followed(names_daemon, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-" + TOKEN)
    inbox = names_daemon.inbox
    os.symlink(SHORT_CLIP, inbox / "link-outside.mp4")  # a valid video, outside the inbox
    os.symlink(secret, inbox / "secret.mp4")
    os.symlink(tmp_path / "does-not-exist.mp4", inbox / "dangling.mp4")
    os.mkfifo(inbox / "fifo.mp4")  # opening it for reading would block forever
    before = secret.stat()
    for name in ("link-outside.mp4", "secret.mp4", "dangling.mp4", "fifo.mp4"):
        kind, report = wait_outcome(names_daemon.outbox, name, timeout=60)
        assert kind == "error" and report["error"]["code"] == "E_UNSUPPORTED", report
        assert "not a regular file" in report["error"]["message"] and "never followed" in report["error"]["message"]
        assert TOKEN not in json.dumps(report)
        moved = os.path.join(inbox, "failed", name)
        wait_until(lambda: os.path.lexists(moved), 20)
        assert not stat.S_ISREG(os.lstat(moved).st_mode), "the link itself is moved, not its target"
        starts = [e for e in names_daemon.log_events() if e.get("event") == "job.start" and e.get("input") == name]
        assert starts == [], "a symlink must never reach the decoder"
    assert secret.read_text() == "TOPSECRET-" + TOKEN and secret.stat().st_mtime_ns == before.st_mtime_ns
    assert SHORT_CLIP.is_file()
    assert daemon_is_healthy(names_daemon)


def test_a_symlink_planted_at_a_lock_path_is_never_followed(names_daemon, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("ORIGINAL")
    before = victim.stat()
    locks = names_daemon.inbox / ".posed" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    os.symlink(victim, locks / "planted.mp4.lock")
    drop(SHORT_CLIP, names_daemon.inbox, "planted.mp4")
    # The planted link is removed (unlink never follows it) and the video is processed normally.
    assert wait_outcome(names_daemon.outbox, "planted.mp4", timeout=60)[0] == "result"
    assert victim.read_text() == "ORIGINAL" and victim.stat().st_mtime_ns == before.st_mtime_ns
    removed = [e for e in names_daemon.log_events() if e.get("event") == "claim.planted_link_removed"]
    assert len(removed) == 1 and removed[0]["target"] == str(victim)
    assert daemon_is_healthy(names_daemon)


def test_directories_named_like_videos_are_ignored(names_daemon):
    folder = names_daemon.inbox / "folder.mp4"
    folder.mkdir()
    (folder / "inner.mp4").write_bytes(SHORT_CLIP.read_bytes())
    drop(SHORT_CLIP, names_daemon.inbox, "after-folder.mp4")  # arrives later, so the folder has been seen
    assert wait_outcome(names_daemon.outbox, "after-folder.mp4", timeout=60)[0] == "result"
    assert not [n for n in outcomes(names_daemon.outbox) if n.startswith(("folder", "inner"))]
    assert folder.is_dir() and (folder / "inner.mp4").is_file()
    assert not any(e.get("input") == "folder.mp4" for e in names_daemon.log_events())


def _wait_current(daemon: DaemonProcess, name: str, frames: int = 3) -> None:
    def running() -> bool:
        job = daemon.status().get("current_job") or {}
        return job.get("input_name") == name and (job.get("frames_done") or 0) >= frames

    wait_until(running, 60, f"{name} being processed")


def test_an_input_deleted_while_it_is_processed_is_reported_vanished(names_daemon):
    drop(SHORT_CLIP, names_daemon.inbox, "slow-vanish.mp4")
    _wait_current(names_daemon, "slow-vanish.mp4")
    os.unlink(names_daemon.inbox / "slow-vanish.mp4")
    kind, report = wait_outcome(names_daemon.outbox, "slow-vanish.mp4", timeout=60)
    assert kind == "error" and report["error"]["code"] == "E_INPUT_VANISHED"
    assert "deleted while it was being processed" in report["error"]["message"]
    assert not (names_daemon.outbox / "slow-vanish.mp4.result.json").exists()
    assert not (names_daemon.inbox / "failed" / "slow-vanish.mp4").exists()
    assert daemon_is_healthy(names_daemon)


def test_an_input_replaced_while_it_is_processed_is_reported_changed(names_daemon):
    drop(SHORT_CLIP, names_daemon.inbox, "slow-replace.mp4")
    _wait_current(names_daemon, "slow-replace.mp4")
    drop(SHORT_CLIP, names_daemon.inbox, "slow-replace.mp4")  # a new upload renamed over it
    kind, report = wait_outcome(names_daemon.outbox, "slow-replace.mp4", timeout=60)
    assert kind == "error" and report["error"]["code"] == "E_INPUT_CHANGED"
    assert "replaced or modified while it was being processed" in report["error"]["message"]
    assert "Submit it again" in report["error"]["hint"]
    # The file now under that name is the one the report is about; it goes to failed/.
    wait_until(lambda: (names_daemon.inbox / "failed" / "slow-replace.mp4").exists(), 20)
    assert len(_outcomes_for(names_daemon.outbox, "slow-replace.mp4")) == 1
    assert daemon_is_healthy(names_daemon)


def daemon_is_healthy(daemon: DaemonProcess) -> bool:
    status = daemon.status()
    assert daemon.alive(), daemon.log_tail()
    assert status.get("state") in ("ready", "busy"), status
    assert status["counters"]["worker_crashes"] == 0 and status["counters"]["worker_restarts"] == 0
    return True
