"""Keeping one worker process alive: start, load, assign, watch for death and stalls, restart.

"Alive" means "made progress recently", not "the PID exists": every worker message is a
heartbeat, and a busy worker silent for ``stall_timeout_s`` is killed, as is a worker still
loading its models after ``load_timeout_s`` (a hung CUDA init or a blocked download). Death by any cause
(exception, signal, OOM killer, ``os._exit``) is observed through ``Popen.poll`` and reported
with the signal name, the stage, the last frame reached and the tail of the worker's stderr.
Restarts back off exponentially. The service decides what a death means for the video.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import structlog

from daemon.config import PosedConfig, to_dict
from daemon.log import get_logger
from daemon.processing.protocol import decode
from daemon.processing.worker import EXIT_LOAD_FAILED

log = get_logger(__name__)
STDERR_TAIL_LINES = 40
# glog/absl prefixes (W0000 ..., E0000 ...) and plain WARNING:/ERROR: lines.
_LEVEL_PREFIXES = (("E", logging.ERROR), ("F", logging.CRITICAL), ("W", logging.WARNING))


def _is_json_object(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _native_level(line: str) -> int:
    for word, level in (("ERROR", logging.ERROR), ("WARNING", logging.WARNING)):
        if line.startswith(word):
            return level
    for prefix, level in _LEVEL_PREFIXES:
        if line.startswith(prefix) and line[1:5].isdigit():
            return level
    return logging.INFO


class WorkerState(str, Enum):
    STOPPED = "stopped"
    STARTING = "starting"
    LOADING = "loading"
    READY = "ready"
    BUSY = "busy"
    BACKOFF = "backoff"


@dataclass
class WorkerEvent:
    kind: str  # a worker message type, or "died"
    data: dict[str, Any] = field(default_factory=dict)


def describe_exit(returncode: int) -> dict[str, Any]:
    """Exit status as facts: the signal's name, or the exit code."""
    if returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return {"signal": name, "exit_code": None, "description": f"was killed by {name}"}
    return {"signal": None, "exit_code": returncode, "description": f"exited with code {returncode}"}


