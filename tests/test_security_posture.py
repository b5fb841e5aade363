"""Security posture (issue 5): no shell anywhere, restrictive modes on what the daemon writes,
no network listener. Sidecar paths confined to the configured roots are covered by
``tests/test_sidecar.py``; the systemd sandbox by ``tests/test_systemd.py``.
"""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import psutil

from tests.daemon_harness import REPO, SHORT_CLIP, drop, wait_outcome, write_bytes
from tests.helpers import wait_until

DAEMON_SOURCES = sorted((REPO / "daemon").rglob("*.py"))
SHELL_CALLS = {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"), ("subprocess", "getstatusoutput"),
               ("pty", "spawn"), ("os", "execl"), ("os", "execlp"), ("os", "spawnl"), ("os", "spawnlp")}  # fmt: skip


def _shell_uses(path: Path) -> list[str]:
    found = []
    where = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and (func.value.id, func.attr) in SHELL_CALLS:
            found.append(f"{where}:{node.lineno}: {func.value.id}.{func.attr}()")
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                found.append(f"{where}:{node.lineno}: shell={ast.unparse(keyword.value)}")
        if isinstance(func, ast.Attribute) and func.attr in ("Popen", "run", "call", "check_call", "check_output"):
            if node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                found.append(f"{where}:{node.lineno}: {func.attr}() with a command string")
    return found


def test_the_daemon_never_uses_a_shell():
    assert DAEMON_SOURCES, "no daemon sources found"
    offenders = [use for path in DAEMON_SOURCES for use in _shell_uses(path)]
    assert offenders == []
    text = "\n".join(path.read_text(encoding="utf-8") for path in DAEMON_SOURCES)
    assert "shell=True" not in text and "os.system(" not in text


def test_the_shell_check_itself_catches_a_shell(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("import os, subprocess\nos.system('x')\nsubprocess.run('ls', shell=True)\nsubprocess.Popen(f'ls {1}')\n")
    assert len(_shell_uses(sample)) == 4


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_results_reports_and_locks_are_created_with_restrictive_modes(daemons):
    daemon = daemons(overrides=["backend.name=fault", "backend.fault.trigger=slow", "backend.fault.slow_ms_per_frame=50"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "slow.mp4")
    lock = daemon.inbox / ".posed" / "locks" / "slow.mp4.lock"
    wait_until(lambda: lock.exists() and (daemon.status().get("current_job") or {}).get("frames_done", 0) >= 2, 30)
    assert _mode(lock) == 0o600, oct(_mode(lock))
    partials = list((daemon.outbox / ".tmp").glob("*.partial"))
    assert partials and all(_mode(p) & 0o027 == 0 for p in partials), [oct(_mode(p)) for p in partials]
    write_bytes(daemon.inbox, "broken.mp4", b"not a video")
    assert wait_outcome(daemon.outbox, "slow.mp4")[0] == "result"
    assert wait_outcome(daemon.outbox, "broken.mp4")[0] == "error"
    wait_until(lambda: (daemon.inbox / "failed" / "broken.mp4").exists(), 10)
    status_file = daemon.status_path
    for path in (daemon.outbox / "slow.mp4.result.json", daemon.outbox / "broken.mp4.error.json", status_file):
        mode = _mode(path)
        assert mode & 0o027 == 0, f"{path.name} is {oct(mode)}: group-writable or world-accessible"
    for directory in (daemon.outbox / ".tmp", daemon.inbox / ".posed" / "locks", status_file.parent, daemon.inbox / "done"):
        assert _mode(directory) & 0o007 == 0, f"{directory} is {oct(_mode(directory))}"


def test_the_daemon_and_its_worker_listen_on_no_socket(daemons):
    daemon = daemons(overrides=["backend.name=fault"]).wait_ready()
    drop(SHORT_CLIP, daemon.inbox, "clip.mp4")
    assert wait_outcome(daemon.outbox, "clip.mp4")[0] == "result"
    parent = psutil.Process(daemon.proc.pid)
    processes = [parent, *parent.children(recursive=True)]
    assert len(processes) >= 2, "the worker should be running"
    for process in processes:
        listening = [c for c in process.net_connections(kind="all") if c.status == psutil.CONN_LISTEN]
        assert listening == [], f"pid {process.pid} ({process.name()}) listens on {listening}"
        inet = [c for c in process.net_connections(kind="inet")]
        assert inet == [], f"pid {process.pid} has network sockets: {inet}"
