"""Answers under the client's own name, at once, in one order (issue 21, items 9-13).

Real daemons, real files: a bad sidecar whose ``job_id`` is valid is answered under that id;
refusals that need no decoding (an unsupported extension, a bad sidecar) are published while a
long video is still being processed, not after it; progress counts the frames of the job's cut;
priority runs one way (BullMQ's: 0/none first, then 1, 2, ...) in both intakes; a resubmitted
name follows one numbering rule in the outbox and in done/; `posed run --queue` says where its
work comes from. Assertions are on events and their order, never on elapsed time.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from daemon.publishing.contract import validate_file
from tests.daemon_harness import SHORT_CLIP, DaemonProcess, drop, outcomes, wait_outcome, write_bytes
from tests.helpers import wait_until

FAULT = ["backend.name=fault"]
LOOPS = 20  # the 60-frame clip x 20: 1,200 frames; at 50 ms a frame, a minute of work


def _sidecar(inbox: Path, video: str, document: dict | bytes) -> None:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    write_bytes(inbox, f"{video}.job.json", body)


def _events(daemon: DaemonProcess, name: str) -> list[dict]:
    return [e for e in daemon.log_events() if e.get("event") == name]


def _long_clip(directory: Path) -> Path:
    """The shared clip looped LOOPS times by stream copy (no re-encoding): a long real video."""
    import imageio_ffmpeg

    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "long-source.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-stream_loop", str(LOOPS - 1), "-i", str(SHORT_CLIP),
                    "-c", "copy", "-y", str(target)], check=True, timeout=120)  # fmt: skip
    return target


# -- item 9: a bad sidecar with a valid job_id --------------------------------------------------


def test_a_bad_option_is_reported_under_the_valid_job_id_with_the_client_echo(daemons) -> None:
    daemon = daemons(overrides=FAULT).wait_ready()
    _sidecar(daemon.inbox, "a.mp4", {"job_id": "upload-9", "options": {"preview": "yes"}, "metadata": {"user": 7}})
    drop(SHORT_CLIP, daemon.inbox, "a.mp4")
    kind, report = wait_outcome(daemon.outbox, "upload-9")
    assert kind == "error" and report["error"]["code"] == "E_BAD_SIDECAR"
    assert report["error"]["details"]["field"] == "options.preview"
    assert report["client"] == {"job_id": "upload-9", "metadata": {"user": 7}}

    _sidecar(daemon.inbox, "b.mp4", b'{"job_id": "upload-10", "optoins": {}, "metadata": {"n": 1e400}}')  # typo'd key, bad metadata
    drop(SHORT_CLIP, daemon.inbox, "b.mp4")
    kind, report = wait_outcome(daemon.outbox, "upload-10")
    assert kind == "error" and "optoins" in report["error"]["message"]
    assert report["client"] == {"job_id": "upload-10", "metadata": None}, "invalid metadata is not echoed"

    # The one rule for the rest: no valid job_id to answer under, so the video's name.
    _sidecar(daemon.inbox, "c.mp4", b'{"job_id": "upload-11", "options": ')  # does not parse
    drop(SHORT_CLIP, daemon.inbox, "c.mp4")
    _sidecar(daemon.inbox, "d.mp4", {"job_id": "bad/id", "options": {"preview": "yes"}})  # the id itself is bad
    drop(SHORT_CLIP, daemon.inbox, "d.mp4")
    for video in ("c.mp4", "d.mp4"):
        kind, report = wait_outcome(daemon.outbox, video)
        assert kind == "error" and report["error"]["code"] == "E_BAD_SIDECAR" and report.get("client") is None
    assert not [name for name in outcomes(daemon.outbox) if name.startswith(("a.mp4", "b.mp4", "upload-11"))]
    for path in outcomes(daemon.outbox).values():
        validate_file(path)  # every report, with or without client, matches error.schema.json
    wait_until(lambda: (daemon.inbox / "failed" / "a.mp4.job.json").exists(), 10)


# -- item 10: refusals are answered at intake, not behind a long video ---------------------------


def test_refusals_needing_no_decoding_are_published_while_a_long_video_is_processed(daemons, tmp_path) -> None:
    long_clip = _long_clip(tmp_path / "media")
    slow = [*FAULT, "backend.fault.trigger=long", "backend.fault.slow_ms_per_frame=50", "worker.shutdown_grace_s=0"]
    daemon = daemons(overrides=slow).wait_ready()
    drop(long_clip, daemon.inbox, "long.mp4")
    wait_until(lambda: (daemon.status().get("current_job") or {}).get("frames_done"), 60, daemon.log_tail)

    write_bytes(daemon.inbox, "notes.txt", b"meeting notes, not a video\n")
    _sidecar(daemon.inbox, "typo.mp4", {"job_id": "typo-1", "options": {"start_fame": 3}})
    drop(SHORT_CLIP, daemon.inbox, "typo.mp4")
    assert wait_outcome(daemon.outbox, "notes.txt")[1]["error"]["code"] == "E_UNSUPPORTED"
    assert wait_outcome(daemon.outbox, "typo-1")[1]["error"]["code"] == "E_BAD_SIDECAR"

    # The order of events is the claim: both answers went out while long.mp4 was in progress.
    wait_until(lambda: len(_events(daemon, "job.outcome")) >= 2, 30, daemon.log_tail)
    events = daemon.log_events()
    order = [(e["event"], e.get("published") or e.get("input")) for e in events if e.get("event") in ("job.start", "job.outcome")]
    assert order[0] == ("job.start", "long.mp4"), order
    assert {published for kind, published in order[1:]} == {"notes.txt.error.json", "typo-1.error.json"}, order
    assert daemon.status()["current_job"]["input_name"] == "long.mp4"
    assert not [name for name in outcomes(daemon.outbox) if name.startswith("long")]
    assert daemon.stop() == 0  # long.mp4 is handed back unanswered, for the next start


# -- item 11: progress of a cut -----------------------------------------------------------------


def test_progress_counts_the_frames_of_the_cut_not_of_the_whole_video(daemons) -> None:
    daemon = daemons(overrides=[*FAULT, "backend.fault.slow_ms_per_frame=150"]).wait_ready()
    _sidecar(daemon.inbox, "cut.mp4", {"options": {"start_frame": 40, "end_frame": 50}})
    drop(SHORT_CLIP, daemon.inbox, "cut.mp4")
    seen: list[dict] = []

    def sample() -> bool:
        job = daemon.status().get("current_job")
        if job and job["stage"] == "inference":
            seen.append(job)
        return bool(seen) and seen[-1]["frames_done"] >= 5

    wait_until(sample, 60, daemon.log_tail)
    job = seen[-1]
    assert job["frames_total"] == 10, "10 frames to process, not the video's 60"
    assert job["percent"] == round(100 * job["frames_done"] / 10, 1) and job["percent"] >= 50
    assert job["eta_seconds"] is not None and job["eta_seconds"] * job["frames_per_second"] <= 10 - job["frames_done"] + 0.5
    assert all(s["frames_done"] <= 10 and s["percent"] <= 100 for s in seen)
    assert wait_outcome(daemon.outbox, "cut.mp4")[0] == "result"


# -- item 12: one priority direction ------------------------------------------------------------


def test_folder_priority_runs_none_first_then_the_lowest_number_as_bullmq_does(daemons, tmp_path) -> None:
    inbox = tmp_path / "inbox"
    for name, priority in [("p3.mp4", 3), ("p1.mp4", 1), ("none.mp4", None), ("p2.mp4", 2), ("zero.mp4", 0)]:
        if priority is not None:
            _sidecar(inbox, name, {"options": {"priority": priority}})
        drop(SHORT_CLIP, inbox, name)
    daemon = daemons(overrides=FAULT)  # all five wait when it starts: its first scan sees them together
    wait_until(lambda: len(_events(daemon, "job.outcome")) == 5, 120, daemon.log_tail)
    started = [e["input"] for e in _events(daemon, "job.start")]
    assert started == ["none.mp4", "zero.mp4", "p1.mp4", "p2.mp4", "p3.mp4"]


# -- item 13: one numbering rule; the queue's ready line -----------------------------------------


def test_a_resubmitted_name_is_numbered_before_its_type_suffix_in_the_outbox_and_in_done(daemons) -> None:
    daemon = daemons(overrides=FAULT).wait_ready()
    for _ in range(2):
        drop(SHORT_CLIP, daemon.inbox, "run.mp4")
        wait_until(lambda: not (daemon.inbox / "run.mp4").exists(), 60, daemon.log_tail)
    kind, second = wait_outcome(daemon.outbox, "run.mp4~2")
    assert kind == "result" and second["input"]["moved_to"].endswith("/done/run~2.mp4")
    assert sorted(outcomes(daemon.outbox)) == ["run.mp4.result.json", "run.mp4~2.result.json"]
    assert sorted(p.name for p in (daemon.inbox / "done").iterdir()) == ["run.mp4", "run~2.mp4"]


def test_queue_mode_says_where_its_jobs_come_from_not_an_inbox(redis_server, daemons) -> None:
    from tests.test_queue_daemon import queue_mode

    daemon = daemons("q", queue_mode(redis_server.url)).wait_ready(120)
    wait_until(lambda: "posed: ready" in daemon.log_path.read_text(errors="replace"), 30, daemon.log_tail)
    [line] = [line for line in daemon.log_path.read_text().splitlines() if line.startswith("posed: ready")]
    assert "drop videos" not in line and "inbox" not in line
    assert line.startswith("posed: ready, taking BullMQ jobs from queue ") and redis_server.url.split("@")[-1] in line


def test_queue_priority_runs_in_the_same_direction_as_the_folder(redis_server, daemons) -> None:
    from tests.test_queue_daemon import queue_mode
    from tests.test_queue_intake import QUEUE, bullmq_call

    # As the Node producer (node/src/queue.mjs) enqueues: options.priority becomes BullMQ's priority.
    names = {}
    for job_id, priority in [("q3", 3), ("q1", 1), ("qnone", None), ("q2", 2)]:
        options = {} if priority is None else {"priority": priority}
        bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": job_id, "options": options}, options)
        names[f"bullmq:{QUEUE}:{bull_id}:"] = job_id
    daemon = daemons("q", queue_mode(redis_server.url))  # every job waits before the daemon takes one
    wait_until(lambda: len(_events(daemon, "job.outcome")) == 4, 120, daemon.log_tail)
    started = [names[prefix] for e in _events(daemon, "job.start") for prefix in names if e["job_id"].startswith(prefix)]
    assert started == ["qnone", "q1", "q2", "q3"], started


def test_the_rate_and_eta_of_a_cut_count_from_its_first_frame_not_from_decoding_up_to_it() -> None:
    """The 900-frame cut at frame 17,100 of an 18,000-frame video (the issue's case): 60 s spent
    decoding up to the cut must not make 450 frames in 6 s look like 7 frames/s."""
    from daemon.intake.base import ClaimedInput
    from daemon.lifecycle import Job, job_progress
    from daemon.records import JobOptions

    item = ClaimedInput(path=Path("long.mp4"), job_id="long", wanted_stem="long.mp4",
                        options=JobOptions(start_frame=17_100, end_frame=18_000))  # fmt: skip
    job = Job(item, started_at=100.0, frames_total=18_000, frames_done=17_100 + 450, cut_entered_at=160.0, stage="inference")
    progress = job_progress(job, now=166.0)
    assert (progress["frames_done"], progress["frames_total"], progress["percent"]) == (450, 900, 50.0)
    assert progress["frames_per_second"] == 75.0 and progress["eta_seconds"] == 6.0
