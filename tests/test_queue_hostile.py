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
from pathlib import Path

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


def test_queue_mode_refuses_to_start_without_explicit_input_roots(tmp_path) -> None:
    run = subprocess.run([sys.executable, "-m", "daemon", "run", "--queue", "redis://127.0.0.1:9/0", "--outbox", str(tmp_path / "o")],
                         cwd=REPO, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 3 and "intake.input_roots" in run.stderr and "none is set" in run.stderr
    assert not (tmp_path / "o").exists()  # refused before anything was created


def _secret_tree(tmp_path):
    """uploads/ (the only root) holding a real video, a symlinked folder and a symlinked file that
    both lead outside, to a 'video' whose bytes are a secret."""
    uploads, outside = tmp_path / "uploads", tmp_path / "outside"
    uploads.mkdir()
    outside.mkdir()
    (outside / "secret.mp4").write_bytes(b"TOPSECRET-" + b"s" * 77767)  # 77777 bytes
    os.link(SHORT_CLIP, outside / "clip.mp4") if os.stat(SHORT_CLIP).st_dev == os.stat(outside).st_dev else \
        (outside / "clip.mp4").write_bytes(SHORT_CLIP.read_bytes())  # fmt: skip
    (uploads / "ok.mp4").write_bytes(SHORT_CLIP.read_bytes())
    (uploads / "linkdir").symlink_to(outside, target_is_directory=True)
    (uploads / "link.mp4").symlink_to(outside / "clip.mp4")
    return uploads, outside


def test_nothing_about_files_outside_the_roots_reaches_a_report(tmp_path, redis_server, daemons) -> None:
    uploads, outside = _secret_tree(tmp_path)
    jobs = {
        "ok": str(uploads / "ok.mp4"),
        "shadow": "/etc/shadow",
        "absent": "/etc/no-such-file-posed",
        "dirlink-video": str(uploads / "linkdir" / "clip.mp4"),  # issue 21 item 3: was processed
        "dirlink-secret": str(uploads / "linkdir" / "secret.mp4"),  # its bytes were in the reason
        "dirlink-absent": str(uploads / "linkdir" / "absent.mp4"),
        "filelink": str(uploads / "link.mp4"),
    }
    ids = {name: bullmq_call(redis_server.url, "add", {"input": path, "job_id": name}, {"attempts": 3}) for name, path in jobs.items()}
    daemon = start(daemons, "qa", redis_server.url, f"intake.input_roots=[{uploads}]")
    for bull_id in ids.values():
        wait_until(lambda b=bull_id: raw_state(redis_server.url, b)["state"] in ("completed", "failed"), 120, daemon.log_tail)
    assert raw_state(redis_server.url, ids["ok"])["state"] == "completed"
    told = {}
    for name in jobs:
        if name == "ok":
            continue
        state = raw_state(redis_server.url, ids[name])
        [published] = [p for p in daemon.outbox.glob("*.error.json") if f'"bullmq:{QUEUE}:{ids[name]}:' in p.read_text()]
        report = published.read_text()
        told[name] = (state["state"], state["attemptsMade"], json.loads(report)["error"]["code"], json.loads(report)["input"]["bytes"])
        for text in (report, state["failedReason"]):
            assert "TOPSECRET" not in text and "77777" not in text, (name, text)
    assert set(told.values()) == {("failed", 1, "E_BAD_JOB_DATA", None)}, told
    # Outside and existing, outside and absent: the same words, only the path given differs.
    reason = {name: raw_state(redis_server.url, ids[name])["failedReason"].split(" (report: ")[0].replace(jobs[name], "<p>")
              for name in jobs if name != "ok"}
    assert reason["shadow"] == reason["absent"]
    assert reason["dirlink-secret"] == reason["dirlink-absent"] == reason["dirlink-video"]
    assert "symbolic link" in reason["dirlink-secret"] and "symbolic link" in reason["filelink"]
    log = daemon.log_path.read_text(errors="replace")
    assert "TOPSECRET" not in log and "77777" not in log


def test_a_folder_swapped_for_a_link_after_the_check_is_never_read(tmp_path) -> None:
    """The check-then-open race: the intake walked the path; before the worker opens it, a folder
    on the way becomes a symlink to a folder outside the roots holding a file of the same name."""
    import pytest

    from daemon.config import LimitsConfig
    from daemon.errors import JobError
    from daemon.paths import open_beneath
    from daemon.processing.media import check_file

    uploads, outside = _secret_tree(tmp_path)
    (uploads / "day").mkdir()
    (uploads / "day" / "clip.mp4").write_bytes(SHORT_CLIP.read_bytes())
    fd, found = open_beneath(str(uploads / "day" / "clip.mp4"), [str(uploads)], os.O_RDONLY)
    os.close(fd)
    canonical = Path(found)
    (uploads / "day").rename(tmp_path / "day-moved")
    (uploads / "day").symlink_to(outside, target_is_directory=True)  # outside/clip.mp4 exists
    extensions = [".mp4"]
    assert check_file(canonical, LimitsConfig(), extensions) > 0  # the old open: followed the folder link
    with pytest.raises(JobError) as refused:
        check_file(canonical, LimitsConfig(), extensions, exact=True)
    assert refused.value.code == ErrorCode.INPUT_CHANGED and "no longer at the path that was checked" in refused.value.message


def test_queue_job_ids_follow_the_sidecar_rules(tmp_path, redis_server, intakes) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "hijack.mp4").write_bytes(SHORT_CLIP.read_bytes())
    hijack = str(uploads / "hijack.mp4")
    refused = {job_id: bullmq_call(redis_server.url, "add", {"input": hijack, "job_id": job_id}, {})
               for job_id in ("LPT0", "COM0", "lpt0.upload", "Nul", "victim.mp4", "victim.MOV")}  # fmt: skip
    own = bullmq_call(redis_server.url, "add", {"input": hijack, "job_id": "hijack.mp4"}, {})
    plain = bullmq_call(redis_server.url, "add", {"input": hijack, "job_id": "upload-7.v2"}, {})
    intake = intakes(input_roots=[str(uploads)])
    jobs = {job.id: job for job in (take(intake) for _ in range(len(refused) + 2))}
    for job_id, bull_id in refused.items():
        problem = jobs[bull_id].problem
        assert problem is not None and problem.code == ErrorCode.BAD_JOB_DATA, job_id
        assert problem.details["field"] == "job_id" and problem.message.startswith("queue job data.job_id: "), problem.message
    assert "device name" in jobs[refused["LPT0"]].problem.message
    assert "looks like a video file name" in jobs[refused["victim.mp4"]].problem.message
    assert (jobs[own].problem, jobs[own].stem) == (None, "hijack.mp4")  # its own name is fine
    assert (jobs[plain].problem, jobs[plain].stem) == (None, "upload-7.v2")


