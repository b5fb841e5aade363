"""A BullMQ job this daemon holds: its lock state, its one settling operation, its progress.

Progress is best effort and must never flood Redis (every ``updateProgress`` is an event in
the queue's stream that each Node ``QueueEvents`` reads): while a job runs, at most one value
every ``PROGRESS_MIN_INTERVAL_S``, always the newest, the last one never dropped; "taken"
and "failed" go out at once. Everything here runs on the intake's event-loop thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from daemon.intake.queue.job import QueueJob
from daemon.intake.queue.redis_client import is_connection_error
from daemon.log import get_logger

log = get_logger(__name__)
PROGRESS_MIN_INTERVAL_S = 0.5
URGENT_STAGES = ("taken", "failed")  # sent at once: a daemon took the job; its error report is out
BACKOFF_S = (0.25, 5.0)  # first and longest pause between attempts while Redis is unreachable


@dataclass
class HeldJob:
    bull_job: Any  # bullmq.Job
    job: QueueJob
    lost: bool = False  # BullMQ refused to renew or extend the lock: discard the work
    lost_why: str | None = None  # what happened, in words (lock_recovery)
    reclaiming: bool = False  # a refused renewal is being looked into
    settling: concurrent.futures.Future | None = None  # complete / fail / release: issued once
    settled: bool = False  # a state change was asked for: no progress after it
    progress: dict[str, Any] | None = None  # the newest value not yet sent
    progress_sending: bool = False
    progress_sent_at: float = 0.0

    def queue_progress(self, value: dict[str, Any]) -> None:
        if self.settled:
            return
        self.progress = value
        if not self.progress_sending:
            self.progress_sending = True
            asyncio.ensure_future(self._send_progress())

    async def _send_progress(self) -> None:
        try:
            while self.progress is not None and not self.lost:
                if self.progress["stage"] not in URGENT_STAGES:
                    await asyncio.sleep(max(0.0, self.progress_sent_at + PROGRESS_MIN_INTERVAL_S - time.monotonic()))
                value, self.progress = self.progress, None
                self.progress_sent_at = time.monotonic()
                await self.bull_job.updateProgress(value)
        except Exception as exc:  # noqa: BLE001 - progress is best effort; health reports Redis
            log.warning("queue.progress_failed", job=self.job.job_id, error=str(exc))
        finally:
            self.progress_sending = False

    async def progress_flushed(self) -> None:
        """Stop taking progress and wait for the value in flight (a failure's report goes
        before the failure itself, so Node sees it in job.progress)."""
        self.settled = True
        while self.progress_sending:
            await asyncio.sleep(0.01)

    async def change_state(self, operation: Callable[[HeldJob], Coroutine], on_unreachable: Callable[[BaseException], None]) -> bool:
        """Run a token-checked state change (complete, fail, release), retrying while Redis
        is unreachable; False when BullMQ refuses it because the lock is not ours (its
        scripts raise TypeError: "Missing lock", "Lock mismatch", "not in the active state")."""
        await self.progress_flushed()
        pause = BACKOFF_S[0]
        while True:
            try:
                await operation(self)
                return True
            except TypeError as exc:
                self.lost = True
                log.warning("queue.refused", job=self.job.job_id, error=str(exc))
                return False
            except Exception as exc:  # noqa: BLE001 - connection trouble: retry with backoff
                if not is_connection_error(exc):
                    raise
                on_unreachable(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, BACKOFF_S[1])
