"""The BullMQ intake against a real redis-server: take, progress, settle, fencing, restarts.

Producers here are BullMQ's own Queue (Python) and, in the last test, the Node producer
``node/bin/queue-producer.mjs`` (posed-client/queue) with the npm package: the jobs a Windows backend adds.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from bullmq import Queue

from daemon.errors import ErrorCode
from daemon.intake.queue.worker import BullmqIntake
from tests.daemon_harness import MEDIA, REPO, SHORT_CLIP
from tests.helpers import wait_until

QUEUE = "posed-test"
NODE_DIR = REPO / "node"


def bullmq_call(url: str, action: str, *args: Any) -> Any:
    """One call on a fresh BullMQ Queue, as a producer or an operator would make it."""

    async def run() -> Any:
        queue = Queue(QUEUE, {"connection": url})
        try:
            if action == "add":
                data, opts = args
                return (await queue.add("pose", data, opts)).id
            if action == "add_named":
                name, data = args
                return (await queue.add(name, data, {})).id
            job = await queue.getJob(args[0])
            return {"state": await job.getState(), "attemptsMade": job.attemptsMade, "failedReason": job.failedReason,
                    "returnvalue": job.returnvalue, "progress": job.progress}
        finally:
            await queue.close()

    return asyncio.run(run())


@pytest.fixture
def intakes(redis_server):
    started: list[BullmqIntake] = []

    def make(**kwargs: Any) -> BullmqIntake:
        options = {"input_roots": [str(MEDIA), "/mnt/c/posed"], "lock_duration_s": 5, "stalled_interval_s": 1,
                   "op_timeout_s": 10, "daemon_name": f"d{len(started) + 1}"} | kwargs
        intake = BullmqIntake(redis_server.url, QUEUE, **options)
        intake.start()
        started.append(intake)
        return intake

    yield make
    for intake in started:
        intake.close()


def take(intake: BullmqIntake, timeout: float = 30):
    return wait_until(intake.take, timeout, "a job from the queue")


def test_take_progress_complete(redis_server, intakes) -> None:
    data = {"input": str(SHORT_CLIP), "job_id": "upload-1", "options": {"start_frame": 5, "end_frame": 20},
            "metadata": {"user": 12}}
    bull_id = bullmq_call(redis_server.url, "add", data, {"attempts": 3})
    intake = intakes()
    job = take(intake)
    assert (job.id, job.problem, job.input_path, job.stem) == (bull_id, None, SHORT_CLIP, "upload-1")
    assert (job.options.start_frame, job.options.end_frame) == (5, 20)
    assert job.client == {"job_id": "upload-1", "metadata": {"user": 12}}
    assert (job.attempt, job.attempts, job.last_attempt) == (1, 3, False)
    assert job.job_id.startswith(f"bullmq:{QUEUE}:{bull_id}:")
    assert bullmq_call(redis_server.url, "get", bull_id)["state"] == "active"

    intake.progress(job, 30, 60, 12.5, 2.4, stage="running")
    progress = wait_until(lambda: (bullmq_call(redis_server.url, "get", bull_id)["progress"] or {}).get("frames_done") == 30
                          and bullmq_call(redis_server.url, "get", bull_id)["progress"], 10, "progress in Redis")
    assert progress["percent"] == 50.0 and progress["daemon"] == "d1" and progress["host"]

    assert intake.still_ours(job) is True
    assert intake.complete(job, {"status": "ok", "summary": {"frames": 15}}) is True
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert state["state"] == "completed" and state["returnvalue"] == {"status": "ok", "summary": {"frames": 15}}


def test_windows_path_is_mapped_and_bad_data_fails_without_retry(redis_server, intakes) -> None:
    windows = bullmq_call(redis_server.url, "add", {"input": "C:\\posed\\uploads\\a.mov"}, {})
    outside = bullmq_call(redis_server.url, "add", {"input": "/etc/passwd"}, {"attempts": 3})
    unknown = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "optoins": {}}, {"attempts": 3})
    intake = intakes()
    jobs = {job.id: job for job in (take(intake), take(intake), take(intake))}
    assert jobs[windows].input_path == Path("/mnt/c/posed/uploads/a.mov") and jobs[windows].problem is None
    assert jobs[outside].problem.code == ErrorCode.BAD_JOB_DATA and "outside the allowed roots" in jobs[outside].problem.message
    assert jobs[unknown].problem.code == ErrorCode.BAD_JOB_DATA and "optoins" in jobs[unknown].problem.message
    report = {"path": "/srv/outbox/x.error.json", "windows_path": None}
    for bull_id in (outside, unknown):
        job = jobs[bull_id]
        assert intake.fail(job, job.problem.code.value, job.problem.message, report, retryable=False) is True
        state = bullmq_call(redis_server.url, "get", bull_id)
        assert state["state"] == "failed" and state["attemptsMade"] == 1  # once, although attempts=3
        assert state["failedReason"].startswith("E_BAD_JOB_DATA: ") and "(report: /srv/outbox/x.error.json)" in state["failedReason"]
        assert state["progress"]["stage"] == "failed" and state["progress"]["error"]["report"] == report
    assert intake.complete(jobs[windows], {"status": "ok"}) is True


def test_a_job_named_otherwise_is_refused(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add_named", "thumbnail", {"input": str(SHORT_CLIP)})
    job = take(intakes())
    assert job.id == bull_id and job.problem.code == ErrorCode.BAD_JOB_DATA and "'thumbnail'" in job.problem.message


def test_crash_is_retried_by_bullmq_until_attempts_run_out(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {"attempts": 2, "backoff": {"type": "fixed", "delay": 50}})
    intake = intakes()
    first = take(intake)
    assert (first.attempt, first.last_attempt, first.previous_error_code) == (1, False, None)
    assert intake.fail(first, "E_WORKER_CRASH", "the worker was killed by SIGSEGV", retryable=True) is True
    assert bullmq_call(redis_server.url, "get", bull_id)["state"] in ("delayed", "waiting")
    second = take(intake)
    assert (second.id, second.attempt, second.last_attempt, second.previous_error_code) == (bull_id, 2, True, "E_WORKER_CRASH")
    assert intake.fail(second, "E_WORKER_CRASH", "again", retryable=True) is True
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert (state["state"], state["attemptsMade"]) == ("failed", 2)


def test_lock_lost_to_another_worker_is_reported_and_fenced(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {"attempts": 1})
    first = intakes(lock_duration_s=600)  # renewals are far apart: the next one is made below, after the takeover
    job = take(first)
    asyncio.run(_delete(redis_server.url, f"bull:{QUEUE}:{bull_id}:lock"))  # the lease is gone (a frozen host)
    second = intakes()
    again = take(second, timeout=60)  # the stalled checker hands the job to the other worker
    assert again.id == bull_id and again.token != job.token
    first._thread.run(first._worker.lockManager._extend_locks([job.id]), 10)  # BullMQ's own renewal, now
    wait_until(lambda: first.is_lost(job), 20, "the first worker notices its lock renewal is refused")
    assert first.lost_reason(job).startswith("another daemon holds the job's lock now")
    assert first.still_ours(job) is False
    assert first.complete(job, {"from": "first"}) is False  # fenced: BullMQ refuses the stale token
    assert second.still_ours(again) is True and second.complete(again, {"from": "second"}) is True
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert state["state"] == "completed" and state["returnvalue"] == {"from": "second"}


async def _delete(url: str, key: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        await client.delete(key)
    finally:
        await client.aclose()


def test_release_returns_the_job_without_spending_an_attempt(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {"attempts": 2})
    first = intakes()
    job = take(first)
    assert first.release(job) is True
    second = intakes()
    again = take(second)
    assert (again.id, again.attempts_made) == (bull_id, 0)
    assert second.complete(again, {"status": "ok"}) is True


def test_close_releases_a_fetched_job_nobody_took(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {})
    first = intakes()
    first.take()  # starts a fetch; the job is locked for us but never handed over
    wait_until(lambda: first._ready, 30, "the fetch to lock the job")
    first.close()
    assert bullmq_call(redis_server.url, "get", bull_id)["state"] in ("waiting", "delayed")
    assert take(intakes()).id == bull_id


def test_redis_restart_degrades_then_reconnects_without_losing_the_job(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {})
    intake = intakes(lock_duration_s=30)
    wait_until(lambda: intake.health().state == "connected", 20, "connected")
    job = take(intake)
    redis_server.stop()
    health = wait_until(lambda: intake.health().state == "degraded" and intake.health(), 20, "degraded")
    assert f"127.0.0.1:{redis_server.port}" in health.reason
    redis_server.start()
    wait_until(lambda: intake.health().state == "connected", 30, "reconnected")
    assert intake.still_ours(job) is True and intake.complete(job, {"status": "ok"}) is True
    assert bullmq_call(redis_server.url, "get", bull_id)["state"] == "completed"
    later = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {})
    assert take(intake).id == later  # fetching recovered too


@pytest.fixture(scope="module")
def node_modules() -> Path:
    if shutil.which("node") is None:
        pytest.fail("node is not installed (Node >= 18 is needed for the Node producer)")
    if not (NODE_DIR / "node_modules" / "bullmq").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300)
    return NODE_DIR / "node_modules"


def test_jobs_from_the_node_producer(redis_server, intakes, node_modules) -> None:
    """Node enqueues with bullmq (npm), waits and watches progress; posed takes and completes."""
    command = ["node", str(NODE_DIR / "bin" / "queue-producer.mjs"), "--url", redis_server.url, "--queue", QUEUE,
               "--job-id", "from-node", "--metadata", '{"user": 7}', str(SHORT_CLIP)]
    producer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        intake = intakes()
        job = take(intake)
        assert (job.input_path, job.client, job.attempts) == (SHORT_CLIP, {"job_id": "from-node", "metadata": {"user": 7}}, 3)
        intake.progress(job, 60, 60, 30.0, 0.0, stage="writing")
        wait_until(lambda: (bullmq_call(redis_server.url, "get", job.id)["progress"] or {}).get("stage") == "writing", 10)
        assert intake.complete(job, {"status": "ok", "summary": {"frames": 60}}) is True
        out, err = producer.communicate(timeout=60)
    finally:
        producer.kill()
    assert producer.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "added" and kinds[-1] == "completed" and "progress" in kinds
    assert kinds.index("progress") < kinds.index("completed")
    assert events[-1]["returnvalue"] == {"status": "ok", "summary": {"frames": 60}}


def test_queue_config_is_checked_at_start() -> None:
    from daemon.config import load_config
    from daemon.errors import ConfigError

    queue = ["intake.kind=bullmq", "intake.url=rediss://posed:secret@redis.lan:6380/2"]
    cfg = load_config(None, queue + ["intake.input_roots=[/srv/uploads]"])
    assert (cfg.intake.kind, cfg.intake.queue, cfg.intake.lock_duration_s) == ("bullmq", "posed", 30.0)
    for bad in (["intake.kind=bullmq"], ["intake.kind=kafka"], ["intake.queue=a:b"], ["intake.lock_duration_s=0"], queue,
                queue + ["intake.input_roots=[uploads]"]):
        with pytest.raises(ConfigError, match="intake"):
            load_config(None, bad)


def test_queue_status_counts_jobs_and_names_the_holder(redis_server, intakes) -> None:
    from daemon.intake.queue.status import read_queue_status, render_queue_status

    first = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "status-1"}, {})
    bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {})
    intake = intakes(daemon_name="gpu-a")
    job = take(intake)
    assert job.id == first
    intake.progress(job, 10, 60, 5.0, 10.0, stage="running")
    wait_until(lambda: (bullmq_call(redis_server.url, "get", first)["progress"] or {}).get("frames_done") == 10, 10)
    doc = wait_until(lambda: (d := read_queue_status(redis_server.url, QUEUE))["workers"] and d, 20, "the worker named")
    assert doc["counts"]["active"] == 1 and doc["counts"]["waiting"] == 1
    assert doc["active"][0] | {"running_s": None} == doc["active"][0] | {
        "id": first, "client_job_id": "status-1", "daemon": "gpu-a", "stage": "running", "percent": 16.7, "attempt": 1, "running_s": None}
    assert any(".gpu-a." in worker["name"] for worker in doc["workers"])
    text = render_queue_status(doc)
    assert "waiting 1" in text and f"active {first} on " in text and "/gpu-a: running 17%" in text


SCHEMAS = REPO / "daemon" / "schemas"


def queue_validator(name: str, definition: str | None = None):
    """A validator for queue-job / queue-result (or one of its $defs, e.g. progress)."""
    from jsonschema import Draft202012Validator

    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    if definition is not None:
        schema = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    return Draft202012Validator(schema)


@pytest.mark.parametrize("name", ["queue-job", "queue-result"])
def test_queue_schemas_and_their_examples(name: str) -> None:
    example = json.loads((SCHEMAS / "examples" / f"{name}.example.json").read_text())
    queue_validator(name).validate(example)
    assert not queue_validator(name).is_valid(example | {"unexpected": 1})  # unknown keys are refused


def test_queue_jobs_take_exactly_the_sidecars_options() -> None:
    """One list of options for both intakes: the job schema's and the sidecar parser's agree."""
    from daemon.intake.sidecar import MOTION_SWITCHES, OPTION_KEYS

    options = json.loads((SCHEMAS / "queue-job.schema.json").read_text())["properties"]["options"]["properties"]
    assert set(options) == set(OPTION_KEYS)
    assert set(options["motion"]["properties"]) == {*MOTION_SWITCHES, "max_gap_s"}


def _job_data(options: dict[str, Any]):
    from types import SimpleNamespace

    from daemon.intake.queue.job import read_job

    bull_job = SimpleNamespace(id="7", name="pose", timestamp=1, attemptsMade=0, failedReason=None, opts={},
                               data={"input": str(SHORT_CLIP), "options": options})  # fmt: skip
    return read_job(bull_job, "token", "posed", [str(MEDIA)])


def test_queue_job_options_reach_the_job_as_a_sidecars_would() -> None:
    job = _job_data({"motion_glb": True, "motion_mesh": True, "preview": False, "legacy_fields": True,
                     "motion": {"smoothing": False, "max_gap_s": 0.25}, "start_frame": 3})  # fmt: skip
    assert job.problem is None
    options = job.options
    assert (options.motion_glb, options.motion_mesh, options.preview, options.legacy_fields, options.start_frame) == (True, True, False, True, 3)
    assert options.motion == {"smoothing": False, "max_gap_s": 0.25}


@pytest.mark.parametrize(
    "options, field",
    [
        ({"motion_glb": "yes"}, "options.motion_glb"),
        ({"motion": {"max_gap_s": 30}}, "options.motion.max_gap_s"),
        ({"start_frame": 10, "end_frame": 10}, "options.end_frame"),
    ],
)
def test_bad_queue_job_options_are_the_queues_error_naming_the_field(options, field) -> None:
    problem = _job_data(options).problem
    assert problem is not None and problem.code == ErrorCode.BAD_JOB_DATA
    assert field in problem.message and "sidecar" not in problem.message
