"""``posed status --queue URL``: what the queue holds and which daemon works on what.

Read-only: job counts per state, the active jobs with the host and daemon that hold them (from
the progress value a daemon writes when it takes a job), and the daemons connected as workers
(BullMQ names each worker connection; CLIENT LIST shows them with their address).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from daemon.intake.queue.bounded_json import defuse
from daemon.intake.queue.redis_client import connect

STATES = ("waiting", "active", "delayed", "prioritized", "completed", "failed")
MAX_ACTIVE_SHOWN = 50


def read_queue_status(url: str, queue: str = "posed", timeout_s: float = 10.0) -> dict[str, Any]:
    """A snapshot of the queue; raises ``TimeoutError`` or a Redis error if it cannot be read."""
    return asyncio.run(asyncio.wait_for(_read(url, queue), timeout_s))


async def _read(url: str, queue_name: str) -> dict[str, Any]:
    from bullmq import Queue

    queue = Queue(queue_name, {"connection": connect(url)})
    try:
        counts = await queue.getJobCounts(*STATES)
        active = await _active_jobs(queue)
        workers = await queue.get_workers()
    finally:
        await queue.close()
    now_ms = time.time() * 1000
    return {
        "queue": queue_name,
        "counts": {state: int(counts.get(state, 0)) for state in STATES},
        "active": [_active_job(job, now_ms) for job in active if job is not None],
        "workers": _one_per_worker(workers),
    }


async def _active_jobs(queue: Any) -> list[Any]:
    """``Queue.getJobs(["active"])``, but a job whose fields are out of bounds is shown with
    empty stand-ins instead of breaking the whole status (``bounded_json``)."""
    from bullmq import Job

    jobs = []
    for by_type in await queue.backend.scripts.getJobs(["active"], 0, MAX_ACTIVE_SHOWN - 1, True):
        for job_id, fields in by_type:
            raw = dict(zip(fields[::2], fields[1::2]))
            unparsed = defuse(raw)
            job = Job.fromJSON(queue, raw, job_id)
            job.unparsed = sorted(unparsed)
            jobs.append(job)
    return jobs


def _one_per_worker(clients: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A worker holds several named connections (commands, the blocking wait): list it once."""
    seen: dict[str, dict[str, Any]] = {}
    for client in clients:
        name = _worker_name(client.get("rawname", ""))
        seen.setdefault(name, {"name": name, "addr": client.get("addr"), "idle_s": _int(client.get("idle"))})
    return list(seen.values())


def _active_job(job: Any, now_ms: float) -> dict[str, Any]:
    progress = job.progress if isinstance(job.progress, dict) else {}
    return {
        "id": job.id,
        "client_job_id": (job.data or {}).get("job_id") if isinstance(job.data, dict) else None,
        "input": (job.data or {}).get("input") if isinstance(job.data, dict) else None,
        "host": progress.get("host"),
        "daemon": progress.get("daemon"),
        "stage": progress.get("stage"),
        "percent": progress.get("percent"),
        "frames_per_second": progress.get("frames_per_second"),
        "eta_seconds": progress.get("eta_seconds"),
        "attempt": job.attemptsMade + 1,
        "running_s": round((now_ms - job.processedOn) / 1000, 1) if job.processedOn else None,
        "unparsed": getattr(job, "unparsed", []),  # fields too big or too deep to read
    }


def _worker_name(rawname: str) -> str:
    return rawname.split(":w:", 1)[1] if ":w:" in rawname else rawname


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def render_queue_status(doc: dict[str, Any]) -> str:
    counts = doc["counts"]
    lines = [f"queue {doc['queue']}: " + "  ".join(f"{state} {counts[state]}" for state in STATES)]
    for job in doc["active"]:
        percent = f"{job['percent']:.0f}%" if job["percent"] is not None else "?"
        where = f"{job['host'] or '?'}/{job['daemon'] or '?'}"
        name = job["client_job_id"] or job["input"] or (f"unreadable {', '.join(job['unparsed'])}" if job["unparsed"] else None)
        lines.append(f"  active {job['id']} on {where}: {job['stage'] or '?'} {percent}, attempt {job['attempt']}, {name}")
    lines.append(f"workers connected: {len(doc['workers'])}")
    lines.extend(f"  {worker['name']} from {worker['addr']}" for worker in doc["workers"])
    return "\n".join(lines)
