"""Deadline-bounded waiting for tests: never synchronise with a bare fixed sleep."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_INTERVAL_S = 0.05


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 5.0,
    message: str | Callable[[], str] = "",
    *,
    interval: float = POLL_INTERVAL_S,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy.

    Returns:
        the first truthy value, so callers can wait for and collect a result at once.

    Raises:
        AssertionError: ``timeout`` seconds passed; names the predicate and its last value.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = message() if callable(message) else message
            name = getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(
                f"condition {name} not met within {timeout:g} s (last value {value!r})"
                + (f": {detail}" if detail else "")
            )
        time.sleep(interval)


def wait_for_file(path: str | os.PathLike[str], timeout: float = 5.0) -> None:
    """Wait until ``path`` exists (a symlink counts, even a dangling one)."""
    wait_until(lambda: os.path.lexists(path), timeout, f"{os.fspath(path)} did not appear")
