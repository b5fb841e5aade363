"""Crash isolation with real processes and real signals (issue 3), via the fault backend."""

from __future__ import annotations

import os

import pytest

from tests.daemon_harness import SHORT_CLIP, OutboxReader, drop, outcomes, wait_outcome
from tests.helpers import wait_until

FAULT = ["backend.name=fault", "backend.fault.trigger=bad"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open(f"/proc/{pid}/stat").read().split(") ")[1].startswith("Z")


@pytest.mark.parametrize(
    ("fault", "expect"),
    [
        (["backend.fault.crash_signal=SIGSEGV"], {"signal": "SIGSEGV", "exit_code": None}),
        (["backend.fault.crash_signal=SIGKILL"], {"signal": "SIGKILL", "exit_code": None}),
        (["backend.fault.exit_code=7"], {"signal": None, "exit_code": 7}),
    ],
    ids=["sigsegv", "sigkill", "os_exit"],
)
def test_a_video_that_kills_the_worker_is_retried_then_reported_and_others_flow(daemons, fault, expect):
    daemon = daemons(overrides=[*FAULT, "backend.fault.crash_at_frame=30", *fault]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    drop(SHORT_CLIP, daemon.inbox, "good.mp4")

    kind, report = wait_outcome(daemon.outbox, "bad.mp4", timeout=60)
    assert kind == "error"
    error = report["error"]
    assert error["code"] == "E_WORKER_CRASH"
    assert report["attempts"] == 2
    assert error["details"]["signal"] == expect["signal"] and error["details"]["exit_code"] == expect["exit_code"]
    assert error["stage"] == "inference" and 25 <= error["frame_index"] <= 30
    assert (expect["signal"] or f"code {expect['exit_code']}") in error["message"]
    tail = "\n".join(error["details"]["stderr_tail"])
    if expect["signal"] == "SIGSEGV":  # faulthandler's report of the native crash is in the tail
        assert "Current thread" in tail and "fault.py" in tail
    else:
        assert "fault.crash" in tail

    kind, result = wait_outcome(daemon.outbox, "good.mp4", timeout=60)
    assert kind == "result" and len(result["frames"]) == 60
    status = daemon.wait_state("ready")
    assert status["counters"]["worker_crashes"] == 2 and status["counters"]["retries"] == 1
    assert (daemon.inbox / "failed" / "bad.mp4").exists()


def test_a_hanging_worker_is_stopped_and_reported_as_stalled(daemons):
    daemon = daemons(overrides=[*FAULT, "backend.fault.hang_at_frame=10", "worker.stall_timeout_s=2"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    kind, report = wait_outcome(daemon.outbox, "bad.mp4", timeout=120)  # a hang guard, not a budget
    assert kind == "error" and report["error"]["code"] == "E_STALLED"
    assert report["error"]["details"]["signal"] == "SIGKILL"
    assert "no progress" in report["error"]["message"] and "(limit 2 s)" in report["error"]["message"]
    # Killed for the hang at frame 10, not for slowness before it: the last progress is frame 10.
    assert report["error"]["frame_index"] == 10, report["error"]
    kills = [e for e in daemon.log_events() if e.get("event") == "worker.kill"]
    assert len(kills) == 1 and kills[0]["reason"].startswith("stalled")
    drop(SHORT_CLIP, daemon.inbox, "after.mp4")
    assert wait_outcome(daemon.outbox, "after.mp4", timeout=60)[0] == "result"


def test_a_crash_while_loading_models_degrades_the_daemon_and_jobs_wait(daemons, tmp_path):
    marker = tmp_path / "break-loading"
    marker.touch()
    daemon = daemons(overrides=[*FAULT, f"backend.fault.crash_on_load_while_exists={marker}"])
    status = daemon.wait_state("degraded", timeout=30)
    assert "fault-injection backend" in status["degraded_reason"] and "SIGSEGV" in status["degraded_reason"]
    drop(SHORT_CLIP, daemon.inbox, "waiting.mp4")
    wait_until(lambda: daemon.status().get("worker", {}).get("restarts", 0) >= 3, 30)
    assert outcomes(daemon.outbox) == {}, "a load failure must not fail videos"
    assert (daemon.inbox / "waiting.mp4").exists()

    marker.unlink()
    kind, result = wait_outcome(daemon.outbox, "waiting.mp4", timeout=60)
    assert kind == "result" and len(result["frames"]) == 60
    assert daemon.wait_state("ready")["degraded_reason"] is None


def test_a_worker_that_hangs_while_loading_is_killed_degrades_the_daemon_and_restarts(daemons, tmp_path):
    marker = tmp_path / "hang-loading"
    marker.touch()
    daemon = daemons(overrides=[*FAULT, f"backend.fault.hang_on_load_while_exists={marker}", "worker.load_timeout_s=2"])
    status = daemon.wait_state("degraded", timeout=60)
    assert "after 2 s (worker.load_timeout_s)" in status["degraded_reason"], status
    assert "fault-injection backend" in status["degraded_reason"]
    assert status["last_error"]["code"] == "E_BACKEND_LOAD"
    drop(SHORT_CLIP, daemon.inbox, "waiting.mp4")
    wait_until(lambda: daemon.status().get("worker", {}).get("restarts", 0) >= 2, 60)
    kills = [e for e in daemon.log_events() if e.get("event") == "worker.kill"]
    assert kills and all(e["reason"].startswith("load_timeout") for e in kills), kills
    died = [e for e in daemon.log_events() if e.get("event") == "worker.died"]
    assert died and all(e["signal"] == "SIGKILL" and e["during_load"] for e in died)
    assert outcomes(daemon.outbox) == {}, "a hung load must not fail videos"

    marker.unlink()
    kind, result = wait_outcome(daemon.outbox, "waiting.mp4", timeout=60)
    assert kind == "result" and len(result["frames"]) == 60
    assert daemon.wait_state("ready")["degraded_reason"] is None


def test_processing_beyond_the_ceiling_is_stopped_with_e_time_limit(daemons):
    # 60 frames (2 s at 30 fps) at >= 0.2 s each: >= 12 s of work against a 0.5 + 0.5 x 2 = 1.5 s ceiling.
    slow = ["backend.fault.slow_ms_per_frame=200", "worker.ceiling_base_s=0.5", "worker.ceiling_factor=0.5"]
    daemon = daemons(overrides=[*FAULT, *slow]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    kind, report = wait_outcome(daemon.outbox, "bad.mp4", timeout=60)
    assert kind == "error" and report["error"]["code"] == "E_TIME_LIMIT", report
    assert (report["error"]["frame_index"] or 0) < 59 and "frames at 30 fps" in report["error"]["message"]
    drop(SHORT_CLIP, daemon.inbox, "after.mp4")
    assert wait_outcome(daemon.outbox, "after.mp4", timeout=60)[0] == "result"


def test_the_processing_ceiling_is_on_by_default_and_counts_frames_at_30_fps():
    from daemon.config import PosedConfig
    from daemon.processing.supervisor import WorkerSupervisor

    supervisor = WorkerSupervisor(PosedConfig())
    supervisor._set_ceiling({"duration_estimate_s": 2.0, "frame_count_estimate": 2000}, now=0.0)
    assert supervisor.job_deadline == pytest.approx(600 + 20 * 2000 / 30), "1000 fps must not buy 20x less time"
    supervisor._set_ceiling({"duration_estimate_s": 6.0, "frame_count_estimate": None}, now=0.0)
    assert supervisor.job_deadline == pytest.approx(600 + 20 * 6)


def test_out_of_memory_is_retried_in_low_memory_mode(daemons):
    daemon = daemons(overrides=[*FAULT, "backend.fault.oom_at_frame=20"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    kind, result = wait_outcome(daemon.outbox, "bad.mp4", timeout=60)
    assert kind == "result" and result["options"]["low_memory"] is True and len(result["frames"]) == 60
    assert any(e.get("event") == "job.retry_low_memory" for e in daemon.log_events())


def test_out_of_memory_on_every_attempt_is_reported(daemons):
    daemon = daemons(overrides=[*FAULT, "backend.fault.oom_at_frame=20", "worker.max_attempts=1"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    kind, report = wait_outcome(daemon.outbox, "bad.mp4", timeout=60)
    assert kind == "error" and report["error"]["code"] == "E_OUT_OF_MEMORY" and report["error"]["stage"] == "inference"


def test_an_exception_in_the_backend_fails_the_video_not_the_worker(daemons):
    daemon = daemons(overrides=[*FAULT, "backend.fault.raise_at_frame=5"]).wait_ready()
    pid = daemon.status()["worker"]["pid"]
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    kind, report = wait_outcome(daemon.outbox, "bad.mp4", timeout=60)
    assert kind == "error" and report["error"]["code"] == "E_BACKEND"
    assert "injected failure at frame 5" in report["error"]["message"]
    assert daemon.wait_state("ready")["worker"]["pid"] == pid


def test_sigterm_mid_video_releases_the_lock_and_the_video_is_processed_after_restart(daemons):
    slow = [*FAULT, "backend.fault.slow_ms_per_frame=100", "worker.shutdown_grace_s=0.5"]
    daemon = daemons("first", slow).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    wait_until(lambda: (daemon.status().get("current_job") or {}).get("frames_done", 0) >= 5, 30)
    assert daemon.stop() == 0
    assert (daemon.inbox / "bad.mp4").exists(), "the input must stay in the inbox"
    assert not list((daemon.inbox / ".posed" / "locks").glob("*.lock"))
    assert outcomes(daemon.outbox) == {}
    assert not list((daemon.outbox / ".tmp").iterdir())
    assert daemon.status()["state"] == "stopped"

    again = daemons("second", [*FAULT]).wait_ready()
    kind, result = wait_outcome(again.outbox, "bad.mp4", timeout=60)
    assert kind == "result" and len(result["frames"]) == 60


def test_sigterm_lets_the_current_video_finish_within_the_grace_period(daemons):
    daemon = daemons(overrides=[*FAULT, "backend.fault.slow_ms_per_frame=30", "worker.shutdown_grace_s=30"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    wait_until(lambda: (daemon.status().get("current_job") or {}).get("frames_done", 0) >= 3, 30)
    assert daemon.stop() == 0
    kind, result = wait_outcome(daemon.outbox, "bad.mp4", timeout=1)
    assert kind == "result" and len(result["frames"]) == 60


def test_kill_9_of_the_daemon_mid_video_then_restart_processes_it_exactly_once(daemons):
    slow = [*FAULT, "backend.fault.slow_ms_per_frame=60"]
    daemon = daemons("first", slow).wait_ready()
    reader = OutboxReader(daemon.outbox)
    reader.start()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    wait_until(lambda: (daemon.status().get("current_job") or {}).get("frames_done", 0) >= 5, 30)
    worker_pid = daemon.status()["worker"]["pid"]
    daemon.kill9()
    wait_until(lambda: not _pid_alive(worker_pid), 10, "the worker must die with its daemon")
    assert (daemon.inbox / ".posed" / "locks" / "bad.mp4.lock").exists()
    assert outcomes(daemon.outbox) == {}

    again = daemons("second", [*FAULT]).wait_ready()
    kind, result = wait_outcome(again.outbox, "bad.mp4", timeout=60)
    assert kind == "result" and len(result["frames"]) == 60
    wait_until(lambda: not (again.inbox / "bad.mp4").exists(), 10)
    reader.stop()
    assert list(outcomes(again.outbox)) == ["bad.mp4.result.json"]
    assert reader.partial == [] and reader.reads > 0
    assert any(e.get("event") == "claim.takeover" for e in again.log_events())
    assert not list((again.outbox / ".tmp").glob("*.partial")) or again.status()["current_job"] is None


def test_status_file_updates_while_a_video_is_processed(daemons):
    from daemon.publishing.contract import validate_document

    daemon = daemons(overrides=[*FAULT, "backend.fault.slow_ms_per_frame=50"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "bad.mp4")
    seen = []

    def progressing():
        status = daemon.status()
        job = status.get("current_job")
        if job:
            validate_document(status)
            seen.append((job["frames_done"], status["heartbeat_at"]))
        return len({done for done, _ in seen}) >= 3

    wait_until(progressing, 30)
    busy = daemon.status()
    assert busy["state"] == "busy" and busy["current_job"]["frames_total"] == 60
    assert busy["current_job"]["percent"] is not None and busy["current_job"]["input_name"] == "bad.mp4"
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    wait_outcome(daemon.outbox, "bad.mp4", timeout=60)
