"""One finding of a preflight check: what was checked, the verdict, and how to fix a failure.

Backends report their preflight (``backends.phalp.preflight``) in these terms and ``ops.doctor``
renders them, so the type lives here, below both."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(str, Enum):
    OK = "ok"
    FAIL = "fail"
    WARN = "warn"
    INFO = "info"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""
    blocking: bool = True  # a failure means "not ready" for the configured backend

    def failed(self) -> bool:
        return self.verdict is Verdict.FAIL and self.blocking
