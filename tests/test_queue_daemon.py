"""`posed run --queue` as a process: SIGTERM hands the job back, Redis down is `degraded`,
`posed status --queue` reads the queue, and an outcome published before a crash is not redone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from daemon.config import load_config
from daemon.intake.queue.intake import QueueIntake
from tests.daemon_harness import MEDIA, REPO, SHORT_CLIP
from tests.helpers import wait_until
from tests.test_queue_intake import QUEUE, bullmq_call, queue_validator


def queue_mode(url: str, *extra: str) -> list[str]:
    return ["intake.kind=bullmq", f"intake.url={url}", f"intake.queue={QUEUE}", f"intake.input_roots=[{MEDIA}]", "intake.lock_duration_s=4",
            "intake.stalled_interval_s=1", "backend.name=fault", *extra]


def start(daemons, name: str, url: str, *extra: str):
    daemon = daemons(name, queue_mode(url, *extra))
    return daemon.wait_ready(120)


def test_sigterm_hands_the_running_job_back_to_the_queue(redis_server, daemons) -> None:
    first = start(daemons, "qa", redis_server.url, "backend.fault.slow_ms_per_frame=200", "worker.shutdown_grace_s=0")
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {"attempts": 1})
    wait_until(lambda: (first.status().get("current_job") or {}).get("frames_done", 0) >= 2, 60, first.log_tail)
    first.signal(signal.SIGTERM)
    assert first.proc.wait(60) == 0
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert state["state"] in ("waiting", "delayed") and state["attemptsMade"] == 0
    assert [e["event"] for e in first.log_events() if e.get("event", "").startswith("queue.job_")][-1] == "queue.job_released"
    second = start(daemons, "qb", redis_server.url)
    wait_until(lambda: bullmq_call(redis_server.url, "get", bull_id)["state"] == "completed", 60, second.log_tail)
    assert bullmq_call(redis_server.url, "get", bull_id)["returnvalue"]["daemon"] == "qb"


def test_redis_down_is_degraded_and_work_resumes_when_it_returns(redis_server, daemons) -> None:
    daemon = start(daemons, "qa", redis_server.url)
    redis_server.stop()
    status = daemon.wait_state("degraded", timeout=30)
    assert f"127.0.0.1:{redis_server.port}" in status["degraded_reason"]
    redis_server.start()
    daemon.wait_state("ready", timeout=60)
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "after-outage"}, {})
    wait_until(lambda: bullmq_call(redis_server.url, "get", bull_id)["state"] == "completed", 60, daemon.log_tail)
    assert (daemon.outbox / "after-outage.result.json").is_file()

    shown = subprocess.run([sys.executable, "-m", "daemon", "status", "--queue", redis_server.url, f"intake.queue={QUEUE}", "--json"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert doc["counts"]["completed"] == 1 and doc["counts"]["waiting"] == 0
    assert any(".qa." in worker["name"] for worker in doc["workers"])


def test_an_outcome_published_before_a_crash_settles_the_job_without_rerunning_it(tmp_path, redis_server) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "once"}, {"attempts": 3})
    cfg = load_config(None, [f"outbox.path={tmp_path}", *queue_mode(redis_server.url)])
    intake = QueueIntake(cfg, "qa")
    intake.start()
    try:
        # What a daemon killed between publishing and telling BullMQ leaves behind: its report.
        job = wait_until(intake.queue.take, 30)
        (tmp_path / "once.error.json").write_text(json.dumps(
            {"schema": "posed.error", "status": "error", "job_id": job.job_id, "error": {"code": "E_TRUNCATED", "message": "cut"}}))
        intake.queue.release(job)
        assert wait_until(lambda: bullmq_call(redis_server.url, "get", bull_id)["state"] == "failed" or intake.take(), 30) is True
    finally:
        intake.stop()
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert state["attemptsMade"] == 1 and state["failedReason"].startswith("E_TRUNCATED: cut (report: ")
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".json") == ["once.error.json"]  # not redone


def test_a_queue_job_runs_the_real_cpu_backend_and_returns_every_published_file(redis_server, daemons) -> None:
    """The default backend (MediaPipe), not the fault stand-in: a job asking for the motion GLB
    completes with a return value naming the manifest, the frames file and the GLB in both forms."""
    daemon = start(daemons, "qm", redis_server.url, "backend.name=mediapipe")
    data = {"input": str(SHORT_CLIP), "job_id": "runner-1", "options": {"motion_glb": True}}
    bull_id = bullmq_call(redis_server.url, "add", data, {"attempts": 1})
    wait_until(lambda: bullmq_call(redis_server.url, "get", bull_id)["state"] in ("completed", "failed"), 180, daemon.log_tail)
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert state["state"] == "completed", state["failedReason"]
    value = state["returnvalue"]
    queue_validator("queue-result").validate(value)
    assert value["summary"]["frames"] == 60 and value["summary"]["frames_with_person"] == 60
    assert value["result"]["path"] == str(daemon.outbox / "runner-1.result.json")
    assert {kind: Path(forms["path"]).name for kind, forms in value["files"].items()} == {
        "frames": "runner-1.frames.jsonl", "motion": "runner-1.motion.glb"}
    manifest = json.loads((daemon.outbox / "runner-1.result.json").read_text())
    assert manifest["backend"]["name"] == "mediapipe" and manifest["files"]["motion"]["details"]["tracks"] == [1]
    for forms in value["files"].values():
        assert Path(forms["path"]).is_file()
