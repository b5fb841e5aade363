"""Publishes that Windows blocked, tried again at a due time checked each tick, never slept on.

On DrvFs a Windows process holding a handle (an indexer, an antivirus scan, the Node backend
reading) makes a rename fail with EPERM/EACCES/EBUSY for a while. Sleeping through that on the
main loop stopped the heartbeat, the status file and systemd's watchdog for up to 30 s per file.
Here each blocked publish gets a due time with capped exponential backoff; the loop calls
``tick`` and carries on with everything else meanwhile. After ``give_up_after_s`` the publish
fails like any other outbox fault (the input is kept and retried later).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.errors import PublishError
from daemon.log import get_logger
from daemon.publishing.publish import PublishBlocked

log = get_logger(__name__)
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0


@dataclass
class _Pending:
    owner: Any  # whose publish this is (the job), so it can be cancelled with it
    what: str
    action: Callable[[], Path]
    done: Callable[[Path], None]
    failed: Callable[[PublishError], None]
    give_up_at: float
    due: float = 0.0
    delay: float = FIRST_DELAY_S
    attempts: int = 0


class ScheduledPublishes:
    def __init__(self, give_up_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._give_up_after_s = give_up_after_s
        self._clock = clock
        self._pending: list[_Pending] = []

    def run(self, owner: Any, what: str, action: Callable[[], Path], done: Callable[[Path], None],
            failed: Callable[[PublishError], None]) -> None:  # fmt: skip
        """Publish now; if Windows blocks it, ``done`` or ``failed`` is called by a later tick."""
        self._attempt(_Pending(owner, what, action, done, failed, give_up_at=self._clock() + self._give_up_after_s))

    def tick(self, now: float) -> None:
        due = [pending for pending in self._pending if pending.due <= now]
        for pending in due:
            self._pending.remove(pending)
            self._attempt(pending)

    def owners(self) -> list[Any]:
        return [pending.owner for pending in self._pending]

    def cancel(self, owner: Any) -> None:
        self._pending = [pending for pending in self._pending if pending.owner is not owner]

    def _attempt(self, pending: _Pending) -> None:
        pending.attempts += 1
        try:
            published = pending.action()
        except PublishBlocked as exc:
            now = self._clock()
            if now + pending.delay > pending.give_up_at:
                pending.failed(PublishError(f"{pending.what}: still blocked after {pending.attempts} attempts: {exc}"))
                return
            pending.due = now + pending.delay
            log.warning("publish.retry_scheduled", what=pending.what, attempt=pending.attempts, retry_in_s=round(pending.delay, 3),
                        error=str(exc))  # fmt: skip
            pending.delay = min(pending.delay * 2, MAX_DELAY_S)
            self._pending.append(pending)
            return
        except PublishError as exc:
            pending.failed(exc)
            return
        pending.done(published)
