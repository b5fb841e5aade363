"""An asyncio event loop on its own thread, driven from synchronous code with timeouts.

BullMQ's Python package is asyncio-only; the daemon's main loop is synchronous and must never
block for long (it feeds systemd's watchdog). Coroutines run here; the caller either waits a
bounded time for the answer or does not wait at all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from daemon.errors import PosedError


class QueueUnavailable(PosedError):
    """Redis did not answer in time; the operation goes on and may be awaited again."""


class LoopThread:
    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def submit(self, coroutine: Coroutine) -> concurrent.futures.Future:
        """Run ``coroutine`` on the loop; the caller may wait on the returned future."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(callback, *args)

    def run(self, coroutine: Coroutine, timeout: float) -> Any:
        """Run and wait at most ``timeout`` seconds; on timeout the coroutine is cancelled."""
        future = self.submit(coroutine)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise QueueUnavailable(f"Redis did not answer within {timeout:g} s") from None

    def stop(self, timeout: float) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
