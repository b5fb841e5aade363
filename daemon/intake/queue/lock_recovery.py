"""A refused lock renewal, looked into before the work is given up (issue 21, item 6).

BullMQ's lock manager reports only that a renewal was refused. After Redis restarts (or this
daemon was paused) for longer than the lock, the lock key has simply run out: no other daemon
holds the job, it is still in the active list, and throwing the work away to have it redone
(or counted as a stall) helps no one. So one atomic script, on BullMQ's own keys, tells the
cases apart and re-takes a lock that nobody holds for a job that is still active; BullMQ's
stalled checker removes exactly such jobs (active, no lock) on its next pass, so once the lock
is back it leaves the job alone. Anything else is lost, and the reason says which case it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daemon.log import get_logger

log = get_logger(__name__)

# KEYS: lock, active list, stalled set, job hash. ARGV: token, lock ms, job id.
RECLAIM_LUA = """
local current = redis.call("GET", KEYS[1])
if current == ARGV[1] then
  redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
  return 1
end
if current then return -1 end
if redis.call("EXISTS", KEYS[4]) == 0 then return -3 end
if not redis.call("LPOS", KEYS[2], ARGV[3]) then return -2 end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
redis.call("SREM", KEYS[3], ARGV[3])
return 2
"""

WHY = {
    1: "the renewal raced with a reconnect; the lock is still ours",
    2: "the lock ran out while Redis was unreachable or this daemon was paused; no other daemon had taken the job, "
    "so it was taken back and the work goes on",
    -1: "another daemon holds the job's lock now: it took the job over after this daemon's lock ran out",
    -2: "the lock ran out (Redis unreachable or this daemon paused for longer than intake.lock_duration_s) and BullMQ's "
    "stalled checker put the job back in the queue; no other daemon held it then",
    -3: "the job was removed from the queue",
}


@dataclass(frozen=True)
class Verdict:
    ours: bool
    why: str


async def look_into(held: Any, worker: Any, queue: str, lock_ms: int, lose: Callable[[Any, str], None]) -> None:
    """For one refused renewal of ``held`` (a ``HeldJob``): keep the job, or ``lose`` it saying why."""
    try:
        verdict = await reclaim_lock(worker, queue, held.job.id, held.job.token, lock_ms)
    except Exception as exc:  # noqa: BLE001 - Redis gone again: the next refused renewal asks again
        log.warning("queue.reclaim_unanswered", job=held.job.job_id, error=f"{type(exc).__name__}: {exc}")
        return
    finally:
        held.reclaiming = False
    if verdict.ours:
        log.warning("queue.lock_reacquired", job=held.job.job_id, bullmq_id=held.job.id, reason=verdict.why)
    else:
        lose(held, verdict.why)


async def reclaim_lock(worker: Any, queue: str, job_id: str, token: str, lock_ms: int) -> Verdict:
    """Keep the job if its lock can be had without taking it from anyone; say why not otherwise."""
    prefix = f"{worker.opts.get('prefix', 'bull')}:{queue}:"
    keys = [f"{prefix}{job_id}:lock", f"{prefix}active", f"{prefix}stalled", f"{prefix}{job_id}"]
    answer = int(await worker.client.eval(RECLAIM_LUA, len(keys), *keys, token, lock_ms, job_id))
    return Verdict(answer > 0, WHY[answer])
