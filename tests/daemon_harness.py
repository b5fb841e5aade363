"""Driving a real ``posed run`` subprocess the way the Node backend and an operator would.

Videos are dropped with the producer protocol (``.part`` then rename), outcomes are read the
way a consumer reads them, processes are stopped with real signals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from daemon.publishing.contract import iter_verified_frames, validate_frame
from tests.helpers import wait_until

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
SHORT_CLIP = MEDIA / "running-2s-320.mp4"  # 60 frames, 320x182
LONG_CLIP = MEDIA / "running-1080p.mp4"  # 180 frames, 1920x1088
STREET_CLIP = MEDIA / "street-5frames.mp4"

# Short intervals so tests observe in seconds what production does in tens of seconds.
FAST = [
    "inbox.settle_s=0.3",
    "inbox.poll_interval_s=0.2",
    "inbox.rescan_interval_s=2",
    "daemon.status_interval_s=0.3",
    "daemon.tick_s=0.05",
    "claim.heartbeat_interval_s=0.5",
    "claim.stale_after_s=5",
    "worker.restart_backoff_s=0.2",
    "worker.restart_backoff_max_s=2",
]


class DaemonProcess:
    def __init__(self, root: Path, name: str = "t1", overrides: list[str] | None = None, *, inbox: Path | None = None, outbox: Path | None = None) -> None:
        self.root = root
        self.name = name
        self.inbox = inbox or root / "inbox"
        self.outbox = outbox or root / "outbox"
        self.overrides = overrides or []
        self.log_path = root / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> DaemonProcess:
        command = [
            sys.executable, "-m", "daemon", "run", "--inbox", str(self.inbox), "--outbox", str(self.outbox),
            f"daemon.name={self.name}", f"daemon.state_dir={self.root / 'state'}", *FAST, *self.overrides,
        ]  # fmt: skip
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "POSED_LOG_FORMAT": "json"})
        log.close()
        return self

    @property
    def status_path(self) -> Path:
        return self.outbox / ".posed" / "status" / f"{self.name}.json"

    def status(self) -> dict:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_state(self, *states: str, timeout: float = 60) -> dict:
        wait_until(lambda: self.status().get("state") in states, timeout, f"{self.name} state in {states}; log:\n{self.log_tail()}")
        return self.status()

    def wait_ready(self, timeout: float = 60) -> DaemonProcess:
        self.wait_state("ready", timeout=timeout)
        return self

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signum)

    def kill9(self) -> None:
        """kill -9 of the daemon alone (its worker must die with it, on its own)."""
        self.signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError(f"daemon {self.name} did not stop within {timeout} s; log:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_events(self) -> list[dict]:
        events = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except ValueError:
                    continue
        return events

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def drop(src: Path, inbox: Path, name: str) -> Path:
    """The producer protocol: write ``.name.part``, then rename into place."""
    inbox.mkdir(parents=True, exist_ok=True)
    part = inbox / f"{name}.part"
    shutil.copyfile(src, part)
    final = inbox / name
    os.rename(part, final)
    return final


def write_bytes(inbox: Path, name: str, data: bytes) -> Path:
    inbox.mkdir(parents=True, exist_ok=True)
    part = inbox / f"{name}.part"
    part.write_bytes(data)
    os.rename(part, inbox / name)
    return inbox / name


def outcomes(outbox: Path) -> dict[str, Path]:
    """Published outcome files by name (what a consumer polling the outbox sees)."""
    if not outbox.is_dir():
        return {}
    return {p.name: p for p in outbox.iterdir() if p.is_file() and p.name.endswith((".result.json", ".error.json"))}


def wait_outcome(outbox: Path, stem: str, timeout: float = 60) -> tuple[str, dict]:
    """Wait for ``stem.result.json`` or ``stem.error.json``; return ("result"|"error", document)."""
    found: dict[str, Path] = {}

    def arrived() -> bool:
        for kind in ("result", "error"):
            path = outbox / f"{stem}.{kind}.json"
            if path.exists():
                found[kind] = path
                return True
        return False

    wait_until(arrived, timeout, f"an outcome for {stem} in {outbox}")
    kind, path = next(iter(found.items()))
    return kind, read_outcome(path)


def read_outcome(path: Path) -> dict:
    """An outcome as a consumer reads it: an error report as is; a result manifest with its
    frames file streamed back in (checked against the manifest's count, size and sha256) under
    ``frames``, so tests can look at both at once."""
    document = json.loads(path.read_text())
    if document.get("schema") == "posed.result":
        entry = document["files"]["frames"]
        document["frames"] = list(iter_verified_frames(path.with_name(entry["name"]), entry))
    return document


class OutboxReader(threading.Thread):
    """A consumer polling the outbox as fast as it can: every published file must parse."""

    def __init__(self, outbox: Path, validate=None) -> None:
        super().__init__(name="outbox-reader", daemon=True)
        self.outbox = outbox
        self.validate = validate
        self.reads = 0
        self.partial: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.scan()
            time.sleep(0.01)

    def scan(self) -> None:
        """Read every outcome in the outbox once, as a consumer would."""
        for name, path in outcomes(self.outbox).items():
            try:
                document = json.loads(path.read_bytes())
                if self.validate is not None:
                    self.validate(document)
                if document.get("schema") == "posed.result":  # a manifest: its frames must be complete
                    entry = document["files"]["frames"]
                    for frame in iter_verified_frames(path.with_name(entry["name"]), entry):
                        if self.validate is not None:
                            validate_frame(frame)
                self.reads += 1
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - any failure is a partial/invalid read
                self.partial.append(f"{name}: {type(exc).__name__}: {exc}"[:300])

    def stop(self) -> None:
        """Stop polling, then read the outbox once more: on a busy machine the thread may not
        have been scheduled since the last outcome was published, and every published outcome
        must have been read at least once for ``reads`` to mean anything."""
        self._halt.set()
        self.join(timeout=10)
        self.scan()