def _blocking_waits(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return int(client.info("commandstats").get("cmdstat_bzpopmin", {}).get("calls", 0))


def test_an_idle_worker_on_a_healthy_redis_never_reports_an_outage(redis_server, capsys) -> None:
    """BullMQ's idle wait blocks 5 s; redis-py's socket timeout is 5 s by default, here 1 s
    (the URL's socket_timeout). The read timed out on every idle cycle and flipped the daemon
    to "degraded: ... Timeout reading from" (issue 21, item 4)."""
    from daemon.intake.queue.worker import BullmqIntake

    intake = BullmqIntake(redis_server.url + "?socket_timeout=1", QUEUE, input_roots=[str(SHORT_CLIP.parent)],
                          lock_duration_s=5, stalled_interval_s=1)  # fmt: skip
    intake.start()
    try:
        wait_until(lambda: intake.health().state == "connected", 20, "connected")
        assert intake.take() is None  # the blocking wait begins
        first, states = _blocking_waits(redis_server.url), []

        def eight_blocking_reads_done() -> bool:  # a timed-out read is retried 5 times, then reported
            states.append(intake.health().state)
            return _blocking_waits(redis_server.url) >= first + 8

        wait_until(eight_blocking_reads_done, 300, lambda: f"states {sorted(set(states))}", interval=0.1)
        assert "degraded" not in states and states.count("connected") == len(states)
        assert "queue.degraded" not in capsys.readouterr().out
        bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {})
        assert take(intake).id == bull_id  # the wait was alive all along
    finally:
        intake.close()


