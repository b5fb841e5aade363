"""A real ``redis-server`` (the Debian package) for tests: a free localhost port, a temp dir.

Persistence is on (append-only file, fsync always) so a restart keeps every job, as a
production Redis for BullMQ must (BullMQ's docs: AOF, ``maxmemory-policy noeviction``).
``stop`` is a clean SIGTERM shutdown; ``start`` again reuses the port and the data.
``tls=True``: TLS only (``rediss://``), with a self-signed certificate for 127.0.0.1 made by the
``openssl`` command in the data folder; ``ca_file`` is what a verifying client needs.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server")
INSTALL_HINT = "redis-server is not installed: apt-get update && apt-get install -y redis-server"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None, *, tls: bool = False) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError(INSTALL_HINT)
        self.dir = directory
        self.port = port or free_port()
        self.tls = tls
        self.ca_file = directory / "cert.pem"
        self.proc: subprocess.Popen | None = None
        self.log_path = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--maxmemory-policy", "noeviction", "--logfile", str(self.log_path), "--daemonize", "no",
        ]  # fmt: skip
        if self.tls:
            command += self._tls_arguments()
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # SIGTERM: redis flushes the append-only file and exits
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _tls_arguments(self) -> list[str]:
        key = self.dir / "key.pem"
        if not self.ca_file.exists():
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(self.ca_file),
                            "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                           check=True, capture_output=True, timeout=60)  # fmt: skip
        return ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.ca_file), "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(self.ca_file), "--tls-auth-clients", "no"]  # fmt: skip

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as raw:
                conn = ssl.create_default_context(cafile=self.ca_file).wrap_socket(raw, server_hostname="127.0.0.1") if self.tls else raw
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
