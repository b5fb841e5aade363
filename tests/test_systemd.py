"""The systemd side: the unit verifies, its sandbox scores well, and the daemon speaks sd_notify."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess

import pytest

from daemon.config import load_config
from daemon.service import EXIT_NAME_IN_USE

from tests.daemon_harness import REPO, SHORT_CLIP, DaemonProcess, drop, wait_outcome
from tests.helpers import wait_until

UNIT = REPO / "systemd" / "posed.service"
needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def _installed_unit(tmp_path):
    """The unit as install-service.sh writes it: ExecStart pointing at this checkout's venv."""
    text = UNIT.read_text().replace("/opt/posed/.venv/bin/posed", str(REPO / ".venv" / "bin" / "posed"))
    path = tmp_path / "posed.service"
    path.write_text(text)
    return path


@needs_systemd_analyze
def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    done = subprocess.run(["systemd-analyze", "verify", str(_installed_unit(tmp_path))], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "posed.service" not in done.stderr, done.stderr


@needs_systemd_analyze
def test_the_unit_sandbox_scores_ok_in_systemd_analyze_security(tmp_path):
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(_installed_unit(tmp_path))], capture_output=True, text=True
    )
    match = re.search(r"Overall exposure level for posed.service: ([0-9.]+) (\w+)", done.stdout)
    assert match, done.stdout + done.stderr
    print(f"systemd-analyze security: {match.group(1)} {match.group(2)}")
    assert float(match.group(1)) <= 2.0


def test_the_unit_has_the_settings_the_daemon_relies_on():
    text = UNIT.read_text()
    for line in (
        "Type=notify", "WatchdogSec=", "Restart=on-failure", "KillMode=mixed", "Environment=HOME=",
        "Environment=PYTHONBREAKPOINT=0", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=", "User=posed",
    ):  # fmt: skip
        assert line in text, line
    grace = 30  # worker.shutdown_grace_s default + kill_after_s must fit into TimeoutStopSec
    assert int(re.search(r"TimeoutStopSec=(\d+)", text).group(1)) > grace + 5
    # A daemon refused because its name is taken must not be restarted over and over.
    assert f"RestartPreventExitStatus={EXIT_NAME_IN_USE}" in text


def test_daemon_sends_ready_after_models_load_and_feeds_the_watchdog(tmp_path):
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.settimeout(0.2)
    received: list[str] = []
    os.environ["NOTIFY_SOCKET"] = str(sock_path)
    os.environ["WATCHDOG_USEC"] = "1000000"  # 1 s: pings every 0.5 s
    try:
        daemon = DaemonProcess(tmp_path, "notify").start()
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    try:

        def collect():
            try:
                received.append(server.recv(4096).decode())
            except TimeoutError:
                pass
            ready_at = next((i for i, m in enumerate(received) if m.startswith("READY=1")), None)
            return ready_at is not None and received[ready_at:].count("WATCHDOG=1") >= 3

        wait_until(collect, 60, lambda: f"messages so far: {received}")
        ready = [m for m in received if m.startswith("READY=1")]
        assert len(ready) == 1
        assert daemon.status().get("backend"), "READY=1 must come after the models are loaded"
        assert daemon.stop() == 0
        wait_until(lambda: collect() or "STOPPING=1" in received, 10, lambda: f"no STOPPING=1 in {received}")
    finally:
        if daemon.alive():
            daemon.stop()
        server.close()


INSTALLER = REPO / "scripts" / "install-service.sh"


