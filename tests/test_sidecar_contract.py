"""The sidecar contract as a producer meets it (issue 10, item 12), with real daemons.

Rules (README, "The folder protocol"): a job id that looks like a video file name may only be
the video's own name; Windows device names (COM0-9, LPT0-9, CON, ...) are refused; a sidecar
written in place is waited for until it stands still; one that arrives while its video settles
is honoured; one left without its video goes to ``failed/`` after ``inbox.orphan_sidecar_s``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from daemon.errors import ErrorCode, JobError
from daemon.intake.sidecar import parse_sidecar
from tests.daemon_harness import SHORT_CLIP, drop, outcomes, wait_outcome, write_bytes
from tests.helpers import wait_until

FAULT = ["backend.name=fault"]


def _sidecar(inbox: Path, video: str, document: dict) -> None:
    write_bytes(inbox, f"{video}.job.json", json.dumps(document).encode())


def _events(daemon, name: str) -> list[dict]:
    return [e for e in daemon.log_events() if e.get("event") == name]


@pytest.mark.parametrize("job_id", ["LPT0", "COM0", "lpt0.upload", "COM9", "nul"])
def test_windows_device_names_are_refused_as_job_ids(job_id: str) -> None:
    with pytest.raises(JobError) as caught:
        parse_sidecar(json.dumps({"job_id": job_id}), [])
    assert caught.value.code is ErrorCode.BAD_SIDECAR and caught.value.details["field"] == "job_id"


def test_a_job_id_naming_another_upload_cannot_take_its_outcome_name(daemons) -> None:
    daemon = daemons(overrides=FAULT).wait_ready()
    _sidecar(daemon.inbox, "hijack.mp4", {"job_id": "victim.mp4"})
    drop(SHORT_CLIP, daemon.inbox, "hijack.mp4")
    kind, report = wait_outcome(daemon.outbox, "hijack.mp4")
    assert kind == "error" and report["error"]["code"] == "E_BAD_SIDECAR" and report["error"]["details"]["field"] == "job_id"
    drop(SHORT_CLIP, daemon.inbox, "victim.mp4")
    assert wait_outcome(daemon.outbox, "victim.mp4")[0] == "result"
    _sidecar(daemon.inbox, "own.MOV", {"job_id": "own.MOV"})  # its own name is fine
    drop(SHORT_CLIP, daemon.inbox, "own.MOV")
    assert wait_outcome(daemon.outbox, "own.MOV")[0] == "result"
    assert not [n for n in outcomes(daemon.outbox) if "~" in n], "nobody was pushed to a ~N name"


def test_a_sidecar_written_in_place_or_after_its_video_is_honoured(daemons) -> None:
    daemon = daemons(overrides=[*FAULT, "inbox.settle_s=3"]).wait_ready()
    inbox = daemon.inbox
    sidecar = inbox / "inplace.mp4.job.json"
    sidecar.write_bytes(b'{"job_id": "inplace-1", "meta')  # a producer caught mid-write
    drop(SHORT_CLIP, inbox, "inplace.mp4")
    wait_until(lambda: _events(daemon, "sidecar.not_settled"), 60, daemon.log_tail)
    sidecar.write_bytes(json.dumps({"job_id": "inplace-1", "metadata": {"n": 1}}).encode())
    kind, result = wait_outcome(daemon.outbox, "inplace-1", timeout=60)
    assert kind == "result" and result["client"]["metadata"] == {"n": 1}

    drop(SHORT_CLIP, inbox, "late.mp4")
    _sidecar(inbox, "late.mp4", {"job_id": "late-1"})  # after the video, while it settles
    assert wait_outcome(daemon.outbox, "late-1", timeout=60)[0] == "result"
    assert not [n for n in outcomes(daemon.outbox) if n.startswith(("inplace.mp4", "late.mp4"))]


def test_a_sidecar_without_its_video_moves_to_failed_after_the_orphan_time(daemons) -> None:
    daemon = daemons(overrides=[*FAULT, "inbox.orphan_sidecar_s=1", "inbox.rescan_interval_s=0.5"]).wait_ready()
    inbox = daemon.inbox
    drop(SHORT_CLIP, inbox, "early.mp4")
    assert wait_outcome(daemon.outbox, "early.mp4")[0] == "result"
    wait_until(lambda: (inbox / "done" / "early.mp4").exists(), 30)
    _sidecar(inbox, "early.mp4", {"job_id": "too-late"})  # its video is already answered
    _sidecar(inbox, "never.mp4", {"job_id": "never-1"})  # its video never comes
    wait_until(lambda: (inbox / "failed" / "early.mp4.job.json").exists() and (inbox / "failed" / "never.mp4.job.json").exists(),
               60, daemon.log_tail)  # fmt: skip
    assert {e["sidecar"] for e in _events(daemon, "sidecar.orphaned")} == {"early.mp4.job.json", "never.mp4.job.json"}
    assert sorted(outcomes(daemon.outbox)) == ["early.mp4.result.json"], "no outcome is made for a lone sidecar"
    assert not [n for n in os.listdir(inbox) if n.endswith(".job.json")]
