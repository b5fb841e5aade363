"""``posed doctor``: is this machine ready to run the configured backend? Says what to fix.

Readiness is judged for ``backend.name``, and that verdict is the first line. The GPU backend's
checks (driver, VRAM, imports, CUDA, model files, SMPL) always run, so a CPU-only machine learns
what is missing for ``phalp``; they only decide the exit code when ``phalp`` is configured, and
otherwise collapse to one summary line (``posed doctor --all`` lists them). Each failed check
prints its fix. Exit code 0 = ready, 1 = not ready.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from daemon.processing.check import Check, Verdict
from daemon.config import PosedConfig

if TYPE_CHECKING:
    from daemon.processing.backends.phalp.host_memory import HostFiles

EXIT_READY = 0
EXIT_NOT_READY = 1
GPU_BACKEND = "phalp"
GPU_PYTHON = (3, 10)  # the oldest Python scripts/setup-gpu.sh installs for (torch 2.11 wheels: 3.10-3.14)
_LABELS = {Verdict.OK: "ok", Verdict.FAIL: "FAIL", Verdict.WARN: "warn", Verdict.INFO: "info"}


def run_doctor(cfg: PosedConfig, out: TextIO = sys.stdout, host: HostFiles | None = None, *, show_all: bool = False) -> int:
    """Print the verdict, then the checks for the configured backend (with the fix for each
    failure), then the other backend collapsed unless ``show_all``; return 0 if ready, else 1.

    ``host`` says where /proc/meminfo and the Windows users folder are (tests pass their own)."""
    sections = [(title, list(checks), selected) for title, checks, selected in _sections(cfg, host)]
    problems = [check for _, checks, _ in sections for check in checks if check.failed()]
    verdict = _verdict(cfg.backend.name, problems)
    out.write(f"posed doctor: {verdict}\n")
    for title, checks, selected in sections:
        if selected or show_all:
            out.write(f"\n{title}\n")
            for check in checks:
                _render(check, out)
        else:
            out.write(f"\n{title}: {_tally(checks)}; posed doctor --all lists them\n")
    out.write(f"\n{verdict}\n")
    return EXIT_NOT_READY if problems else EXIT_READY


def _verdict(backend: str, problems: list[Check]) -> str:
    if problems:
        names = ", ".join(check.name for check in problems)
        return f"NOT READY for backend.name={backend}: {len(problems)} problem(s): {names}"
    return f"READY for backend.name={backend}"


def _tally(checks: list[Check]) -> str:
    ok = sum(1 for check in checks if check.verdict is Verdict.OK)
    return f"{len(checks)} checks, {ok} ok, {len(checks) - ok} missing or not ok"


def _sections(cfg: PosedConfig, host: HostFiles | None) -> Iterator[tuple[str, Iterator[Check], bool]]:
    """(title, checks, whether they concern the configured backend)."""
    gpu_selected = cfg.backend.name == GPU_BACKEND
    yield "System", _system_checks(cfg), True
    yield "Inbox and outbox", _folder_checks(cfg), True
    if cfg.intake.kind == "bullmq":
        yield "Queue (BullMQ on Redis)", _queue_checks(cfg), True
    if cfg.backend.name == "mediapipe":
        yield "CPU backend (mediapipe)", _mediapipe_checks(), True
    title = "GPU backend (phalp: PHALP + HMR 2.0)"
    if not gpu_selected:
        title += f": not selected (backend.name={cfg.backend.name}), for information"
    yield title, _gpu_checks(cfg, blocking=gpu_selected, host=host), gpu_selected


def _render(check: Check, out: TextIO) -> None:
    label = _LABELS[check.verdict] if check.blocking or check.verdict is not Verdict.FAIL else "miss"
    out.write(f"  [{label:>4}] {check.name}: {check.detail}\n")
    if check.fix and check.verdict in (Verdict.FAIL, Verdict.WARN):
        out.write(f"         fix: {check.fix}\n")
    out.flush()


# --- system -----------------------------------------------------------------------------


def _system_checks(cfg: PosedConfig) -> Iterator[Check]:
    version = sys.version_info[:3]
    detail = f"{'.'.join(map(str, version))} ({sys.executable})"
    if cfg.backend.name == GPU_BACKEND and version[:2] < GPU_PYTHON:
        fix = "run posed from .venv-gpu (created by scripts/setup-gpu.sh with Python 3.10 or newer)"
        yield Check("Python", Verdict.WARN, f"{detail}; the GPU stack needs Python 3.10 or newer", fix)
    else:
        yield Check("Python", Verdict.OK, detail)
    if _is_wsl():
        yield Check("platform", Verdict.INFO, "WSL2 (Windows drives under /mnt are seen through 9p)")


def _is_wsl() -> bool:
    try:
        return "microsoft" in Path("/proc/version").read_text().lower()
    except OSError:
        return False


def _mediapipe_checks() -> Iterator[Check]:
    try:
        module = importlib.import_module("mediapipe")
    except Exception as exc:  # noqa: BLE001 - a broken install raises more than ImportError
        yield Check("import mediapipe", Verdict.FAIL, f"{type(exc).__name__}: {exc}", "run ./scripts/run.sh to rebuild .venv")
        return
    yield Check("import mediapipe", Verdict.OK, f"version {getattr(module, '__version__', '?')}")


def _gpu_checks(cfg: PosedConfig, *, blocking: bool, host: HostFiles | None) -> Iterator[Check]:
    # Imported here: the doctor must work even if the GPU backend's package is broken.
    from daemon.processing.backends.phalp.preflight import phalp_checks

    yield from phalp_checks(cfg.backend.phalp, blocking=blocking, host=host)


# --- queue ----------------------------------------------------------------------------------


def _queue_checks(cfg: PosedConfig) -> Iterator[Check]:
    from daemon.intake.queue.redis_client import insecure_tls

    url = cfg.intake.url
    if (why := insecure_tls(url)) is not None:
        yield Check("Redis TLS", Verdict.WARN, why, "drop ssl_cert_reqs / ssl_check_hostname from intake.url and give ssl_ca_certs=<CA file> (docs/queue.md)")
    elif url.lower().startswith("rediss://"):
        yield Check("Redis TLS", Verdict.OK, "rediss://: certificate and host name verified")
    else:
        yield Check("Redis TLS", Verdict.INFO, "redis:// is not encrypted: fine on one host or a private link; across machines use rediss:// (docs/queue.md)")


# --- inbox and outbox -------------------------------------------------------------------


def _folder_checks(cfg: PosedConfig) -> Iterator[Check]:
    yield _writable_check("inbox", Path(cfg.inbox.path), "inbox.path")
    yield _writable_check("outbox", Path(cfg.outbox.path), "outbox.path")
    yield from _mount_checks(cfg)


def _writable_check(label: str, path: Path, key: str) -> Check:
    name = f"{label} writable"
    if path.is_dir():
        if os.access(path, os.W_OK | os.X_OK):
            return Check(name, Verdict.OK, str(path.absolute()))
        return Check(name, Verdict.FAIL, f"{path.absolute()} is not writable by this user", f"fix its permissions, or point {key} elsewhere")
    if path.exists():
        return Check(name, Verdict.FAIL, f"{path.absolute()} exists but is not a directory", f"point {key} at a directory")
    ancestor = _nearest_existing(path.absolute())
    if os.access(ancestor, os.W_OK | os.X_OK):
        return Check(name, Verdict.OK, f"{path.absolute()} does not exist yet; the daemon creates it (in {ancestor})")
    return Check(name, Verdict.FAIL, f"{path.absolute()} does not exist and {ancestor} is not writable", f"create it: mkdir -p '{path.absolute()}'")


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mount_checks(cfg: PosedConfig) -> Iterator[Check]:
    functions = _mount_functions()
    if functions is None:
        yield Check("inbox file system", Verdict.INFO, "mount detection is not available in this build")
        return
    filesystem_type, needs_polling = functions
    inbox = _nearest_existing(Path(cfg.inbox.path).absolute())
    fstype = filesystem_type(inbox)
    blind = needs_polling(fstype)
    observer = cfg.inbox.observer
    polling = observer == "polling" or (observer == "auto" and blind)
    how = f"polling every {cfg.inbox.poll_interval_s:g} s" if polling else "inotify events"
    detail = f"{fstype} at {inbox}; new files are noticed by {how} (inbox.observer={observer})"
    if blind and observer == "inotify":
        fix = "set inbox.observer=auto (or polling): inotify never sees files Windows writes to /mnt/* (microsoft/WSL#4739)"
        yield Check("inbox file system", Verdict.WARN, detail, fix)
    else:
        yield Check("inbox file system", Verdict.OK, detail)


def _mount_functions() -> tuple[Callable[[Path], str], Callable[[str], bool]] | None:
    """``filesystem_type``/``needs_polling`` from the inbox code, wherever this build has them."""
    for module_name in ("daemon.intake.folder.mounts", "daemon.intake.folder.inbox"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, "filesystem_type") and hasattr(module, "needs_polling"):
            return module.filesystem_type, module.needs_polling
    return None