def _verify_only(tmp_path, inbox, outbox, *extra):
    """The installer's own render + verify step, as `sudo install-service.sh` runs it."""
    out = tmp_path / "unit"
    done = subprocess.run(
        ["bash", str(INSTALLER), "--inbox", inbox, "--outbox", outbox, *extra, "--verify-only", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done, out / "posed.service"


@needs_systemd_analyze
def test_the_installer_verification_step_accepts_its_own_unit(tmp_path):
    done, unit = _verify_only(tmp_path, "/mnt/c/posed/inbox", "/mnt/c/posed/outbox")
    assert done.returncode == 0, done.stderr
    assert "unit verified" in done.stderr and "posed.service:" not in done.stderr, done.stderr
    text = unit.read_text()
    assert str(REPO / ".venv" / "bin" / "posed") in text
    # Missing at boot (/mnt/c not mounted yet) must not stop systemd from starting the service.
    assert 'ReadWritePaths="-/mnt/c/posed/inbox" "-/mnt/c/posed/outbox"' in text


@needs_systemd_analyze
def test_the_installer_quotes_paths_that_systemd_would_otherwise_interpret(tmp_path):
    inbox, outbox = "/mnt/c/Users/A B/100% in\\box", '/mnt/c/out "x"'
    done, unit = _verify_only(tmp_path, inbox, outbox)
    assert done.returncode == 0, done.stderr
    line = next(row for row in unit.read_text().splitlines() if row.startswith("ReadWritePaths="))
    assert line == 'ReadWritePaths="-/mnt/c/Users/A B/100%% in\\\\box" "-/mnt/c/out \\"x\\""'


@needs_systemd_analyze
def test_the_installer_verification_refuses_a_unit_systemd_would_partly_ignore(tmp_path):
    done, unit = _verify_only(tmp_path, "/mnt/c/posed/../inbox", "/mnt/c/posed/outbox")
    assert done.returncode != 0  # systemd-analyze itself exits 0 and only says "ignoring"
    assert "not normalized" in done.stderr and "unit verified" not in done.stderr, done.stderr


def test_the_installer_refuses_a_relative_outbox_after_an_absolute_inbox(tmp_path):
    done, unit = _verify_only(tmp_path, "/mnt/c/posed/inbox", "var/outbox")
    assert done.returncode == 2 and "must be absolute" in done.stderr
    assert not unit.exists()


def _verify_queue(tmp_path, *arguments):
    out = tmp_path / "unit"
    done = subprocess.run(["bash", str(INSTALLER), *arguments, "--verify-only", str(out)], capture_output=True, text=True, timeout=120)
    return done, out


@needs_systemd_analyze
def test_queue_mode_writes_the_queue_into_the_config_and_opens_the_sandbox_to_that_redis_only(tmp_path):
    url = "redis://posed:pa%25ss@127.0.0.1:6390/2"
    done, out = _verify_queue(tmp_path, "--queue", url, "--input-root", "/mnt/share/uploads", "--input-root", "/mnt/c/posed/up loads",
                              "--outbox", "/mnt/share/outbox")  # fmt: skip
    assert done.returncode == 0 and "unit verified" in done.stderr, done.stderr
    cfg = load_config(out / "posed.yaml")  # what `posed run --config /etc/posed/posed.yaml` will read
    assert (cfg.intake.kind, cfg.intake.url, cfg.outbox.path) == ("bullmq", url, "/mnt/share/outbox")
    assert cfg.intake.input_roots == ["/mnt/share/uploads", "/mnt/c/posed/up loads"]
    unit = (out / "posed.service").read_text()
    assert "pa%25ss" not in unit and "6390" not in unit  # the URL (and its password) stays in the config
    lines = unit.splitlines()
    assert "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" in lines
    assert lines.index("IPAddressDeny=any") + 1 == lines.index("IPAddressAllow=localhost")  # deny all but Redis
    assert 'ReadWritePaths="-/mnt/share/outbox"' in lines  # inputs are only read
    security = subprocess.run(["systemd-analyze", "security", "--offline=true", str(out / "posed.service")], capture_output=True, text=True)
    score = float(re.search(r"Overall exposure level for posed.service: ([0-9.]+)", security.stdout).group(1))
    print(f"systemd-analyze security, queue mode: {score}")
    assert score <= 2.0


@needs_systemd_analyze
def test_folder_mode_config_is_the_inbox_and_outbox_and_keeps_the_network_closed(tmp_path):
    done, out = _verify_queue(tmp_path, "--inbox", "/mnt/c/posed/inbox", "--outbox", "/mnt/c/posed/outbox")
    assert done.returncode == 0, done.stderr
    cfg = load_config(out / "posed.yaml")
    assert (cfg.intake.kind, cfg.inbox.path, cfg.outbox.path) == ("folder", "/mnt/c/posed/inbox", "/mnt/c/posed/outbox")
    lines = (out / "posed.service").read_text().splitlines()
    assert "RestrictAddressFamilies=AF_UNIX" in lines and not any(line.startswith("IPAddressAllow=") for line in lines)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--queue", "redis://127.0.0.1:6379/0", "--outbox", "/o"], "needs --input-root"),
        (["--queue", "redis://127.0.0.1:6379/0", "--input-root", "/i", "--inbox", "/in", "--outbox", "/o"], "drop --inbox"),
        (["--inbox", "/in", "--input-root", "/i", "--outbox", "/o"], "--input-root is for --queue"),
        (["--queue", "redis://127.0.0.1:6379/0", "--input-root", "uploads", "--outbox", "/o"], "must be absolute"),
        (["--queue", "http://127.0.0.1:6379/0", "--input-root", "/i", "--outbox", "/o"], "the config would not load"),
        (["--queue", "redis://no-such-host.invalid:6379/0", "--input-root", "/i", "--outbox", "/o"], "cannot resolve the Redis host"),
    ],
)
def test_queue_mode_refuses_what_would_not_run(tmp_path, arguments, message):
    done, out = _verify_queue(tmp_path, *arguments)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert not (out / "posed.service").exists()


