"""The queue intake as an attack surface (issue 21, items 1-5), against a real redis-server,
real ``posed run --queue`` daemons, real files and real symlinks.

Every hostile job must end in exactly one failure with a code, and nothing about a file outside
``intake.input_roots`` (existence, size, bytes) may reach a report, a failure reason or a log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from daemon.errors import ErrorCode
from tests.daemon_harness import MEDIA, REPO, SHORT_CLIP
from tests.helpers import wait_until
from tests.test_queue_daemon import queue_mode, start
from tests.test_queue_intake import QUEUE, bullmq_call, intakes, take  # noqa: F401 - a fixture

DEEP = 3000  # issue 21: 18 KB of JSON that the Node producer's validator used to accept


def deep_json(levels: int) -> str:
    return '{"a":' * levels + "1" + "}" * levels


def plant_data(url: str, bull_id: str, raw: str) -> None:
    """What a producer that skips validation stores: the job hash's raw ``data`` field."""
    with redis.Redis.from_url(url) as client:
        client.hset(f"bull:{QUEUE}:{bull_id}", "data", raw)


def raw_state(url: str, bull_id: str) -> dict:
    """A job's state without parsing its data (BullMQ's own ``getJob`` would recurse on it)."""
    import asyncio

    from bullmq import Queue

    async def state() -> str:
        queue = Queue(QUEUE, {"connection": url})
        try:
            return await queue.getJobState(bull_id)
        finally:
            await queue.close()

    with redis.Redis.from_url(url, decode_responses=True) as client:
        made, reason = client.hmget(f"bull:{QUEUE}:{bull_id}", "atm", "failedReason")
    return {"state": asyncio.run(state()), "attemptsMade": int(made or 0), "failedReason": reason}


def queue_status(url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "daemon", "status", "--queue", url, f"intake.queue={QUEUE}", "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip


def test_deep_job_data_is_refused_before_parsing_and_status_still_reads_the_queue(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {"attempts": 3})
    plant_data(redis_server.url, bull_id, f'{{"input": {json.dumps(str(SHORT_CLIP))}, "metadata": {deep_json(DEEP)}}}')
    intake = intakes()
    job = take(intake)  # before: RecursionError inside BullMQ, the job cycled waiting <-> active
    assert job.id == bull_id and job.problem.code == ErrorCode.BAD_JOB_DATA
    assert "deeper than 32 levels" in job.problem.message
    assert intake.health().state == "connected"

    shown = queue_status(redis_server.url)  # the job is active and locked now
    assert shown.returncode == 0, shown.stderr
    active = json.loads(shown.stdout)["active"]
    assert [(entry["id"], entry["unparsed"]) for entry in active] == [(bull_id, ["data"])]

    assert intake.fail(job, job.problem.code.value, job.problem.message, retryable=False) is True
    state = raw_state(redis_server.url, bull_id)
    assert (state["state"], state["attemptsMade"]) == ("failed", 1)
    assert state["failedReason"].startswith("E_BAD_JOB_DATA: queue job data: nests deeper than 32 levels")


def test_a_daemon_answers_deep_and_huge_jobs_once_with_a_code_and_never_says_degraded(redis_server, daemons) -> None:
    deep = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "deep"}, {"attempts": 3})
    huge = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "huge"}, {"attempts": 3})
    fine = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "fine"}, {"attempts": 3})
    plant_data(redis_server.url, deep, f'{{"input": {json.dumps(str(SHORT_CLIP))}, "metadata": {deep_json(DEEP)}}}')
    plant_data(redis_server.url, huge, json.dumps({"input": str(SHORT_CLIP), "metadata": {"blob": "x" * 300_000}}))
    daemon = start(daemons, "qa", redis_server.url)
    for bull_id in (deep, huge, fine):
        wait_until(lambda b=bull_id: raw_state(redis_server.url, b)["state"] in ("completed", "failed"), 120, daemon.log_tail)
    assert raw_state(redis_server.url, fine)["state"] == "completed"
    for bull_id, why in ((deep, "nests deeper than 32 levels"), (huge, "bytes of JSON; at most 262144")):
        state = raw_state(redis_server.url, bull_id)
        assert (state["state"], state["attemptsMade"]) == ("failed", 1)
        assert state["failedReason"].startswith("E_BAD_JOB_DATA: ") and why in state["failedReason"]
        report = json.loads((daemon.outbox / f"{QUEUE}-{bull_id}.error.json").read_text())
        assert report["error"]["code"] == "E_BAD_JOB_DATA"
    events = [e.get("event") for e in daemon.log_events()]
    assert "queue.degraded" not in events and "queue.fetch_error" not in events
