"""Run ``posed`` as if a Windows process held every new result file for a while.

    python -m tests.blocked_rename 7 run --inbox ... --outbox ...

EPERM from a rename Windows blocks (DrvFs) cannot happen on Linux, so the first N attempts to
give a ``*.result.json`` its final name fail with EPERM, in a real daemon process. Both ``link``
and the ``rename`` fallback are refused, as DrvFs does.
"""

from __future__ import annotations

import errno
import os
import sys


def _block(times: int) -> None:
    real_link, real_rename = os.link, os.rename
    left = {"n": times}

    def refused(target: object) -> bool:
        return os.fsdecode(target).endswith(".result.json") and left["n"] > 0  # type: ignore[arg-type]

    def link(source, target, *args, **kwargs):  # type: ignore[no-untyped-def]
        if refused(target):
            raise OSError(errno.EPERM, "Operation not permitted (held by a Windows process)")
        return real_link(source, target, *args, **kwargs)

    def rename(source, target, *args, **kwargs):  # type: ignore[no-untyped-def]
        if refused(target):
            left["n"] -= 1  # one refused attempt = the link and its rename fallback
            raise OSError(errno.EPERM, "Operation not permitted (held by a Windows process)")
        return real_rename(source, target, *args, **kwargs)

    os.link, os.rename = link, rename


if __name__ == "__main__":
    _block(int(sys.argv[1]))
    from daemon.cli import main

    raise SystemExit(main(sys.argv[2:]))