class WorkerProcess:
    """One spawned ``python -m daemon.processing.worker``, its message pipe and its stderr tail."""

    def __init__(self, cfg: PosedConfig) -> None:
        self._cfg = cfg
        self.messages: queue.Queue = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "daemon.processing.worker", "--msg-fd", str(write_fd)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            start_new_session=True,  # own process group: killpg reaches anything it spawned
            env={**os.environ, "PYTHONBREAKPOINT": "0", "PYTHONFAULTHANDLER": "1"},
        )
        os.close(write_fd)
        self.pid = self.proc.pid
        self._readers = [
            threading.Thread(target=self._read_messages, args=(read_fd,), name="posed-worker-msgs", daemon=True),
            threading.Thread(target=self._read_stderr, name="posed-worker-stderr", daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.send("init", config=to_dict(cfg))

    def _read_messages(self, fd: int) -> None:
        with os.fdopen(fd, "rb") as stream:
            for line in stream:
                message = decode(line)
                if message is not None:
                    self.messages.put(message)
                else:
                    log.warning("worker.bad_message", line=line[:200].decode("utf-8", "replace"))

    def _read_stderr(self) -> None:
        """Everything written to the worker's fd 2, by Python or by native code that bypasses
        Python (MediaPipe's absl logging, FFmpeg, faulthandler): its own JSON log lines pass
        through, anything else becomes a ``worker.output`` event, so the daemon's stderr stays
        JSON lines. The tail keeps the raw text for crash reports."""
        assert self.proc.stderr is not None
        passthrough = structlog.WriteLogger(sys.stderr)  # shares structlog's per-file lock
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_tail.append(line)
            if _is_json_object(line):
                passthrough.msg(line)
            elif line.strip():
                log.log(_native_level(line), "worker.output", line=line, worker_pid=self.pid)

    def send(self, kind: str, **fields: Any) -> bool:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps({"type": kind, **fields}) + "\n").encode("utf-8"))
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False  # the worker is dying; poll() will tell

    def drain(self, timeout_s: float = 2.0) -> None:
        """After exit: wait until both pipes hit EOF, so the last words are in hand."""
        deadline = time.monotonic() + timeout_s
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def close_stdin(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass


class WorkerSupervisor:
    """State machine around ``WorkerProcess``; ``poll`` returns what happened since last time."""

    def __init__(self, cfg: PosedConfig) -> None:
        self._cfg = cfg.worker
        self._full_cfg = cfg
        self.worker: WorkerProcess | None = None
        self.state = WorkerState.STOPPED
        self.info: dict[str, Any] | None = None
        self.loading_what: str | None = None
        self.loading_since: float | None = None
        self.last_load_error: str | None = None
        self.restarts = 0
        self._backoff = self._cfg.restart_backoff_s
        self._next_start = 0.0
        self._last_activity = 0.0
        self._first_frame_seen = False
        self._kill_reason: str | None = None
        self._stage = "idle"
        self._last_frame: int | None = None
        self.job_deadline: float | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def ensure_started(self, now: float) -> None:
        if self.state in (WorkerState.STOPPED, WorkerState.BACKOFF) and now >= self._next_start:
            self.worker = WorkerProcess(self._full_cfg)
            self.state = WorkerState.STARTING
            self.loading_since = now
            self._last_activity = now
            self._stage = "model load"
            log.info("worker.started", pid=self.worker.pid)

    def assign(self, job_message: dict[str, Any], now: float) -> None:
        assert self.worker is not None and self.state == WorkerState.READY
        self.worker.send("job", **job_message)
        self.state = WorkerState.BUSY
        self._last_activity = now
        self._first_frame_seen = False
        self._stage = "decode"
        self._last_frame = None
        self.job_deadline = None

    def cancel_job(self) -> None:
        if self.worker is not None and self.state == WorkerState.BUSY:
            self.worker.send("cancel")

    def kill(self, reason: str) -> None:
        """Kill the worker's whole process group now; ``poll`` reports the death with ``reason``."""
        if self.worker is not None:
            self._kill_reason = reason
            log.warning("worker.kill", pid=self.worker.pid, reason=reason)
            self.worker.signal_group(signal.SIGKILL)

    def stop(self, timeout_s: float) -> None:
        """Ask an idle worker to exit; escalate to SIGTERM then SIGKILL of its group."""
        worker = self.worker
        if worker is None:
            return
        worker.send("exit")
        worker.close_stdin()
        for signum in (None, signal.SIGTERM, signal.SIGKILL):
            if signum is not None:
                worker.signal_group(signum)
            try:
                worker.proc.wait(timeout=timeout_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self.worker = None
        self.state = WorkerState.STOPPED

    # -- observation -----------------------------------------------------------------------

    def poll(self, now: float) -> list[WorkerEvent]:
        events: list[WorkerEvent] = []
        worker = self.worker
        if worker is None:
            return events
        while True:
            try:
                message = worker.messages.get_nowait()
            except queue.Empty:
                break
            events.append(self._on_message(message, now))
        if self.state == WorkerState.BUSY:
            self._check_stall(now)
        elif self.state in (WorkerState.STARTING, WorkerState.LOADING):
            self._check_load_time(now)
        returncode = worker.proc.poll()
        if returncode is not None:
            # Collect what the worker said and printed just before dying (e.g. a traceback).
            worker.drain()
            while not worker.messages.empty():
                events.append(self._on_message(worker.messages.get_nowait(), now))
            events.append(self._on_exit(returncode, now))
        return events

    def _on_message(self, message: dict[str, Any], now: float) -> WorkerEvent:
        kind = message["type"]
        self._last_activity = now
        if kind == "loading":
            self.state = WorkerState.LOADING
            self.loading_what = message.get("what")
        elif kind == "ready":
            self.state = WorkerState.READY
            self.info = message.get("info")
            self.loading_what = self.loading_since = None
            self.last_load_error = None
            self._stage = "idle"
            log.info("worker.ready", pid=message.get("pid"), backend=(self.info or {}).get("name"))
        elif kind == "load_failed":
            self.last_load_error = message.get("message")
        elif kind == "progress":
            self._stage = message.get("stage", self._stage)
            self._last_frame = message.get("frames_done")
            if (self._last_frame or 0) >= 1:
                self._first_frame_seen = True
        elif kind == "probed":
            self._set_ceiling(message.get("video", {}), now)
        elif kind in ("done", "failed", "cancelled"):
            self.state = WorkerState.READY
            self._stage = "idle"
            self._backoff = self._cfg.restart_backoff_s  # a finished job proves the worker healthy
        return WorkerEvent(kind, message)

    def _set_ceiling(self, video: dict[str, Any], now: float) -> None:
        """base + factor x the video's seconds at 30 fps: the work is per frame, and a high
        frame rate must not buy a decode bomb hours of processing."""
        if self._cfg.ceiling_base_s <= 0:
            return
        frames = video.get("frame_count_estimate")
        seconds = frames / 30.0 if frames else video.get("duration_estimate_s")
        if seconds:
            self.job_deadline = now + self._cfg.ceiling_base_s + self._cfg.ceiling_factor * seconds

    def _check_stall(self, now: float) -> None:
        limit = self._cfg.stall_timeout_s if self._first_frame_seen else self._cfg.first_frame_timeout_s
        if now - self._last_activity > limit and self._kill_reason is None:
            self.kill(f"stalled: no progress for {now - self._last_activity:.0f} s (limit {limit:.0f} s)")
        elif self.job_deadline is not None and now > self.job_deadline and self._kill_reason is None:
            self.kill("time_limit: processing exceeded worker.ceiling_base_s + ceiling_factor x the video's frames at 30 fps")

    def _check_load_time(self, now: float) -> None:
        """Loading may send no message for minutes (a cold PHALP load), so the whole load is
        timed from the worker's start, not from its last message."""
        limit = self._cfg.load_timeout_s
        if self.loading_since is not None and now - self.loading_since > limit and self._kill_reason is None:
            what = self.loading_what or "the backend"
            self.last_load_error = f"worker still loading {what} after {limit:.0f} s (worker.load_timeout_s): killed"
            self.kill(f"load_timeout: {self.last_load_error}")

    def _on_exit(self, returncode: int, now: float) -> WorkerEvent:
        worker = self.worker
        assert worker is not None
        was = self.state
        details = describe_exit(returncode) | {
            "pid": worker.pid,
            "state": was.value,
            "stage": self._stage,
            "last_frame": self._last_frame,
            "stderr_tail": list(worker.stderr_tail),
            "kill_reason": self._kill_reason,
            "during_load": was in (WorkerState.STARTING, WorkerState.LOADING),
        }
        if returncode == EXIT_LOAD_FAILED:
            details["during_load"] = True
        log.warning("worker.died", **{k: v for k, v in details.items() if k != "stderr_tail"})
        self.worker = None
        self._kill_reason = None
        self.restarts += 1
        self.state = WorkerState.BACKOFF
        self._next_start = now + self._backoff
        self._backoff = min(self._backoff * 2, self._cfg.restart_backoff_max_s)
        if details["during_load"] and not self.last_load_error:
            self.last_load_error = f"worker {details['description']} while loading {self.loading_what or 'the backend'}"
        return WorkerEvent("died", details)

    @property
    def next_start_in(self) -> float:
        return max(0.0, self._next_start - time.monotonic())
