"""Export work on its own thread behind a bounded queue, off the pipeline's critical path.

The result writer hands an item over and goes on with the next frame; the worker does the slow
part (for the preview: decode, draw, feed x264) at its own pace. Nothing is dropped: when the
queue is full the writer waits for room, so memory stays bounded by ``capacity`` items. A
failure on the worker is raised to the writer at its next ``put`` or at ``finish``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

POLL_S = 0.2  # how often a waiting put re-checks whether the worker failed
_END = object()


class BackgroundWork:
    """``put`` items; ``handle`` runs on them in order on one daemon thread."""

    def __init__(self, handle: Callable[[Any], None], name: str, capacity: int) -> None:
        self._handle = handle
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self._raise_if_failed()
        if not self.offer(item):
            self._raise_if_failed()

    def finish(self) -> None:
        """Wait until every item is handled; raises the worker's error if it had one."""
        self.offer(_END)
        self._thread.join()
        self._raise_if_failed()

    def cancel(self) -> None:
        """Stop after the item in hand; queued items are discarded (the export is being abandoned)."""
        self._cancelled.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self.offer(_END)
        self._thread.join()

    def offer(self, item: Any) -> bool:
        """Queue ``item``, waiting for room while the worker lives; False if it stopped (never raises)."""
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False  # a stopped worker takes nothing: the caller is not held up

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END or self._cancelled.is_set():
                return
            try:
                self._handle(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the producer, which decides
                self._error = exc
                return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error