def test_a_daemon_started_before_its_inbox_is_mounted_waits_and_then_processes(daemons, tmp_path):
    """Boot order on WSL: the service may start before /mnt/c is mounted (hence the "-" in
    ReadWritePaths). The drive is a dangling symlink here: the daemon cannot create the inbox
    through it, so it must wait, and pick up the inbox once the "mount" appears."""
    drive = tmp_path / "drive-c"
    (tmp_path / "mnt-c").symlink_to(drive, target_is_directory=True)
    inbox = tmp_path / "mnt-c" / "posed" / "inbox"
    daemon = daemons(overrides=["backend.name=fault"], inbox=inbox)
    wait_until(lambda: any(e.get("event") == "inbox.unavailable" for e in daemon.log_events()), 60, daemon.log_tail)
    assert daemon.alive() and not drive.exists()

    (drive / "posed" / "inbox").mkdir(parents=True)  # the mount arrives: the symlink now resolves
    wait_until(lambda: any(e.get("event") == "inbox.available" for e in daemon.log_events()), 60, daemon.log_tail)
    drop(SHORT_CLIP, inbox, "after-mount.mp4")
    assert wait_outcome(daemon.outbox, "after-mount.mp4")[0] == "result"
    assert daemon.stop() == 0


@needs_systemd_analyze
def test_the_verified_config_holding_a_password_is_never_world_readable(tmp_path):
    url = "redis://posed:s3cret-pw@127.0.0.1:6390/2"
    done, out = _verify_queue(tmp_path, "--queue", url, "--input-root", "/mnt/share/uploads", "--outbox", "/mnt/share/outbox")
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((out / "posed.yaml").stat().st_mode) == 0o600  # was 0644 (issue 21 item 8)
    assert "s3cret-pw" in (out / "posed.yaml").read_text() and "s3cret-pw" not in done.stderr


@pytest.mark.parametrize("user", ["", "Root Admin", "-posed"])
def test_the_installer_refuses_an_empty_or_odd_user(tmp_path, user):
    done, out = _verify_queue(tmp_path, "--inbox", "/mnt/c/posed/inbox", "--outbox", "/mnt/c/posed/outbox", "--user", user)
    assert done.returncode == 2 and "--user needs a user name" in done.stderr, done.stderr
    assert not out.exists()  # an empty User= would have run the daemon as root


@needs_systemd_analyze
def test_rerunning_with_other_paths_shows_the_difference_and_refuses_unless_told(tmp_path):
    first = ["--queue", "redis://posed:s3cret-pw@127.0.0.1:6390/2", "--input-root", "/mnt/share/uploads", "--outbox", "/mnt/share/outbox"]
    assert _verify_queue(tmp_path, *first)[0].returncode == 0
    unit_before = (tmp_path / "unit" / "posed.service").read_text()
    again, out = _verify_queue(tmp_path, *first)
    assert again.returncode == 0 and "already holds these options" in again.stderr, again.stderr

    moved = first[:-1] + ["/mnt/share/outbox2"]
    refused, out = _verify_queue(tmp_path, *moved)
    assert refused.returncode == 1 and "differs from these options" in refused.stderr, refused.stderr
    assert "-  path: /mnt/share/outbox" in refused.stderr and "+  path: /mnt/share/outbox2" in refused.stderr
    assert "s3cret-pw" not in refused.stderr  # the difference hides the password
    assert load_config(out / "posed.yaml").outbox.path == "/mnt/share/outbox"
    assert (out / "posed.service").read_text() == unit_before  # the unit was not rewritten either

    replaced, out = _verify_queue(tmp_path, *moved, "--replace-config")
    assert replaced.returncode == 0, replaced.stderr
    assert load_config(out / "posed.yaml").outbox.path == "/mnt/share/outbox2"
    assert load_config(out / "posed.yaml.bak").outbox.path == "/mnt/share/outbox"
    assert '"-/mnt/share/outbox2"' in (out / "posed.service").read_text()