def test_tls_verification_turned_off_is_said_loudly_in_the_log_the_status_and_doctor(tmp_path, daemons) -> None:
    from daemon.intake.queue.redis_client import insecure_tls

    assert insecure_tls("rediss://:pw@redis.lan:6380/0?ssl_ca_certs=/etc/posed/ca.pem") is None
    assert insecure_tls("redis://127.0.0.1:6379/0?ssl_cert_reqs=none") is None  # no TLS at all: doctor says so instead
    assert "ssl_check_hostname=false" in insecure_tls("rediss://redis.lan:6380/0?ssl_check_hostname=False")
    url = "rediss://posed:pw@127.0.0.1:9/0?ssl_cert_reqs=none"  # nothing listens: start never waits for Redis
    daemon = daemons("qtls", queue_mode(url))
    status = wait_until(lambda: (doc := daemon.status()).get("warnings") and doc, 120, daemon.log_tail)
    assert status["warnings"] == [insecure_tls(url)] and "ssl_cert_reqs=none" in status["warnings"][0]
    assert [e["event"] for e in daemon.log_events() if e.get("event") == "queue.tls_unverified"] == ["queue.tls_unverified"]
    shown = subprocess.run([sys.executable, "-m", "daemon", "status", "--outbox", str(daemon.outbox)], cwd=REPO,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "WARNING: TLS certificate verification is off (ssl_cert_reqs=none)" in shown.stdout, shown.stdout
    doctor = subprocess.run([sys.executable, "-m", "daemon", "doctor", f"outbox.path={daemon.outbox}", *queue_mode(url)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "Redis TLS" in doctor.stdout and "verification is off" in doctor.stdout, doctor.stdout
    assert "pw@" not in doctor.stdout and "pw@" not in shown.stdout


def _lock(url: str, bull_id: str) -> str | None:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return client.get(f"bull:{QUEUE}:{bull_id}:lock")


def test_a_lock_that_ran_out_with_nobody_else_holding_the_job_is_taken_back(redis_server, intakes) -> None:
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP)}, {"attempts": 1})
    intake = intakes(lock_duration_s=4, stalled_interval_s=600)
    job = take(intake)
    with redis.Redis.from_url(redis_server.url) as client:  # what an outage longer than the lease leaves
        client.delete(f"bull:{QUEUE}:{bull_id}:lock")
    wait_until(lambda: _lock(redis_server.url, bull_id) == job.token, 30, "the refused renewal is looked into and the lock re-taken")
    assert not intake.is_lost(job) and intake.still_ours(job) is True
    assert intake.complete(job, {"status": "ok"}) is True
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert (state["state"], state["attemptsMade"]) == ("completed", 1)  # one attempt, the only one


