"""The worker process: loads the backend once and runs videos the supervisor assigns.

It is a separate process so that anything the model stack does (a segfault in a C++
extension, CUDA OOM, the kernel's OOM killer) ends this process, never the daemon. Started by
the supervisor as ``python -m daemon.processing.worker --msg-fd N``; it dies with its parent
(PR_SET_PDEATHSIG, and EOF on stdin), so a ``kill -9`` of the daemon leaves no orphan holding
the GPU.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import os
import queue
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from daemon import config as config_module
from daemon.processing.backends import create_backend
from daemon.errors import BackendUnavailable, ErrorCode, JobCancelled, JobError
from daemon.processing.job import JobSpec, run_job
from daemon.log import bind_job, configure_logging, get_logger, unbind_job
from daemon.processing.protocol import MessageWriter, decode
from daemon.records import JobOptions

EXIT_LOAD_FAILED = 3
PR_SET_PDEATHSIG = 1


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    _isolate_process()
    messages = MessageWriter(args.msg_fd)
    commands = _CommandReader(sys.stdin.buffer)
    cfg = config_module.from_dict(commands.wait_init())
    configure_logging(process="worker")
    log = get_logger("posed.worker")
    backend, info = _load_backend(cfg, messages, log)
    if backend is None:
        return EXIT_LOAD_FAILED
    messages.send("ready", info=info.to_json(), pid=os.getpid())
    while (job := commands.next_job()) is not None:
        _run_one(job, backend, info, cfg, messages, commands, log)
    backend.close()
    return 0


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="posed-worker")
    parser.add_argument("--msg-fd", type=int, required=True)
    return parser.parse_args(argv)


def _isolate_process() -> None:
    # Third-party code prints to stdout; keep it out of any protocol and in the captured stderr.
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # A native crash then leaves a Python traceback in the stderr tail the supervisor reports.
    faulthandler.enable()
    # Ctrl-C in a terminal reaches the whole process group; only the supervisor decides.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the stdin EOF check still ends us
        pass
    # PHALP and 4D-Humans have breakpoint() calls in library code; never block on pdb.
    os.environ["PYTHONBREAKPOINT"] = "0"


def _load_backend(cfg, messages: MessageWriter, log):
    backend = create_backend(cfg)

    def progress(what: str) -> None:
        log.info("worker.loading", what=what)
        messages.send("loading", what=what)

    try:
        info = backend.load(progress)
    except BackendUnavailable as exc:
        log.error("worker.load_failed", error=str(exc))
        messages.send("load_failed", message=str(exc), permanent=True)
        return None, None
    except Exception as exc:  # noqa: BLE001 - any load failure is reported, then we exit
        log.exception("worker.load_failed")
        messages.send("load_failed", message=f"{type(exc).__name__}: {exc}", permanent=False)
        return None, None
    return backend, info


def _run_one(job: dict[str, Any], backend, info, cfg, messages: MessageWriter, commands: _CommandReader, log) -> None:
    spec = JobSpec(
        job_id=job["job_id"],
        input_path=Path(job["input_path"]),
        result_tmp=Path(job["result_tmp"]),
        input_info=job["input_info"],
        options=JobOptions(**job.get("options", {})),
        client=job.get("client"),
        exact_path=bool(job.get("exact_path")),
    )
    bind_job(spec.job_id, (spec.client or {}).get("job_id"))
    commands.cancel_requested.clear()
    messages.send("started", job_id=spec.job_id)
    throttle = _Throttle(cfg.worker.progress_interval_s)

    def progress(done: int, total: int | None, stage: str) -> None:
        if throttle.due(force=done <= 1):
            messages.send("progress", job_id=spec.job_id, frames_done=done, frames_total=total, stage=stage)

    try:
        summary = run_job(
            spec,
            backend,
            info,
            cfg,
            progress=progress,
            cancelled=commands.cancel_requested.is_set,
            probed=lambda video: messages.send("probed", job_id=spec.job_id, video=video),
        )
    except JobCancelled:
        log.info("job.cancelled")
        messages.send("cancelled", job_id=spec.job_id)
    except JobError as exc:
        log.warning("job.failed", code=exc.code.value, error=exc.message)
        messages.send("failed", job_id=spec.job_id, error=exc.to_dict())
    except Exception as exc:  # noqa: BLE001 - the job fails, the worker lives on
        error = _classify_unexpected(exc)
        log.error("job.failed", code=error.code.value, error=error.message, exc_info=True)
        messages.send("failed", job_id=spec.job_id, error=error.to_dict())
    else:
        log.info("job.done", frames=summary["frames"], fps=summary["frames_per_second"])
        messages.send("done", job_id=spec.job_id, summary=summary)
    finally:
        unbind_job()


def _classify_unexpected(exc: BaseException) -> JobError:
    # torch.cuda.OutOfMemoryError is matched by name: the CPU path never imports torch.
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return JobError(ErrorCode.OUT_OF_MEMORY, f"out of memory during inference: {exc}", stage="inference")
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-6:]
    return JobError(ErrorCode.BACKEND, f"{type(exc).__name__}: {exc}", stage="inference", details={"traceback": "".join(tail)})


class _Throttle:
    def __init__(self, interval_s: float) -> None:
        self._interval = interval_s
        self._next = 0.0

    def due(self, *, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now >= self._next:
            self._next = now + self._interval
            return True
        return False


class _CommandReader:
    """Reads supervisor commands on a thread, so a cancel arrives while a video runs."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._jobs: queue.Queue = queue.Queue()
        self._init: queue.Queue = queue.Queue()
        self.cancel_requested = threading.Event()
        threading.Thread(target=self._read, name="posed-commands", daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            message = decode(line)
            if message is None:
                continue
            kind = message["type"]
            if kind == "init":
                self._init.put(message["config"])
            elif kind == "job":
                self._jobs.put(message)
            elif kind == "cancel":
                self.cancel_requested.set()
            elif kind == "exit":
                self._jobs.put(None)
        # EOF: the supervisor is gone. Nobody can publish our work; leave at once.
        os._exit(0)

    def wait_init(self) -> dict[str, Any]:
        return self._init.get()

    def next_job(self) -> dict[str, Any] | None:
        return self._jobs.get()


if __name__ == "__main__":
    raise SystemExit(main())
