"""End to end: a real ``posed run`` process, real videos dropped into a real inbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from daemon.publishing.contract import validate_document, validate_outbox
from tests.daemon_harness import LONG_CLIP, REPO, SHORT_CLIP, OutboxReader, drop, outcomes, wait_outcome, write_bytes
from tests.helpers import wait_until


def test_videos_and_broken_files_each_get_exactly_one_outcome(daemons, tmp_path):
    daemon = daemons().wait_ready()
    reader = OutboxReader(daemon.outbox, validate_document)
    reader.start()
    drop(LONG_CLIP, daemon.inbox, "run.mp4")
    write_bytes(daemon.inbox, "empty.mp4", b"")
    write_bytes(daemon.inbox, "notes.mp4", b"this is text, not a video\n" * 10)

    kind, result = wait_outcome(daemon.outbox, "run.mp4", timeout=90)
    assert kind == "result"
    frames = result["frames"]
    assert len(frames) == 180 == result["video"]["decoded_frame_count"] == result["summary"]["frames"]
    assert [f["frame_index"] for f in frames] == list(range(180))
    with_person = [f for f in frames if f["people"] and len(f["people"][0]["keypoints"]) == 33]
    assert len(with_person) >= 0.95 * 180
    person = with_person[0]["people"][0]
    x, y, confidence = person["keypoints"][0]  # [x, y, confidence] in backend.keypoint_names order
    assert 0 <= x <= 1920 and 0 <= y <= 1088 and 0 <= confidence <= 1
    assert result["backend"]["keypoint_names"][0] == "nose"
    assert len(person["joints_3d"]) == 33
    assert result["video"]["width"] == 1920 and result["video"]["nominal_fps"] == 30.0

    empty_kind, empty = wait_outcome(daemon.outbox, "empty.mp4")
    text_kind, text = wait_outcome(daemon.outbox, "notes.mp4")
    assert (empty_kind, text_kind) == ("error", "error")
    assert empty["error"]["code"] == "E_EMPTY_FILE"
    assert text["error"]["code"] == "E_NOT_A_VIDEO"
    assert "empty" in empty["error"]["message"] and empty["error"]["hint"]

    # Inputs leave the inbox only after their outcome is published (so a moment later), to the right folder.
    wait_until(lambda: not any((daemon.inbox / name).exists() for name in ("run.mp4", "empty.mp4", "notes.mp4")), 10)
    assert (daemon.inbox / "done" / "run.mp4").is_file()
    assert (daemon.inbox / "failed" / "empty.mp4").is_file()
    assert (daemon.inbox / "failed" / "notes.mp4").is_file()
    assert sorted(outcomes(daemon.outbox)) == ["empty.mp4.error.json", "notes.mp4.error.json", "run.mp4.result.json"]
    assert daemon.alive()
    wait_until(lambda: daemon.status().get("counters", {}).get("errors") == 2, 10)
    assert daemon.status()["state"] == "ready" and daemon.status()["counters"]["results"] == 1
    reader.stop()
    assert reader.partial == [] and reader.reads > 0
    assert validate_outbox(daemon.outbox)
    assert not list((daemon.inbox / ".posed" / "locks").glob("*.lock"))
    assert daemon.stop() == 0


def test_a_file_still_being_written_is_not_claimed_early(daemons):
    # settle_s well above the 0.4 s gaps: a writer descheduled on a loaded machine must not
    # make an unfinished copy look settled (that would be the daemon behaving correctly).
    daemon = daemons(overrides=["inbox.settle_s=3.0"]).wait_ready()
    data = SHORT_CLIP.read_bytes()
    target = daemon.inbox / "slow.mp4"
    # Explorer-style: the final size is set first, then the data arrives over ~3 s.
    with open(target, "wb") as handle:
        handle.truncate(len(data))
        chunk = len(data) // 8 + 1
        for offset in range(0, len(data), chunk):
            handle.seek(offset)
            handle.write(data[offset : offset + chunk])
            handle.flush()
            os.fsync(handle.fileno())
            time.sleep(0.4)
    last_write = time.time()
    kind, result = wait_outcome(daemon.outbox, "slow.mp4", timeout=60)
    assert kind == "result", result
    assert len(result["frames"]) == 60
    claims = [e for e in daemon.log_events() if e.get("event") == "claim.acquired" and e.get("video") == "slow.mp4"]
    assert len(claims) == 1
    claimed_at = _epoch(claims[0]["timestamp"])
    assert claimed_at >= last_write, f"claimed {last_write - claimed_at:.2f} s before the copy finished"


def test_two_daemons_on_one_inbox_never_process_the_same_video(daemons):
    first = daemons("d1").wait_ready()
    second = daemons("d2").wait_ready()
    names = [f"clip{i}.mp4" for i in range(8)]
    for name in names:
        drop(SHORT_CLIP, first.inbox, name)
    for name in names:
        kind, _ = wait_outcome(first.outbox, name, timeout=120)
        assert kind == "result"
    assert sorted(outcomes(first.outbox)) == sorted(f"{n}.result.json" for n in names)
    processed = {}
    for daemon in (first, second):
        for event in daemon.log_events():
            if event.get("event") == "job.start":
                assert event["input"] not in processed, f"{event['input']} processed by {processed.get(event['input'])} and {daemon.name}"
                processed[event["input"]] = daemon.name
    assert sorted(processed) == sorted(names)
    assert len(set(processed.values())) == 2, f"one daemon did everything: {processed}"


def test_a_lock_left_by_a_dead_daemon_is_taken_over(daemons, tmp_path):
    inbox = tmp_path / "inbox"
    drop(SHORT_CLIP, inbox, "orphan.mp4")
    # A real process claims the video the way a daemon does, then dies holding the lock.
    claimer = subprocess.run(
        [sys.executable, "-c", CLAIM_AND_DIE, str(inbox)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert claimer.returncode == 0, claimer.stderr
    dead_pid = int(claimer.stdout.split()[-1])
    assert (inbox / ".posed" / "locks" / "orphan.mp4.lock").exists()

    daemon = daemons().wait_ready()
    kind, _ = wait_outcome(daemon.outbox, "orphan.mp4", timeout=60)
    assert kind == "result"
    takeovers = [e for e in daemon.log_events() if e.get("event") == "claim.takeover"]
    assert len(takeovers) == 1 and str(dead_pid) in json.dumps(takeovers[0])


CLAIM_AND_DIE = """
import os, sys
from daemon.intake.claim import ClaimIdentity, ClaimManager, lock_dir_for
manager = ClaimManager(lock_dir_for(sys.argv[1]), ClaimIdentity.current("ghost-instance", "ghost"), 60.0)
assert manager.try_claim("orphan.mp4") is not None
print(os.getpid())
"""


def test_a_resubmitted_name_gets_a_new_result_and_never_overwrites(daemons):
    daemon = daemons().wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "again.mp4")
    wait_outcome(daemon.outbox, "again.mp4")
    first = (daemon.outbox / "again.mp4.result.json").read_bytes()
    wait_until(lambda: not (daemon.inbox / "again.mp4").exists(), 10)
    drop(SHORT_CLIP, daemon.inbox, "again.mp4")
    kind, second = wait_outcome(daemon.outbox, "again.mp4~2")
    assert kind == "result"
    assert (daemon.outbox / "again.mp4.result.json").read_bytes() == first
    wait_until(lambda: not (daemon.inbox / "again.mp4").exists(), 10)  # moved only after its outcome is published
    assert (daemon.inbox / "done" / "again.mp4").exists() and (daemon.inbox / "done" / "again~2.mp4").exists()


def _epoch(iso_text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def test_a_job_sidecar_names_the_outcome_and_is_echoed_back(daemons):
    daemon = daemons().wait_ready()
    sidecar = {"job_id": "upload-4711", "options": {"start_frame": 10, "end_frame": 40}, "metadata": {"user": 12, "note": "größe"}}
    write_bytes(daemon.inbox, "abc.mp4.job.json", json.dumps(sidecar).encode())
    drop(SHORT_CLIP, daemon.inbox, "abc.mp4")
    kind, result = wait_outcome(daemon.outbox, "upload-4711")
    assert kind == "result"
    assert result["client"] == {"job_id": "upload-4711", "metadata": {"user": 12, "note": "größe"}}
    assert [f["frame_index"] for f in result["frames"]] == list(range(10, 40))
    wait_until(lambda: (daemon.inbox / "done" / "abc.mp4.job.json").exists(), 10)

    write_bytes(daemon.inbox, "bad.mp4.job.json", b'{"job_id": "x", "optoins": {}}')
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    kind, report = wait_outcome(daemon.outbox, "x")  # its job_id is valid: the report goes out under it
    assert kind == "error" and report["error"]["code"] == "E_BAD_SIDECAR" and "optoins" in report["error"]["message"]
    assert report["client"] == {"job_id": "x", "metadata": None}
    assert daemon.alive()


def test_after_a_takeover_the_status_counts_attempts_as_the_claim_log_does(daemons, tmp_path):
    inbox = tmp_path / "inbox"
    drop(SHORT_CLIP, inbox, "orphan.mp4")
    claimer = subprocess.run([sys.executable, "-c", CLAIM_AND_DIE, str(inbox)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert claimer.returncode == 0, claimer.stderr
    slow = ["backend.name=fault", "backend.fault.slow_ms_per_frame=100"]  # >= 6 s of work: time to look
    daemon = daemons(overrides=slow)  # not wait_ready(): it may take the video before it says "ready"
    busy = wait_until(lambda: (daemon.status().get("current_job") or {}).get("attempt"), 120, daemon.log_tail)
    [takeover] = [e for e in daemon.log_events() if e.get("event") == "claim.takeover"]
    starts = [e for e in daemon.log_events() if e.get("event") == "job.start"]
    assert takeover["attempt"] == 2 == busy == starts[0]["attempt"]
    assert wait_outcome(daemon.outbox, "orphan.mp4", timeout=120)[0] == "result"


def test_the_clients_job_id_is_in_status_current_job_and_in_the_jobs_log_lines(daemons):
    slow = ["backend.name=fault", "backend.fault.slow_ms_per_frame=100"]  # >= 6 s of work: time to look
    daemon = daemons(overrides=slow).wait_ready()
    write_bytes(daemon.inbox, "abc.mp4.job.json", json.dumps({"job_id": "upload-9"}).encode())
    drop(SHORT_CLIP, daemon.inbox, "abc.mp4")
    current = wait_until(lambda: daemon.status().get("current_job"), 120, daemon.log_tail)
    assert current["client_job_id"] == "upload-9" and current["input_name"] == "abc.mp4"
    assert current["job_id"] != "upload-9"  # the daemon's own id: the manifest's job_id
    kind, result = wait_outcome(daemon.outbox, "upload-9", timeout=120)
    assert kind == "result" and result["client"]["job_id"] == "upload-9" and result["job_id"] == current["job_id"]
    events = [e for e in daemon.log_events() if e.get("job_id") == current["job_id"]]
    for name in ("job.start", "job.done"):  # the supervisor's line and the worker's
        [line] = [e for e in events if e.get("event") == name]
        assert line["client_job_id"] == "upload-9", line
    wait_until(lambda: not (daemon.inbox / "abc.mp4").exists(), 10)
    drop(SHORT_CLIP, daemon.inbox, "plain.mp4")
    assert wait_outcome(daemon.outbox, "plain.mp4", timeout=120)[0] == "result"
    plain = [e for e in daemon.log_events() if e.get("event") == "job.start" and e.get("input") == "plain.mp4"]
    assert plain and "client_job_id" not in plain[0]


def test_posed_status_shows_the_clients_job_id_next_to_the_video() -> None:
    from daemon.ops.status import render

    doc = json.loads((REPO / "daemon" / "schemas" / "examples" / "status.example.json").read_text(encoding="utf-8"))
    assert "abc123.mp4 [upload-4711] (inference, attempt 1)" in render(doc)
    doc["current_job"]["client_job_id"] = None
    assert "abc123.mp4 (inference, attempt 1)" in render(doc)