def test_a_redis_restart_longer_than_the_lease_neither_kills_the_worker_nor_redoes_the_job(redis_server, daemons) -> None:
    daemon = start(daemons, "qa", redis_server.url, "backend.fault.slow_ms_per_frame=150", "intake.stalled_interval_s=600")
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "through-restart"}, {"attempts": 3})
    wait_until(lambda: (daemon.status().get("current_job") or {}).get("frames_done", 0) >= 2, 60, daemon.log_tail)
    redis_server.stop()
    daemon.wait_state("degraded", timeout=60)
    redis_server.start()
    with redis.Redis.from_url(redis_server.url) as client:  # the lease ran out meanwhile (4 s here)
        client.delete(f"bull:{QUEUE}:{bull_id}:lock")
    wait_until(lambda: bullmq_call(redis_server.url, "get", bull_id)["state"] == "completed", 120, daemon.log_tail)
    events = [e for e in daemon.log_events()]
    names = [e.get("event") for e in events]
    assert "queue.lock_reacquired" in names and "queue.lock_lost" not in names, daemon.log_tail()
    assert names.count("job.start") == 1  # the work was not thrown away and begun again
    assert not [e for e in events if "claim lost" in json.dumps(e)]
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert state["attemptsMade"] == 1 and (daemon.outbox / "through-restart.result.json").is_file()


def test_a_job_bullmq_gave_up_on_after_too_many_stalls_gets_a_report_not_a_rerun(redis_server, daemons) -> None:
    """max_stalled_count=0: the first lost lock is one too many. BullMQ's checker marks the job
    failed-to-be (``defa``) and puts it back in the queue; the next daemon must fail it with a
    report, as docs/queue.md says, not process it again."""
    first = start(daemons, "qa", redis_server.url, "backend.fault.slow_ms_per_frame=300", "intake.max_stalled_count=0")
    bull_id = bullmq_call(redis_server.url, "add", {"input": str(SHORT_CLIP), "job_id": "stalls"}, {"attempts": 3})
    wait_until(lambda: (first.status().get("current_job") or {}).get("frames_done", 0) >= 1, 60, first.log_tail)
    first.kill9()
    second = start(daemons, "qb", redis_server.url, "intake.max_stalled_count=0")
    wait_until(lambda: bullmq_call(redis_server.url, "get", bull_id)["state"] == "failed", 120, second.log_tail)
    state = bullmq_call(redis_server.url, "get", bull_id)
    assert state["failedReason"].startswith("E_QUEUE_STALLED: BullMQ failed the job: job stalled more than allowable limit")
    report = json.loads((second.outbox / "stalls.error.json").read_text())
    assert report["error"]["code"] == "E_QUEUE_STALLED"
    assert "job.start" not in [e.get("event") for e in second.log_events()]  # not processed again


def test_a_real_tls_redis_verified_quietly_or_unverified_with_a_warning(tmp_path, daemons) -> None:
    from tests.redis_server import RedisServer

    server = RedisServer(tmp_path / "redis-tls", tls=True).start()
    try:
        verified, unverified = f"{server.url}?ssl_ca_certs={server.ca_file}", f"{server.url}?ssl_cert_reqs=none"
        quiet = start(daemons, "qv", verified)
        loud = start(daemons, "qu", unverified)
        for daemon in (quiet, loud):
            daemon.wait_state("ready", timeout=60)
        assert quiet.status()["warnings"] == [] and "ssl_cert_reqs=none" in loud.status()["warnings"][0]
        ids = [bullmq_call(verified, "add", {"input": str(SHORT_CLIP), "job_id": f"tls-{n}"}, {}) for n in range(2)]
        for bull_id in ids:
            wait_until(lambda b=bull_id: bullmq_call(verified, "get", b)["state"] == "completed", 120, loud.log_tail)
        assert sorted(p.name for p in quiet.outbox.glob("tls-*.result.json")) == ["tls-0.result.json", "tls-1.result.json"]
        events = [e.get("event") for e in quiet.log_events()], [e.get("event") for e in loud.log_events()]
        assert "queue.tls_unverified" not in events[0] and "queue.tls_unverified" in events[1]
        refused = start(daemons, "qr", server.url)  # TLS but neither a CA nor verification off: it must not connect
        refused.wait_state("degraded", timeout=60)
        wait_until(lambda: "CERTIFICATE_VERIFY_FAILED" in (refused.status().get("degraded_reason") or ""), 120, refused.log_tail)
        assert refused.status()["warnings"] == []
    finally:
        server.stop()
