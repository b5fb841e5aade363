"""Run ``posed`` with its wall clock off by a number of seconds, as on a host whose clock is
wrong (WSL2's clock lags minutes after a laptop sleeps).

    python -m tests.skewed_clock -300 run --inbox ... --outbox ...

libfaketime would be the obvious tool, but under it Python's timed waits (``Event.wait``,
``time.sleep``) hang or fail with EINVAL on this machine, so the clock is injected instead:
``time.time`` is offset before any daemon module is imported, so every wall-clock reading the
daemon makes (lock heartbeats, status, reports) is skewed, while the monotonic clock is left
alone, exactly as on a real host. File mtimes still come from the kernel, as they would from a
file server.
"""

from __future__ import annotations

import sys
import time


def _skew(offset_s: float) -> None:
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset_s  # type: ignore[assignment]
    time.time_ns = lambda: real_time_ns() + int(offset_s * 1e9)  # type: ignore[assignment]


if __name__ == "__main__":
    _skew(float(sys.argv[1]))
    from daemon.cli import main  # imported after the skew: defaults like clock=time.time bind to it

    raise SystemExit(main(sys.argv[2:]))
