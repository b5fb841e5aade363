"""Every snippet in README.md and docs/queue.md runs as pasted, or says why it cannot (issue 22).

A fenced block with a language is preceded by ``<!-- run: tests/test_doc_snippets.py ... -->``
(run here, exactly as written) or ``<!-- not runnable: why -->``; fences without a language are
diagrams. The runnable ones run against what they talk about: a real daemon on the 1080p clip
for "Try it" and the Node reader after it, posed's config loader for the queue YAML, and a real
redis-server with a queue-mode daemon for the Node producer.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.config.loading import load_config
from tests.daemon_harness import MEDIA, REPO, DaemonProcess
from tests.test_queue_intake import node_modules  # noqa: F401 - fixture: npm ci in node/ when needed

DOCS = (REPO / "README.md", REPO / "docs" / "queue.md")
RUN_MARK = "<!-- run: tests/test_doc_snippets.py"
NOT_RUNNABLE = "<!-- not runnable:"
FENCE = re.compile(r"^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```$", re.M | re.S)
MOST_NOT_RUNNABLE = 8  # keep the unrunnable set small: each one is a place docs can rot


@dataclass(frozen=True)
class Snippet:
    doc: str
    line: int
    lang: str
    code: str
    marker: str


def snippets(path: Path) -> list[Snippet]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = before if before.startswith("<!--") else ""
        found.append(Snippet(path.name, text.count("\n", 0, match.start()) + 1, match["lang"], match["code"], marker))
    return found


def runnable(doc: Path, lang: str) -> list[str]:
    return [s.code for s in snippets(doc) if s.lang == lang and s.marker.startswith(RUN_MARK)]


def test_every_snippet_is_run_here_or_says_why_not() -> None:
    coded = [s for doc in DOCS for s in snippets(doc) if s.lang]
    unmarked = [f"{s.doc}:{s.line}" for s in coded if not s.marker.startswith((RUN_MARK, NOT_RUNNABLE))]
    assert unmarked == [], f"snippets neither run by tests/test_doc_snippets.py nor marked not runnable: {unmarked}"
    not_runnable = [s for s in coded if s.marker.startswith(NOT_RUNNABLE)]
    assert len(not_runnable) <= MOST_NOT_RUNNABLE, [f"{s.doc}:{s.line}" for s in not_runnable]
    # The run-marked ones are exactly those the tests below run.
    assert [(s.doc, s.lang) for s in coded if s.marker.startswith(RUN_MARK)] == [
        ("README.md", "bash"), ("README.md", "js"), ("queue.md", "yaml"), ("queue.md", "js"),
    ]  # fmt: skip


def _node_project(root: Path) -> Path:
    """A folder where `import 'posed-client'` resolves to this checkout's package, as if installed."""
    link = root / "node_modules" / "posed-client"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(REPO / "node", target_is_directory=True)
    return root


def test_readme_try_it_and_the_node_reader_after_it(tmp_path: Path, node_modules) -> None:  # noqa: F811
    # The layout the README's commands assume: the checkout next to shared/, with .venv and var/.
    (tmp_path / "shared").symlink_to(MEDIA.parent, target_is_directory=True)
    checkout = _node_project(tmp_path / "posed")
    (checkout / ".venv").symlink_to(REPO / ".venv", target_is_directory=True)
    inbox, outbox = checkout / "var" / "inbox", checkout / "var" / "outbox"
    inbox.mkdir(parents=True)
    daemon = DaemonProcess(tmp_path, "readme", inbox=inbox, outbox=outbox).start()
    try:
        daemon.wait_ready(120)
        env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's daemon package, as the editable install gives
        [try_it] = runnable(REPO / "README.md", "bash")
        shell = subprocess.run(["bash", "-e", "-c", try_it], cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
        assert shell.returncode == 0, shell.stderr + daemon.log_tail()
        assert "run.mp4.frames.jsonl" in shell.stdout and "run.mp4.result.json" in shell.stdout
        assert re.search(r"^180 frames \d+ people$", shell.stdout, re.M), shell.stdout

        [reader] = runnable(REPO / "README.md", "js")
        (checkout / "reader.mjs").write_text(reader, encoding="utf-8")
        node = subprocess.run(["node", "reader.mjs"], cwd=checkout, capture_output=True, text=True, timeout=300)
        assert node.returncode == 0, node.stderr
        lines = node.stdout.splitlines()
        assert [int(line.split(" ", 1)[0]) for line in lines] == list(range(180))
        assert any(re.search(r"\[ \[ [\d.]+, [\d.]+, [\d.]+ \] \]$", line) for line in lines), lines[:5]  # the runner's nose, by name
    finally:
        daemon.stop()


def test_queue_yaml_loads_with_posed_config_loader(tmp_path: Path) -> None:
    [yaml] = runnable(REPO / "docs" / "queue.md", "yaml")
    (tmp_path / "posed.yaml").write_text(yaml, encoding="utf-8")
    cfg = load_config(tmp_path / "posed.yaml")
    assert (cfg.intake.kind, cfg.intake.queue, cfg.outbox.path) == ("bullmq", "posed", "/mnt/share/posed/outbox")


def test_queue_producer_block_against_redis_and_a_queue_daemon(tmp_path: Path, redis_server, node_modules) -> None:  # noqa: F811
    # The block enqueues C:\posed\uploads\a.mov; on this Linux host that file does not exist, so
    # the daemon fails the job and the block's catch prints the code: the round trip through
    # Redis, the daemon and back, as pasted.
    queue_mode = ["intake.kind=bullmq", f"intake.url={redis_server.url}", "intake.queue=posed", "intake.input_roots=[/]"]
    daemon = DaemonProcess(tmp_path, "queue-doc", queue_mode).start()
    try:
        daemon.wait_ready(120)
        [producer] = runnable(REPO / "docs" / "queue.md", "js")
        project = _node_project(tmp_path / "backend")
        (project / "producer.mjs").write_text(producer, encoding="utf-8")
        env = {**os.environ, "POSED_REDIS": redis_server.url}
        node = subprocess.run(["node", "producer.mjs"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
        assert node.returncode == 0, node.stdout + node.stderr + daemon.log_tail()
        assert node.stderr.startswith("E_INPUT_VANISHED E_INPUT_VANISHED: a.mov "), node.stderr
        [report] = daemon.outbox.glob("upload-*.error.json")  # the job id the block chose names the report
        assert report.name in node.stderr
    finally:
        daemon.stop()
