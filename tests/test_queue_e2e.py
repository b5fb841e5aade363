"""End to end, real processes: a Node producer (bullmq npm) enqueues 20 jobs, two posed daemons
in queue mode take them, one is ``kill -9``ed mid-job and Redis restarts while jobs run.

Every job must end completed or failed exactly once with exactly one outcome file, a reader
polling the outbox must never see a partial file, Node must see progress for every completed
job, the killed daemon's job must be completed by the other daemon, and the bad input must
fail once, without retry, with its error code first in the failure reason. The fault backend
(real worker process, real decoding, a synthetic skeleton at 25 ms a frame) keeps it short.
"""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict

import pytest

from tests.daemon_harness import MEDIA, SHORT_CLIP, STREET_CLIP, OutboxReader, outcomes
from tests.helpers import wait_until
from tests.test_queue_intake import NODE_DIR, bullmq_call, node_modules, queue_validator  # noqa: F401 - fixture

QUEUE = "posed-test"  # bullmq_call's queue
JOBS = 20


@pytest.mark.slow
def test_twenty_jobs_two_daemons_a_kill_and_a_redis_restart(tmp_path, redis_server, daemons, node_modules) -> None:  # noqa: F811
    bad = tmp_path / "media" / "bad.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"this is not a video, just text with an mp4 name\n" * 64)
    inputs = [str(SHORT_CLIP if i % 2 else STREET_CLIP) for i in range(JOBS - 1)] + [str(bad)]
    queue_mode = [
        "intake.kind=bullmq", f"intake.url={redis_server.url}", f"intake.queue={QUEUE}",
        f"intake.input_roots=[{MEDIA},{bad.parent}]", "intake.lock_duration_s=4", "intake.stalled_interval_s=1",
        "backend.name=fault", "backend.fault.slow_ms_per_frame=25",
    ]  # fmt: skip
    first, second = daemons("qa", queue_mode), daemons("qb", queue_mode)
    first.wait_ready(120)
    second.wait_ready(120)
    reader = OutboxReader(first.outbox)
    reader.start()
    producer = subprocess.Popen(
        ["node", str(NODE_DIR / "bin" / "queue-producer.mjs"), "--url", redis_server.url, "--queue", QUEUE, "--attempts", "3", *inputs],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        running = wait_until(lambda: (first.status().get("current_job") or {}).get("frames_done", 0) >= 5
                             and first.status()["current_job"], 120, lambda: f"qa busy; log:\n{first.log_tail()}")
        killed_job = running["job_id"].split(":")[2]  # bullmq:<queue>:<id>:<timestamp>
        first.kill9()
        wait_until(lambda: second.status().get("current_job") is not None, 60, "qb busy")
        redis_server.restart()  # while qb holds a job
        out, err = producer.communicate(timeout=600)
    finally:
        producer.kill()
        reader.stop()
    assert producer.returncode == 1, f"exit {producer.returncode}: {err}\n{second.log_tail()}"  # 1: a job failed

    events = [json.loads(line) for line in out.splitlines()]
    by_job: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_job[event["id"]].append(event)
    assert len(by_job) == JOBS
    finals = {job: [e for e in seen if e["event"] in ("completed", "failed")] for job, seen in by_job.items()}
    assert all(len(final) == 1 for final in finals.values()), finals  # exactly once each
    failed = [job for job, final in finals.items() if final[0]["event"] == "failed"]
    bad_id = next(e["id"] for e in events if e["event"] == "added" and e["input"] == str(bad))
    assert failed == [bad_id]
    reason = finals[bad_id][0]["reason"]
    assert finals[bad_id][0]["code"] == reason.split(":")[0] and reason.startswith("E_")
    assert bullmq_call(redis_server.url, "get", bad_id)["attemptsMade"] == 1  # no retry although attempts=3

    result_schema, progress_schema = queue_validator("queue-result"), queue_validator("queue-result", "progress")
    for job, seen in by_job.items():
        progress = [e["progress"] for e in seen if e["event"] == "progress"]
        assert progress or job == bad_id, f"no progress event for job {job}"
        for value in progress:
            progress_schema.validate(value)
        if job != bad_id:
            result_schema.validate(finals[job][0]["returnvalue"])
    killed_final = finals[killed_job][0]
    assert killed_final["event"] == "completed" and killed_final["returnvalue"]["daemon"] == "qb"

    published = outcomes(first.outbox)
    assert len(published) == JOBS, sorted(published)  # one outcome file per job, no ~2 copies
    for job, final in finals.items():
        suffix = ".error.json" if job == bad_id else ".result.json"
        assert f"{QUEUE}-{job}{suffix}" in published
    assert reader.partial == [] and reader.reads > 0
    assert second.alive()
